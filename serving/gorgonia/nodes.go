package gorgonia

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/quiverml/quiver/internal/onnxpb"
	"github.com/quiverml/quiver/serving"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// buildFunc adds a node's operation to a gorgonia graph. in holds the
// node's inputs in order, nil for an absent optional input; it returns one
// gorgonia node per ONNX output.
type buildFunc func(b *builder, in []*G.Node) ([]*G.Node, error)

// typeRule says which element types an operator takes.
type typeRule int

const (
	typesFloat  typeRule = iota // data inputs float32 or float64, one type; result that type
	typesAny                    // data inputs of one supported type; result that type
	typesGather                 // data of any supported type, indices int32 or int64
	typesNone                   // Constant: the result has its value's type
)

// opSpec describes a supported operator.
type opSpec struct {
	minIn, maxIn int // node inputs; maxIn -1 for any number
	data         int // how many leading inputs are data tensors; -1 for all
	maxOut       int // outputs the engine computes
	types        typeRule
	known        []string // attributes the parser reads
	compile      func(g *Graph, n *gnode, a *attrs) (buildFunc, error)
}

var ops map[string]*opSpec

func init() {
	binary := func(k binKind) *opSpec {
		return &opSpec{minIn: 2, maxIn: 2, data: 2, maxOut: 1,
			compile: func(g *Graph, n *gnode, a *attrs) (buildFunc, error) { return compileBinary(k), nil }}
	}
	activation := func(k unaryKind, known ...string) *opSpec {
		return &opSpec{minIn: 1, maxIn: 1, data: 1, maxOut: 1, known: known,
			compile: func(g *Graph, n *gnode, a *attrs) (buildFunc, error) { return compileUnary(k, a), nil }}
	}
	softmaxSpec := func(log bool) *opSpec {
		return &opSpec{minIn: 1, maxIn: 1, data: 1, maxOut: 1, known: []string{"axis"},
			compile: func(g *Graph, n *gnode, a *attrs) (buildFunc, error) { return compileSoftmax(g, a, log), nil }}
	}
	ops = map[string]*opSpec{
		"Gemm": {minIn: 2, maxIn: 3, data: -1, maxOut: 1, known: []string{"alpha", "beta", "transA", "transB"},
			compile: compileGemm},
		"MatMul":     {minIn: 2, maxIn: 2, data: 2, maxOut: 1, compile: func(*Graph, *gnode, *attrs) (buildFunc, error) { return buildMatMul, nil }},
		"Add":        binary(binAdd),
		"Sub":        binary(binSub),
		"Mul":        binary(binMul),
		"Div":        binary(binDiv),
		"Relu":       activation(unRelu),
		"LeakyRelu":  activation(unLeakyRelu, "alpha"),
		"Sigmoid":    activation(unSigmoid),
		"Tanh":       activation(unTanh),
		"Softmax":    softmaxSpec(false),
		"LogSoftmax": softmaxSpec(true),
		"Reshape": {minIn: 2, maxIn: 2, data: 1, maxOut: 1, types: typesAny, known: []string{"allowzero"},
			compile: compileReshape},
		"Flatten": {minIn: 1, maxIn: 1, data: 1, maxOut: 1, types: typesAny, known: []string{"axis"},
			compile: compileFlatten},
		"Concat": {minIn: 1, maxIn: -1, data: -1, maxOut: 1, types: typesAny, known: []string{"axis"},
			compile: compileConcat},
		"Transpose": {minIn: 1, maxIn: 1, data: 1, maxOut: 1, types: typesAny, known: []string{"perm"},
			compile: compileTranspose},
		"Identity": {minIn: 1, maxIn: 1, data: 1, maxOut: 1, types: typesAny,
			compile: func(*Graph, *gnode, *attrs) (buildFunc, error) { return buildIdentity, nil }},
		"Dropout": {minIn: 1, maxIn: 3, data: 1, maxOut: 1, known: []string{"ratio", "seed", "is_test"},
			compile: compileDropout},
		"Gather": {minIn: 2, maxIn: 2, data: 2, maxOut: 1, types: typesGather, known: []string{"axis"},
			compile: compileGather},
		"BatchNormalization": {minIn: 5, maxIn: 5, data: 5, maxOut: 1,
			known:   []string{"epsilon", "momentum", "spatial", "training_mode", "is_test", "consumed_inputs"},
			compile: compileBatchNorm},
		"Conv": {minIn: 2, maxIn: 3, data: -1, maxOut: 1,
			known:   []string{"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"},
			compile: compileConv},
		"MaxPool": {minIn: 1, maxIn: 1, data: 1, maxOut: 1,
			known:   []string{"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"},
			compile: func(g *Graph, n *gnode, a *attrs) (buildFunc, error) { return compilePool(g, n, a, true) }},
		"AveragePool": {minIn: 1, maxIn: 1, data: 1, maxOut: 1,
			known:   []string{"auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads", "strides"},
			compile: func(g *Graph, n *gnode, a *attrs) (buildFunc, error) { return compilePool(g, n, a, false) }},
		"GlobalAveragePool": {minIn: 1, maxIn: 1, data: 1, maxOut: 1,
			compile: func(*Graph, *gnode, *attrs) (buildFunc, error) { return buildGlobalAvgPool, nil }},
		"Constant": {minIn: 0, maxIn: 0, maxOut: 1, types: typesNone,
			known:   []string{"value", "value_float", "value_floats", "value_int", "value_ints"},
			compile: compileConstant},
	}
}

