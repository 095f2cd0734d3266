package gorgonia

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// binKind is an elementwise binary operator.
type binKind int

const (
	binAdd binKind = iota
	binSub
	binMul
	binDiv
)

var binNames = [...]string{"Add", "Sub", "Mul", "Div"}

// broadcastShape applies numpy's (and ONNX's multidirectional)
// broadcasting rule: shapes are aligned at their last axis, and each pair
// of axes must be equal or one of them 1.
func broadcastShape(a, b tensor.Shape) (tensor.Shape, error) {
	r := max(len(a), len(b))
	out := make(tensor.Shape, r)
	for i := 0; i < r; i++ {
		da, db := 1, 1
		if k := len(a) - r + i; k >= 0 {
			da = a[k]
		}
		if k := len(b) - r + i; k >= 0 {
			db = b[k]
		}
		switch {
		case da == db, db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast: axis %d is %d and %d", []int(a), []int(b), i, da, db)
		}
	}
	return out, nil
}

// bstrides returns the strides of a tensor of shape s broadcast to out:
// the row-major strides of s aligned at the last axis, 0 on axes it is
// broadcast along.
func bstrides(s, out tensor.Shape) []int {
	st := make([]int, len(out))
	step := 1
	for i := len(out) - 1; i >= 0; i-- {
		k := len(s) - len(out) + i
		if k < 0 || s[k] == 1 {
			continue
		}
		st[i] = step
		step *= s[k]
	}
	return st
}

// bplan walks two operands broadcast to a result: the result's axes with
// adjacent axes merged wherever both operands stay contiguous, so that the
// innermost loop is as long as it can be.
type bplan struct {
	dims   []int
	sa, sb []int
}

func newBPlan(out, a, b tensor.Shape) bplan {
	sa, sb := bstrides(a, out), bstrides(b, out)
	var p bplan
	for i := range out {
		if out[i] == 1 {
			continue
		}
		if n := len(p.dims) - 1; n >= 0 && p.sa[n] == sa[i]*out[i] && p.sb[n] == sb[i]*out[i] {
			p.dims[n] *= out[i]
			p.sa[n], p.sb[n] = sa[i], sb[i]
			continue
		}
		p.dims = append(p.dims, out[i])
		p.sa = append(p.sa, sa[i])
		p.sb = append(p.sb, sb[i])
	}
	return p
}

// each calls fn for every innermost run of the plan with the offsets of
// the run in the result, a and b. The result is contiguous.
func (p *bplan) each(fn func(o, oa, ob int)) {
	for _, d := range p.dims {
		if d == 0 {
			return
		}
	}
	r := len(p.dims)
	if r <= 1 {
		fn(0, 0, 0)
		return
	}
	var small [8]int
	var idx []int
	if r-1 > len(small) {
		idx = make([]int, r-1)
	} else {
		idx = small[:r-1]
	}
	inner := p.dims[r-1]
	o, oa, ob := 0, 0, 0
	for {
		fn(o, oa, ob)
		o += inner
		k := r - 2
		for ; k >= 0; k-- {
			idx[k]++
			oa += p.sa[k]
			ob += p.sb[k]
			if idx[k] < p.dims[k] {
				break
			}
			oa -= p.sa[k] * p.dims[k]
			ob -= p.sb[k] * p.dims[k]
			idx[k] = 0
		}
		if k < 0 {
			return
		}
	}
}

func (p *bplan) inner() (n, sa, sb int) {
	if len(p.dims) == 0 {
		return 1, 0, 0
	}
	r := len(p.dims) - 1
	return p.dims[r], p.sa[r], p.sb[r]
}

// binaryOp is Add, Sub, Mul or Div with broadcasting.
type binaryOp struct {
	sig
	kind binKind
	plan bplan
}

func newBinaryOp(kind binKind, dt tensor.Dtype, a, b tensor.Shape) (*binaryOp, error) {
	out, err := broadcastShape(a, b)
	if err != nil {
		return nil, err
	}
	return &binaryOp{sig: newSig(binNames[kind], "", dt, out, a.Clone(), b.Clone()), kind: kind, plan: newBPlan(out, a, b)}, nil
}

