//go:build amd64 && !purego

package simd

import "unsafe"

// pathFloatKernels lists each float32 assembly kernel this CPU can run,
// called directly whatever Wide and QUIVER_SIMD say.
func pathFloatKernels(l2 bool) []floatKernel {
	if !hasAVX2FMA {
		return nil
	}
	call := func(f func(a, b *float32, n int) float32) func(a, b []float32) float32 {
		return func(a, b []float32) float32 {
			return f(unsafe.SliceData(a), unsafe.SliceData(b[:len(a)]), len(a))
		}
	}
	k2, k512 := dotAVX2, dotAVX512
	if l2 {
		k2, k512 = l2sqAVX2, l2sqAVX512
	}
	ks := []floatKernel{{"avx2", call(k2)}}
	if hasAVX512 {
		ks = append(ks, floatKernel{"avx512", call(k512)})
	}
	return ks
}

// pathInt8Kernels is pathFloatKernels for the int8 dot product.
func pathInt8Kernels() []int8Kernel {
	if !hasAVX2FMA {
		return nil
	}
	call := func(f func(a, b *int8, n int) int32) func(a, b []int8) int32 {
		return func(a, b []int8) int32 {
			return f(unsafe.SliceData(a), unsafe.SliceData(b[:len(a)]), len(a))
		}
	}
	ks := []int8Kernel{{"avx2", call(dotInt8AVX2)}}
	if hasAVX512 {
		ks = append(ks, int8Kernel{"avx512bw", call(dotInt8AVX512BW)})
		if vnni {
			ks = append(ks, int8Kernel{"avx512vnni", call(dotInt8VNNI)})
		}
	}
	return ks
}
