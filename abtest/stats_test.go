package abtest

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// Reference values below were computed by hand from the textbook formulas
// (with Python's math.erfc for the normal tail), or read from standard
// statistical tables as noted.
func TestTwoProportionZTest(t *testing.T) {
	// 200/1000 vs 250/1000: pooled p = 450/2000 = 0.225,
	// SE = sqrt(0.225*0.775*(1/1000+1/1000)) = 0.0186749,
	// z = 0.05/0.0186749 = 2.67740, two-sided p = erfc(2.6774/sqrt 2) = 0.0074196.
	// Unpooled SE = sqrt(.2*.8/1000 + .25*.75/1000) = 0.0186414, so the 95%
	// interval is 0.05 ± 1.959964*0.0186414 = [0.013464, 0.086536].
	r, err := TwoProportionZTest(200, 1000, 250, 1000)
	require.NoError(t, err)
	require.InDelta(t, 0.2, r.P1, 1e-12)
	require.InDelta(t, 0.25, r.P2, 1e-12)
	require.InDelta(t, 0.05, r.Diff, 1e-12)
	require.InDelta(t, 2.677398, r.Z, 1e-6)
	require.InDelta(t, 0.0074196, r.PValue, 1e-7)
	require.InDelta(t, 0.013464, r.Low, 1e-6)
	require.InDelta(t, 0.086536, r.High, 1e-6)

	// Symmetry: swapping the groups flips the sign, not the p-value.
	s, err := TwoProportionZTest(250, 1000, 200, 1000)
	require.NoError(t, err)
	require.InDelta(t, -r.Z, s.Z, 1e-12)
	require.InDelta(t, r.PValue, s.PValue, 1e-12)

	// Equal rates: z = 0, p = 1.
	e, err := TwoProportionZTest(50, 500, 100, 1000)
	require.NoError(t, err)
	require.InDelta(t, 0, e.Z, 1e-12)
	require.InDelta(t, 1, e.PValue, 1e-12)
}

func TestTwoProportionZTestErrors(t *testing.T) {
	tests := []struct{ x1, n1, x2, n2 uint64 }{
		{0, 0, 1, 10}, {1, 10, 0, 0}, {11, 10, 1, 10}, {1, 10, 11, 10}, {0, 10, 0, 10}, {10, 10, 10, 10},
	}
	for _, tc := range tests {
		_, err := TwoProportionZTest(tc.x1, tc.n1, tc.x2, tc.n2)
		require.ErrorIs(t, err, ErrInsufficientData, "%+v", tc)
	}
}

func TestWelchTTest(t *testing.T) {
	// A: n=10, mean 20, s^2 16; B: n=15, mean 24, s^2 36.
	// SE^2 = 16/10 + 36/15 = 4, t = 4/2 = 2.
	// df = 4^2 / (1.6^2/9 + 2.4^2/14) = 16/0.6958730 = 22.99270.
	// Two-sided p for t=2 at 22.99 df: 0.057448 (numerical integration of
	// the t density); tables give 0.05 < p < 0.10 (t_.975,23 = 2.069,
	// t_.95,23 = 1.714).
	r, err := WelchTTest(Sample{N: 10, Mean: 20, Variance: 16}, Sample{N: 15, Mean: 24, Variance: 36})
	require.NoError(t, err)
	require.InDelta(t, 4, r.Diff, 1e-12)
	require.InDelta(t, 2, r.T, 1e-12)
	require.InDelta(t, 22.99270, r.DF, 1e-5)
	require.InDelta(t, 0.057448, r.PValue, 1e-5)
	// 95% interval: 4 ± t_.975,22.99 * 2, with t_.975,23 = 2.069 (table).
	require.InDelta(t, 4-2*2.069, r.Low, 2e-3)
	require.InDelta(t, 4+2*2.069, r.High, 2e-3)

	// With equal variances and sizes Welch reduces to Student's t with
	// df = 2n-2: A = {1..5}, B = {3..7}: t = 2/sqrt(2.5/5*2) = 2, df = 8;
	// table: t_.95,8 = 1.860, t_.975,8 = 2.306, so 0.05 < p < 0.10
	// (0.080516 by numerical integration of the t density).
	r, err = WelchTTest(SampleOf([]float64{1, 2, 3, 4, 5}), SampleOf([]float64{3, 4, 5, 6, 7}))
	require.NoError(t, err)
	require.InDelta(t, 2, r.T, 1e-12)
	require.InDelta(t, 8, r.DF, 1e-12)
	require.InDelta(t, 0.080516, r.PValue, 1e-5)
}