// Operators lists the ONNX operators this engine runs, sorted.
func Operators() []string {
	names := make([]string, 0, len(ops))
	for name := range ops {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func (g *Graph) parseNode(i int, np *onnxpb.NodeProto) (*gnode, error) {
	n := &gnode{name: np.GetName(), op: np.GetOpType(), inputs: append([]string(nil), np.GetInput()...)}
	if n.name == "" {
		n.name = fmt.Sprintf("#%d", i)
	}
	// Trailing empty outputs are absent outputs.
	outs := np.GetOutput()
	for len(outs) > 0 && outs[len(outs)-1] == "" {
		outs = outs[:len(outs)-1]
	}
	n.outputs = append([]string(nil), outs...)
	if d := np.GetDomain(); d != "" && d != "ai.onnx" {
		return nil, n.unsupported("operator domain %q not supported; supported: the default ONNX domain", d)
	}
	spec := ops[n.op]
	if spec == nil {
		return nil, n.unsupported("operator %s not supported; supported: %s", n.op, strings.Join(Operators(), ", "))
	}
	for len(n.inputs) > 0 && n.inputs[len(n.inputs)-1] == "" {
		n.inputs = n.inputs[:len(n.inputs)-1]
	}
	if len(n.inputs) < spec.minIn || (spec.maxIn >= 0 && len(n.inputs) > spec.maxIn) {
		want := fmt.Sprintf("%d to %d", spec.minIn, spec.maxIn)
		switch {
		case spec.maxIn < 0:
			want = fmt.Sprintf("at least %d", spec.minIn)
		case spec.minIn == spec.maxIn:
			want = fmt.Sprint(spec.minIn)
		}
		return nil, n.malformed("has %d inputs, want %s", len(n.inputs), want)
	}
	for k := 0; k < spec.minIn; k++ {
		if n.inputs[k] == "" {
			return nil, n.malformed("required input %d is empty", k)
		}
	}
	if len(n.outputs) == 0 {
		return nil, n.malformed("has no outputs")
	}
	if len(n.outputs) > spec.maxOut {
		return nil, n.unsupported("output %d (%q) not supported; supported: the first %d output(s)", spec.maxOut, n.outputs[spec.maxOut], spec.maxOut)
	}
	a, err := newAttrs(n, np, spec.known)
	if err != nil {
		return nil, err
	}
	dt, err := g.nodeType(n, spec)
	if err != nil {
		return nil, err
	}
	build, err := spec.compile(g, n, a)
	if err == nil {
		err = a.err
	}
	if err != nil {
		return nil, err
	}
	if spec.types != typesNone {
		g.dtypes[n.outputs[0]] = dt
	}
	n.build = build
	return n, nil
}

// nodeType checks the element types of a node's data inputs and returns
// the type of its result.
func (g *Graph) nodeType(n *gnode, spec *opSpec) (tensor.Dtype, error) {
	data := n.inputs
	if spec.data >= 0 && spec.data < len(data) {
		data = data[:spec.data]
	}
	var dt tensor.Dtype
	for k, in := range data {
		if in == "" {
			continue
		}
		t, ok := g.dtypes[in]
		if !ok {
			continue // undefined inputs are reported by the caller
		}
		if spec.types == typesGather && k == 1 {
			if t != tensor.Int64 && t != tensor.Int32 {
				return dt, n.unsupported("indices %q of element type %s not supported; supported: int32, int64", in, elementOf(t))
			}
			continue
		}
		if elementOf(t) == serving.Bool {
			return dt, n.unsupported("input %q of element type bool not supported; supported: %s", in, supportedTypes)
		}
		if spec.types == typesFloat && !isFloat(t) {
			return dt, n.unsupported("input %q of element type %s not supported; supported: float32, float64", in, elementOf(t))
		}
		if k > 0 && dt != (tensor.Dtype{}) && t != dt {
			return dt, n.malformed("input %q is %s, input %q is %s: want one element type", in, elementOf(t), data[0], elementOf(dt))
		}
		if dt == (tensor.Dtype{}) {
			dt = t
		}
	}
	return dt, nil
}

// builder holds the state of one Build: the gorgonia node of every ONNX
// value built so far.
type builder struct {
	g      *Graph
	eg     *G.ExprGraph
	vals   map[string]*G.Node
	params map[string]*G.Node
}

// value returns the node of an ONNX value, making nodes for initializers
// and Constant outputs on first use.
func (b *builder) value(name string) (*G.Node, error) {
	if v := b.vals[name]; v != nil {
		return v, nil
	}
	t := b.g.consts[name]
	if t == nil {
		return nil, fmt.Errorf("value %q is not defined", name)
	}
	var n *G.Node
	err := safely(func() error {
		// Let binds t as it is; WithValue would reshape a shared scalar
		// in place, racing with machines that read it.
		n = G.NewTensor(b.eg, t.Dtype(), t.Dims(), G.WithShape(t.Shape().Clone()...), G.WithName(name))
		return G.Let(n, t)
	})
	if err != nil {
		return nil, err
	}
	b.vals[name] = n
	if _, isInit := b.g.inits[name]; isInit && isFloat(t.Dtype()) {
		b.params[name] = n
	}
	return n, nil
}

// constant returns the tensor of an input that must be known when the
// model loads (a Reshape's target shape).
func (g *Graph) constant(n *gnode, k int, what string) (*tensor.Dense, error) {
	if k >= len(n.inputs) || n.inputs[k] == "" {
		return nil, nil
	}
	t := g.consts[n.inputs[k]]
	if t == nil {
		return nil, n.unsupported("%s %q computed by the graph not supported; supported: an initializer or a Constant", what, n.inputs[k])
	}
	return t, nil
}

// apply adds op to the graph, turning gorgonia's panics into errors.
func apply(op G.Op, children ...*G.Node) (*G.Node, error) {
	var n *G.Node
	err := safely(func() (err error) {
		n, err = G.ApplyOp(op, children...)
		return err
	})
	return n, err
}

func safely(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("gorgonia: %v", r)
		}
	}()
	return fn()
}

