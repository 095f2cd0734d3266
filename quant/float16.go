package quant

import (
	"fmt"
	"math"
)

// Float16 is an IEEE 754 binary16 value (1 sign, 5 exponent, 10 mantissa
// bits), the layout ONNX calls FLOAT16.
type Float16 uint16

// BFloat16 is a bfloat16 value: the top 16 bits of a float32 (1 sign,
// 8 exponent, 7 mantissa bits), the layout ONNX calls BFLOAT16.
type BFloat16 uint16

// ToFloat16 converts f to binary16 with round-to-nearest-even. Values too
// large for binary16 (|f| >= 65520) become ±Inf, tiny values become
// subnormals or ±0 (sign kept), and NaN stays a quiet NaN with its sign and
// the top mantissa bits of its payload.
func ToFloat16(f float32) Float16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	b &^= 1 << 31
	switch {
	case b >= 0x47800000: // |f| >= 65536 after rounding, Inf or NaN
		if b > 0x7f800000 {
			return Float16(sign | 0x7e00 | uint16(b>>13)&0x3ff)
		}
		return Float16(sign | 0x7c00)
	case b < 0x38800000: // below the smallest normal binary16 (2^-14)
		// Adding 0.5 aligns the value's bits so the float32 adder performs
		// the round-to-nearest-even into the subnormal grid.
		v := math.Float32frombits(b) + 0.5
		return Float16(sign | uint16(math.Float32bits(v)-0x3f000000))
	default:
		odd := (b >> 13) & 1
		b += 0xc8000fff + odd // rebias exponent (-112 << 23), round half to even
		return Float16(sign | uint16(b>>13))
	}
}

// Float32 converts h to float32 exactly (every binary16 value, subnormals
// included, is representable); NaN stays NaN.
func (h Float16) Float32() float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		// Subnormal: normalise the mantissa.
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
	default:
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	}
}

// ToBFloat16 converts f to bfloat16 with round-to-nearest-even; values that
// round past the largest bfloat16 become ±Inf, and NaN stays a quiet NaN
// with its sign.
func ToBFloat16(f float32) BFloat16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return BFloat16(b>>16 | 0x40)
	}
	b += 0x7fff + (b>>16)&1
	return BFloat16(b >> 16)
}

// Float32 converts b to float32 exactly.
func (b BFloat16) Float32() float32 {
	return math.Float32frombits(uint32(b) << 16)
}

// ToFloat16Slice converts src into dst (same length) with ToFloat16.
func ToFloat16Slice(dst []Float16, src []float32) error {
	if len(dst) != len(src) {
		return fmt.Errorf("%w: dst has %d elements, src has %d; want equal", ErrShape, len(dst), len(src))
	}
	for i, v := range src {
		dst[i] = ToFloat16(v)
	}
	return nil
}

// FromFloat16Slice converts src into dst (same length) exactly.
func FromFloat16Slice(dst []float32, src []Float16) error {
	if len(dst) != len(src) {
		return fmt.Errorf("%w: dst has %d elements, src has %d; want equal", ErrShape, len(dst), len(src))
	}
	for i, v := range src {
		dst[i] = v.Float32()
	}
	return nil
}

// ToBFloat16Slice converts src into dst (same length) with ToBFloat16.
func ToBFloat16Slice(dst []BFloat16, src []float32) error {
	if len(dst) != len(src) {
		return fmt.Errorf("%w: dst has %d elements, src has %d; want equal", ErrShape, len(dst), len(src))
	}
	for i, v := range src {
		dst[i] = ToBFloat16(v)
	}
	return nil
}

// FromBFloat16Slice converts src into dst (same length) exactly.
func FromBFloat16Slice(dst []float32, src []BFloat16) error {
	if len(dst) != len(src) {
		return fmt.Errorf("%w: dst has %d elements, src has %d; want equal", ErrShape, len(dst), len(src))
	}
	for i, v := range src {
		dst[i] = v.Float32()
	}
	return nil
}
