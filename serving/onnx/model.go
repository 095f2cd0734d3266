package onnx

import (
	"context"
	"math"

	"fmt"
	"github.com/quiverml/quiver/serving"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	ortenv "github.com/quiverml/quiver/internal/ort"
	ort "github.com/yalue/onnxruntime_go"
)

// liveSessions counts ONNX Runtime sessions that are open in this process.
var liveSessions atomic.Int64

// LiveSessions returns how many ONNX Runtime sessions are open in this
// process: a leak check for code that loads and closes models.
func LiveSessions() int64 { return liveSessions.Load() }

// Model is a serving.Model backed by one ONNX Runtime session. Predict may
// be called from many goroutines at once: ONNX Runtime runs them
// concurrently on the same session.
type Model struct {
	info    serving.Info
	sig     *graphSignature
	session *ort.DynamicAdvancedSession
	inNames []string
	outIdx  map[string]int

	mu     sync.RWMutex // held for reading by every run, for writing by Close
	closed bool

	// Run options (the handle that terminates a run when its context ends)
	// are kept for reuse: creating one per run costs more than a small run.
	roMu   sync.Mutex
	roFree []*ort.RunOptions
}

// maxIdleRunOptions bounds the run options a Model keeps for reuse.
const maxIdleRunOptions = 64

var (
	_ serving.Model         = (*Model)(nil)
	_ serving.InputBorrower = (*Model)(nil)
)

// BorrowsInputs reports true: ONNX Runtime copies nothing it keeps, and a
// run is done with its inputs when Predict returns.
func (m *Model) BorrowsInputs() bool { return true }

// Load reads an ONNX model file and opens it on ONNX Runtime. See LoadBytes
// for what ctx bounds.
func Load(ctx context.Context, path string, opts Options) (*Model, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("onnx: loading %s: %w", path, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", serving.ErrModel, err)
	}
	if opts.Name == "" {
		opts.Name = filepath.Base(path)
	}
	return LoadBytes(ctx, data, opts)
}

// LoadBytes opens an ONNX model held in memory on ONNX Runtime. data is not
// retained. When ctx ends before the session is created (and warmed up,
// with Options.WarmUp), LoadBytes returns the context's error at once; the
// session still being built is closed in the background as soon as ONNX
// Runtime hands it back, since a session under construction cannot be
// interrupted.
func LoadBytes(ctx context.Context, data []byte, opts Options) (*Model, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("onnx: loading %s: %w", opts.Name, err)
	}
	if ctx.Done() == nil {
		return loadBytes(data, opts)
	}
	type loaded struct {
		m   *Model
		err error
	}
	done := make(chan loaded, 1)
	go func() {
		m, err := loadBytes(data, opts)
		done <- loaded{m, err}
	}()
	select {
	case l := <-done:
		return l.m, l.err
	case <-ctx.Done():
		go func() {
			if l := <-done; l.m != nil {
				l.m.Close()
			}
		}()
		name := opts.Name
		if name == "" {
			name = "model"
		}
		return nil, fmt.Errorf("onnx: loading %s: %w", name, ctx.Err())
	}
}

