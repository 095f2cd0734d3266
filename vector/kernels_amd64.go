//go:build amd64 && !purego

package vector

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// Hand-written AVX2+FMA kernels (kernels_amd64.s): no slice checks or
// dispatch per call, and 4 independent 8-wide accumulators. prefetchLines
// issues PREFETCHT0 for the cache lines of a vector, so the beam search can
// request all of a node's neighbours from memory before computing any
// distance (the loads then overlap instead of stalling one by one).

//go:noescape
func l2sqAVX2(a, b *float32, n int) float32

//go:noescape
func dotAVX2(a, b *float32, n int) float32

//go:noescape
func prefetchLines(p *float32, lines int)

//go:noescape
func dotInt8AVX2(a, b *int8, n int) int32

var hasAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA

func l2sqAsm(a, b []float32) float32 {
	if len(a) == 0 {
		return 0
	}
	b = b[:len(a)]
	return l2sqAVX2(&a[0], &b[0], len(a))
}

func dotAsm(a, b []float32) float32 {
	if len(a) == 0 {
		return 0
	}
	b = b[:len(a)]
	return dotAVX2(&a[0], &b[0], len(a))
}

// prefetch asks for the cache lines holding v.
func prefetch(v []float32) {
	if hasAsm && len(v) > 0 {
		prefetchLines(&v[0], (len(v)*4+63)/64)
	}
}

func dotInt8(a, b []int8) int32 {
	if !hasAsm {
		return dotInt8Go(a, b)
	}
	if len(a) == 0 {
		return 0
	}
	b = b[:len(a)]
	return dotInt8AVX2(&a[0], &b[0], len(a))
}

// prefetchCode asks for the cache lines holding an int8 code.
func prefetchCode(c []int8) {
	if hasAsm && len(c) > 0 {
		prefetchLines((*float32)(unsafe.Pointer(&c[0])), (len(c)+63)/64)
	}
}

// prefetchLinks asks for the first cache lines of a link list.
func prefetchLinks(l []uint32) {
	if hasAsm && len(l) > 0 {
		prefetchLines((*float32)(unsafe.Pointer(&l[0])), 2)
	}
}
