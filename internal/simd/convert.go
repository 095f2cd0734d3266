package simd

// Conversion kernels: float32 to and from IEEE binary16 and bfloat16, and
// linear int8/uint8 quantization (q = round-half-even(clamp(x/scale)) + zp)
// and dequantization (x = float32(q - zp) * scale). Package f16 and package
// quant define the results element by element; these kernels compute the
// same bits many elements at a time and leave what they did not convert
// (a tail shorter than one vector, a group holding a NaN) to those
// element-by-element definitions.
//
// Each kernel returns how many leading elements it converted: 0 when the
// CPU lacks the instructions (Convert says whether it has them), otherwise
// a multiple of 8.

// F16FromF32 converts src into dst (binary16 bits, round half to even)
// over a prefix of their common length and returns its length.
func F16FromF32(dst []uint16, src []float32) int {
	n := min(len(dst), len(src)) &^ 7
	if !Convert || n == 0 {
		return 0
	}
	f16FromF32Asm(&dst[0], &src[0], n)
	return n
}

// F16ToF32 converts binary16 bits in src into dst, exactly, over a prefix
// of their common length and returns its length. NaNs come out quiet.
func F16ToF32(dst []float32, src []uint16) int {
	n := min(len(dst), len(src)) &^ 7
	if !Convert || n == 0 {
		return 0
	}
	f16ToF32Asm(&dst[0], &src[0], n)
	return n
}

// BF16FromF32 converts src into dst (bfloat16 bits, round half to even;
// NaN keeps the top of its payload and is quieted) over a prefix of their
// common length and returns its length.
func BF16FromF32(dst []uint16, src []float32) int {
	n := min(len(dst), len(src)) &^ 7
	if !Convert || n == 0 {
		return 0
	}
	bf16FromF32Asm(&dst[0], &src[0], n)
	return n
}

// BF16ToF32 converts bfloat16 bits in src into dst, exactly, over a prefix
// of their common length and returns its length.
func BF16ToF32(dst []float32, src []uint16) int {
	n := min(len(dst), len(src)) &^ 7
	if !Convert || n == 0 {
		return 0
	}
	bf16ToF32Asm(&dst[0], &src[0], n)
	return n
}

// QuantizeInt8 writes int8(round-half-even(clamp(x[i]/scale, lo, hi)) + zp)
// into dst, with the division in float32, for i over a prefix of their
// common length, and returns its length. lo and hi must be integers with
// [lo+zp, hi+zp] inside int8's range. It stops before the first group of
// 8 that holds a NaN (x/scale NaN), leaving that group to the caller.
func QuantizeInt8(dst []int8, x []float32, scale, lo, hi float32, zp int32) int {
	n := min(len(dst), len(x)) &^ 7
	if !Convert || n == 0 {
		return 0
	}
	return quantize(&dst[0], &x[0], n, scale, lo, hi, zp, false)
}

// QuantizeUint8 is QuantizeInt8 for uint8 codes ([lo+zp, hi+zp] inside
// [0, 255]).
func QuantizeUint8(dst []uint8, x []float32, scale, lo, hi float32, zp int32) int {
	n := min(len(dst), len(x)) &^ 7
	if !Convert || n == 0 {
		return 0
	}
	return quantize((*int8)(unsafePointer(&dst[0])), &x[0], n, scale, lo, hi, zp, true)
}

// DequantizeInt8 writes float32(int32(q[i]) - zp) * scale into dst over a
// prefix of their common length and returns its length.
func DequantizeInt8(dst []float32, q []int8, scale float32, zp int32) int {
	n := min(len(dst), len(q)) &^ 7
	if !Convert || n == 0 {
		return 0
	}
	dequantizeAsm(&dst[0], &q[0], n, scale, zp, false)
	return n
}

// DequantizeUint8 is DequantizeInt8 for uint8 codes.
func DequantizeUint8(dst []float32, q []uint8, scale float32, zp int32) int {
	n := min(len(dst), len(q)) &^ 7
	if !Convert || n == 0 {
		return 0
	}
	dequantizeAsm(&dst[0], (*int8)(unsafePointer(&q[0])), n, scale, zp, true)
	return n
}
