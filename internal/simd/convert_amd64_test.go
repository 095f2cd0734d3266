//go:build amd64 && !purego

package simd_test

import (
	"testing"

	"github.com/quiverml/quiver/internal/simd"
	"github.com/stretchr/testify/require"
)

// TestConvertOffLeavesEverythingToTheCaller clears Convert, as on a CPU
// without AVX2 and F16C (or with QUIVER_SIMD=purego): every kernel then
// converts nothing and its caller's element-by-element path does it all.
func TestConvertOffLeavesEverythingToTheCaller(t *testing.T) {
	saved := simd.Convert
	t.Cleanup(func() { simd.Convert = saved })
	simd.Convert = false
	x := floats(64, 1)
	require.Zero(t, simd.F16FromF32(make([]uint16, 64), x))
	require.Zero(t, simd.BF16ToF32(make([]float32, 64), make([]uint16, 64)))
	require.Zero(t, simd.QuantizeInt8(make([]int8, 64), x, 1, -128, 127, 0))
	require.Zero(t, simd.DequantizeUint8(make([]float32, 64), make([]uint8, 64), 1, 0))
}

// TestQuantizeNarrowKernel runs quantization on the AVX2 kernel alone, as
// on a CPU without AVX-512 (or with QUIVER_SIMD=avx2).
func TestQuantizeNarrowKernel(t *testing.T) {
	saved := simd.Wide
	t.Cleanup(func() { simd.Wide = saved })
	simd.Wide = false
	TestQuantizeAgreesWithReference(t)
}
