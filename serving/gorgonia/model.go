package gorgonia

import (
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/quiverml/quiver/serving"
)

// Model is a serving.Model that runs an ONNX model in pure Go on gorgonia
// graphs. Predict may be called from many goroutines at once: each run
// takes a machine of its own (see Options.MaxIdle).
type Model struct {
	info  serving.Info
	graph *Graph
	opts  Options

	mu     sync.RWMutex // held for reading by every run, for writing by Close
	closed bool

	cache shapeCache
	stats struct {
		runs, errors, compiles, evictions atomic.Uint64
	}
}

var (
	_ serving.Model         = (*Model)(nil)
	_ serving.InputBorrower = (*Model)(nil)
)

// BorrowsInputs reports true: a request's tensors are copied into the
// machine's buffers, and nothing keeps them after Predict returns.
func (m *Model) BorrowsInputs() bool { return true }

// Load reads an ONNX model file and prepares it to run. See LoadBytes.
func Load(ctx context.Context, path string, opts Options) (*Model, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("serving/gorgonia: loading %s: %w", path, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &malformedError{model: path, msg: err.Error()}
	}
	if opts.Name == "" {
		opts.Name = filepath.Base(path)
	}
	return LoadBytes(ctx, data, opts)
}

// LoadBytes prepares an ONNX model held in memory to run. data is not
// retained. Parsing checks every operator, attribute and element type, so
// a model this engine cannot run fails here with an *UnsupportedError;
// graphs are compiled per input shape on first use, or here with
// Options.WarmUp. ctx bounds the warm-up.
func LoadBytes(ctx context.Context, data []byte, opts Options) (*Model, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("serving/gorgonia: loading %s: %w", opts.Name, err)
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Name == "" {
		opts.Name = "model"
	}
	g, err := Parse(data)
	if err != nil {
		return nil, named(err, opts.Name)
	}
	m := &Model{graph: g, opts: opts, info: g.Info()}
	m.info.Name = opts.Name
	m.cache.init(opts.MaxShapes, opts.MaxIdle)
	m.info.Batchable, m.info.BatchRule, m.info.BatchReason = batchability(m.info, opts.Batching)
	if opts.WarmUp {
		if err := m.warmUp(ctx); err != nil {
			return nil, fmt.Errorf("serving/gorgonia: warm-up of %q failed: %w", opts.Name, err)
		}
	}
	opts.Logger.Debug("serving/gorgonia: model loaded", "model", opts.Name, "opset", g.opset,
		"operators", strings.Join(g.opsUsed(), ","), "inputs", len(m.info.Inputs),
		"outputs", len(m.info.Outputs), "batchable", m.info.Batchable)
	return m, nil
}

// Rules that decide Info.Batchable, reported in Info.BatchRule.
const (
	// RuleStructure: some input or output cannot carry a batch axis (a
	// scalar, a fixed first axis, no inputs); nothing can override it.
	RuleStructure = "structure"
	// RuleNames: the names of the dynamic first axes decided.
	RuleNames = "names"
	// RuleOption: Options.Batching forced the decision.
	RuleOption = "option"
)

// batchability decides from the model's structure and first-axis names
// whether requests can be merged along axis 0.
func batchability(info serving.Info, mode Batching) (bool, string, string) {
	if len(info.Inputs) == 0 {
		return false, RuleStructure, "model has no inputs"
	}
	name, differ := "", ""
	check := func(io serving.IOInfo, what string) string {
		if len(io.Shape) == 0 {
			return fmt.Sprintf("%s %q is a scalar, it has no batch axis", what, io.Name)
		}
		if io.Shape[0] >= 0 {
			return fmt.Sprintf("%s %q has a fixed first axis of size %d", what, io.Name, io.Shape[0])
		}
		if len(io.DimNames) > 0 && io.DimNames[0] != "" {
			switch {
			case name == "":
				name = io.DimNames[0]
			case io.DimNames[0] != name && differ == "":
				differ = fmt.Sprintf("%s %q has first axis %q, other tensors have %q", what, io.Name, io.DimNames[0], name)
			}
		}
		return ""
	}
	for _, io := range info.Inputs {
		if r := check(io, "input"); r != "" {
			return false, RuleStructure, r
		}
	}
	for _, io := range info.Outputs {
		if r := check(io, "output"); r != "" {
			return false, RuleStructure, r
		}
	}
	switch mode {
	case BatchAlways:
		return true, RuleOption, "Options.Batching is BatchAlways"
	case BatchNever:
		return false, RuleOption, "Options.Batching is BatchNever"
	}
	if differ != "" {
		return false, RuleNames, differ + "; this engine does not probe, so it runs unbatched (Options.Batching = BatchAlways merges requests)"
	}
	if name == "" {
		return true, RuleNames, "every first axis is dynamic and unnamed"
	}
	return true, RuleNames, fmt.Sprintf("every named first axis is %q", name)
}

func (m *Model) warmUp(ctx context.Context) error {
	in := make(map[string]serving.Tensor, len(m.info.Inputs))
	for _, io := range m.info.Inputs {
		shape := make([]int64, len(io.Shape))
		n := 1
		for k, d := range io.Shape {
			if d < 0 {
				d = 1
				if len(io.DimNames) > k {
					if v, ok := m.opts.WarmUpDims[io.DimNames[k]]; ok {
						d = v
					}
				}
			}
			shape[k] = d
			n *= int(d)
		}
		t := zeros(m.graph.dtypes[io.Name], []int{n})
		in[io.Name] = serving.Tensor{Shape: shape, Data: backing(t)}
	}
	_, err := m.Predict(ctx, in)
	return err
}

