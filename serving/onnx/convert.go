package onnx

import (
	"github.com/quiverml/quiver/serving"

	"fmt"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

// bytesOf views a slice of fixed-size elements as bytes without copying.
func bytesOf[T any](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(z)))
}

// sliceOf copies raw bytes into a new slice of T.
func sliceOf[T any](b []byte) []T {
	var z T
	n := len(b) / int(unsafe.Sizeof(z))
	out := make([]T, n)
	copy(bytesOf(out), b)
	return out
}

func newNumeric[T ort.TensorData](shape []int64, data []T) (ort.Value, error) {
	if len(shape) == 0 {
		return ort.NewScalar(data[0])
	}
	return ort.NewTensor(ort.Shape(shape), data)
}

func newCustom(shape []int64, b []byte, t serving.ElementType) (ort.Value, error) {
	if len(shape) == 0 {
		return nil, fmt.Errorf("%s scalars are not supported by the ONNX Runtime binding", t)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("empty %s tensors are not supported by the ONNX Runtime binding", t)
	}
	return ort.NewCustomDataTensor(ort.Shape(shape), b, ort.TensorElementDataType(t))
}

// toORT wraps a validated Tensor as an ONNX Runtime value. Numeric data is
// shared with the Go slice, not copied.
func toORT(t serving.Tensor) (ort.Value, error) {
	s := t.Shape
	switch d := t.Data.(type) {
	case []float32:
		return newNumeric(s, d)
	case []float64:
		return newNumeric(s, d)
	case []int8:
		return newNumeric(s, d)
	case []uint8:
		return newNumeric(s, d)
	case []int16:
		return newNumeric(s, d)
	case []uint16:
		return newNumeric(s, d)
	case []int32:
		return newNumeric(s, d)
	case []uint32:
		return newNumeric(s, d)
	case []int64:
		return newNumeric(s, d)
	case []uint64:
		return newNumeric(s, d)
	case []bool:
		return newNumeric(s, d)
	case []serving.F16:
		return newCustom(s, bytesOf(d), serving.Float16)
	case []serving.BF16:
		return newCustom(s, bytesOf(d), serving.BFloat16)
	case []complex64:
		return newCustom(s, bytesOf(d), serving.Complex64)
	case []complex128:
		return newCustom(s, bytesOf(d), serving.Complex128)
	case []string:
		if len(s) == 0 {
			return nil, fmt.Errorf("string scalars are not supported by the ONNX Runtime binding")
		}
		st, err := ort.NewStringTensor(ort.Shape(s))
		if err != nil {
			return nil, err
		}
		if err := st.SetContents(d); err != nil {
			st.Destroy()
			return nil, err
		}
		return st, nil
	}
	return nil, fmt.Errorf("unsupported data type %T", t.Data)
}

// emptyORT allocates a Go-backed output value of the given type and shape.
func emptyORT(t serving.ElementType, shape []int64) (ort.Value, error) {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	if n == 0 && len(shape) > 0 {
		return nil, fmt.Errorf("cannot bind an empty %s output", t)
	}
	switch t {
	case serving.Float16, serving.BFloat16, serving.Complex64, serving.Complex128:
		return newCustom(shape, make([]byte, n*t.Size()), t)
	case serving.String:
		return nil, fmt.Errorf("string scalar outputs are not supported by the ONNX Runtime binding")
	}
	z := serving.ZeroTensor(t, shape)
	if z.Data == nil {
		return nil, fmt.Errorf("unsupported output element type %s", t)
	}
	return toORT(z)
}

