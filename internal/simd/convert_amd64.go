//go:build amd64 && !purego

package simd

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// Convert reports whether the conversion kernels run (AVX2 and F16C,
// detected at run time, and QUIVER_SIMD not set to "purego"). Tests clear
// it to exercise the callers' element-by-element paths.
var Convert = cpu.X86.HasAVX2 && hasF16C() && requested() != "purego"

// hasF16C reads CPUID leaf 1, ECX bit 29 (x/sys/cpu does not report F16C).
func hasF16C() bool {
	_, _, ecx, _ := cpuid(1, 0)
	return ecx&(1<<29) != 0
}

func unsafePointer[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }

//go:noescape
func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

//go:noescape
func f16FromF32Asm(dst *uint16, src *float32, n int)

//go:noescape
func f16ToF32Asm(dst *float32, src *uint16, n int)

//go:noescape
func bf16FromF32Asm(dst *uint16, src *float32, n int)

//go:noescape
func bf16ToF32Asm(dst *float32, src *uint16, n int)

// quantizeAsm converts n (a multiple of 8) elements, stopping before the
// first group of 8 with a NaN quotient; it returns how many it converted.
//
//go:noescape
func quantizeAsm(dst *int8, x *float32, n int, scale, lo, hi float32, zp int32, unsigned bool) int

// quantizeAVX512 is quantizeAsm 16 at a time; n is a multiple of 16.
//
//go:noescape
func quantizeAVX512(dst *int8, x *float32, n int, scale, lo, hi float32, zp int32, unsigned bool) int

// Wide reports whether the kernels that have an AVX-512 version run it:
// int8/uint8 quantization per tensor and per channel (16 lanes before the
// AVX2 kernel's 8), per-channel dequantization, int4 quantization and the
// distance kernels. It needs AVX512F, BW and VL with the OS saving their state, and
// QUIVER_SIMD not set to "avx2" or "purego". Tests clear it to run the
// AVX2 kernels alone.
var Wide = hasAVX512 && requested() != "avx2" && requested() != "purego"

// hasAVX512 reports whether the CPU (and OS) can run the AVX-512 kernels,
// whatever QUIVER_SIMD says; tests use it to run every path there is.
var hasAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL

// quantize runs the widest kernel the CPU has over n (a multiple of 8)
// elements and returns how many it converted.
func quantize(dst *int8, x *float32, n int, scale, lo, hi float32, zp int32, unsigned bool) int {
	done := 0
	if Wide && n >= 16 {
		// Stopped before a group of 16 holding a NaN, the AVX2 kernel
		// goes on to the group of 8 that holds it.
		done = quantizeAVX512(dst, x, n&^15, scale, lo, hi, zp, unsigned)
	}
	if done == n {
		return n
	}
	return done + quantizeAsm((*int8)(unsafe.Add(unsafe.Pointer(dst), done)), (*float32)(unsafe.Add(unsafe.Pointer(x), 4*done)), n-done, scale, lo, hi, zp, unsigned)
}

//go:noescape
func dequantizeAsm(dst *float32, q *int8, n int, scale float32, zp int32, unsigned bool)

//go:noescape
func quantizeChannelsAVX2(dst *int8, x, scales *float32, zps *int8, zpStep, n int, unsigned bool) int

//go:noescape
func quantizeChannelsAVX512(dst *int8, x, scales *float32, zps *int8, zpStep, n int, unsigned bool) int

//go:noescape
func dequantizeChannelsAVX2(dst *float32, q *int8, scales *float32, zps *int8, zpStep, n int, unsigned bool)

// quantizeChannels runs the widest per-channel kernel the CPU has over n
// (a multiple of 8) elements and returns how many it converted. step says
// whether zps advances with the data.
func quantizeChannels(dst *int8, x, scales *float32, zps *int8, step bool, n int, unsigned bool) int {
	s := 0
	if step {
		s = 1
	}
	done := 0
	if Wide && n >= 16 {
		done = quantizeChannelsAVX512(dst, x, scales, zps, 16*s, n&^15, unsigned)
		if done == n {
			return n
		}
	}
	return done + quantizeChannelsAVX2((*int8)(unsafe.Add(unsafe.Pointer(dst), done)),
		(*float32)(unsafe.Add(unsafe.Pointer(x), 4*done)), (*float32)(unsafe.Add(unsafe.Pointer(scales), 4*done)),
		(*int8)(unsafe.Add(unsafe.Pointer(zps), done*s)), 8*s, n-done, unsigned)
}

//go:noescape
func dequantizeChannelsAVX512(dst *float32, q *int8, scales *float32, zps *int8, zpStep, n int, unsigned bool)

func dequantizeChannels(dst *float32, q *int8, scales *float32, zps *int8, step bool, n int, unsigned bool) {
	s := 0
	if step {
		s = 1
	}
	done := 0
	if Wide && n >= 16 {
		done = n &^ 15
		dequantizeChannelsAVX512(dst, q, scales, zps, 16*s, done, unsigned)
		if done == n {
			return
		}
	}
	dequantizeChannelsAVX2((*float32)(unsafe.Add(unsafe.Pointer(dst), 4*done)), (*int8)(unsafe.Add(unsafe.Pointer(q), done)),
		(*float32)(unsafe.Add(unsafe.Pointer(scales), 4*done)), (*int8)(unsafe.Add(unsafe.Pointer(zps), done*s)), 8*s, n-done, unsigned)
}

//go:noescape
func quantizeInt4AVX2(data *byte, scales, x *float32, nblocks, blockSize int) int

//go:noescape
func dequantizeInt4AVX2(dst *float32, data *byte, scales *float32, nblocks, blockSize int)

//go:noescape
func quantizeInt4AVX512(data *byte, scales, x *float32, nblocks, blockSize int) int

func quantizeInt4(data *byte, scales, x *float32, nblocks, blockSize int) int {
	if Wide {
		return quantizeInt4AVX512(data, scales, x, nblocks, blockSize)
	}
	return quantizeInt4AVX2(data, scales, x, nblocks, blockSize)
}

func dequantizeInt4(dst *float32, data *byte, scales *float32, nblocks, blockSize int) {
	dequantizeInt4AVX2(dst, data, scales, nblocks, blockSize)
}
