package oip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/serving"
)

// Defaults of HandlerOptions and GRPCOptions.
const (
	// DefaultMaxBodyBytes is the largest REST request body accepted.
	DefaultMaxBodyBytes = 64 << 20
	// DefaultTimeout bounds one inference request.
	DefaultTimeout = 30 * time.Second
	// DefaultServerName is the name the server metadata reports.
	DefaultServerName = "quiver"
)

// extensions lists the protocol extensions the REST endpoints implement,
// as the server metadata reports them.
var extensions = []string{"binary_tensor_data"}

// core is what the REST handler and the gRPC server share: resolving a
// model, running a request on it, and choosing the outputs of the answer.
type core struct {
	repo    Repository
	timeout time.Duration
	log     *slog.Logger
	name    string
	version string
	ready   func(context.Context) bool
}

func newCore(repo Repository, timeout time.Duration, log *slog.Logger, name, version string, ready func(context.Context) bool) *core {
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	if log == nil {
		log = slog.Default()
	}
	if name == "" {
		name = DefaultServerName
	}
	if version == "" {
		version = moduleVersion()
	}
	c := &core{repo: repo, timeout: timeout, log: log, name: name, version: version, ready: ready}
	if c.ready == nil {
		c.ready = c.allReady
	}
	return c
}

// moduleVersion is the version of the Quiver module in the running binary,
// "devel" when built from a checkout.
func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/quiverml/quiver" && d.Version != "" {
				return d.Version
			}
		}
		if bi.Main.Path == "github.com/quiverml/quiver" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
	}
	return "devel"
}

// allReady is the default readiness: the repository serves at least one
// model, and every model it lists is ready.
func (c *core) allReady(ctx context.Context) bool {
	names, err := c.repo.Names(ctx)
	if err != nil || len(names) == 0 {
		return false
	}
	for _, n := range names {
		md, err := c.repo.Metadata(ctx, n, "")
		if err != nil || !md.Ready {
			return false
		}
	}
	return true
}

// modelMetadata gathers what the model metadata endpoints answer.
type modelMetadata struct {
	name     string
	md       Metadata
	inputs   []serving.IOInfo
	outputs  []serving.IOInfo
	notReady bool
}

func (c *core) metadata(ctx context.Context, name, version string) (modelMetadata, error) {
	m, err := c.repo.Model(ctx, name, version)
	if err != nil {
		return modelMetadata{}, err
	}
	md, err := c.repo.Metadata(ctx, name, version)
	if err != nil {
		return modelMetadata{}, err
	}
	info := m.Info()
	out := modelMetadata{name: name, md: md}
	for _, io := range info.Inputs {
		if io.Kind == serving.KindTensor {
			out.inputs = append(out.inputs, io)
		}
	}
	// Sequences and maps cannot be answered: the metadata leaves them out,
	// as answers do.
	for _, io := range info.Outputs {
		if io.Kind == serving.KindTensor {
			out.outputs = append(out.outputs, io)
		}
	}
	return out, nil
}

// inferResult is an answer, ready to encode.
type inferResult struct {
	model   string
	version string
	id      string
	outputs []resultOutput
}

type resultOutput struct {
	name   string
	tensor serving.Tensor
	binary bool
}

// infer runs req on the model name serves at version.
// badRequest is the error for a request to name at version whose body did
// not decode (err): an unknown model or version, when it is one, since a
// client that names the wrong model learns that first, whatever its body;
// otherwise err, naming the model.
func (c *core) badRequest(ctx context.Context, name, version string, err error) error {
	if _, merr := c.repo.Model(ctx, name, version); errors.Is(merr, ErrModelNotFound) || errors.Is(merr, ErrVersionNotFound) {
		return merr
	}
	return fmt.Errorf("model %q: %w", name, err)
}

func (c *core) infer(ctx context.Context, name, version string, req *inferRequest) (inferResult, error) {
	m, err := c.repo.Model(ctx, name, version)
	if err != nil {
		return inferResult{}, err
	}
	info := m.Info()
	if err := checkRequest(info, req); err != nil {
		return inferResult{}, fmt.Errorf("model %q: %w", name, err)
	}
	// A registry alias anywhere behind m (a Handle, a Batcher in front of
	// one) reports the version that answered; the hook may run on the
	// goroutine of a merged batch.
	served := new(atomic.Int64)
	ctx = registry.WithServedHook(ctx, func(s registry.Served) { served.Store(s.Version) })
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	out, err := m.Predict(ctx, req.inputs)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return inferResult{}, fmt.Errorf("model %q: no answer before the deadline (timeout %v): %w", name, c.timeout, err)
		}
		return inferResult{}, fmt.Errorf("model %q: %w", name, err)
	}
	res := inferResult{model: name, id: req.id}
	if v := served.Load(); v > 0 {
		res.version = strconv.FormatInt(v, 10)
	}
	res.outputs, err = selectOutputs(info, out, req)
	if err != nil {
		return inferResult{}, fmt.Errorf("model %q: %w", name, err)
	}
	return res, nil
}

