package gorgonia

import (
	"fmt"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

var blasImpl gonum.Implementation

func trans(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

// gemmOp is ONNX's Gemm: alpha * op(A) op(B) + beta * C, with op a
// transposition or not, and C (optional) broadcast to the result. The
// product runs on gonum's pure-Go BLAS, which reads transposed operands in
// place.
type gemmOp struct {
	sig
	transA, transB bool
	alpha, beta    float64
	hasC           bool
	m, n, k        int
	cplan          bplan
}

func newGemmOp(dt tensor.Dtype, a, b tensor.Shape, transA, transB bool, alpha float64, c tensor.Shape, beta float64) (*gemmOp, error) {
	if a.Dims() != 2 || b.Dims() != 2 {
		return nil, fmt.Errorf("operands must be matrices, got shapes %v and %v", []int(a), []int(b))
	}
	m, k := a[0], a[1]
	if transA {
		m, k = k, m
	}
	kb, n := b[0], b[1]
	if transB {
		kb, n = n, kb
	}
	if k != kb {
		return nil, fmt.Errorf("inner dimensions differ: A is %v (transA=%t), B is %v (transB=%t)", []int(a), transA, []int(b), transB)
	}
	out := tensor.Shape{m, n}
	in := []tensor.Shape{a.Clone(), b.Clone()}
	op := &gemmOp{transA: transA, transB: transB, alpha: alpha, beta: beta, m: m, n: n, k: k}
	if c != nil {
		if c.Dims() > 2 {
			return nil, fmt.Errorf("operand C has shape %v, want at most 2 axes", []int(c))
		}
		bs, err := broadcastShape(out, c)
		if err != nil || !sameShape(bs, out) {
			return nil, fmt.Errorf("operand C of shape %v does not broadcast to the result's shape %v", []int(c), []int(out))
		}
		op.hasC = true
		op.cplan = newBPlan(out, c, c)
		in = append(in, c.Clone())
	}
	op.sig = newSig("Gemm", fmt.Sprintf("tA=%t,tB=%t,a=%v,b=%v", transA, transB, alpha, beta), dt, out, in...)
	return op, nil
}

func (op *gemmOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(op.result(), in...) }

func (op *gemmOp) UsePreallocDo(out G.Value, in ...G.Value) (G.Value, error) {
	if err := op.check(out, in); err != nil {
		return nil, err
	}
	o, a, b := out.(*tensor.Dense), in[0].(*tensor.Dense), in[1].(*tensor.Dense)
	var c *tensor.Dense
	if op.hasC {
		c = in[2].(*tensor.Dense)
	}
	lda, ldb := op.in[0][1], op.in[1][1]
	if op.dtype == tensor.Float32 {
		beta := float32(0)
		if c != nil {
			broadcastCopy(&op.cplan, o.Float32s(), c.Float32s())
			beta = float32(op.beta)
		}
		if op.m == 0 || op.n == 0 {
			return out, nil
		}
		if op.k == 0 {
			scale(o.Float32s(), beta)
			return out, nil
		}
		sgemm(trans(op.transA), trans(op.transB), op.m, op.n, op.k, float32(op.alpha),
			a.Float32s(), lda, b.Float32s(), ldb, beta, o.Float32s(), op.n)
		return out, nil
	}
	beta := 0.0
	if c != nil {
		broadcastCopy(&op.cplan, o.Float64s(), c.Float64s())
		beta = op.beta
	}
	if op.m == 0 || op.n == 0 {
		return out, nil
	}
	if op.k == 0 {
		scale(o.Float64s(), beta)
		return out, nil
	}
	blasImpl.Dgemm(trans(op.transA), trans(op.transB), op.m, op.n, op.k, op.alpha,
		a.Float64s(), lda, b.Float64s(), ldb, beta, o.Float64s(), op.n)
	return out, nil
}

func scale[T floats](x []T, s T) {
	for i := range x {
		x[i] *= s
	}
}

// broadcastCopy fills out with c broadcast along the plan.
func broadcastCopy[T floats](p *bplan, out, c []T) {
	n, sa, _ := p.inner()
	p.each(func(o, oa, _ int) {
		if sa == 1 {
			copy(out[o:o+n], c[oa:oa+n])
			return
		}
		v := c[oa]
		for i := range out[o : o+n] {
			out[o+i] = v
		}
	})
}

func (op *gemmOp) DiffWRT(n int) []bool {
	w := make([]bool, n)
	for i := range w {
		w[i] = true
	}
	return w
}

// SymDiff: with Y = alpha op(A) op(B) + beta C and G the gradient of Y,
// dop(A) = alpha G op(B)^T, dop(B) = alpha op(A)^T G, dC = beta G summed
// to C's shape. Each is one more Gemm that reads its operands transposed
// in place.
func (op *gemmOp) SymDiff(in G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	a, b := in[0], in[1]
	gemm := func(x, y *G.Node, tx, ty bool) (*G.Node, error) {
		g, err := newGemmOp(op.dtype, x.Shape(), y.Shape(), tx, ty, op.alpha, nil, 0)
		if err != nil {
			return nil, err
		}
		return G.ApplyOp(g, x, y)
	}
	var ga, gb *G.Node
	var err error
	if !op.transA {
		ga, err = gemm(grad, b, false, !op.transB)
	} else {
		ga, err = gemm(b, grad, op.transB, true)
	}
	if err != nil {
		return nil, err
	}
	if !op.transB {
		gb, err = gemm(a, grad, !op.transA, false)
	} else {
		gb, err = gemm(grad, a, true, op.transA)
	}
	if err != nil {
		return nil, err
	}
	out := G.Nodes{ga, gb}
	if op.hasC {
		gc, err := sumTo(grad, op.in[2], op.beta)
		if err != nil {
			return nil, err
		}
		out = append(out, gc)
	}
	return out, nil
}

// batchMatMulOp is numpy's matmul on operands of rank 3 or more: a stack
// of matrix products whose leading (batch) axes broadcast.
type batchMatMulOp struct {
	sig
	m, n, k int
	plan    bplan // over the batch axes, in matrices
}

func newBatchMatMulOp(dt tensor.Dtype, a, b tensor.Shape) (*batchMatMulOp, error) {
	if a.Dims() < 2 || b.Dims() < 2 {
		return nil, fmt.Errorf("operands must have 2 axes or more, got shapes %v and %v", []int(a), []int(b))
	}
	ra, rb := a.Dims(), b.Dims()
	m, k, kb, n := a[ra-2], a[ra-1], b[rb-2], b[rb-1]
	if k != kb {
		return nil, fmt.Errorf("inner dimensions differ: shapes %v and %v", []int(a), []int(b))
	}
	batch, err := broadcastShape(a[:ra-2], b[:rb-2])
	if err != nil {
		return nil, err
	}
	out := append(batch.Clone(), m, n)
	op := &batchMatMulOp{m: m, n: n, k: k, plan: newBPlan(batch, a[:ra-2], b[:rb-2])}
	op.sig = newSig("MatMul", "", dt, out, a.Clone(), b.Clone())
	return op, nil
}

func (op *batchMatMulOp) Do(in ...G.Value) (G.Value, error) {
	return op.UsePreallocDo(op.result(), in...)
}

func (op *batchMatMulOp) UsePreallocDo(out G.Value, in ...G.Value) (G.Value, error) {
	if err := op.check(out, in); err != nil {
		return nil, err
	}
	o, a, b := out.(*tensor.Dense), in[0].(*tensor.Dense), in[1].(*tensor.Dense)
	if op.dtype == tensor.Float32 {
		batchMatMul(op, o.Float32s(), a.Float32s(), b.Float32s(), sgemm)
	} else {
		batchMatMul(op, o.Float64s(), a.Float64s(), b.Float64s(), blasImpl.Dgemm)
	}
	return out, nil
}

type gemmFunc[T floats] func(tA, tB blas.Transpose, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int)

func batchMatMul[T floats](op *batchMatMulOp, out, a, b []T, gemm gemmFunc[T]) {
	ma, mb, mo := op.m*op.k, op.k*op.n, op.m*op.n
	if mo == 0 {
		return
	}
	if op.k == 0 {
		clear(out)
		return
	}
	// The plan walks batch indices: its result offsets count matrices of
	// the result, its operand offsets matrices of a and b.
	n, sa, sb := op.plan.inner()
	op.plan.each(func(o, oa, ob int) {
		for i := 0; i < n; i++ {
			ia, ib, io := (oa+i*sa)*ma, (ob+i*sb)*mb, (o+i)*mo
			gemm(blas.NoTrans, blas.NoTrans, op.m, op.n, op.k, 1, a[ia:ia+ma], op.k, b[ib:ib+mb], op.n, 0, out[io:io+mo], op.n)
		}
	})
}
