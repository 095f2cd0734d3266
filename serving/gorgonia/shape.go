package gorgonia

import (
	"fmt"
	"strings"

	"github.com/chewxy/hm"
	"github.com/quiverml/quiver/serving"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// backing returns the typed slice under d ([]float32, []float64, []int32
// or []int64).
func backing(d *tensor.Dense) any {
	switch d.Dtype() {
	case tensor.Float32:
		return d.Float32s()
	case tensor.Float64:
		return d.Float64s()
	case tensor.Int32:
		return d.Int32s()
	default:
		return d.Int64s()
	}
}

// reshapeOp gives its input another shape with the same elements in the
// same order: Reshape, Flatten, Identity and Dropout at inference. The
// executor makes its result a view of its input; gorgonia's machines get
// a copy.
type reshapeOp struct{ sig }

func newReshapeOp(name string, dt tensor.Dtype, from, to tensor.Shape) (*reshapeOp, error) {
	if size(from) != size(to) {
		return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v (%d elements)", []int(from), size(from), []int(to), size(to))
	}
	return &reshapeOp{sig: newSig(name, "", dt, to.Clone(), from.Clone())}, nil
}

func (op *reshapeOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(op.result(), in...) }

func (op *reshapeOp) UsePreallocDo(out G.Value, in ...G.Value) (G.Value, error) {
	if err := op.check(out, in); err != nil {
		return nil, err
	}
	copy(out.(*tensor.Dense).Raw, in[0].(*tensor.Dense).Raw)
	return out, nil
}

func (op *reshapeOp) view(in G.Value) (G.Value, error) {
	d, ok := in.(*tensor.Dense)
	if !ok || !sameShape(d.Shape(), op.in[0]) {
		return nil, fmt.Errorf("%s: input is %T %v, want shape %v", op.name, in, shapeOf(in), op.in[0])
	}
	return newDense(op.out, backing(d)), nil
}

func (op *reshapeOp) DiffWRT(int) []bool { return []bool{true} }

func (op *reshapeOp) SymDiff(in G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	back, err := newReshapeOp(op.name+"Grad", op.dtype, op.out, op.in[0])
	if err != nil {
		return nil, err
	}
	n, err := G.ApplyOp(back, grad)
	return G.Nodes{n}, err
}

func applyReshape(name string, x *G.Node, to tensor.Shape) (*G.Node, error) {
	if sameShape(x.Shape(), to) && name == "Reshape" {
		return x, nil
	}
	op, err := newReshapeOp(name, x.Dtype(), x.Shape(), to)
	if err != nil {
		return nil, err
	}
	return G.ApplyOp(op, x)
}

// strides returns the row-major strides of shape s.
func strides(s []int) []int {
	st := make([]int, len(s))
	step := 1
	for i := len(s) - 1; i >= 0; i-- {
		st[i] = step
		step *= s[i]
	}
	return st
}

// transposeOp permutes axes: result axis i is input axis perm[i].
type transposeOp struct {
	sig
	perm []int
	plan bplan // over the result, a = input strides permuted
}

func newTransposeOp(dt tensor.Dtype, s tensor.Shape, perm []int) (*transposeOp, error) {
	if len(perm) != len(s) {
		return nil, fmt.Errorf("perm %v has %d axes, the input %d", perm, len(perm), len(s))
	}
	seen := make([]bool, len(s))
	out := make(tensor.Shape, len(s))
	st := strides(s)
	pst := make([]int, len(s))
	for i, p := range perm {
		if p < 0 || p >= len(s) || seen[p] {
			return nil, fmt.Errorf("perm %v is not a permutation of %d axes", perm, len(s))
		}
		seen[p] = true
		out[i] = s[p]
		pst[i] = st[p]
	}
	op := &transposeOp{sig: newSig("Transpose", fmt.Sprint(perm), dt, out, s.Clone()), perm: append([]int(nil), perm...)}
	// A plan over the result whose operand a walks the input: merge axes
	// where the input stays contiguous.
	for i := range out {
		if out[i] == 1 {
			continue
		}
		if n := len(op.plan.dims) - 1; n >= 0 && op.plan.sa[n] == pst[i]*out[i] {
			op.plan.dims[n] *= out[i]
			op.plan.sa[n] = pst[i]
			continue
		}
		op.plan.dims = append(op.plan.dims, out[i])
		op.plan.sa = append(op.plan.sa, pst[i])
		op.plan.sb = append(op.plan.sb, 0)
	}
	return op, nil
}

func (op *transposeOp) Do(in ...G.Value) (G.Value, error) {
	return op.UsePreallocDo(op.result(), in...)
}

func (op *transposeOp) UsePreallocDo(out G.Value, in ...G.Value) (G.Value, error) {
	if err := op.check(out, in); err != nil {
		return nil, err
	}
	o, x := out.(*tensor.Dense), in[0].(*tensor.Dense)
	switch op.dtype {
	case tensor.Float32:
		gatherStrided(&op.plan, o.Float32s(), x.Float32s())
	case tensor.Float64:
		gatherStrided(&op.plan, o.Float64s(), x.Float64s())
	case tensor.Int32:
		gatherStrided(&op.plan, o.Int32s(), x.Int32s())
	default:
		gatherStrided(&op.plan, o.Int64s(), x.Int64s())
	}
	return out, nil
}

// gatherStrided fills the contiguous out from x walked along the plan.
func gatherStrided[T any](p *bplan, out, x []T) {
	n, sa, _ := p.inner()
	if len(p.dims) == 0 {
		copy(out, x)
		return
	}
	p.each(func(o, oa, _ int) {
		dst := out[o : o+n]
		if sa == 1 {
			copy(dst, x[oa:oa+n])
			return
		}
		for i := range dst {
			dst[i] = x[oa+i*sa]
		}
	})
}

func (op *transposeOp) DiffWRT(int) []bool { return []bool{true} }

func (op *transposeOp) SymDiff(in G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	inv := make([]int, len(op.perm))
	for i, p := range op.perm {
		inv[p] = i
	}
	back, err := newTransposeOp(op.dtype, op.out, inv)
	if err != nil {
		return nil, err
	}
	n, err := G.ApplyOp(back, grad)
	return G.Nodes{n}, err
}

// blocks describes a shape split at an axis: outer blocks of the axes
// before it, and inner elements per index of the axis.
func blocks(s tensor.Shape, axis int) (outer, inner int) {
	return size(s[:axis]), size(s[axis+1:])
}

// concatOp joins its inputs along an axis. It copies bytes, so every
// element type works.
type concatOp struct {
	sig
	axis int
}

func newConcatOp(dt tensor.Dtype, axis int, shapes []tensor.Shape) (*concatOp, error) {
	if len(shapes) == 0 {
		return nil, fmt.Errorf("no inputs")
	}
	r := shapes[0].Dims()
	if axis < 0 || axis >= r {
		return nil, fmt.Errorf("axis %d out of range for rank %d", axis, r)
	}
	out := shapes[0].Clone()
	out[axis] = 0
	in := make([]tensor.Shape, len(shapes))
	for i, s := range shapes {
		if s.Dims() != r {
			return nil, fmt.Errorf("input %d has shape %v, input 0 has %v: ranks differ", i, []int(s), []int(shapes[0]))
		}
		for k := range s {
			if k != axis && s[k] != shapes[0][k] {
				return nil, fmt.Errorf("input %d has shape %v, input 0 has %v: axis %d differs", i, []int(s), []int(shapes[0]), k)
			}
		}
		out[axis] += s[axis]
		in[i] = s.Clone()
	}
	return &concatOp{sig: newSig("Concat", fmt.Sprint(axis), dt, out, in...), axis: axis}, nil
}

func (op *concatOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(op.result(), in...) }

func (op *concatOp) UsePreallocDo(out G.Value, in ...G.Value) (G.Value, error) {
	if err := op.check(out, in); err != nil {
		return nil, err
	}
	es := int(op.dtype.Size())
	dst := out.(*tensor.Dense).Raw
	outer, inner := blocks(op.out, op.axis)
	rowOut := op.out[op.axis] * inner * es
	off := 0
	for i, v := range in {
		src := v.(*tensor.Dense).Raw
		row := op.in[i][op.axis] * inner * es
		for o := 0; o < outer; o++ {
			copy(dst[o*rowOut+off:o*rowOut+off+row], src[o*row:(o+1)*row])
		}
		off += row
	}
	return out, nil
}

func (op *concatOp) DiffWRT(n int) []bool {
	w := make([]bool, n)
	for i := range w {
		w[i] = true
	}
	return w
}

func (op *concatOp) SymDiff(in G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	out := make(G.Nodes, len(in))
	start := 0
	for i, s := range op.in {
		sl := &sliceOp{sig: newSig("ConcatGrad", fmt.Sprintf("%d:%d:%d", op.axis, start, s[op.axis]), op.dtype, s.Clone(), op.out.Clone()), axis: op.axis, start: start}
		n, err := G.ApplyOp(sl, grad)
		if err != nil {
			return nil, err
		}
		out[i] = n
		start += s[op.axis]
	}
	return out, nil
}

// sliceOp takes a contiguous range of indices along one axis: the gradient
// of Concat.
type sliceOp struct {
	sig
	axis, start int
}

func (op *sliceOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(op.result(), in...) }

func (op *sliceOp) UsePreallocDo(out G.Value, in ...G.Value) (G.Value, error) {
	if err := op.check(out, in); err != nil {
		return nil, err
	}
	es := int(op.dtype.Size())
	dst, src := out.(*tensor.Dense).Raw, in[0].(*tensor.Dense).Raw
	outer, inner := blocks(op.in[0], op.axis)
	rowIn := op.in[0][op.axis] * inner * es
	row := op.out[op.axis] * inner * es
	off := op.start * inner * es
	for o := 0; o < outer; o++ {
		copy(dst[o*row:(o+1)*row], src[o*rowIn+off:o*rowIn+off+row])
	}
	return out, nil
}

// gatherOp is ONNX's Gather: it picks indices along an axis of data, with
// negative indices counting from the end. Data of every element type is
// copied as bytes; indices are int32 or int64.
type gatherOp struct {
	sig
	axis int
}

func newGatherOp(dt tensor.Dtype, data, idx tensor.Shape, axis int) (*gatherOp, error) {
	if axis < 0 || axis >= data.Dims() {
		return nil, fmt.Errorf("axis %d out of range for data of rank %d", axis, data.Dims())
	}
	out := append(append(data[:axis].Clone(), idx...), data[axis+1:]...)
	s := newSig("Gather", fmt.Sprint(axis), dt, out, data.Clone(), idx.Clone())
	s.vars = []hm.TypeVariable{tvA, tvI}
	return &gatherOp{sig: s, axis: axis}, nil
}

func (op *gatherOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(op.result(), in...) }

// errIndex reports an index outside the axis it indexes; it matches
// serving.ErrInput, since indices come from the request.
func errIndex(i int64, n int) error {
	return fmt.Errorf("%w: index %d out of range for an axis of size %d, want %d to %d", serving.ErrInput, i, n, -n, n-1)
}

func indexValues(d *tensor.Dense) ([]int64, []int32) {
	if d.Dtype() == tensor.Int32 {
		return nil, d.Int32s()
	}
	return d.Int64s(), nil
}

func (op *gatherOp) UsePreallocDo(out G.Value, in ...G.Value) (G.Value, error) {
	if err := op.check(out, in); err != nil {
		return nil, err
	}
	idx := in[1].(*tensor.Dense)
	if dt := idx.Dtype(); dt != tensor.Int64 && dt != tensor.Int32 {
		return nil, fmt.Errorf("gather: indices are %v, want int32 or int64", dt)
	}
	i64, i32 := indexValues(idx)
	es := int(op.dtype.Size())
	dst, src := out.(*tensor.Dense).Raw, in[0].(*tensor.Dense).Raw
	outer, inner := blocks(op.in[0], op.axis)
	n := op.in[0][op.axis]
	k := size(op.in[1])
	row := inner * es
	for o := 0; o < outer; o++ {
		for j := 0; j < k; j++ {
			var i int64
			if i64 != nil {
				i = i64[j]
			} else {
				i = int64(i32[j])
			}
			if i < 0 {
				i += int64(n)
			}
			if i < 0 || i >= int64(n) {
				orig := i
				if orig < 0 {
					orig -= int64(n)
				}
				return nil, errIndex(orig, n)
			}
			s := (o*n + int(i)) * row
			d := (o*k + j) * row
			copy(dst[d:d+row], src[s:s+row])
		}
	}
	return out, nil
}

func (op *gatherOp) DiffWRT(int) []bool { return []bool{true, false} }

// SymDiff: the gradient of the data adds each row of the result's gradient
// into the row it was gathered from.
func (op *gatherOp) SymDiff(in G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if !isFloat(op.dtype) {
		return nil, fmt.Errorf("gather: cannot differentiate %v data", op.dtype)
	}
	s := newSig("GatherGrad", fmt.Sprint(op.axis), op.dtype, op.in[0].Clone(), op.in[1].Clone(), op.out.Clone())
	s.vars = []hm.TypeVariable{tvI, tvA}
	n, err := G.ApplyOp(&scatterAddOp{sig: s, axis: op.axis}, in[1], grad)
	return G.Nodes{n, nil}, err
}

// scatterAddOp is the gradient of Gather: a zero tensor of the data's
// shape with the gradient's rows added at the gathered indices.
type scatterAddOp struct {
	sig
	axis int
}

func (op *scatterAddOp) Do(in ...G.Value) (G.Value, error) {
	return op.UsePreallocDo(op.result(), in...)
}

func (op *scatterAddOp) UsePreallocDo(out G.Value, in ...G.Value) (G.Value, error) {
	if err := op.check(out, in); err != nil {
		return nil, err
	}
	o, idx, g := out.(*tensor.Dense), in[0].(*tensor.Dense), in[1].(*tensor.Dense)
	var err error
	if op.dtype == tensor.Float32 {
		err = scatterAdd(op, o.Float32s(), idx, g.Float32s())
	} else {
		err = scatterAdd(op, o.Float64s(), idx, g.Float64s())
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func scatterAdd[T floats](op *scatterAddOp, out []T, idx *tensor.Dense, g []T) error {
	clear(out)
	i64, i32 := indexValues(idx)
	outer, inner := blocks(op.out, op.axis)
	n := op.out[op.axis]
	k := size(op.in[0])
	for o := 0; o < outer; o++ {
		for j := 0; j < k; j++ {
			var i int64
			if i64 != nil {
				i = i64[j]
			} else {
				i = int64(i32[j])
			}
			if i < 0 {
				i += int64(n)
			}
			if i < 0 || i >= int64(n) {
				return errIndex(i, n)
			}
			dst := out[(o*n+int(i))*inner:][:inner]
			src := g[(o*k+j)*inner:][:inner]
			for x := range dst {
				dst[x] += src[x]
			}
		}
	}
	return nil
}

// shapeString formats a shape as the serving package does: [2 3].
func shapeString[T int | int64](s []T) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, " ") + "]"
}
