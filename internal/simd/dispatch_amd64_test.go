//go:build amd64 && !purego

package simd

import (
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
