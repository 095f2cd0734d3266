package gorgonia

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/quiverml/quiver/internal/onnxpb"
	"github.com/quiverml/quiver/serving"
	"gorgonia.org/tensor"
)

// dtypeOf maps an ONNX element type to the gorgonia dtype that holds it,
// for the element types this engine computes with.
func dtypeOf(t serving.ElementType) (tensor.Dtype, bool) {
	switch t {
	case serving.Float32:
		return tensor.Float32, true
	case serving.Float64:
		return tensor.Float64, true
	case serving.Int64:
		return tensor.Int64, true
	case serving.Int32:
		return tensor.Int32, true
	}
	return tensor.Dtype{}, false
}

// elementOf is the inverse of dtypeOf.
func elementOf(dt tensor.Dtype) serving.ElementType {
	switch dt {
	case tensor.Float32:
		return serving.Float32
	case tensor.Float64:
		return serving.Float64
	case tensor.Int64:
		return serving.Int64
	case tensor.Int32:
		return serving.Int32
	case tensor.Bool:
		return serving.Bool
	}
	return serving.Undefined
}

const supportedTypes = "float32, float64, int32, int64"

func isFloat(dt tensor.Dtype) bool { return dt == tensor.Float32 || dt == tensor.Float64 }

// newDense returns a dense tensor of the given shape over backing, a
// []float32, []float64, []int32 or []int64 of the shape's size. A nil
// shape makes a scalar.
func newDense(shape []int, backing any) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(backing))
}

// zeros returns a zero-filled dense tensor.
func zeros(dt tensor.Dtype, shape []int) *tensor.Dense {
	n := size(shape)
	switch dt {
	case tensor.Float32:
		return newDense(shape, make([]float32, n))
	case tensor.Float64:
		return newDense(shape, make([]float64, n))
	case tensor.Int32:
		return newDense(shape, make([]int32, n))
	default:
		return newDense(shape, make([]int64, n))
	}
}

// size is the number of elements of shape (1 for a scalar).
func size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// decodeTensor turns an initializer or a Constant's value into a dense
// tensor. Every element must be present in the message: a tensor whose
// dims declare more elements than its data holds is refused before any
// allocation, so the memory decoding takes is bounded by the input's size.
func decodeTensor(tp *onnxpb.TensorProto) (*tensor.Dense, error) {
	et := serving.ElementType(tp.GetDataType())
	dt, ok := dtypeOf(et)
	if et == serving.Bool {
		// Bool tensors are read for flags (Dropout's training_mode); no
		// operator computes with them.
		dt, ok = tensor.Bool, true
	}
	if !ok {
		return nil, fmt.Errorf("element type %s not supported; supported: %s", et, supportedTypes)
	}
	if tp.GetDataLocation() == onnxpb.TensorProto_EXTERNAL || len(tp.GetExternalData()) > 0 {
		return nil, fmt.Errorf("external data not supported; supported: data stored in the model")
	}
	if tp.GetSegment() != nil {
		return nil, fmt.Errorf("segmented tensors not supported")
	}
	dims := tp.GetDims()
	shape := make([]int, len(dims))
	n := 1
	for i, d := range dims {
		// No tensor can hold more elements than the model has bytes, so a
		// bound of 2^40 only guards the product against overflow.
		if d < 0 || d > 1<<40 || (d > 0 && n > (1<<40)/int(d)) {
			return nil, fmt.Errorf("dims %v are not a valid shape", dims)
		}
		shape[i] = int(d)
		n *= int(d)
	}
	raw := tp.GetRawData()
	elem := et.Size()
	have := 0
	switch {
	case len(raw) > 0:
		have = len(raw) / elem
		if len(raw)%elem != 0 {
			have = -1
		}
	case dt == tensor.Float32:
		have = len(tp.GetFloatData())
	case dt == tensor.Float64:
		have = len(tp.GetDoubleData())
	case dt == tensor.Int64:
		have = len(tp.GetInt64Data())
	case dt == tensor.Int32, dt == tensor.Bool:
		have = len(tp.GetInt32Data())
	}
	if have != n {
		return nil, fmt.Errorf("dims %v declare %d elements, the data holds %d bytes (%d elements of %s)",
			dims, n, max(len(raw), have*elem), have, et)
	}
	le := binary.LittleEndian
	switch dt {
	case tensor.Float32:
		v := make([]float32, n)
		if len(raw) > 0 {
			for i := range v {
				v[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
			}
		} else {
			copy(v, tp.GetFloatData())
		}
		return newDense(shape, v), nil
	case tensor.Float64:
		v := make([]float64, n)
		if len(raw) > 0 {
			for i := range v {
				v[i] = math.Float64frombits(le.Uint64(raw[8*i:]))
			}
		} else {
			copy(v, tp.GetDoubleData())
		}
		return newDense(shape, v), nil
	case tensor.Int64:
		v := make([]int64, n)
		if len(raw) > 0 {
			for i := range v {
				v[i] = int64(le.Uint64(raw[8*i:]))
			}
		} else {
			copy(v, tp.GetInt64Data())
		}
		return newDense(shape, v), nil
	case tensor.Bool:
		v := make([]bool, n)
		if len(raw) > 0 {
			for i := range v {
				v[i] = raw[i] != 0
			}
		} else {
			for i, x := range tp.GetInt32Data() {
				v[i] = x != 0
			}
		}
		return newDense(shape, v), nil
	default:
		v := make([]int32, n)
		if len(raw) > 0 {
			for i := range v {
				v[i] = int32(le.Uint32(raw[4*i:]))
			}
		} else {
			copy(v, tp.GetInt32Data())
		}
		return newDense(shape, v), nil
	}
}

// ints reads an integer tensor (shape, axes) as ints.
func ints(t *tensor.Dense) ([]int64, bool) {
	switch t.Dtype() {
	case tensor.Int64:
		return append([]int64(nil), t.Int64s()...), true
	case tensor.Int32:
		v := t.Int32s()
		out := make([]int64, len(v))
		for i, x := range v {
			out[i] = int64(x)
		}
		return out, true
	}
	return nil, false
}
