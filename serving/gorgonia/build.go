package gorgonia

import (
	"fmt"
	"sort"
	"strings"

	"github.com/quiverml/quiver/serving"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Built is a model's computation added to a gorgonia expression graph by
// Graph.Build.
type Built struct {
	// Outputs holds the node of each model output, by output name.
	Outputs map[string]*G.Node
	// Params holds the nodes of the float initializers that the outputs
	// depend on, in the model file's order: gorgonia variables named as
	// the initializers and bound to their tensors (Graph.Initializer), so
	// a solver that steps them changes the Graph's weights in place.
	Params []*G.Node
}

// NewInputs adds a variable node to eg for each model input, of the shape
// given in shapes (by input name; every dynamic axis sized, fixed axes as
// the model declares them), named as the input. Shapes that do not fit
// the model are a *serving.InputError.
func (g *Graph) NewInputs(eg *G.ExprGraph, shapes map[string][]int) (map[string]*G.Node, error) {
	in := make(map[string]serving.Tensor, len(shapes))
	for name, s := range shapes {
		dims := make([]int64, len(s))
		for i, d := range s {
			dims[i] = int64(d)
		}
		in[name] = serving.Tensor{Shape: dims}
	}
	if err := g.checkShapes(in); err != nil {
		return nil, err
	}
	nodes := make(map[string]*G.Node, len(g.info.Inputs))
	err := safely(func() error {
		for _, io := range g.info.Inputs {
			s := shapes[io.Name]
			dt := g.dtypes[io.Name]
			nodes[io.Name] = G.NewTensor(eg, dt, len(s), G.WithShape(append([]int(nil), s...)...), G.WithName(io.Name))
		}
		return nil
	})
	return nodes, err
}

// checkShapes checks that the inputs are exactly the model's and that
// each shape fits the model's: rank, fixed axes, and a bounded size.
// Element types and data are not looked at.
func (g *Graph) checkShapes(in map[string]serving.Tensor) error {
	for name := range in {
		if _, ok := g.info.Input(name); !ok {
			names := make([]string, len(g.info.Inputs))
			for i, io := range g.info.Inputs {
				names[i] = fmt.Sprintf("%q", io.Name)
			}
			sort.Strings(names)
			return &serving.InputError{Input: name, Kind: serving.ErrInput, Got: "an unknown input",
				Want: "one of [" + strings.Join(names, " ") + "]"}
		}
	}
	for _, io := range g.info.Inputs {
		t, ok := in[io.Name]
		if !ok {
			return &serving.InputError{Input: io.Name, Kind: serving.ErrInput, Got: "no tensor",
				Want: fmt.Sprintf("%s %s", io.ElementType, shapeString(io.Shape))}
		}
		if len(t.Shape) != len(io.Shape) {
			return &serving.InputError{Input: io.Name, Kind: serving.ErrShape,
				Got:  fmt.Sprintf("shape %s (rank %d)", shapeString(t.Shape), len(t.Shape)),
				Want: fmt.Sprintf("shape %s (rank %d)", shapeString(io.Shape), len(io.Shape))}
		}
		n := 1
		for k, d := range t.Shape {
			if d < 0 || (io.Shape[k] >= 0 && d != io.Shape[k]) {
				return &serving.InputError{Input: io.Name, Kind: serving.ErrShape, Got: "shape " + shapeString(t.Shape), Want: "shape " + shapeString(io.Shape)}
			}
			if d > 0 && n > (1<<40)/int(d) {
				return &serving.InputError{Input: io.Name, Kind: serving.ErrShape, Got: "shape " + shapeString(t.Shape), Want: "fewer than 2^40 elements"}
			}
			n *= int(d)
		}
	}
	return nil
}

// Build adds the model's computation to eg, reading each model input from
// the node given in inputs (by input name; NewInputs makes them). Nodes
// are built for the inputs' concrete shapes, as gorgonia graphs are; a
// node that cannot take them (a reshape that does not fit, operands that
// do not broadcast) is a *NodeError, and inputs that do not fit the
// model's signature are a *serving.InputError. Only the nodes the outputs
// depend on are built.
//
// The graph Build makes runs on gorgonia's TapeMachine, and the float
// operators of tabular models (Gemm, MatMul, Add, Sub, Mul, Div, Relu,
// LeakyRelu, Sigmoid, Tanh, Softmax, LogSoftmax, the reshapes, Concat,
// Transpose, Gather) differentiate with gorgonia.Grad; BatchNormalization,
// Conv and the pools run forward only.
func (g *Graph) Build(eg *G.ExprGraph, inputs map[string]*G.Node) (*Built, error) {
	shapes := make(map[string]serving.Tensor, len(inputs))
	for name, n := range inputs {
		if n == nil {
			return nil, &serving.InputError{Input: name, Kind: serving.ErrInput, Got: "a nil node", Want: "a gorgonia node"}
		}
		if n.Graph() != eg {
			return nil, &serving.InputError{Input: name, Kind: serving.ErrInput, Got: "a node of another graph", Want: "a node of the graph being built"}
		}
		s := n.Shape()
		dims := make([]int64, len(s))
		for i, d := range s {
			dims[i] = int64(d)
		}
		shapes[name] = serving.Tensor{Shape: dims}
	}
	if err := g.checkShapes(shapes); err != nil {
		return nil, err
	}
	b := &builder{g: g, eg: eg, vals: make(map[string]*G.Node, len(g.nodes)+len(inputs)), params: map[string]*G.Node{}}
	for _, io := range g.info.Inputs {
		n := inputs[io.Name]
		if want := g.dtypes[io.Name]; n.Dtype() != want {
			return nil, &serving.InputError{Input: io.Name, Kind: serving.ErrType, Got: fmt.Sprint(n.Dtype()), Want: fmt.Sprint(want)}
		}
		b.vals[io.Name] = n
	}
	for _, n := range g.needed() {
		in := make([]*G.Node, len(n.inputs))
		for k, name := range n.inputs {
			if name == "" {
				continue
			}
			v, err := b.value(name)
			if err != nil {
				return nil, &NodeError{Node: n.name, Op: n.op, Err: err}
			}
			in[k] = v
		}
		outs, err := n.build(b, in)
		if err != nil {
			return nil, &NodeError{Node: n.name, Op: n.op, Err: err}
		}
		for k, name := range n.outputs {
			if name != "" && k < len(outs) {
				b.vals[name] = outs[k]
			}
		}
	}
	built := &Built{Outputs: make(map[string]*G.Node, len(g.info.Outputs))}
	for _, io := range g.info.Outputs {
		v, err := b.value(io.Name)
		if err != nil {
			return nil, err
		}
		if !g.unranked[io.Name] {
			if err := checkDeclared(io, v.Shape()); err != nil {
				return nil, err
			}
		}
		built.Outputs[io.Name] = v
	}
	for _, name := range g.order {
		if p := b.params[name]; p != nil {
			built.Params = append(built.Params, p)
		}
	}
	return built, nil
}

// checkDeclared checks a computed output shape against the one the model
// declares.
func checkDeclared(io serving.IOInfo, s tensor.Shape) error {
	ok := len(io.Shape) == len(s)
	for k := 0; ok && k < len(s); k++ {
		ok = io.Shape[k] < 0 || io.Shape[k] == int64(s[k])
	}
	if !ok {
		return &NodeError{Node: io.Name, Op: "output", Err: fmt.Errorf("computes shape %v, the model declares %s", []int(s), shapeString(io.Shape))}
	}
	return nil
}

// needed returns the nodes the outputs depend on, in model order.
func (g *Graph) needed() []*gnode {
	want := map[string]bool{}
	for _, io := range g.info.Outputs {
		want[io.Name] = true
	}
	keep := make([]bool, len(g.nodes))
	for i := len(g.nodes) - 1; i >= 0; i-- {
		n := g.nodes[i]
		for _, out := range n.outputs {
			if want[out] {
				keep[i] = true
			}
		}
		if keep[i] {
			for _, in := range n.inputs {
				want[in] = true
			}
		}
	}
	var out []*gnode
	for i, n := range g.nodes {
		if keep[i] {
			out = append(out, n)
		}
	}
	return out
}
