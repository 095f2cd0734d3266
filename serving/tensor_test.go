package serving

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// The conversions are internal/f16's, tested there exhaustively and in
// package quant against ONNX Runtime's Cast; this checks the wrappers.
func TestHalfConversions(t *testing.T) {
	cases := []struct {
		f    float32
		f16  F16
		bf16 BF16
	}{
		{1, 0x3c00, 0x3f80},
		{-2, 0xc000, 0xc000},
		{0.1, 0x2e66, 0x3dcd},
		{65504, 0x7bff, 0x4780},
		{1e10, 0x7c00, 0x5015},
		{0x1p-24, 0x0001, 0x3380},
		{float32(math.Copysign(0, -1)), 0x8000, 0x8000},
	}
	for _, tc := range cases {
		require.Equal(t, tc.f16, F16From(tc.f), "F16From(%v)", tc.f)
		require.Equal(t, tc.bf16, BF16From(tc.f), "BF16From(%v)", tc.f)
	}
	require.Equal(t, float32(65504), F16(0x7bff).Float32())
	require.Equal(t, float32(0x1p-24), F16(0x0001).Float32())
	require.Equal(t, float32(1), BF16(0x3f80).Float32())
	require.True(t, math.IsNaN(float64(F16From(float32(math.NaN())).Float32())))
	require.True(t, math.IsNaN(float64(BF16From(float32(math.NaN())).Float32())))
}
