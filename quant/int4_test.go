package quant

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestInt4Layout(t *testing.T) {
	// One block whose largest magnitude is -4: scale 0.5, -4 -> -8.
	x := []float32{-4, 3.5, 0, 0.25, 0.75, 1}
	b, err := QuantizeInt4(x, 0)
	require.NoError(t, err)
	require.Equal(t, DefaultInt4BlockSize, b.BlockSize)
	require.Equal(t, []float32{0.5}, b.Scales)
	// Codes q: -8, 7, 0, 0 (0.5 ties to even), 2 (1.5 ties to even), 2;
	// stored as q+8, even elements in the low nibble.
	require.Equal(t, []byte{0x0 | 0xf<<4, 0x8 | 0x8<<4, 0xa | 0xa<<4}, b.Data)
	back := make([]float32, len(x))
	require.NoError(t, b.Dequantize(back))
	require.Equal(t, []float32{-4, 3.5, 0, 0, 1, 1}, back)
	require.Equal(t, 3+4, b.Bytes())
}

func TestInt4RoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	for _, tc := range []struct{ n, block int }{{1000, 32}, {33, 32}, {7, 4}, {64, 0}, {5, 1}} {
		x := randn(r, tc.n, 1)
		copy(x[min(3, tc.n-1):], []float32{0}) // an exact zero survives
		b, err := QuantizeInt4(x, tc.block)
		require.NoError(t, err)
		require.NoError(t, b.Validate())
		back := make([]float32, tc.n)
		require.NoError(t, b.Dequantize(back))
		for i, v := range x {
			// Codes span [-8, 7] with the block's extreme at -8, so values
			// of the opposite sign beyond 7.5 steps saturate (error < d).
			d := float64(b.Scales[i/b.BlockSize])
			bound := math.Abs(d) / 2
			if d != 0 && float64(v)/d > 7.5 {
				bound = math.Abs(d)
			}
			require.LessOrEqual(t, math.Abs(float64(v-back[i])), bound*1.0001+1e-7, "element %d", i)
		}
		if tc.n >= 32 {
			rep, err := Compare(x, back)
			require.NoError(t, err)
			require.Greater(t, rep.Cosine, 0.99)
		}
	}
}

func TestInt4EdgeCases(t *testing.T) {
	b, err := QuantizeInt4(make([]float32, 40), 32)
	require.NoError(t, err)
	require.Equal(t, []float32{0, 0}, b.Scales)
	back := make([]float32, 40)
	require.NoError(t, b.Dequantize(back))
	require.Equal(t, make([]float32, 40), back)

	b, err = QuantizeInt4(nil, 32)
	require.NoError(t, err)
	require.Zero(t, b.N)
	require.NoError(t, b.Dequantize(nil))

	// Subnormal block: no division by zero, no Inf.
	b, err = QuantizeInt4([]float32{1e-45, -1e-45}, 32)
	require.NoError(t, err)
	require.NoError(t, b.Validate())

	_, err = QuantizeInt4([]float32{1, float32(math.NaN())}, 32)
	require.ErrorIs(t, err, ErrNonFinite)
	_, err = QuantizeInt4([]float32{float32(math.Inf(1))}, 32)
	require.ErrorIs(t, err, ErrNonFinite)
	_, err = QuantizeInt4([]float32{1}, -1)
	require.ErrorIs(t, err, ErrShape)

	good, err := QuantizeInt4(make([]float32, 40), 32)
	require.NoError(t, err)
	bad := []*Int4Blocks{
		nil,
		{N: -1, BlockSize: 32},
		{N: 40, BlockSize: 0},
		{N: 40, BlockSize: 32, Scales: good.Scales[:1], Data: good.Data},
		{N: 40, BlockSize: 32, Scales: good.Scales, Data: good.Data[:19]},
		{N: 40, BlockSize: 32, Scales: []float32{1, float32(math.NaN())}, Data: good.Data},
	}
	for i, b := range bad {
		require.ErrorIs(t, b.Validate(), ErrFormat, "case %d", i)
		require.ErrorIs(t, b.Dequantize(make([]float32, 40)), ErrFormat, "case %d", i)
	}
	require.ErrorIs(t, good.Dequantize(make([]float32, 39)), ErrShape)
}
