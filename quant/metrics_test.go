package quant

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCompare(t *testing.T) {
	rep, err := Compare([]float32{1, 2, 3}, []float32{1, 2, 4})
	require.NoError(t, err)
	require.Equal(t, 3, rep.N)
	require.Equal(t, 1.0, rep.MaxAbs)
	require.InDelta(t, 1.0/3, rep.MSE, 1e-12)
	require.InDelta(t, 10*math.Log10(14), rep.SQNR, 1e-9)
	require.InDelta(t, 17/(math.Sqrt(14)*math.Sqrt(21)), rep.Cosine, 1e-12)
	require.Contains(t, rep.String(), "sqnr=11.46dB")

	cases := []struct {
		name           string
		ref, got       []float32
		sqnr, cos      float64
		maxAbs, meanSq float64
	}{
		{"exact", []float32{1, -2}, []float32{1, -2}, math.Inf(1), 1, 0, 0},
		{"both zero", []float32{0, 0}, []float32{0, 0}, math.Inf(1), 1, 0, 0},
		{"zero reference", []float32{0, 0}, []float32{1, 0}, math.Inf(-1), 0, 1, 0.5},
		{"zero reconstruction", []float32{2, 0}, []float32{0, 0}, 0, 0, 2, 2},
		{"opposite", []float32{1, 1}, []float32{-1, -1}, 10 * math.Log10(2.0/8), -1, 2, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Compare(tc.ref, tc.got)
			require.NoError(t, err)
			require.Equal(t, tc.sqnr, rep.SQNR)
			require.InDelta(t, tc.cos, rep.Cosine, 1e-12)
			require.Equal(t, tc.maxAbs, rep.MaxAbs)
			require.Equal(t, tc.meanSq, rep.MSE)
		})
	}

	_, err = Compare([]float32{1}, []float32{1, 2})
	require.ErrorIs(t, err, ErrShape)
	_, err = Compare(nil, nil)
	require.ErrorIs(t, err, ErrEmpty)
	_, err = Compare([]float32{1, float32(math.NaN())}, []float32{1, 1})
	require.ErrorIs(t, err, ErrNonFinite)
	require.Contains(t, err.Error(), "ref[1]")
	_, err = Compare([]float32{1, 1}, []float32{float32(math.Inf(1)), 1})
	require.ErrorIs(t, err, ErrNonFinite)
	require.Contains(t, err.Error(), "got[0]")
}