// fromORT copies an ONNX Runtime value into Go memory.
func fromORT(v ort.Value) (serving.Value, error) {
	switch x := v.(type) {
	case *ort.Tensor[float32]:
		return tensorOut(x)
	case *ort.Tensor[float64]:
		return tensorOut(x)
	case *ort.Tensor[int8]:
		return tensorOut(x)
	case *ort.Tensor[uint8]:
		return tensorOut(x)
	case *ort.Tensor[int16]:
		return tensorOut(x)
	case *ort.Tensor[uint16]:
		return tensorOut(x)
	case *ort.Tensor[int32]:
		return tensorOut(x)
	case *ort.Tensor[uint32]:
		return tensorOut(x)
	case *ort.Tensor[int64]:
		return tensorOut(x)
	case *ort.Tensor[uint64]:
		return tensorOut(x)
	case *ort.Tensor[bool]:
		return tensorOut(x)
	case *ort.Scalar[float32]:
		return scalarOut(x)
	case *ort.Scalar[float64]:
		return scalarOut(x)
	case *ort.Scalar[int8]:
		return scalarOut(x)
	case *ort.Scalar[uint8]:
		return scalarOut(x)
	case *ort.Scalar[int16]:
		return scalarOut(x)
	case *ort.Scalar[uint16]:
		return scalarOut(x)
	case *ort.Scalar[int32]:
		return scalarOut(x)
	case *ort.Scalar[uint32]:
		return scalarOut(x)
	case *ort.Scalar[int64]:
		return scalarOut(x)
	case *ort.Scalar[uint64]:
		return scalarOut(x)
	case *ort.Scalar[bool]:
		return scalarOut(x)
	case *ort.StringTensor:
		s, err := x.GetContents()
		if err != nil {
			return serving.Value{}, err
		}
		return serving.TensorValue(serving.Tensor{Shape: append([]int64(nil), x.GetShape()...), Data: s}), nil
	case *ort.CustomDataTensor:
		return customOut(x)
	case *ort.Sequence:
		items, err := x.GetValues()
		if err != nil {
			return serving.Value{}, err
		}
		seq := make([]serving.Value, len(items))
		for i, it := range items {
			if seq[i], err = fromORT(it); err != nil {
				return serving.Value{}, fmt.Errorf("sequence element %d: %w", i, err)
			}
		}
		return serving.Value{Kind: serving.KindSequence, Sequence: seq}, nil
	case *ort.Map:
		k, vals, err := x.GetKeysAndValues()
		if err != nil {
			return serving.Value{}, err
		}
		kv, err := fromORT(k)
		if err != nil {
			return serving.Value{}, fmt.Errorf("map keys: %w", err)
		}
		vv, err := fromORT(vals)
		if err != nil {
			return serving.Value{}, fmt.Errorf("map values: %w", err)
		}
		return serving.Value{Kind: serving.KindMap, Keys: kv.Tensor, Values: vv.Tensor}, nil
	case nil:
		return serving.Value{}, fmt.Errorf("no value")
	}
	return serving.Value{}, fmt.Errorf("unsupported ONNX Runtime value %T", v)
}

// tensorOut returns the tensor's data without copying: it is Go memory,
// either bound before the run or copied out of the runtime by the binding,
// and stays valid after the value is destroyed.
func tensorOut[T ort.TensorData](t *ort.Tensor[T]) (serving.Value, error) {
	d := t.GetData()
	return serving.TensorValue(serving.Tensor{Shape: append([]int64(nil), t.GetShape()...), Data: d}), nil
}

func scalarOut[T ort.TensorData](s *ort.Scalar[T]) (serving.Value, error) {
	return serving.TensorValue(serving.Tensor{Shape: []int64{}, Data: []T{s.GetData()}}), nil
}

func customOut(t *ort.CustomDataTensor) (serving.Value, error) {
	shape := append([]int64(nil), t.GetShape()...)
	et := serving.ElementType(t.DataType())
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	b := t.GetData()
	if et.Size() == 0 || len(b) != n*et.Size() {
		return serving.Value{}, fmt.Errorf("%s output of shape %v came back with %d bytes, want %d: "+
			"the ONNX Runtime binding only returns such outputs whole when their shape is known "+
			"before the run (fixed, or named like an input axis)", et, shape, len(b), n*et.Size())
	}
	var data any
	switch et {
	case serving.Float16:
		data = sliceOf[serving.F16](b)
	case serving.BFloat16:
		data = sliceOf[serving.BF16](b)
	case serving.Complex64:
		data = sliceOf[complex64](b)
	case serving.Complex128:
		data = sliceOf[complex128](b)
	default:
		return serving.Value{}, fmt.Errorf("unsupported output element type %s", et)
	}
	return serving.TensorValue(serving.Tensor{Shape: shape, Data: data}), nil
}
