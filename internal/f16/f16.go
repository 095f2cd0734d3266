package f16

import (
	"math"
	"unsafe"

	"github.com/quiverml/quiver/internal/simd"
)

// FromFloat32 returns the binary16 nearest to f (ties to even).
func FromFloat32(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	b &^= 1 << 31
	switch {
	case b >= 0x47800000: // |f| >= 65536 after rounding, Inf or NaN
		if b > 0x7f800000 {
			// Quiet NaN keeping the top of the payload.
			return sign | 0x7e00 | uint16(b>>13)&0x3ff
		}
		return sign | 0x7c00
	case b < 0x38800000: // below the smallest normal binary16 (2^-14)
		// Adding 0.5 puts the value's bits where the float32 adder itself
		// rounds them to nearest-even onto the subnormal grid (2^-24 steps
		// in the low mantissa bits of 0.5).
		v := math.Float32frombits(b) + 0.5
		return sign | uint16(math.Float32bits(v)-0x3f000000)
	default:
		// Rebias the exponent (-112 << 23) and round half to even; a carry
		// out of the mantissa correctly bumps the exponent, up to Inf.
		odd := (b >> 13) & 1
		b += 0xc8000fff + odd
		return sign | uint16(b>>13)
	}
}

// ToFloat32 returns the binary16 h as a float32, exactly (every binary16,
// subnormals included, is a float32). NaN stays NaN with its payload, and
// is quieted.
func ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0x1f: // Inf or NaN
		if mant != 0 {
			// NaN: quieted, as IEEE 754 conversions (and F16C) do.
			mant |= 0x200
		}
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case 0:
		// ±0 or subnormal: mant·2^-24, exact in float32 and cheaper than
		// normalising the mantissa bit by bit.
		return math.Float32frombits(sign | math.Float32bits(float32(mant)*0x1p-24))
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// BF16FromFloat32 returns the bfloat16 nearest to f (ties to even).
func BF16FromFloat32(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		// Truncation would turn a NaN whose payload lies in the low bits
		// into Inf, and rounding could carry into the sign: keep the top
		// of the payload and set the quiet bit.
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// BF16ToFloat32 returns the bfloat16 b as a float32, exactly.
func BF16ToFloat32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// FromFloat32s converts src into dst with FromFloat32 over their common
// length, eight or more at a time with F16C where the CPU has it (the same
// bits).
func FromFloat32s[T ~uint16](dst []T, src []float32) {
	n := min(len(dst), len(src))
	done := simd.F16FromF32(bits(dst[:n]), src[:n])
	dst, src = dst[done:n], src[done:n]
	for i, v := range src {
		dst[i] = T(FromFloat32(v))
	}
}

// ToFloat32s converts src into dst with ToFloat32 over their common length.
func ToFloat32s[T ~uint16](dst []float32, src []T) {
	n := min(len(dst), len(src))
	done := simd.F16ToF32(dst[:n], bits(src[:n]))
	dst, src = dst[done:n], src[done:n]
	for i, v := range src {
		dst[i] = ToFloat32(uint16(v))
	}
}

// BF16FromFloat32s converts src into dst with BF16FromFloat32 over their
// common length.
func BF16FromFloat32s[T ~uint16](dst []T, src []float32) {
	n := min(len(dst), len(src))
	done := simd.BF16FromF32(bits(dst[:n]), src[:n])
	dst, src = dst[done:n], src[done:n]
	for i, v := range src {
		dst[i] = T(BF16FromFloat32(v))
	}
}

// BF16ToFloat32s converts src into dst with BF16ToFloat32 over their
// common length.
func BF16ToFloat32s[T ~uint16](dst []float32, src []T) {
	n := min(len(dst), len(src))
	done := simd.BF16ToF32(dst[:n], bits(src[:n]))
	dst, src = dst[done:n], src[done:n]
	for i, v := range src {
		dst[i] = BF16ToFloat32(uint16(v))
	}
}

// bits views a slice of a uint16-based type as []uint16 (same layout).
func bits[T ~uint16](s []T) []uint16 {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&s[0])), len(s))
}
