package gorgonia

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The operators of this package are gorgonia Ops: gorgonia type-checks and
// shape-checks them when a graph is built, its TapeMachine runs them and
// its symbolic differentiation (gorgonia.Grad) calls SymDiff on those that
// implement gorgonia.SDOp. Each op is built for the concrete shapes of its
// inputs (gorgonia graphs have static shapes) and writes its result into a
// buffer it is given (gorgonia.UsePreallocDoer), so a compiled graph runs
// without allocating.

// sig is the signature every op of this package carries: the shapes it was
// built for, the dtype of its result, and the type variable of each input
// (inputs sharing one must share a dtype).
type sig struct {
	name   string
	params string
	in     []tensor.Shape
	vars   []hm.TypeVariable
	out    tensor.Shape
	outVar hm.TypeVariable
	dtype  tensor.Dtype
}

// Type variables of op signatures: tvA for data, tvI for indices. ('b' is
// taken: gorgonia's type inference names an op's result with it.)
const (
	tvA hm.TypeVariable = 'a'
	tvI hm.TypeVariable = 'i'
)

// newSig describes an op whose inputs and result all share one dtype.
func newSig(name, params string, dt tensor.Dtype, out tensor.Shape, in ...tensor.Shape) sig {
	vars := make([]hm.TypeVariable, len(in))
	for i := range vars {
		vars[i] = tvA
	}
	return sig{name: name, params: params, in: in, vars: vars, out: out, outVar: tvA, dtype: dt}
}

func tensorType(rank int, v hm.TypeVariable) hm.Type {
	if rank == 0 {
		return v
	}
	return G.TensorType{Dims: rank, Of: v}
}

func (s *sig) Arity() int { return len(s.in) }

func (s *sig) Type() hm.Type {
	ts := make(hm.Types, 0, len(s.in)+1)
	for i, sh := range s.in {
		ts = append(ts, tensorType(sh.Dims(), s.vars[i]))
	}
	ts = append(ts, tensorType(s.out.Dims(), s.outVar))
	return hm.NewFnType(ts...)
}

func (s *sig) InferShape(...G.DimSizer) (tensor.Shape, error) { return s.out.Clone(), nil }
func (s *sig) ReturnsPtr() bool                               { return false }
func (s *sig) CallsExtern() bool                              { return false }
func (s *sig) OverwritesInput() int                           { return -1 }
func (s *sig) String() string                                 { return s.name + "{" + s.params + "}" }

func (s *sig) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "quiver.%s{%s}%v->%v:%v", s.name, s.params, s.in, s.out, s.dtype)
}

func (s *sig) Hashcode() uint32 {
	h := fnv.New32a()
	s.WriteHash(h)
	return h.Sum32()
}

// result returns a zero tensor of the op's result shape, for Do.
func (s *sig) result() *tensor.Dense { return zeros(s.dtype, s.out) }

// check verifies that in are dense tensors of the shapes the op was built
// for and that out is a dense result buffer of its dtype and shape.
func (s *sig) check(out G.Value, in []G.Value) error {
	if len(in) != len(s.in) {
		return fmt.Errorf("%s: got %d inputs, want %d", s.name, len(in), len(s.in))
	}
	o, ok := out.(*tensor.Dense)
	if !ok || o.Dtype() != s.dtype || !sameShape(o.Shape(), s.out) {
		return fmt.Errorf("%s: result buffer is %T %v, want %v %v", s.name, out, shapeOf(out), s.dtype, s.out)
	}
	for i, v := range in {
		d, ok := v.(*tensor.Dense)
		if !ok || !sameShape(d.Shape(), s.in[i]) {
			return fmt.Errorf("%s: input %d is %T %v, want shape %v", s.name, i, v, shapeOf(v), s.in[i])
		}
	}
	return nil
}

// sameShape compares shapes exactly: unlike tensor.Shape.Eq, [1 n] and [n]
// differ.
func sameShape(a, b tensor.Shape) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func shapeOf(v G.Value) tensor.Shape {
	if v == nil {
		return nil
	}
	return v.Shape()
}

// floats is the set of element types the arithmetic kernels run on.
type floats interface{ ~float32 | ~float64 }

// viewer is implemented by ops whose result is their input under another
// shape: the executor makes the result a view of the input's buffer once,
// and runs nothing for them.
type viewer interface {
	view(in G.Value) (G.Value, error)
}