// checkRequest checks what the protocol adds to a model's own validation:
// datatypes named as clients name them, and requested outputs that exist.
// The model validates the rest (names, shapes) when it runs.
func checkRequest(info serving.Info, req *inferRequest) error {
	for name, t := range req.inputs {
		if io, ok := info.Input(name); ok && io.Kind == serving.KindTensor && io.ElementType != t.ElementType() {
			return &serving.InputError{Input: name, Kind: serving.ErrType,
				Got: "datatype " + Datatype(t.ElementType()), Want: "datatype " + metadataDatatype(io.ElementType)}
		}
	}
	if len(info.Outputs) == 0 {
		// Nothing described (a registry alias before its first load): the
		// run says what is wrong.
		return nil
	}
	for _, o := range req.outputs {
		i := slices.IndexFunc(info.Outputs, func(io serving.IOInfo) bool { return io.Name == o.name })
		if i < 0 {
			return fmt.Errorf("%w: requested output %q does not exist; the outputs are %s", ErrInvalidRequest, o.name, outputNames(info))
		}
		if k := info.Outputs[i].Kind; k != serving.KindTensor {
			return fmt.Errorf("%w: requested output %q is a %v; the protocol carries tensors only", ErrUnsupported, o.name, k)
		}
	}
	return nil
}

func outputNames(info serving.Info) string {
	names := make([]string, len(info.Outputs))
	for i, io := range info.Outputs {
		names[i] = io.Name
	}
	return listNames(names)
}

// selectOutputs picks the answer's outputs: those requested, in request
// order, or every tensor output in the model's order (then any the model
// did not describe, by name).
func selectOutputs(info serving.Info, out map[string]serving.Value, req *inferRequest) ([]resultOutput, error) {
	var res []resultOutput
	add := func(name string, v serving.Value, binary bool) error {
		if v.Kind != serving.KindTensor {
			return fmt.Errorf("%w: output %q is a %v; the protocol carries tensors only", ErrUnsupported, name, v.Kind)
		}
		t := v.Tensor
		if Datatype(t.ElementType()) == "" {
			return fmt.Errorf("%w: output %q has element type %v, which has no datatype in the protocol", ErrUnsupported, name, t.ElementType())
		}
		if s, ok := t.Data.([]string); ok {
			for i, e := range s {
				if uint64(len(e)) > math.MaxUint32 {
					return fmt.Errorf("%w: output %q: BYTES element %d holds %d bytes; the protocol's limit is 4 GiB", ErrUnsupported, name, i, len(e))
				}
			}
		}
		res = append(res, resultOutput{name: name, tensor: t, binary: binary})
		return nil
	}
	if req.outputs != nil {
		res = make([]resultOutput, 0, len(req.outputs))
		for _, o := range req.outputs {
			v, ok := out[o.name]
			if !ok {
				return nil, fmt.Errorf("%w: requested output %q does not exist; the outputs are %s", ErrInvalidRequest, o.name, valueNames(out))
			}
			if err := add(o.name, v, o.binary); err != nil {
				return nil, err
			}
		}
		return res, nil
	}
	res = make([]resultOutput, 0, len(out))
	done := 0
	for _, io := range info.Outputs {
		v, ok := out[io.Name]
		if !ok {
			continue
		}
		done++
		if v.Kind != serving.KindTensor {
			continue
		}
		if err := add(io.Name, v, req.binary); err != nil {
			return nil, err
		}
	}
	if done < len(out) {
		var rest []string
		for name := range out {
			if slices.IndexFunc(info.Outputs, func(io serving.IOInfo) bool { return io.Name == name }) < 0 {
				rest = append(rest, name)
			}
		}
		sort.Strings(rest)
		for _, name := range rest {
			if v := out[name]; v.Kind == serving.KindTensor {
				if err := add(name, v, req.binary); err != nil {
					return nil, err
				}
			}
		}
	}
	return res, nil
}

func valueNames(out map[string]serving.Value) string {
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	sort.Strings(names)
	return listNames(names)
}