func TestWelchTTestErrors(t *testing.T) {
	ok := Sample{N: 10, Mean: 1, Variance: 1}
	tests := []struct{ a, b Sample }{
		{Sample{N: 1, Mean: 1}, ok},
		{ok, Sample{N: 0}},
		{Sample{N: 5, Mean: 1}, Sample{N: 5, Mean: 2}},
		{Sample{N: 5, Mean: math.NaN(), Variance: 1}, ok},
		{Sample{N: 5, Mean: 1, Variance: -1}, ok},
		{ok, Sample{N: 5, Mean: 1, Variance: math.Inf(1)}},
	}
	for _, tc := range tests {
		_, err := WelchTTest(tc.a, tc.b)
		require.ErrorIs(t, err, ErrInsufficientData, "%+v", tc)
	}
}

func TestIntervals(t *testing.T) {
	// Wilson score interval for 10 of 100, z = 1.959964:
	// centre = (0.1 + z^2/200)/(1 + z^2/100) = 0.1192073/1.0384146 = 0.1147974,
	// half = z*sqrt(0.1*0.9/100 + z^2/40000)/1.0384146 = 0.0595683,
	// so [0.055229, 0.174366] (hand computation).
	lo, hi, err := WilsonInterval(10, 100)
	require.NoError(t, err)
	require.InDelta(t, 0.055229, lo, 1e-5)
	require.InDelta(t, 0.174366, hi, 1e-5)
	lo, hi, err = WilsonInterval(0, 50)
	require.NoError(t, err)
	require.Equal(t, 0.0, lo)
	require.Greater(t, hi, 0.0)
	_, _, err = WilsonInterval(3, 2)
	require.ErrorIs(t, err, ErrInsufficientData)

	// n = 11, variance 11 => SE = 1; t_.975,10 = 2.228 (table).
	lo, hi, err = MeanInterval(Sample{N: 11, Mean: 5, Variance: 11})
	require.NoError(t, err)
	require.InDelta(t, 5-2.228, lo, 1e-3)
	require.InDelta(t, 5+2.228, hi, 1e-3)
	_, _, err = MeanInterval(Sample{N: 1})
	require.ErrorIs(t, err, ErrInsufficientData)

	s := SampleOf([]float64{2, 4, 4, 4, 5, 5, 7, 9})
	require.Equal(t, uint64(8), s.N)
	require.InDelta(t, 5, s.Mean, 1e-12)
	require.InDelta(t, 32.0/7, s.Variance, 1e-12) // sum of squares 32, n-1 = 7
}

func TestSRMCheck(t *testing.T) {
	tests := []struct {
		name     string
		obs      []uint64
		w        []float64
		chi2     float64
		df       int
		p        float64
		mismatch bool
	}{
		// 50500/49500 on 50/50: chi2 = 2*500^2/50000 = 10; df 1:
		// p = erfc(sqrt(5)) = 0.0015654, above the 10.828 critical value's 0.001.
		{"within", []uint64{50500, 49500}, []float64{50, 50}, 10, 1, 0.0015654, false},
		// 50600/49400: chi2 = 14.4, p = erfc(sqrt(7.2)) = 0.00014780.
		{"mismatch", []uint64{50600, 49400}, []float64{1, 1}, 14.4, 1, 0.00014780, true},
		// df 2: the survival function is exp(-x/2); x = 13.816 is the
		// table's 0.001 critical value. Counts 900/1000/1100 on thirds:
		// chi2 = (100^2+0+100^2)/1000 = 20, p = exp(-10) = 4.54e-5.
		{"three arms", []uint64{900, 1000, 1100}, []float64{1, 1, 1}, 20, 2, 4.5400e-5, true},
		// A stopped arm (weight 0) is left out of the degrees of freedom.
		{"stopped arm", []uint64{0, 500, 500}, []float64{0, 1, 1}, 0, 1, 1, false},
		{"traffic to stopped arm", []uint64{1, 500, 500}, []float64{0, 1, 1}, math.Inf(1), 1, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := SRMCheck(tc.obs, tc.w)
			require.NoError(t, err)
			if math.IsInf(tc.chi2, 1) {
				require.True(t, math.IsInf(r.ChiSquare, 1))
			} else {
				require.InDelta(t, tc.chi2, r.ChiSquare, 1e-9)
			}
			require.Equal(t, tc.df, r.DF)
			require.InDelta(t, tc.p, r.PValue, tc.p*1e-3+1e-12)
			require.Equal(t, tc.mismatch, r.Mismatch)
		})
	}
}

func TestSRMCheckErrors(t *testing.T) {
	tests := []struct {
		obs  []uint64
		w    []float64
		want error
	}{
		{[]uint64{1}, []float64{1, 1}, ErrConfig},
		{[]uint64{1, 1}, []float64{1, -1}, ErrWeights},
		{[]uint64{1, 1}, []float64{1, 0}, ErrWeights},
		{[]uint64{0, 0}, []float64{1, 1}, ErrInsufficientData},
	}
	for _, tc := range tests {
		_, err := SRMCheck(tc.obs, tc.w)
		require.ErrorIs(t, err, tc.want)
	}
}
