// Package f16 converts between float32 and the two 16-bit float formats
// that ONNX tensors use, IEEE 754 binary16 (FLOAT16) and bfloat16
// (BFLOAT16), for the packages that expose them (serving's F16 and BF16,
// quant's Float16 and BFloat16).
//
// Values are raw bits (uint16, or any type whose underlying type is
// uint16). Narrowing rounds to nearest, ties to even, as ONNX Runtime's
// Cast does: magnitudes that round past the largest finite value become
// ±Inf, tiny ones become subnormals or ±0 with their sign, and NaN stays a
// quiet NaN with its sign and the top bits of its payload. Widening is
// exact.
//
//	h := f16.FromFloat32(0.1)     // 0x2e66
//	x := f16.ToFloat32(h)         // 0.099975586
//	f16.FromFloat32s(dst, src)    // a slice at a time
package f16