func loadBytes(data []byte, opts Options) (*Model, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Name == "" {
		opts.Name = "model"
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("%w %q: empty model data", serving.ErrModel, opts.Name)
	}
	if err := ortenv.Init(opts.LibraryPath); err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	sig, err := parseSignature(data)
	if err != nil {
		return nil, fmt.Errorf("%w %q: not an ONNX model: %v", serving.ErrModel, opts.Name, err)
	}
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", serving.ErrModel, opts.Name, err)
	}
	m := &Model{sig: sig, outIdx: map[string]int{}}
	m.info = serving.Info{Name: opts.Name, Requested: string(opts.Provider)}
	for _, in := range ins {
		m.info.Inputs = append(m.info.Inputs, ioInfo(in, sig))
		m.inNames = append(m.inNames, in.Name)
	}
	outNames := make([]string, 0, len(outs))
	for i, out := range outs {
		m.info.Outputs = append(m.info.Outputs, ioInfo(out, sig))
		outNames = append(outNames, out.Name)
		m.outIdx[out.Name] = i
	}
	batchable, unknown, reason := batchability(m.info, sig)
	m.info.Batchable, m.info.BatchReason, m.info.BatchRule = batchable, reason, RuleNames
	if !batchable && !unknown {
		m.info.BatchRule = RuleStructure
	}

	so, provider, err := sessionOptions(opts)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	m.info.Provider = string(provider)
	session, err := ort.NewDynamicAdvancedSessionWithONNXData(data, m.inNames, outNames, so)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", serving.ErrModel, opts.Name, err)
	}
	m.session = session
	liveSessions.Add(1)
	if err := m.readMetadata(); err != nil {
		m.Close()
		return nil, err
	}
	switch {
	case m.info.BatchRule == RuleStructure:
	case opts.Batching == BatchAlways:
		m.info.Batchable, m.info.BatchRule = true, RuleOption
		m.info.BatchReason = "Options.Batching is BatchAlways (" + reason + ")"
	case opts.Batching == BatchNever:
		m.info.Batchable, m.info.BatchRule = false, RuleOption
		m.info.BatchReason = "Options.Batching is BatchNever"
	case unknown:
		ok, why, err := m.probe(opts)
		if err != nil {
			m.info.BatchReason = fmt.Sprintf("%s, and the probe could not run: %v", reason, err)
			opts.Logger.Info("onnx: batching probe could not run; model runs unbatched", "model", opts.Name, "error", err)
			break
		}
		m.info.Batchable, m.info.BatchRule, m.info.BatchReason = ok, RuleProbe, why
	}
	if opts.WarmUp {
		if err := m.warmUp(opts); err != nil {
			m.Close()
			return nil, fmt.Errorf("onnx: warm-up of %q failed: %w", opts.Name, err)
		}
		opts.Logger.Debug("onnx: model warmed up", "model", opts.Name)
	}
	opts.Logger.Debug("onnx: model loaded", "model", opts.Name, "provider", provider,
		"inputs", len(m.info.Inputs), "outputs", len(m.info.Outputs), "batchable", m.info.Batchable)
	return m, nil
}

func ioInfo(in ort.InputOutputInfo, sig *graphSignature) serving.IOInfo {
	io := serving.IOInfo{Name: in.Name}
	switch in.OrtValueType {
	case ort.ONNXTypeTensor:
		io.Kind = serving.KindTensor
		io.ElementType = serving.ElementType(in.DataType)
		io.Shape = append([]int64{}, in.Dimensions...)
		if dims := sig.dims[in.Name]; len(dims) == len(io.Shape) {
			for k, d := range dims {
				if d.param != "" {
					if io.DimNames == nil {
						io.DimNames = make([]string, len(dims))
					}
					io.DimNames[k] = d.param
				}
			}
		}
	case ort.ONNXTypeSequence:
		io.Kind = serving.KindSequence
	case ort.ONNXTypeMap:
		io.Kind = serving.KindMap
	default:
		io.Kind = serving.KindOther
	}
	return io
}

// Rules that decide Info.Batchable, reported in Info.BatchRule.
const (
	// RuleStructure: some input or output cannot carry a batch axis (not
	// a tensor, a scalar, a fixed first axis); nothing can override it.
	RuleStructure = "structure"
	// RuleNames: every dynamic first axis that is named carries the same
	// name, which proves they are one batch axis; or, when names differ
	// and the probe could not run, the names decide against batching.
	RuleNames = "names"
	// RuleProbe: first axes carry different names, and runs at batch 1
	// and 2 on generated inputs decided.
	RuleProbe = "probe"
	// RuleOption: Options.Batching forced the decision.
	RuleOption = "option"
)

