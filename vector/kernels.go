package vector

import "github.com/quiverml/quiver/internal/simd"

// The distance kernels live in internal/simd, shared with package quant.
// These names keep the search's call sites short; each inlines to the simd
// call.

// hasAsm reports whether simd's assembly kernels run here: the search then
// calls them directly instead of through a distance function value. Which
// kernel runs (AVX-512 or AVX2) simd decides inside each call.
var hasAsm = simd.Accelerated

func l2sqAsm(a, b []float32) float32 { return simd.L2SqAsm(a, b) }
func dotAsm(a, b []float32) float32  { return simd.DotAsm(a, b) }
func dotGo(a, b []float32) float32   { return simd.DotGo(a, b) }
func dotInt8(a, b []int8) int32      { return simd.DotInt8(a, b) }

// prefetch asks for the cache lines holding v.
func prefetch(v []float32) { simd.Prefetch(v) }

// prefetchCode asks for the cache lines holding an int8 code.
func prefetchCode(c []int8) { simd.PrefetchInt8(c) }

// prefetchLinks asks for the first two cache lines of a link list (its
// count and first 31 links), which is what the next expansion reads first.
func prefetchLinks(l []uint32) { simd.PrefetchUint32(l[:min(len(l), 32)]) }
