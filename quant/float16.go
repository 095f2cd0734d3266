package quant

import (
	"fmt"

	"github.com/quiverml/quiver/internal/f16"
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
func ToFloat16(f float32) Float16 { return Float16(f16.FromFloat32(f)) }

// Float32 converts h to float32 exactly (every binary16 value, subnormals
// included, is representable); NaN stays NaN.
func (h Float16) Float32() float32 { return f16.ToFloat32(uint16(h)) }

// ToBFloat16 converts f to bfloat16 with round-to-nearest-even; values that
// round past the largest bfloat16 become ±Inf, and NaN stays a quiet NaN
// with its sign.
func ToBFloat16(f float32) BFloat16 { return BFloat16(f16.BF16FromFloat32(f)) }

// Float32 converts b to float32 exactly.
func (b BFloat16) Float32() float32 { return f16.BF16ToFloat32(uint16(b)) }

// ToFloat16Slice converts src into dst (same length) with ToFloat16.
func ToFloat16Slice(dst []Float16, src []float32) error {
	if err := sameLen(len(dst), len(src)); err != nil {
		return err
	}
	f16.FromFloat32s(dst, src)
	return nil
}

// FromFloat16Slice converts src into dst (same length) exactly.
func FromFloat16Slice(dst []float32, src []Float16) error {
	if err := sameLen(len(dst), len(src)); err != nil {
		return err
	}
	f16.ToFloat32s(dst, src)
	return nil
}

// ToBFloat16Slice converts src into dst (same length) with ToBFloat16.
func ToBFloat16Slice(dst []BFloat16, src []float32) error {
	if err := sameLen(len(dst), len(src)); err != nil {
		return err
	}
	f16.BF16FromFloat32s(dst, src)
	return nil
}

// FromBFloat16Slice converts src into dst (same length) exactly.
func FromBFloat16Slice(dst []float32, src []BFloat16) error {
	if err := sameLen(len(dst), len(src)); err != nil {
		return err
	}
	f16.BF16ToFloat32s(dst, src)
	return nil
}

func sameLen(dst, src int) error {
	if dst != src {
		return fmt.Errorf("%w: dst has %d elements, src has %d; want equal", ErrShape, dst, src)
	}
	return nil
}