// batchability decides from the model's structure and axis names whether
// requests can be merged along axis 0. unknown means the structure allows
// it but the first axes carry different names: converters give every
// dynamic axis a fresh name, so only a probe can tell.
func batchability(info serving.Info, sig *graphSignature) (ok, unknown bool, reason string) {
	if len(info.Inputs) == 0 {
		return false, false, "model has no inputs"
	}
	name, differ := "", ""
	check := func(io serving.IOInfo, what string) string {
		if io.Kind != serving.KindTensor {
			if what == "output" && io.Kind == serving.KindSequence && sig.seqOfMaps[io.Name] {
				return "" // one map per row: split by element
			}
			return fmt.Sprintf("%s %q is a %s, not a tensor with a batch axis", what, io.Name, io.Kind)
		}
		if len(io.Shape) == 0 {
			return fmt.Sprintf("%s %q is a scalar, it has no batch axis", what, io.Name)
		}
		if io.Shape[0] >= 0 {
			return fmt.Sprintf("%s %q has a fixed first axis of size %d", what, io.Name, io.Shape[0])
		}
		if d := sig.dims[io.Name]; len(d) > 0 && d[0].param != "" {
			if name == "" {
				name = d[0].param
			} else if d[0].param != name && differ == "" {
				differ = fmt.Sprintf("%s %q has first axis %q, other tensors have %q", what, io.Name, d[0].param, name)
			}
		}
		return ""
	}
	for _, in := range info.Inputs {
		if r := check(in, "input"); r != "" {
			return false, false, r
		}
	}
	for _, out := range info.Outputs {
		if r := check(out, "output"); r != "" {
			return false, false, r
		}
	}
	if differ != "" {
		return false, true, differ
	}
	if name == "" {
		return true, false, "every first axis is dynamic and unnamed"
	}
	return true, false, fmt.Sprintf("every named first axis is %q", name)
}

func (m *Model) readMetadata() error {
	md, err := m.session.GetModelMetadata()
	if err != nil {
		return fmt.Errorf("%w %q: reading metadata: %v", serving.ErrModel, m.info.Name, err)
	}
	defer md.Destroy()
	m.info.Producer, _ = md.GetProducerName()
	m.info.GraphName, _ = md.GetGraphName()
	m.info.Domain, _ = md.GetDomain()
	m.info.Description, _ = md.GetDescription()
	m.info.Version, _ = md.GetVersion()
	if m.info.Version == math.MaxInt64 {
		// ONNX Runtime's answer for a file that records no model version.
		m.info.Version = 0
	}
	keys, err := md.GetCustomMetadataMapKeys()
	if err != nil {
		return fmt.Errorf("%w %q: reading custom metadata: %v", serving.ErrModel, m.info.Name, err)
	}
	m.info.Custom = make(map[string]string, len(keys))
	for _, k := range keys {
		if v, ok, err := md.LookupCustomMetadataMap(k); err == nil && ok {
			m.info.Custom[k] = v
		}
	}
	return nil
}

// Info describes the model. The returned value shares nothing with the model.
func (m *Model) Info() serving.Info { return m.info.Clone() }

// Predict validates inputs against the model's signature, then runs it. A
// cancelled ctx terminates a run in progress.
func (m *Model) Predict(ctx context.Context, inputs map[string]serving.Tensor) (map[string]serving.Value, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("onnx: %s: %w", m.info.Name, err)
	}
	if err := serving.Validate(m.info, inputs); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, serving.ErrClosed
	}
	return m.run(ctx, inputs)
}

func (m *Model) run(ctx context.Context, inputs map[string]serving.Tensor) (map[string]serving.Value, error) {
	in := make([]ort.Value, len(m.inNames))
	defer func() {
		for _, v := range in {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, name := range m.inNames {
		v, err := toORT(inputs[name])
		if err != nil {
			return nil, &serving.InputError{Input: name, Kind: serving.ErrInput, Got: err.Error(), Want: "a tensor ONNX Runtime accepts"}
		}
		in[i] = v
	}
	out, err := m.preallocateOutputs(inputs)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, v := range out {
			if v != nil {
				v.Destroy()
			}
		}
	}()

	var ro *ort.RunOptions
	if ctx.Done() != nil {
		ro, err = m.getRunOptions()
		if err != nil {
			return nil, fmt.Errorf("onnx: %s: run options: %v", m.info.Name, err)
		}
		fired := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			ro.Terminate()
			close(fired)
		})
		defer func() {
			if !stop() {
				<-fired // Terminate has been called: clear it before reuse
				if ro.UnsetTerminate() != nil {
					ro.Destroy()
					return
				}
			}
			m.putRunOptions(ro)
		}()
	}
	if err := m.session.RunWithOptions(in, out, ro); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("onnx: %s: run terminated: %w", m.info.Name, ctxErr)
		}
		return nil, &serving.RunError{Model: m.info.Name, Err: err}
	}
	res := make(map[string]serving.Value, len(out))
	for i, v := range out {
		gv, err := fromORT(v)
		if err != nil {
			return nil, &serving.RunError{Model: m.info.Name, Err: fmt.Errorf("output %q: %w", m.info.Outputs[i].Name, err)}
		}
		res[m.info.Outputs[i].Name] = gv
	}
	return res, nil
}

