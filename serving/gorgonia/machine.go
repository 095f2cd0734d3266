package gorgonia

import (
	"context"
	"fmt"

	"github.com/quiverml/quiver/serving"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// machine runs a model's graph built for one set of input shapes. It is
// gorgonia's graph and gorgonia's ops, run by a loop leaner than
// gorgonia's TapeMachine: every node gets its buffer once, when the
// machine is compiled, reshapes are views, and a run calls each op's
// UsePreallocDo in order, allocating nothing. A machine is used by one
// goroutine at a time.
type machine struct {
	key     string
	inputs  []*tensor.Dense // in Info().Inputs order; requests are copied in
	outputs []*tensor.Dense // in Info().Outputs order
	steps   []step
}

type step struct {
	op   G.UsePreallocDoer
	args []G.Value
	out  G.Value
	node *G.Node
}

// budgetError reports a graph whose buffers would take more memory than
// a machine may.
type budgetError struct{ need, limit int64 }

func (e *budgetError) Error() string {
	return fmt.Sprintf("the graph for these shapes needs %d bytes of buffers, more than the %d allowed (Options.MaxMachineBytes)", e.need, e.limit)
}

// scratcher is implemented by ops that need working memory beyond their
// result while they run.
type scratcher interface{ scratchBytes() int64 }

func (op *convOp) scratchBytes() int64 {
	if op.win.direct() {
		return 0
	}
	w := &op.win
	return int64(w.c/op.group*w.kh*w.kw) * int64(w.oh*w.ow) * int64(op.dtype.Size())
}

// compile builds the graph for the given input shapes (in Info().Inputs
// order) and lays out its buffers, refusing to take more than limit bytes.
func (g *Graph) compile(key string, shapes [][]int, limit int64) (*machine, error) {
	eg := G.NewGraph()
	named := make(map[string][]int, len(shapes))
	for i, io := range g.info.Inputs {
		named[io.Name] = shapes[i]
	}
	inputs, err := g.NewInputs(eg, named)
	if err != nil {
		return nil, err
	}
	built, err := g.Build(eg, inputs)
	if err != nil {
		return nil, err
	}
	// Order the nodes the outputs depend on, children first.
	var order []*G.Node
	seen := map[*G.Node]bool{}
	var visit func(n *G.Node)
	visit = func(n *G.Node) {
		if seen[n] {
			return
		}
		seen[n] = true
		for _, c := range children(eg, n) {
			visit(c)
		}
		order = append(order, n)
	}
	for _, io := range g.info.Outputs {
		visit(built.Outputs[io.Name])
	}
	// Count the memory before taking it.
	var need int64
	bytes := func(n *G.Node) int64 { return int64(n.Shape().TotalSize()) * int64(n.Dtype().Size()) }
	for _, n := range inputs {
		need += bytes(n)
	}
	for _, n := range order {
		if op := n.Op(); op != nil {
			if _, view := op.(viewer); !view {
				need += bytes(n)
			}
			if s, ok := op.(scratcher); ok {
				need += s.scratchBytes()
			}
		}
	}
	if need > limit {
		return nil, &budgetError{need: need, limit: limit}
	}
	m := &machine{key: key}
	vals := map[*G.Node]G.Value{}
	for _, io := range g.info.Inputs {
		n := inputs[io.Name]
		d := zeros(n.Dtype(), n.Shape())
		vals[n] = d
		m.inputs = append(m.inputs, d)
	}
	for _, n := range order {
		if _, ok := vals[n]; ok {
			continue
		}
		op := n.Op()
		if op == nil {
			v := n.Value()
			if v == nil {
				return nil, fmt.Errorf("serving/gorgonia: node %v has no value", n)
			}
			vals[n] = v
			continue
		}
		cs := children(eg, n)
		args := make([]G.Value, len(cs))
		for i, c := range cs {
			args[i] = vals[c]
		}
		if v, ok := op.(viewer); ok {
			view, err := v.view(args[0])
			if err != nil {
				return nil, err
			}
			vals[n] = view
			continue
		}
		pd, ok := op.(G.UsePreallocDoer)
		if !ok {
			return nil, fmt.Errorf("serving/gorgonia: op %v cannot write into a buffer", op)
		}
		out := zeros(n.Dtype(), n.Shape())
		vals[n] = out
		m.steps = append(m.steps, step{op: pd, args: args, out: out, node: n})
	}
	for _, io := range g.info.Outputs {
		d, ok := vals[built.Outputs[io.Name]].(*tensor.Dense)
		if !ok {
			return nil, fmt.Errorf("serving/gorgonia: output %q is not a dense tensor", io.Name)
		}
		m.outputs = append(m.outputs, d)
	}
	return m, nil
}

// children returns a node's inputs in order.
func children(eg *G.ExprGraph, n *G.Node) []*G.Node {
	it := eg.From(n.ID())
	var cs []*G.Node
	for it.Next() {
		cs = append(cs, it.Node().(*G.Node))
	}
	return cs
}

// run copies the request in, runs every step and returns the outputs,
// copied out. A cancelled ctx stops the run between two steps.
func (m *machine) run(ctx context.Context, info *serving.Info, in map[string]serving.Tensor) (_ map[string]serving.Value, err error) {
	defer func() {
		// No kernel is meant to panic; should one, the request fails and
		// the process keeps serving.
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in a kernel: %v", r)
		}
	}()
	for i, io := range info.Inputs {
		copyIn(m.inputs[i], in[io.Name].Data)
	}
	done := ctx.Done()
	for i := range m.steps {
		if done != nil {
			select {
			case <-done:
				return nil, ctx.Err()
			default:
			}
		}
		s := &m.steps[i]
		if _, err := s.op.UsePreallocDo(s.out, s.args...); err != nil {
			return nil, err
		}
	}
	out := make(map[string]serving.Value, len(m.outputs))
	for i, io := range info.Outputs {
		out[io.Name] = serving.TensorValue(copyOut(m.outputs[i]))
	}
	return out, nil
}

func copyIn(d *tensor.Dense, data any) {
	switch v := data.(type) {
	case []float32:
		copy(d.Float32s(), v)
	case []float64:
		copy(d.Float64s(), v)
	case []int64:
		copy(d.Int64s(), v)
	case []int32:
		copy(d.Int32s(), v)
	}
}

func copyOut(d *tensor.Dense) serving.Tensor {
	s := d.Shape()
	shape := make([]int64, len(s))
	for i, x := range s {
		shape[i] = int64(x)
	}
	n := size(s)
	switch d.Dtype() {
	case tensor.Float32:
		return serving.Tensor{Shape: shape, Data: append(make([]float32, 0, n), d.Float32s()[:n]...)}
	case tensor.Float64:
		return serving.Tensor{Shape: shape, Data: append(make([]float64, 0, n), d.Float64s()[:n]...)}
	case tensor.Int32:
		return serving.Tensor{Shape: shape, Data: append(make([]int32, 0, n), d.Int32s()[:n]...)}
	default:
		return serving.Tensor{Shape: shape, Data: append(make([]int64, 0, n), d.Int64s()[:n]...)}
	}
}
