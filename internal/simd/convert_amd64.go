//go:build amd64 && !purego

package simd

import (
	"os"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// Convert reports whether the conversion kernels run (AVX2 and F16C,
// detected at run time, and QUIVER_SIMD not set to "purego"). Tests clear
// it to exercise the callers' element-by-element paths.
var Convert = cpu.X86.HasAVX2 && hasF16C() && os.Getenv("QUIVER_SIMD") != "purego"

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

// Wide reports whether quantization runs its AVX-512 kernel (16 lanes)
// before the AVX2 one; tests clear it to run the AVX2 kernel alone.
var Wide = cpu.X86.HasAVX512F && os.Getenv("QUIVER_SIMD") != "avx2"

// quantize runs the widest kernel the CPU has over n (a multiple of 8)
// elements and returns how many it converted.
func quantize(dst *int8, x *float32, n int, scale, lo, hi float32, zp int32, unsigned bool) int {
	done := 0
	if Wide && n >= 16 {
		done = quantizeAVX512(dst, x, n&^15, scale, lo, hi, zp, unsigned)
		if done < n&^15 {
			return done // stopped before a NaN
		}
	}
	if done == n {
		return n
	}
	return done + quantizeAsm((*int8)(unsafe.Add(unsafe.Pointer(dst), done)), (*float32)(unsafe.Add(unsafe.Pointer(x), 4*done)), n-done, scale, lo, hi, zp, unsigned)
}

//go:noescape
func dequantizeAsm(dst *float32, q *int8, n int, scale float32, zp int32, unsigned bool)
