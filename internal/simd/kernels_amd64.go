//go:build amd64 && !purego

package simd

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// Hand-written AVX2+FMA kernels (kernels_amd64.s): no slice checks or
// dispatch per call, and 4 independent 8-wide accumulators. They read
// nothing when n is 0, so the Go entry points pass an empty slice's data
// pointer without a length check, which keeps them small enough to inline
// into a caller's loop. prefetchLines
// issues PREFETCHT0 for the cache lines from p on, so a beam search can
// request all of a node's neighbours from memory before computing any
// distance (the loads then overlap instead of stalling one by one).

//go:noescape
func l2sqAVX2(a, b *float32, n int) float32

//go:noescape
func dotAVX2(a, b *float32, n int) float32

//go:noescape
func prefetchLines(p unsafe.Pointer, lines int)

//go:noescape
func dotInt8AVX2(a, b *int8, n int) int32

// The AVX-512 kernels (kernels_avx512_amd64.s): 16-wide, with a masked
// load for the tail instead of a scalar loop. dotInt8VNNI needs
// AVX512-VNNI, dotInt8AVX512BW only AVX512BW.

//go:noescape
func l2sqAVX512(a, b *float32, n int) float32

//go:noescape
func dotAVX512(a, b *float32, n int) float32

//go:noescape
func dotInt8VNNI(a, b *int8, n int) int32

//go:noescape
func dotInt8AVX512BW(a, b *int8, n int) int32

// l2sqKernel, dotKernel and dotInt8Kernel jump to the AVX-512 kernel when
// Wide is set (and, for int8, to the VNNI one when vnni is), else to the
// AVX2 kernel: the choice costs one compare, and the wrappers below stay
// small enough to inline.

//go:noescape
func l2sqKernel(a, b *float32, n int) float32

//go:noescape
func dotKernel(a, b *float32, n int) float32

//go:noescape
func dotInt8Kernel(a, b *int8, n int) int32

// Accelerated reports whether the CPU runs the assembly kernels (AVX2 and
// FMA, and QUIVER_SIMD not set to "purego"). Tests clear it to exercise
// the portable kernels.
var Accelerated = hasAVX2FMA && requested() != "purego"

// hasAVX2FMA reports whether the CPU can run the AVX2 kernels, whatever
// QUIVER_SIMD says.
var hasAVX2FMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// vnni reports whether the int8 dot product's AVX-512 kernel may use
// AVX512-VNNI (VPDPBUSD); without it, it runs on AVX512BW alone.
var vnni = cpu.X86.HasAVX512VNNI

// L2Sq returns the squared Euclidean distance between a and b[:len(a)].
func L2Sq(a, b []float32) float32 {
	if Accelerated {
		return L2SqAsm(a, b)
	}
	return L2SqGo(a, b)
}

// Dot returns the dot product of a and b[:len(a)].
func Dot(a, b []float32) float32 {
	if Accelerated {
		return DotAsm(a, b)
	}
	return DotGo(a, b)
}

// DotInt8 returns Σ a[i]·b[i] over len(a), with int32 accumulation (see
// DotInt8Go).
func DotInt8(a, b []int8) int32 {
	if Accelerated {
		return DotInt8Asm(a, b)
	}
	return DotInt8Go(a, b)
}

// L2SqAsm is L2Sq's assembly kernel (AVX-512 when Wide is set, else
// AVX2), for loops that checked Accelerated once; calling it on a CPU
// without AVX2 and FMA crashes.
func L2SqAsm(a, b []float32) float32 {
	return l2sqKernel(unsafe.SliceData(a), unsafe.SliceData(b[:len(a)]), len(a))
}

// DotAsm is Dot's assembly kernel (AVX-512 when Wide is set, else AVX2),
// for loops that checked Accelerated once; calling it on a CPU without
// AVX2 and FMA crashes.
func DotAsm(a, b []float32) float32 {
	return dotKernel(unsafe.SliceData(a), unsafe.SliceData(b[:len(a)]), len(a))
}

// DotInt8Asm is DotInt8's assembly kernel (AVX512-VNNI or AVX512BW when
// Wide is set, else AVX2), for loops that checked Accelerated once;
// calling it on a CPU without AVX2 crashes.
func DotInt8Asm(a, b []int8) int32 {
	return dotInt8Kernel(unsafe.SliceData(a), unsafe.SliceData(b[:len(a)]), len(a))
}

// Prefetch asks for the cache lines holding v; a no-op without the
// assembly kernels. (An empty slice asks for no line, so its data pointer
// needs no check, which keeps these small enough to inline.)
func Prefetch(v []float32) {
	if Accelerated {
		prefetchLines(unsafe.Pointer(unsafe.SliceData(v)), (len(v)+15)>>4)
	}
}

// PrefetchInt8 asks for the cache lines holding c.
func PrefetchInt8(c []int8) {
	if Accelerated {
		prefetchLines(unsafe.Pointer(unsafe.SliceData(c)), (len(c)+63)>>6)
	}
}

// PrefetchUint32 asks for the cache lines holding l.
func PrefetchUint32(l []uint32) {
	if Accelerated {
		prefetchLines(unsafe.Pointer(unsafe.SliceData(l)), (len(l)+15)>>4)
	}
}