func one(n *G.Node, err error) ([]*G.Node, error) {
	if err != nil {
		return nil, err
	}
	return []*G.Node{n}, nil
}

// axis normalises an axis attribute in [-rank, rank) (or [-rank, rank]
// with inclusive, as Flatten's).
func axis(a int64, rank int, inclusive bool) (int, error) {
	hi := int64(rank)
	if inclusive {
		hi++
	}
	if a < -int64(rank) || a >= hi {
		return 0, fmt.Errorf("axis %d out of range for rank %d", a, rank)
	}
	if a < 0 {
		a += int64(rank)
	}
	return int(a), nil
}

func compileBinary(k binKind) buildFunc {
	return func(b *builder, in []*G.Node) ([]*G.Node, error) {
		op, err := newBinaryOp(k, in[0].Dtype(), in[0].Shape(), in[1].Shape())
		if err != nil {
			return nil, err
		}
		return one(apply(op, in[0], in[1]))
	}
}

func compileUnary(k unaryKind, a *attrs) buildFunc {
	alpha := a.float("alpha", 0.01)
	return func(b *builder, in []*G.Node) ([]*G.Node, error) {
		return one(apply(newUnaryOp(k, alpha, in[0].Dtype(), in[0].Shape()), in[0]))
	}
}

func compileGemm(g *Graph, n *gnode, a *attrs) (buildFunc, error) {
	alpha, beta := a.float("alpha", 1), a.float("beta", 1)
	tA, tB := a.int("transA", 0), a.int("transB", 0)
	if tA != 0 && tA != 1 || tB != 0 && tB != 1 {
		return nil, n.malformed("transA=%d transB=%d, want 0 or 1", tA, tB)
	}
	return func(b *builder, in []*G.Node) ([]*G.Node, error) {
		var cs tensor.Shape
		args := in[:2]
		if len(in) > 2 && in[2] != nil {
			cs = in[2].Shape()
			args = in[:3]
		}
		op, err := newGemmOp(in[0].Dtype(), in[0].Shape(), in[1].Shape(), tA == 1, tB == 1, alpha, cs, beta)
		if err != nil {
			return nil, err
		}
		return one(apply(op, args...))
	}, nil
}