func (m *Model) getRunOptions() (*ort.RunOptions, error) {
	m.roMu.Lock()
	if n := len(m.roFree); n > 0 {
		ro := m.roFree[n-1]
		m.roFree = m.roFree[:n-1]
		m.roMu.Unlock()
		return ro, nil
	}
	m.roMu.Unlock()
	return ort.NewRunOptions()
}

func (m *Model) putRunOptions(ro *ort.RunOptions) {
	m.roMu.Lock()
	if len(m.roFree) < maxIdleRunOptions {
		m.roFree = append(m.roFree, ro)
		ro = nil
	}
	m.roMu.Unlock()
	if ro != nil {
		ro.Destroy()
	}
}

// preallocateOutputs binds Go-owned buffers to the outputs whose shape is
// known before the run (fixed, or named like an input axis), so ONNX Runtime
// writes results straight into Go memory: one copy and one allocation fewer
// per output, and the only way the Go binding can return scalars and 16-bit
// float tensors whole. Other outputs are left nil for the runtime to allocate.
func (m *Model) preallocateOutputs(inputs map[string]serving.Tensor) ([]ort.Value, error) {
	out := make([]ort.Value, len(m.info.Outputs))
	for i, o := range m.info.Outputs {
		if o.Kind != serving.KindTensor {
			continue
		}
		if o.ElementType == serving.String && len(o.Shape) != 0 {
			continue // string tensors are always allocated by the runtime
		}
		shape, ok := m.inferShape(o, inputs)
		if !ok || slices.Contains(shape, 0) {
			continue // fromORT reports the binding's limitation if it bites
		}
		v, err := emptyORT(o.ElementType, shape)
		if err != nil {
			for _, v := range out {
				if v != nil {
					v.Destroy()
				}
			}
			return nil, &serving.RunError{Model: m.info.Name, Err: fmt.Errorf("output %q: %w", o.Name, err)}
		}
		out[i] = v
	}
	return out, nil
}

// inferShape resolves an output's shape from its fixed dimensions and from
// symbolic dimensions it shares with an input.
func (m *Model) inferShape(o serving.IOInfo, inputs map[string]serving.Tensor) ([]int64, bool) {
	shape := make([]int64, len(o.Shape))
	odims := m.sig.dims[o.Name]
	for k, d := range o.Shape {
		if d >= 0 {
			shape[k] = d
			continue
		}
		if k >= len(odims) || odims[k].param == "" {
			return nil, false
		}
		found := false
		for _, in := range m.info.Inputs {
			for j, id := range m.sig.dims[in.Name] {
				if id.param == odims[k].param && j < len(inputs[in.Name].Shape) {
					shape[k], found = inputs[in.Name].Shape[j], true
					break
				}
			}
			if found {
				break
			}
		}
		if !found {
			return nil, false
		}
	}
	return shape, true
}

func (m *Model) warmUp(opts Options) error {
	for name := range opts.WarmUpInputs {
		if _, ok := m.info.Input(name); !ok {
			return fmt.Errorf("WarmUpInputs names %q, which is not an input of the model (inputs: %v)", name, m.info.Inputs)
		}
	}
	inputs := make(map[string]serving.Tensor, len(m.info.Inputs))
	for _, in := range m.info.Inputs {
		if t, ok := opts.WarmUpInputs[in.Name]; ok {
			inputs[in.Name] = t
			continue
		}
		if in.Kind != serving.KindTensor {
			return fmt.Errorf("input %q is a %s; warm-up needs tensor inputs (give one in WarmUpInputs)", in.Name, in.Kind)
		}
		shape := make([]int64, len(in.Shape))
		for k, d := range in.Shape {
			if d < 0 {
				d = 1
				if k < len(in.DimNames) {
					if n, ok := opts.WarmUpDims[in.DimNames[k]]; ok {
						d = n
					}
				}
			}
			shape[k] = d
		}
		inputs[in.Name] = serving.ZeroTensor(in.ElementType, shape)
	}
	_, err := m.Predict(context.Background(), inputs)
	return err
}

