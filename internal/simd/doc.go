// Package simd holds the distance kernels that package vector's search
// and package quant's embedding codes share: squared Euclidean distance
// and dot product of float32 vectors, the dot product of int8 codes, and
// cache prefetches for a search's next vectors.
//
// On amd64 CPUs with AVX2 and FMA (Accelerated, detected at run time) the
// kernels are hand-written assembly with four independent 8-wide
// accumulators; elsewhere, and with the purego build tag, they are Go
// loops unrolled into independent accumulators (Go does not vectorise).
// L2Sq, Dot and DotInt8 choose for the caller; a hot loop that checked
// Accelerated once calls L2SqAsm, DotAsm or DotInt8Asm directly.
//
//	d := simd.L2Sq(q, v)        // len(v) >= len(q)
//	s := simd.DotInt8(qc, code) // exact int32 sum
//
// Every kernel reads len(a) elements of each operand; b must be at least
// as long as a. They never allocate.
package simd