// buildMatMul follows numpy's matmul: vectors become matrices for the
// product and lose the added axis after it; a stack of matrices times one
// matrix is one matrix product; other stacks broadcast their batch axes.
func buildMatMul(b *builder, in []*G.Node) ([]*G.Node, error) {
	x, y := in[0], in[1]
	xs, ys := x.Shape(), y.Shape()
	if xs.Dims() == 0 || ys.Dims() == 0 {
		return nil, fmt.Errorf("operands must have at least one axis, got shapes %v and %v", []int(xs), []int(ys))
	}
	var err error
	if xs.Dims() == 1 {
		if x, err = applyReshape("Reshape", x, tensor.Shape{1, xs[0]}); err != nil {
			return nil, err
		}
	}
	if ys.Dims() == 1 {
		if y, err = applyReshape("Reshape", y, tensor.Shape{ys[0], 1}); err != nil {
			return nil, err
		}
	}
	a, c := x.Shape(), y.Shape()
	var out *G.Node
	switch {
	case a.Dims() == 2 && c.Dims() == 2:
		op, err := newGemmOp(x.Dtype(), a, c, false, false, 1, nil, 0)
		if err != nil {
			return nil, err
		}
		if out, err = apply(op, x, y); err != nil {
			return nil, err
		}
	case c.Dims() == 2:
		k := a[a.Dims()-1]
		rows := size(a) / max(k, 1)
		if k == 0 {
			rows = size(a[:a.Dims()-1])
		}
		flat, err := applyReshape("Reshape", x, tensor.Shape{rows, k})
		if err != nil {
			return nil, err
		}
		op, err := newGemmOp(x.Dtype(), flat.Shape(), c, false, false, 1, nil, 0)
		if err != nil {
			return nil, err
		}
		prod, err := apply(op, flat, y)
		if err != nil {
			return nil, err
		}
		to := append(a[:a.Dims()-1].Clone(), c[1])
		if out, err = applyReshape("Reshape", prod, to); err != nil {
			return nil, err
		}
	default:
		op, err := newBatchMatMulOp(x.Dtype(), a, c)
		if err != nil {
			return nil, err
		}
		if out, err = apply(op, x, y); err != nil {
			return nil, err
		}
	}
	s := out.Shape()
	final := s.Clone()
	switch {
	case xs.Dims() == 1 && ys.Dims() == 1:
		final = tensor.Shape{}
	case xs.Dims() == 1:
		final = append(s[:s.Dims()-2].Clone(), s[s.Dims()-1])
	case ys.Dims() == 1:
		final = s[:s.Dims()-1].Clone()
	}
	if !sameShape(final, s) {
		return one(applyReshape("Reshape", out, final))
	}
	return []*G.Node{out}, nil
}

