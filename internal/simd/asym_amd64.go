//go:build amd64 && !purego

package simd

import "unsafe"

// dotF32Int8AVX2 is DotF32Int8Go in AVX2+FMA assembly (asym_amd64.s):
// codes are sign-extended 8 at a time to int32, converted to float32 and
// multiplied into four independent 8-wide accumulators.
//
//go:noescape
func dotF32Int8AVX2(a *float32, b *int8, n int) float32

// l2F32Int8AVX2 is L2F32Int8Go in assembly, shaped as dotF32Int8AVX2.
//
//go:noescape
func l2F32Int8AVX2(a *float32, b *int8, n int, scale float32) float32

// dotF32Int8AVX512 and l2F32Int8AVX512 are the 16-wide kernels, with an
// 8-wide step and a scalar loop for the last 15 elements.
//
//go:noescape
func dotF32Int8AVX512(a *float32, b *int8, n int) float32

//go:noescape
func l2F32Int8AVX512(a *float32, b *int8, n int, scale float32) float32

// DotF32Int8 returns Σ a[i]·float32(b[i]) over len(a), on AVX-512 when
// Wide is set, else AVX2 when Accelerated, else in Go.
func DotF32Int8(a []float32, b []int8) float32 {
	switch {
	case !Accelerated:
		return DotF32Int8Go(a, b)
	case Wide:
		return dotF32Int8AVX512(unsafe.SliceData(a), unsafe.SliceData(b[:len(a)]), len(a))
	}
	return dotF32Int8AVX2(unsafe.SliceData(a), unsafe.SliceData(b[:len(a)]), len(a))
}

// L2F32Int8 returns Σ (a[i] - scale·b[i])² over len(a), dispatched as
// DotF32Int8.
func L2F32Int8(a []float32, b []int8, scale float32) float32 {
	switch {
	case !Accelerated:
		return L2F32Int8Go(a, b, scale)
	case Wide:
		return l2F32Int8AVX512(unsafe.SliceData(a), unsafe.SliceData(b[:len(a)]), len(a), scale)
	}
	return l2F32Int8AVX2(unsafe.SliceData(a), unsafe.SliceData(b[:len(a)]), len(a), scale)
}
