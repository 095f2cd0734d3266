package gorgonia

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// softmaxOp is Softmax or LogSoftmax along one axis, computed stably (the
// largest element of each slice is subtracted before exponentiation).
// ONNX's opset-13 semantics are the op itself; the older semantics
// (softmax over all axes from axis on) are a reshape to two axes around it.
type softmaxOp struct {
	sig
	axis int
	log  bool
}

func newSoftmaxOp(dt tensor.Dtype, s tensor.Shape, axis int, log bool) (*softmaxOp, error) {
	if axis < 0 || axis >= s.Dims() {
		return nil, fmt.Errorf("axis %d out of range for rank %d", axis, s.Dims())
	}
	name := "Softmax"
	if log {
		name = "LogSoftmax"
	}
	return &softmaxOp{sig: newSig(name, fmt.Sprint(axis), dt, s.Clone(), s.Clone()), axis: axis, log: log}, nil
}

func (op *softmaxOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(op.result(), in...) }

func (op *softmaxOp) UsePreallocDo(out G.Value, in ...G.Value) (G.Value, error) {
	if err := op.check(out, in); err != nil {
		return nil, err
	}
	o, x := out.(*tensor.Dense), in[0].(*tensor.Dense)
	outer, inner := blocks(op.out, op.axis)
	n := op.out[op.axis]
	if op.dtype == tensor.Float32 {
		softmax(o.Float32s(), x.Float32s(), outer, n, inner, op.log)
	} else {
		softmax(o.Float64s(), x.Float64s(), outer, n, inner, op.log)
	}
	return out, nil
}

func softmax[T floats](out, x []T, outer, n, inner int, log bool) {
	if n == 0 {
		return
	}
	for o := 0; o < outer; o++ {
		for in := 0; in < inner; in++ {
			base := o*n*inner + in
			m := x[base]
			for j := 1; j < n; j++ {
				if v := x[base+j*inner]; v > m {
					m = v
				}
			}
			var sum float64
			for j := 0; j < n; j++ {
				e := math.Exp(float64(x[base+j*inner] - m))
				sum += e
				if !log {
					out[base+j*inner] = T(e)
				}
			}
			if log {
				ls := math.Log(sum)
				for j := 0; j < n; j++ {
					out[base+j*inner] = T(float64(x[base+j*inner]-m) - ls)
				}
				continue
			}
			inv := 1 / sum
			for j := 0; j < n; j++ {
				out[base+j*inner] = T(float64(out[base+j*inner]) * inv)
			}
		}
	}
}

func (op *softmaxOp) DiffWRT(int) []bool { return []bool{true} }

// SymDiff: for y = softmax(x), dx = y (g - sum(g y)); for y = log
// softmax(x), dx = g - exp(y) sum(g); sums along the axis.
func (op *softmaxOp) SymDiff(in G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	g := &softmaxGradOp{sig: newSig(op.name+"Grad", fmt.Sprint(op.axis), op.dtype, op.out.Clone(), op.out.Clone(), op.out.Clone()), axis: op.axis, log: op.log}
	n, err := G.ApplyOp(g, output, grad)
	return G.Nodes{n}, err
}

type softmaxGradOp struct {
	sig
	axis int
	log  bool
}

func (op *softmaxGradOp) Do(in ...G.Value) (G.Value, error) {
	return op.UsePreallocDo(op.result(), in...)
}

func (op *softmaxGradOp) UsePreallocDo(out G.Value, in ...G.Value) (G.Value, error) {
	if err := op.check(out, in); err != nil {
		return nil, err
	}
	o, y, g := out.(*tensor.Dense), in[0].(*tensor.Dense), in[1].(*tensor.Dense)
	outer, inner := blocks(op.out, op.axis)
	n := op.out[op.axis]
	if op.dtype == tensor.Float32 {
		softmaxGrad(o.Float32s(), y.Float32s(), g.Float32s(), outer, n, inner, op.log)
	} else {
		softmaxGrad(o.Float64s(), y.Float64s(), g.Float64s(), outer, n, inner, op.log)
	}
	return out, nil
}

func softmaxGrad[T floats](out, y, g []T, outer, n, inner int, log bool) {
	for o := 0; o < outer; o++ {
		for in := 0; in < inner; in++ {
			base := o*n*inner + in
			var s float64
			for j := 0; j < n; j++ {
				k := base + j*inner
				if log {
					s += float64(g[k])
				} else {
					s += float64(g[k] * y[k])
				}
			}
			for j := 0; j < n; j++ {
				k := base + j*inner
				if log {
					out[k] = T(float64(g[k]) - math.Exp(float64(y[k]))*s)
				} else {
					out[k] = T(float64(y[k]) * (float64(g[k]) - s))
				}
			}
		}
	}
}