func compileSoftmax(g *Graph, a *attrs, log bool) buildFunc {
	legacy := g.opset < 13
	def := int64(-1)
	if legacy {
		def = 1
	}
	ax := a.int("axis", def)
	return func(b *builder, in []*G.Node) ([]*G.Node, error) {
		x := in[0]
		s := x.Shape()
		k, err := axis(ax, s.Dims(), false)
		if err != nil {
			return nil, err
		}
		if !legacy || k == s.Dims()-1 {
			op, err := newSoftmaxOp(x.Dtype(), s, k, log)
			if err != nil {
				return nil, err
			}
			return one(apply(op, x))
		}
		// Before opset 13 the input is seen as a matrix [prod(s[:axis]),
		// prod(s[axis:])] and softmax runs over its rows.
		flat, err := applyReshape("Reshape", x, tensor.Shape{size(s[:k]), size(s[k:])})
		if err != nil {
			return nil, err
		}
		op, err := newSoftmaxOp(x.Dtype(), flat.Shape(), 1, log)
		if err != nil {
			return nil, err
		}
		y, err := apply(op, flat)
		if err != nil {
			return nil, err
		}
		return one(applyReshape("Reshape", y, s))
	}
}

func compileReshape(g *Graph, n *gnode, a *attrs) (buildFunc, error) {
	t, err := g.constant(n, 1, "shape")
	if err != nil {
		return nil, err
	}
	target, ok := ints(t)
	if !ok || t.Dims() != 1 {
		return nil, n.malformed("shape %q must be a 1-D int64 tensor", n.inputs[1])
	}
	allowZero := a.int("allowzero", 0) == 1
	infer := 0
	for _, d := range target {
		if d == -1 {
			infer++
		} else if d < -1 {
			return nil, n.malformed("shape %v has a negative size other than -1", target)
		}
	}
	if infer > 1 {
		return nil, n.malformed("shape %v has more than one -1", target)
	}
	if allowZero && infer > 0 && slices.Contains(target, 0) {
		return nil, n.malformed("shape %v has both 0 and -1 with allowzero=1", target)
	}
	return func(b *builder, in []*G.Node) ([]*G.Node, error) {
		s := in[0].Shape()
		to := make(tensor.Shape, len(target))
		known, at := 1, -1
		for i, d := range target {
			switch {
			case d == 0 && !allowZero:
				if i >= s.Dims() {
					return nil, fmt.Errorf("shape %v copies axis %d, the input %v has %d axes", target, i, []int(s), s.Dims())
				}
				to[i] = s[i]
			case d == -1:
				at = i
				continue
			default:
				to[i] = int(d)
			}
			known *= to[i]
		}
		if at >= 0 {
			if known == 0 || size(s)%known != 0 {
				return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v", []int(s), size(s), target)
			}
			to[at] = size(s) / known
		}
		return one(applyReshape("Reshape", in[0], to))
	}, nil
}

func compileFlatten(g *Graph, n *gnode, a *attrs) (buildFunc, error) {
	ax := a.int("axis", 1)
	return func(b *builder, in []*G.Node) ([]*G.Node, error) {
		s := in[0].Shape()
		k, err := axis(ax, s.Dims(), true)
		if err != nil {
			return nil, err
		}
		return one(applyReshape("Flatten", in[0], tensor.Shape{size(s[:k]), size(s[k:])}))
	}, nil
}

func compileConcat(g *Graph, n *gnode, a *attrs) (buildFunc, error) {
	if !a.has("axis") {
		return nil, n.malformed("attribute axis is required")
	}
	ax := a.int("axis", 0)
	if slices.Contains(n.inputs, "") {
		return nil, n.malformed("an input is empty")
	}
	return func(b *builder, in []*G.Node) ([]*G.Node, error) {
		k, err := axis(ax, in[0].Shape().Dims(), false)
		if err != nil {
			return nil, err
		}
		shapes := make([]tensor.Shape, len(in))
		for i, x := range in {
			shapes[i] = x.Shape()
		}
		op, err := newConcatOp(in[0].Dtype(), k, shapes)
		if err != nil {
			return nil, err
		}
		return one(apply(op, in...))
	}, nil
}

func compileTranspose(g *Graph, n *gnode, a *attrs) (buildFunc, error) {
	perm, given := a.ints("perm")
	return func(b *builder, in []*G.Node) ([]*G.Node, error) {
		s := in[0].Shape()
		p := make([]int, s.Dims())
		for i := range p {
			if given {
				if i < len(perm) {
					p[i] = int(perm[i])
				}
			} else {
				p[i] = len(p) - 1 - i
			}
		}
		if given && len(perm) != len(p) {
			return nil, fmt.Errorf("perm %v has %d axes, the input %v has %d", perm, len(perm), []int(s), len(p))
		}
		op, err := newTransposeOp(in[0].Dtype(), s, p)
		if err != nil {
			return nil, err
		}
		return one(apply(op, in[0]))
	}, nil
}

