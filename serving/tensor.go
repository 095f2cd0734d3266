package serving

import (
	"fmt"
	"math"
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
func (h F16) Float32() float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		// subnormal: value = mant * 2^-24
		f := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}

// F16From converts f to the nearest half-precision value (ties to even),
// with overflow to Inf and NaN kept NaN.
func F16From(f float32) F16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return F16(sign | 0x7e00)
		}
		return F16(sign | 0x7c00)
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return F16(sign | 0x7c00)
	}
	if e <= 0 {
		if e < -10 {
			return F16(sign)
		}
		m := mant | 0x800000
		shift := uint32(14 - e)
		half := uint32(1) << (shift - 1)
		r := m >> shift
		rem := m & (1<<shift - 1)
		if rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return F16(sign | uint16(r))
	}
	r := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++ // may carry into the exponent, which is the correct rounding
	}
	return F16(sign | uint16(r))
}

// Float32 converts b to float32 exactly.
func (b BF16) Float32() float32 { return math.Float32frombits(uint32(b) << 16) }

// BF16From converts f to the nearest bfloat16 (ties to even), NaN kept NaN.
func BF16From(f float32) BF16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return BF16(u>>16 | 0x40)
	}
	u += 0x7fff + (u>>16)&1
	return BF16(u >> 16)
}

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
