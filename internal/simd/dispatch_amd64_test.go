//go:build amd64 && !purego

package simd

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDispatchFallback clears Accelerated, as on a CPU without AVX2 and
// FMA: the dispatching kernels must then run the portable ones.
func TestDispatchFallback(t *testing.T) {
	saved := Accelerated
	t.Cleanup(func() { Accelerated = saved })
	Accelerated = false
	a := []float32{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}
	b := []float32{0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1}
	require.Equal(t, L2SqGo(a, b), L2Sq(a, b))
	require.Equal(t, DotGo(a, b), Dot(a, b))
	c := []int8{1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12, 13, -14, 15, -16, 17}
	require.Equal(t, DotInt8Go(c, c), DotInt8(c, c))
	Prefetch(a) // a no-op now
}

// TestWideDispatch: the dispatching kernels follow Wide, so QUIVER_SIMD=avx2
// (which clears it) runs the AVX2 kernels bit for bit.
func TestWideDispatch(t *testing.T) {
	paths := pathFloatKernels(true)
	if len(paths) < 2 {
		return // nothing to switch between on this CPU or build
	}
	saved, savedA := Wide, Accelerated
	t.Cleanup(func() { Wide, Accelerated = saved, savedA })
	Accelerated = true // as without QUIVER_SIMD=purego
	r := rand.New(rand.NewPCG(9, 9))
	a := make([]float32, 389)
	b := make([]float32, 389)
	c := make([]int8, 389)
	d := make([]int8, 389)
	for i := range a {
		a[i], b[i] = r.Float32(), r.Float32()
		c[i], d[i] = int8(r.IntN(256)-128), int8(r.IntN(256)-128)
	}
	dots, int8s := pathFloatKernels(false), pathInt8Kernels()
	for _, wide := range []bool{false, true} {
		Wide = wide
		i := 0
		if wide {
			i = 1
		}
		require.Equal(t, math.Float32bits(paths[i].f(a, b)), math.Float32bits(L2SqAsm(a, b)), "wide=%v", wide)
		require.Equal(t, math.Float32bits(dots[i].f(a, b)), math.Float32bits(DotAsm(a, b)), "wide=%v", wide)
		require.Equal(t, int8s[len(int8s)-1].f(c, d), DotInt8Asm(c, d), "wide=%v", wide)
	}
	Wide = false
	require.Equal(t, "avx2", Active())
	Accelerated = false
	require.Equal(t, "purego", Active())
}

// TestRequestedPath reads QUIVER_SIMD as the package does at start-up.
func TestRequestedPath(t *testing.T) {
	for env, want := range map[string]string{"purego": "purego", "avx2": "avx2", "avx512": "avx512", "": "avx512", "sse": "avx512"} {
		t.Setenv("QUIVER_SIMD", env)
		require.Equal(t, want, requested(), "QUIVER_SIMD=%q", env)
	}
}
