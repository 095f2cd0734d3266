//go:build !amd64 || purego

package simd

// Accelerated reports whether the CPU runs assembly kernels: never in a
// build without them.
const Accelerated = false

// Wide reports whether AVX-512 kernels run: never in a build without them.
const Wide = false

const vnni = false

// L2Sq returns the squared Euclidean distance between a and b[:len(a)].
func L2Sq(a, b []float32) float32 { return L2SqGo(a, b) }

// Dot returns the dot product of a and b[:len(a)].
func Dot(a, b []float32) float32 { return DotGo(a, b) }

// DotInt8 returns Σ a[i]·b[i] over len(a), with int32 accumulation (see
// DotInt8Go).
func DotInt8(a, b []int8) int32 { return DotInt8Go(a, b) }

// L2SqAsm is L2SqGo in a build without assembly.
func L2SqAsm(a, b []float32) float32 { return L2SqGo(a, b) }

// DotAsm is DotGo in a build without assembly.
func DotAsm(a, b []float32) float32 { return DotGo(a, b) }

// DotInt8Asm is DotInt8Go in a build without assembly.
func DotInt8Asm(a, b []int8) int32 { return DotInt8Go(a, b) }

// Prefetch does nothing in a build without assembly.
func Prefetch([]float32) {}

// PrefetchInt8 does nothing in a build without assembly.
func PrefetchInt8([]int8) {}

// PrefetchUint32 does nothing in a build without assembly.
func PrefetchUint32([]uint32) {}