// Info describes the model. The returned value shares nothing with the model.
func (m *Model) Info() serving.Info { return m.info.Clone() }

// Graph returns the parsed model the engine runs, for building it into
// gorgonia graphs of one's own (Graph.Build). Its parameters are the
// model's: do not update them while the model serves.
func (m *Model) Graph() *Graph { return m.graph }

// Predict validates inputs against the model's signature, then runs it on
// a machine compiled for the inputs' shapes. A cancelled ctx stops the run
// between two operators. Input shapes that the model's graph cannot take
// (a convolution's kernel larger than the image) are a
// *serving.InputError of kind serving.ErrShape; an index out of range
// (Gather) is a *serving.RunError matching serving.ErrInput.
func (m *Model) Predict(ctx context.Context, inputs map[string]serving.Tensor) (map[string]serving.Value, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("serving/gorgonia: %s: %w", m.info.Name, err)
	}
	if err := serving.Validate(m.info, inputs); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, serving.ErrClosed
	}
	var buf [128]byte
	key := shapeKey(buf[:0], &m.info, inputs)
	mc := m.cache.get(key)
	if mc == nil {
		var err error
		if mc, err = m.compile(string(key), inputs); err != nil {
			return nil, err
		}
	}
	m.stats.runs.Add(1)
	out, err := mc.run(ctx, &m.info, inputs)
	if m.cache.put(mc) {
		m.stats.evictions.Add(1)
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return nil, fmt.Errorf("serving/gorgonia: %s: run stopped: %w", m.info.Name, ctxErr)
		}
		m.stats.errors.Add(1)
		return nil, &serving.RunError{Model: m.info.Name, Err: err}
	}
	return out, nil
}

func (m *Model) compile(key string, inputs map[string]serving.Tensor) (*machine, error) {
	shapes := make([][]int, len(m.info.Inputs))
	for i, io := range m.info.Inputs {
		s := inputs[io.Name].Shape
		shapes[i] = make([]int, len(s))
		for k, d := range s {
			shapes[i][k] = int(d)
		}
	}
	mc, err := m.graph.compile(key, shapes, m.opts.MaxMachineBytes)
	if err != nil {
		parts := make([]string, len(m.info.Inputs))
		for i, io := range m.info.Inputs {
			parts[i] = fmt.Sprintf("%s %s", io.Name, shapeString(inputs[io.Name].Shape))
		}
		got := "shapes " + strings.Join(parts, ", ")
		var ne *NodeError
		var be *budgetError
		switch {
		case errors.As(err, &ne):
			return nil, &serving.InputError{Input: m.info.Inputs[0].Name, Kind: serving.ErrShape,
				Got: got, Want: "shapes every node accepts: " + err.Error()}
		case errors.As(err, &be):
			return nil, &serving.InputError{Input: m.info.Inputs[0].Name, Kind: serving.ErrTooLarge,
				Got: got, Want: "smaller shapes: " + err.Error()}
		}
		return nil, &serving.RunError{Model: m.info.Name, Err: err}
	}
	m.stats.compiles.Add(1)
	return mc, nil
}

// shapeKey encodes the shapes of the inputs, in signature order.
func shapeKey(buf []byte, info *serving.Info, inputs map[string]serving.Tensor) []byte {
	for _, io := range info.Inputs {
		s := inputs[io.Name].Shape
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		for _, d := range s {
			buf = binary.AppendUvarint(buf, uint64(d))
		}
	}
	return buf
}

// Close waits for runs in flight and drops every compiled graph. Calls
// after Close return serving.ErrClosed.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.cache.clear()
	return nil
}

// shapeCache keeps idle machines by input shapes, for at most max shapes
// (least recently used dropped first) and maxIdle machines per shape.
type shapeCache struct {
	mu           sync.Mutex
	max, maxIdle int
	entries      map[string]*list.Element // of *shapeEntry
	lru          list.List                // most recently used first
}

type shapeEntry struct {
	key  string
	idle []*machine
}

func (c *shapeCache) init(max, maxIdle int) {
	c.max, c.maxIdle = max, maxIdle
	c.entries = map[string]*list.Element{}
}

// get returns an idle machine for the shapes encoded in key, or nil.
func (c *shapeCache) get(key []byte) *machine {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.entries[string(key)]
	if el == nil {
		return nil
	}
	c.lru.MoveToFront(el)
	e := el.Value.(*shapeEntry)
	n := len(e.idle)
	if n == 0 {
		return nil
	}
	mc := e.idle[n-1]
	e.idle[n-1] = nil
	e.idle = e.idle[:n-1]
	return mc
}

// put keeps mc for reuse unless its shape already has maxIdle idle
// machines; it reports whether a shape was dropped to make room.
func (c *shapeCache) put(mc *machine) (evicted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		return false // closed
	}
	el := c.entries[mc.key]
	if el == nil {
		el = c.lru.PushFront(&shapeEntry{key: mc.key})
		c.entries[mc.key] = el
		for c.lru.Len() > c.max {
			last := c.lru.Back()
			c.lru.Remove(last)
			delete(c.entries, last.Value.(*shapeEntry).key)
			evicted = true
		}
	}
	e := el.Value.(*shapeEntry)
	if len(e.idle) < c.maxIdle {
		e.idle = append(e.idle, mc)
	}
	return evicted
}

func (c *shapeCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = nil
	c.lru.Init()
}

// counts returns the shapes cached and the idle machines across them.
func (c *shapeCache) counts() (shapes, idle int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.lru.Front(); el != nil; el = el.Next() {
		idle += len(el.Value.(*shapeEntry).idle)
	}
	return c.lru.Len(), idle
}