func (op *binaryOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(op.result(), in...) }

func (op *binaryOp) UsePreallocDo(out G.Value, in ...G.Value) (G.Value, error) {
	if err := op.check(out, in); err != nil {
		return nil, err
	}
	o, a, b := out.(*tensor.Dense), in[0].(*tensor.Dense), in[1].(*tensor.Dense)
	if op.dtype == tensor.Float32 {
		binaryKernel(op.kind, &op.plan, o.Float32s(), a.Float32s(), b.Float32s())
	} else {
		binaryKernel(op.kind, &op.plan, o.Float64s(), a.Float64s(), b.Float64s())
	}
	return out, nil
}

func binaryKernel[T floats](k binKind, p *bplan, out, a, b []T) {
	n, sa, sb := p.inner()
	if len(p.dims) <= 1 {
		binaryRun(k, out[:n], a, b, sa, sb)
		return
	}
	p.each(func(o, oa, ob int) { binaryRun(k, out[o:o+n], a[oa:], b[ob:], sa, sb) })
}

// binaryRun computes out[i] = a[i*sa] op b[i*sb], with sa and sb 0 or 1.
func binaryRun[T floats](k binKind, out, a, b []T, sa, sb int) {
	n := len(out)
	switch {
	case sa == 1 && sb == 1:
		a, b = a[:n], b[:n]
		switch k {
		case binAdd:
			for i := range out {
				out[i] = a[i] + b[i]
			}
		case binSub:
			for i := range out {
				out[i] = a[i] - b[i]
			}
		case binMul:
			for i := range out {
				out[i] = a[i] * b[i]
			}
		case binDiv:
			for i := range out {
				out[i] = a[i] / b[i]
			}
		}
	case sa == 1:
		a = a[:n]
		y := b[0]
		switch k {
		case binAdd:
			for i := range out {
				out[i] = a[i] + y
			}
		case binSub:
			for i := range out {
				out[i] = a[i] - y
			}
		case binMul:
			for i := range out {
				out[i] = a[i] * y
			}
		case binDiv:
			for i := range out {
				out[i] = a[i] / y
			}
		}
	case sb == 1:
		b = b[:n]
		x := a[0]
		switch k {
		case binAdd:
			for i := range out {
				out[i] = x + b[i]
			}
		case binSub:
			for i := range out {
				out[i] = x - b[i]
			}
		case binMul:
			for i := range out {
				out[i] = x * b[i]
			}
		case binDiv:
			for i := range out {
				out[i] = x / b[i]
			}
		}
	default:
		var v T
		switch k {
		case binAdd:
			v = a[0] + b[0]
		case binSub:
			v = a[0] - b[0]
		case binMul:
			v = a[0] * b[0]
		case binDiv:
			v = a[0] / b[0]
		}
		for i := range out {
			out[i] = v
		}
	}
}

func (op *binaryOp) DiffWRT(int) []bool { return []bool{true, true} }

// SymDiff: the gradient of each operand is the result's gradient times the
// partial derivative, summed over the axes the operand was broadcast along.
func (op *binaryOp) SymDiff(in G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	a, b := in[0], in[1]
	switch op.kind {
	case binAdd, binSub:
		ga, err := sumTo(grad, op.in[0], 1)
		if err != nil {
			return nil, err
		}
		scale := 1.0
		if op.kind == binSub {
			scale = -1
		}
		gb, err := sumTo(grad, op.in[1], scale)
		if err != nil {
			return nil, err
		}
		return G.Nodes{ga, gb}, nil
	case binMul:
		ta, err := applyBinary(binMul, grad, b)
		if err != nil {
			return nil, err
		}
		tb, err := applyBinary(binMul, grad, a)
		if err != nil {
			return nil, err
		}
		ga, err := sumTo(ta, op.in[0], 1)
		if err != nil {
			return nil, err
		}
		gb, err := sumTo(tb, op.in[1], 1)
		if err != nil {
			return nil, err
		}
		return G.Nodes{ga, gb}, nil
	default: // y = a/b: dy/da = 1/b, dy/db = -y/b
		ta, err := applyBinary(binDiv, grad, b)
		if err != nil {
			return nil, err
		}
		gy, err := applyBinary(binMul, grad, output)
		if err != nil {
			return nil, err
		}
		tb, err := applyBinary(binDiv, gy, b)
		if err != nil {
			return nil, err
		}
		ga, err := sumTo(ta, op.in[0], 1)
		if err != nil {
			return nil, err
		}
		gb, err := sumTo(tb, op.in[1], -1)
		if err != nil {
			return nil, err
		}
		return G.Nodes{ga, gb}, nil
	}
}

