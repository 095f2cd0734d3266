package serving

import (
	"fmt"

	"github.com/quiverml/quiver/internal/f16"
)

// ElementType is a tensor element type, numbered as in ONNX's TensorProto.
type ElementType int

// Element types. The Go type of Tensor.Data for each is given in brackets.
const (
	Undefined  ElementType = 0
	Float32    ElementType = 1  // []float32
	Uint8      ElementType = 2  // []uint8
	Int8       ElementType = 3  // []int8
	Uint16     ElementType = 4  // []uint16
	Int16      ElementType = 5  // []int16
	Int32      ElementType = 6  // []int32
	Int64      ElementType = 7  // []int64
	String     ElementType = 8  // []string
	Bool       ElementType = 9  // []bool
	Float16    ElementType = 10 // []F16 (IEEE half, raw bits)
	Float64    ElementType = 11 // []float64
	Uint32     ElementType = 12 // []uint32
	Uint64     ElementType = 13 // []uint64
	Complex64  ElementType = 14 // []complex64
	Complex128 ElementType = 15 // []complex128
	BFloat16   ElementType = 16 // []BF16 (raw bits)
)

var elementNames = map[ElementType]string{
	Float32: "float32", Uint8: "uint8", Int8: "int8", Uint16: "uint16", Int16: "int16",
	Int32: "int32", Int64: "int64", String: "string", Bool: "bool", Float16: "float16",
	Float64: "float64", Uint32: "uint32", Uint64: "uint64", Complex64: "complex64",
	Complex128: "complex128", BFloat16: "bfloat16",
}

func (t ElementType) String() string {
	if n, ok := elementNames[t]; ok {
		return n
	}
	return fmt.Sprintf("element_type(%d)", int(t))
}

// Size returns the byte size of one element, or 0 for strings and unknown types.
func (t ElementType) Size() int {
	switch t {
	case Uint8, Int8, Bool:
		return 1
	case Uint16, Int16, Float16, BFloat16:
		return 2
	case Int32, Uint32, Float32:
		return 4
	case Int64, Uint64, Float64, Complex64:
		return 8
	case Complex128:
		return 16
	}
	return 0
}

// F16 holds the raw bits of an IEEE 754 half-precision number.
type F16 uint16

// BF16 holds the raw bits of a bfloat16 number.
type BF16 uint16

// Float32 converts h to float32 exactly.
func (h F16) Float32() float32 { return f16.ToFloat32(uint16(h)) }

// F16From converts f to the nearest half-precision value (ties to even),
// with overflow to Inf and NaN kept NaN.
func F16From(f float32) F16 { return F16(f16.FromFloat32(f)) }

// Float32 converts b to float32 exactly.
func (b BF16) Float32() float32 { return f16.BF16ToFloat32(uint16(b)) }

// BF16From converts f to the nearest bfloat16 (ties to even), NaN kept NaN.
func BF16From(f float32) BF16 { return BF16(f16.BF16FromFloat32(f)) }

// ValueKind says whether a Value is a tensor, a sequence or a map.
type ValueKind int

// Value kinds.
const (
	KindTensor ValueKind = iota
	KindSequence
	KindMap
	KindOther
)

func (k ValueKind) String() string {
	switch k {
	case KindTensor:
		return "tensor"
	case KindSequence:
		return "sequence"
	case KindMap:
		return "map"
	}
	return "other"
}

// Tensor is a dense, row-major tensor. Data is a slice whose Go type matches
// the element type (see the ElementType constants); its length is the product
// of Shape (1 for a scalar, whose Shape is empty).
type Tensor struct {
	Shape []int64
	Data  any
}

// NewTensor returns a tensor of the given shape over data.
func NewTensor[T Element](shape []int64, data []T) Tensor {
	return Tensor{Shape: shape, Data: data}
}

// Element is the set of Go types a Tensor may hold.
type Element interface {
	~float32 | ~float64 | ~int8 | ~uint8 | ~int16 | ~uint16 | ~int32 | ~uint32 |
		~int64 | ~uint64 | ~bool | ~string | ~complex64 | ~complex128
}

// ElementType returns the element type of t.Data, or Undefined.
func (t Tensor) ElementType() ElementType {
	switch t.Data.(type) {
	case []float32:
		return Float32
	case []float64:
		return Float64
	case []F16:
		return Float16
	case []BF16:
		return BFloat16
	case []int8:
		return Int8
	case []uint8:
		return Uint8
	case []int16:
		return Int16
	case []uint16:
		return Uint16
	case []int32:
		return Int32
	case []uint32:
		return Uint32
	case []int64:
		return Int64
	case []uint64:
		return Uint64
	case []bool:
		return Bool
	case []string:
		return String
	case []complex64:
		return Complex64
	case []complex128:
		return Complex128
	}
	return Undefined
}

// Len returns the number of elements in t.Data, or -1 when Data is not a
// supported slice.
func (t Tensor) Len() int {
	switch d := t.Data.(type) {
	case []float32:
		return len(d)
	case []float64:
		return len(d)
	case []F16:
		return len(d)
	case []BF16:
		return len(d)
	case []int8:
		return len(d)
	case []uint8:
		return len(d)
	case []int16:
		return len(d)
	case []uint16:
		return len(d)
	case []int32:
		return len(d)
	case []uint32:
		return len(d)
	case []int64:
		return len(d)
	case []uint64:
		return len(d)
	case []bool:
		return len(d)
	case []string:
		return len(d)
	case []complex64:
		return len(d)
	case []complex128:
		return len(d)
	}
	return -1
}

// Float32s returns t.Data as []float32, or an error naming the actual type.
func (t Tensor) Float32s() ([]float32, error) {
	d, ok := t.Data.([]float32)
	if !ok {
		return nil, fmt.Errorf("%w: tensor holds %s, not float32", ErrType, t.ElementType())
	}
	return d, nil
}

// Value is a model output: a tensor, a sequence of values, or a map from
// the keys tensor's elements to the values tensor's elements.
type Value struct {
	Kind     ValueKind
	Tensor   Tensor  // KindTensor
	Sequence []Value // KindSequence
	Keys     Tensor  // KindMap
	Values   Tensor  // KindMap
}

// TensorValue wraps t as a Value.
func TensorValue(t Tensor) Value { return Value{Kind: KindTensor, Tensor: t} }