func buildIdentity(b *builder, in []*G.Node) ([]*G.Node, error) { return []*G.Node{in[0]}, nil }

func compileDropout(g *Graph, n *gnode, a *attrs) (buildFunc, error) {
	if err := a.flag("is_test", 1, 1); err != nil {
		return nil, err
	}
	if len(n.inputs) > 2 && n.inputs[2] != "" {
		t, err := g.constant(n, 2, "training_mode")
		if err != nil {
			return nil, err
		}
		if t.Dtype() != tensor.Bool || t.Size() != 1 || t.Bools()[0] {
			return nil, n.unsupported("training_mode %q not supported; supported: false (inference)", n.inputs[2])
		}
	}
	return buildIdentity, nil
}

func compileGather(g *Graph, n *gnode, a *attrs) (buildFunc, error) {
	ax := a.int("axis", 0)
	return func(b *builder, in []*G.Node) ([]*G.Node, error) {
		k, err := axis(ax, in[0].Shape().Dims(), false)
		if err != nil {
			return nil, err
		}
		op, err := newGatherOp(in[0].Dtype(), in[0].Shape(), in[1].Shape(), k)
		if err != nil {
			return nil, err
		}
		return one(apply(op, in[0], in[1]))
	}, nil
}

func compileBatchNorm(g *Graph, n *gnode, a *attrs) (buildFunc, error) {
	eps := a.float("epsilon", 1e-5)
	a.float("momentum", 0.9) // a training parameter: no effect at inference
	if err := a.flag("training_mode", 0, 0); err != nil {
		return nil, err
	}
	if err := a.flag("spatial", 1, 1); err != nil {
		return nil, err
	}
	if a.has("is_test") {
		if err := a.flag("is_test", 1, 1); err != nil {
			return nil, err
		}
	}
	a.ints("consumed_inputs") // opset-1 bookkeeping, no effect
	return func(b *builder, in []*G.Node) ([]*G.Node, error) {
		params := make([]tensor.Shape, 4)
		for i := range params {
			params[i] = in[i+1].Shape()
		}
		op, err := newBatchNormOp(in[0].Dtype(), in[0].Shape(), params, eps)
		if err != nil {
			return nil, err
		}
		return one(apply(op, in...))
	}, nil
}

// parseWindow reads the window attributes shared by Conv and the pools.
func parseWindow(n *gnode, a *attrs, kernel []int64) (*windowSpec, error) {
	nd := len(kernel)
	if nd < 1 || nd > 2 {
		return nil, n.unsupported("%d spatial axes not supported; supported: 1 or 2", nd)
	}
	spec := &windowSpec{autoPad: a.str("auto_pad", "NOTSET"), ceil: a.int("ceil_mode", 0) == 1}
	switch spec.autoPad {
	case "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER":
	default:
		return nil, n.malformed("auto_pad %q, want NOTSET, VALID, SAME_UPPER or SAME_LOWER", spec.autoPad)
	}
	read := func(name string, want int, def, min int64) ([]int, error) {
		v, ok := a.ints(name)
		if !ok {
			v = make([]int64, want)
			for i := range v {
				v[i] = def
			}
		}
		if len(v) != want {
			return nil, n.malformed("%s %v has %d values, want %d", name, v, len(v), want)
		}
		out := make([]int, want)
		for i, x := range v {
			if x < min || x > 1<<20 {
				return nil, n.malformed("%s %v: want values from %d to %d", name, v, min, 1<<20)
			}
			out[i] = int(x)
		}
		return out, nil
	}
	var err error
	for i, k := range kernel {
		if k < 1 || k > 1<<20 {
			return nil, n.malformed("kernel_shape %v: want sizes from 1 to %d", kernel, 1<<20)
		}
		spec.kernel = append(spec.kernel, int(kernel[i]))
	}
	if spec.strides, err = read("strides", nd, 1, 1); err != nil {
		return nil, err
	}
	if spec.dilations, err = read("dilations", nd, 1, 1); err != nil {
		return nil, err
	}
	if spec.pads, err = read("pads", 2*nd, 0, 0); err != nil {
		return nil, err
	}
	if a.has("pads") && spec.autoPad != "NOTSET" {
		return nil, n.malformed("pads and auto_pad=%s are both given", spec.autoPad)
	}
	return spec, nil
}