func applyBinary(k binKind, a, b *G.Node) (*G.Node, error) {
	op, err := newBinaryOp(k, a.Dtype(), a.Shape(), b.Shape())
	if err != nil {
		return nil, err
	}
	return G.ApplyOp(op, a, b)
}

// sumTo reduces x, a gradient of a broadcast result, to shape to by
// summing over the axes to was broadcast along, times scale.
func sumTo(x *G.Node, to tensor.Shape, scale float64) (*G.Node, error) {
	if sameShape(x.Shape(), to) && scale == 1 {
		return x, nil
	}
	op := &sumToOp{sig: newSig("SumTo", fmt.Sprint(scale), x.Dtype(), to.Clone(), x.Shape()), scale: scale}
	op.plan = newBPlan(x.Shape(), to, x.Shape())
	return G.ApplyOp(op, x)
}

// sumToOp is the reduction that undoes a broadcast, for gradients.
type sumToOp struct {
	sig
	scale float64
	plan  bplan // result strides as a, input as b
}

func (op *sumToOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(op.result(), in...) }

func (op *sumToOp) UsePreallocDo(out G.Value, in ...G.Value) (G.Value, error) {
	if err := op.check(out, in); err != nil {
		return nil, err
	}
	o, x := out.(*tensor.Dense), in[0].(*tensor.Dense)
	if op.dtype == tensor.Float32 {
		sumToKernel(&op.plan, o.Float32s(), x.Float32s(), float32(op.scale))
	} else {
		sumToKernel(&op.plan, o.Float64s(), x.Float64s(), op.scale)
	}
	return out, nil
}

func sumToKernel[T floats](p *bplan, out, x []T, scale T) {
	clear(out)
	n, sa, _ := p.inner()
	p.each(func(o, oa, _ int) {
		src := x[o : o+n]
		if sa == 0 {
			var s T
			for _, v := range src {
				s += v
			}
			out[oa] += s * scale
			return
		}
		dst := out[oa : oa+n]
		for i, v := range src {
			dst[i] += v * scale
		}
	})
}

// unaryKind is an elementwise activation.
type unaryKind int

const (
	unRelu unaryKind = iota
	unLeakyRelu
	unSigmoid
	unTanh
)

var unaryNames = [...]string{"Relu", "LeakyRelu", "Sigmoid", "Tanh"}

// unaryOp is an elementwise activation.
type unaryOp struct {
	sig
	kind  unaryKind
	alpha float64 // LeakyRelu's slope
}

func newUnaryOp(kind unaryKind, alpha float64, dt tensor.Dtype, s tensor.Shape) *unaryOp {
	return &unaryOp{sig: newSig(unaryNames[kind], fmt.Sprint(alpha), dt, s.Clone(), s.Clone()), kind: kind, alpha: alpha}
}

func (op *unaryOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(op.result(), in...) }

func (op *unaryOp) UsePreallocDo(out G.Value, in ...G.Value) (G.Value, error) {
	if err := op.check(out, in); err != nil {
		return nil, err
	}
	o, x := out.(*tensor.Dense), in[0].(*tensor.Dense)
	if op.dtype == tensor.Float32 {
		unary(op.kind, float32(op.alpha), o.Float32s(), x.Float32s())
	} else {
		unary(op.kind, op.alpha, o.Float64s(), x.Float64s())
	}
	return out, nil
}

