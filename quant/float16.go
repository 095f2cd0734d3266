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
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return Float16(sign | 0x7e00 | uint16(mant>>13))
		}
		return Float16(sign | 0x7c00)
	}
	e := exp - 127 + 15
	if e >= 31 {
		return Float16(sign | 0x7c00)
	}
	if e <= 0 {
		if e < -10 {
			return Float16(sign)
		}
		m := mant | 0x800000
		shift := uint32(14 - e)
		q := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && q&1 == 1) {
			q++
		}
		return Float16(sign | uint16(q))
	}
	q := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && q&1 == 1) {
		q++ // may carry into the exponent, up to Inf: both are correct
	}
	return Float16(sign | uint16(q))
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
