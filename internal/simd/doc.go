// Package simd holds the vector kernels that package vector's search and
// package quant share: squared Euclidean distance and dot product of
// float32 vectors, the dot product of int8 codes, cache prefetches for a
// search's next vectors, and the conversions of package quant and
// internal/f16 (binary16 and bfloat16, int8/uint8 quantization per tensor
// and per channel, block-wise int4).
//
// On amd64 the kernels are hand-written assembly chosen at run time: AVX2
// and FMA (Accelerated) for the distances, AVX2 and F16C (Convert) for the
// conversions, and AVX-512 (Wide: AVX512F, BW and VL) where the CPU has it
// for the distances and quantization, with AVX512-VNNI for the int8 dot
// product. Elsewhere, and with the purego build tag, the distances are Go
// loops unrolled into independent accumulators (Go does not vectorise) and
// the conversion kernels convert nothing, leaving the work to their
// callers' Go loops. L2Sq, Dot and DotInt8 choose for the caller; a hot
// loop that checked Accelerated once calls L2SqAsm, DotAsm or DotInt8Asm
// directly, which still pick AVX-512 or AVX2 by Wide.
//
//	d := simd.L2Sq(q, v)        // len(v) >= len(q)
//	s := simd.DotInt8(qc, code) // exact int32 sum
//
// The environment variable QUIVER_SIMD, read at start-up, forces a path:
// "purego" runs the Go kernels only, "avx2" never runs an AVX-512 kernel,
// and "avx512" (the default, as is any other value) runs the widest the
// CPU has. Active reports which runs.
//
// The integer and conversion kernels give the same bits on every path.
// The float32 sums do not: each path adds in its own order, so results
// may differ in the last bits (tests compare them with a tolerance).
//
// Every distance kernel reads len(a) elements of each operand; b must be
// at least as long as a. No kernel allocates.
package simd