func unary[T floats](k unaryKind, alpha T, out, x []T) {
	x = x[:len(out)]
	switch k {
	case unRelu:
		relu(out, x)
	case unLeakyRelu:
		for i, v := range x {
			if v >= 0 {
				out[i] = v
			} else {
				out[i] = alpha * v
			}
		}
	case unSigmoid:
		for i, v := range x {
			f := float64(v)
			if f >= 0 {
				out[i] = T(1 / (1 + math.Exp(-f)))
			} else {
				e := math.Exp(f)
				out[i] = T(e / (1 + e))
			}
		}
	case unTanh:
		for i, v := range x {
			out[i] = T(math.Tanh(float64(v)))
		}
	}
}

// relu writes max(x, 0) without a branch per element: the sign bit of
// each element masks it to +0. (A branch mispredicts on half the
// elements of a typical layer.)
func relu[T floats](out, x []T) {
	switch o := any(out).(type) {
	case []float32:
		x := any(x).([]float32)
		if n := len(o) &^ 31; fastGemm && n > 0 {
			reluAVX2(&o[0], &x[0], n)
			o, x = o[n:], x[n:]
		}
		for i, v := range x {
			b := math.Float32bits(v)
			o[i] = math.Float32frombits(b &^ uint32(int32(b)>>31))
		}
	case []float64:
		for i, v := range any(x).([]float64) {
			b := math.Float64bits(v)
			o[i] = math.Float64frombits(b &^ uint64(int64(b)>>63))
		}
	}
}

func (op *unaryOp) DiffWRT(int) []bool { return []bool{true} }

// SymDiff: Relu and LeakyRelu differentiate through their input, Sigmoid
// and Tanh through their result.
func (op *unaryOp) SymDiff(in G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	from := in[0]
	if op.kind == unSigmoid || op.kind == unTanh {
		from = output
	}
	g := &unaryGradOp{sig: newSig(unaryNames[op.kind]+"Grad", fmt.Sprint(op.alpha), op.dtype, op.out.Clone(), op.out.Clone(), op.out.Clone()), kind: op.kind, alpha: op.alpha}
	n, err := G.ApplyOp(g, from, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{n}, nil
}

// unaryGradOp multiplies a gradient by an activation's derivative, read
// from the activation's input (Relu, LeakyRelu) or result (Sigmoid, Tanh).
type unaryGradOp struct {
	sig
	kind  unaryKind
	alpha float64
}

func (op *unaryGradOp) Do(in ...G.Value) (G.Value, error) {
	return op.UsePreallocDo(op.result(), in...)
}

func (op *unaryGradOp) UsePreallocDo(out G.Value, in ...G.Value) (G.Value, error) {
	if err := op.check(out, in); err != nil {
		return nil, err
	}
	o, x, g := out.(*tensor.Dense), in[0].(*tensor.Dense), in[1].(*tensor.Dense)
	if op.dtype == tensor.Float32 {
		unaryGrad(op.kind, float32(op.alpha), o.Float32s(), x.Float32s(), g.Float32s())
	} else {
		unaryGrad(op.kind, op.alpha, o.Float64s(), x.Float64s(), g.Float64s())
	}
	return out, nil
}

func unaryGrad[T floats](k unaryKind, alpha T, out, x, g []T) {
	x, g = x[:len(out)], g[:len(out)]
	for i, v := range x {
		switch k {
		case unRelu:
			if v > 0 {
				out[i] = g[i]
			} else {
				out[i] = 0
			}
		case unLeakyRelu:
			if v >= 0 {
				out[i] = g[i]
			} else {
				out[i] = alpha * g[i]
			}
		case unSigmoid:
			out[i] = g[i] * v * (1 - v)
		case unTanh:
			out[i] = g[i] * (1 - v*v)
		}
	}
}