// Close waits for runs in progress, then frees the session. It is safe to
// call more than once and from several goroutines; calls after the first
// return nil.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.roMu.Lock()
	for _, ro := range m.roFree {
		ro.Destroy()
	}
	m.roFree = nil
	m.roMu.Unlock()
	if m.session == nil {
		return nil
	}
	liveSessions.Add(-1)
	if err := m.session.Destroy(); err != nil {
		return fmt.Errorf("onnx: %s: destroying session: %w", m.info.Name, err)
	}
	return nil
}

// providerError classifies an error from appending an execution provider.
func providerError(p Provider, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrProviderUnavailable, p, err)
}

func sessionOptions(opts Options) (*ort.SessionOptions, Provider, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, "", fmt.Errorf("onnx: session options: %w", err)
	}
	fail := func(err error) (*ort.SessionOptions, Provider, error) {
		so.Destroy()
		return nil, "", err
	}
	if err := so.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
		return fail(fmt.Errorf("onnx: intra-op threads: %w", err))
	}
	if err := so.SetInterOpNumThreads(opts.InterOpThreads); err != nil {
		return fail(fmt.Errorf("onnx: inter-op threads: %w", err))
	}
	if err := so.SetCpuMemArena(!opts.DisableCPUArena); err != nil {
		return fail(fmt.Errorf("onnx: CPU arena: %w", err))
	}
	level := map[GraphOptimization]ort.GraphOptimizationLevel{
		OptimizeDefault:  ort.GraphOptimizationLevelEnableAll,
		OptimizeNone:     ort.GraphOptimizationLevelDisableAll,
		OptimizeBasic:    ort.GraphOptimizationLevelEnableBasic,
		OptimizeExtended: ort.GraphOptimizationLevelEnableExtended,
		OptimizeAll:      ort.GraphOptimizationLevelEnableAll,
	}[opts.GraphOptimization]
	if err := so.SetGraphOptimizationLevel(level); err != nil {
		return fail(fmt.Errorf("onnx: graph optimization: %w", err))
	}
	var perr error
	switch opts.Provider {
	case ProviderCUDA:
		perr = appendCUDA(so, opts.CUDA)
	case ProviderTensorRT:
		perr = appendTensorRT(so, opts.TensorRT)
		if perr == nil {
			// TensorRT hands unsupported nodes to CUDA, as ONNX Runtime recommends.
			perr = appendCUDA(so, opts.CUDA)
		}
	}
	if perr == nil {
		return so, opts.Provider, nil
	}
	if !opts.AllowCPUFallback {
		return fail(providerError(opts.Provider, perr))
	}
	opts.Logger.Warn("onnx: execution provider unavailable, falling back to CPU",
		"model", opts.Name, "provider", opts.Provider, "error", perr)
	// Start over so no half-registered provider is left behind.
	so.Destroy()
	cpu := opts
	cpu.Provider = ProviderCPU
	so, _, err = sessionOptions(cpu)
	return so, ProviderCPU, err
}

func appendCUDA(so *ort.SessionOptions, c CUDAOptions) error {
	co, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return err
	}
	defer co.Destroy()
	kv := map[string]string{"device_id": strconv.Itoa(c.DeviceID)}
	if c.MemoryLimit > 0 {
		kv["gpu_mem_limit"] = strconv.FormatUint(c.MemoryLimit, 10)
	}
	if c.ConvAlgoSearch != "" {
		kv["cudnn_conv_algo_search"] = c.ConvAlgoSearch
	}
	if err := co.Update(kv); err != nil {
		return err
	}
	return so.AppendExecutionProviderCUDA(co)
}

func appendTensorRT(so *ort.SessionOptions, t TensorRTOptions) error {
	to, err := ort.NewTensorRTProviderOptions()
	if err != nil {
		return err
	}
	defer to.Destroy()
	kv := map[string]string{"device_id": strconv.Itoa(t.DeviceID)}
	if t.FP16 {
		kv["trt_fp16_enable"] = "1"
	}
	if t.EngineCachePath != "" {
		kv["trt_engine_cache_enable"] = "1"
		kv["trt_engine_cache_path"] = t.EngineCachePath
	}
	if t.MaxWorkspaceSize > 0 {
		kv["trt_max_workspace_size"] = strconv.FormatUint(t.MaxWorkspaceSize, 10)
	}
	if err := to.Update(kv); err != nil {
		return err
	}
	return so.AppendExecutionProviderTensorRT(to)
}