func compileConv(g *Graph, n *gnode, a *attrs) (buildFunc, error) {
	kernel, ok := a.ints("kernel_shape")
	if !ok {
		w := g.consts[n.inputs[1]]
		if w == nil {
			return nil, n.unsupported("weights %q computed by the graph without kernel_shape not supported; supported: weights that are an initializer, or kernel_shape", n.inputs[1])
		}
		if w.Dims() < 3 {
			return nil, n.malformed("weights %q have shape %v, want [M C/group kernel...]", n.inputs[1], []int(w.Shape()))
		}
		for _, d := range w.Shape()[2:] {
			kernel = append(kernel, int64(d))
		}
	}
	spec, err := parseWindow(n, a, kernel)
	if err != nil {
		return nil, err
	}
	group := a.int("group", 1)
	if group < 1 {
		return nil, n.malformed("group %d, want 1 or more", group)
	}
	return func(b *builder, in []*G.Node) ([]*G.Node, error) {
		var bias tensor.Shape
		args := in[:2]
		if len(in) > 2 && in[2] != nil {
			bias = in[2].Shape()
			args = in[:3]
		}
		op, err := newConvOp(in[0].Dtype(), in[0].Shape(), in[1].Shape(), bias, spec, int(group))
		if err != nil {
			return nil, err
		}
		return one(apply(op, args...))
	}, nil
}

func compilePool(g *Graph, n *gnode, a *attrs, isMax bool) (buildFunc, error) {
	kernel, ok := a.ints("kernel_shape")
	if !ok {
		return nil, n.malformed("attribute kernel_shape is required")
	}
	spec, err := parseWindow(n, a, kernel)
	if err != nil {
		return nil, err
	}
	nd := len(spec.kernel)
	for i, p := range spec.pads {
		if p >= spec.kernel[i%nd] {
			return nil, n.malformed("pads %v: each pad must be smaller than the kernel %v", spec.pads, spec.kernel)
		}
	}
	if isMax {
		a.int("storage_order", 0) // orders the Indices output only, which is refused
	} else if slices.ContainsFunc(spec.dilations, func(d int) bool { return d != 1 }) {
		return nil, n.unsupported("attribute dilations=%v not supported; supported: 1", spec.dilations)
	}
	includePad := a.int("count_include_pad", 0) == 1
	return func(b *builder, in []*G.Node) ([]*G.Node, error) {
		op, err := newPoolOp(in[0].Dtype(), in[0].Shape(), spec, isMax, includePad)
		if err != nil {
			return nil, err
		}
		return one(apply(op, in[0]))
	}, nil
}

func buildGlobalAvgPool(b *builder, in []*G.Node) ([]*G.Node, error) {
	op, err := newGlobalAvgPoolOp(in[0].Dtype(), in[0].Shape())
	if err != nil {
		return nil, err
	}
	return one(apply(op, in[0]))
}

// compileConstant decodes the value when the model loads; the value then
// serves like an initializer that is not a parameter.
func compileConstant(g *Graph, n *gnode, a *attrs) (buildFunc, error) {
	if len(a.m) != 1 {
		return nil, n.malformed("has %d value attributes, want exactly 1", len(a.m))
	}
	var t *tensor.Dense
	switch {
	case a.has("value"):
		tp := a.tensor("value")
		if tp == nil {
			return nil, a.err
		}
		var err error
		if t, err = decodeTensor(tp); err != nil {
			return nil, n.unsupported("value: %v", err)
		}
	case a.has("value_float"):
		t = newDense(nil, []float32{float32(a.float("value_float", 0))})
	case a.has("value_int"):
		t = newDense(nil, []int64{a.int("value_int", 0)})
	case a.has("value_floats"):
		v, _ := a.floats("value_floats")
		t = newDense([]int{len(v)}, v)
	default:
		v, _ := a.ints("value_ints")
		t = newDense([]int{len(v)}, v)
	}
	if a.err != nil {
		return nil, a.err
	}
	g.consts[n.outputs[0]] = t
	g.dtypes[n.outputs[0]] = t.Dtype()
	return nil, nil
}
