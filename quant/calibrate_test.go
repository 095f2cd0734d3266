package quant

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// heavyTailed returns Laplace-distributed values (scale 1) with a few large
// outliers, the case where clipping beats min-max.
func heavyTailed(seed uint64, n int) []float32 {
	r := rand.New(rand.NewPCG(seed, 3))
	x := make([]float32, n)
	for i := range x {
		v := r.ExpFloat64()
		if r.IntN(2) == 0 {
			v = -v
		}
		x[i] = float32(v)
	}
	for i := 0; i < n; i += n / 5 {
		x[i] = 60 * float32(1-2*(i/(n/5)%2))
	}
	return x
}

func quantMSE(t *testing.T, x []float32, lo, hi float32) float64 {
	t.Helper()
	s, zp, err := Params[int8](lo, hi, true)
	require.NoError(t, err)
	q := make([]int8, len(x))
	back := make([]float32, len(x))
	require.NoError(t, Quantize(q, x, s, zp))
	require.NoError(t, Dequantize(back, q, s, zp))
	rep, err := Compare(x, back)
	require.NoError(t, err)
	return rep.MSE
}

func TestMinMaxCalibrator(t *testing.T) {
	var c MinMaxCalibrator
	_, _, err := c.Range()
	require.ErrorIs(t, err, ErrEmpty)
	require.NoError(t, c.Observe([]float32{1, 2}))
	require.NoError(t, c.Observe(nil))
	require.NoError(t, c.Observe([]float32{-3, 0.5}))
	require.ErrorIs(t, c.Observe([]float32{100, float32(math.NaN())}), ErrNonFinite)
	lo, hi, err := c.Range()
	require.NoError(t, err)
	require.Equal(t, [2]float32{-3, 2}, [2]float32{lo, hi}, "rejected batch left no trace")
	s, zp, err := CalibratedParams[uint8](&c, false)
	require.NoError(t, err)
	require.InDelta(t, 5.0/255, s, 1e-7)
	require.Equal(t, uint8(153), zp)
}

func TestHistogramCalibrators(t *testing.T) {
	x := heavyTailed(1, 50000)
	pc, err := NewPercentileCalibrator(HistogramOptions{Percentile: 99.9})
	require.NoError(t, err)
	ec, err := NewEntropyCalibrator(HistogramOptions{})
	require.NoError(t, err)
	var mm MinMaxCalibrator
	// Observe in growing batches so the histogram has to widen.
	for _, part := range [][]float32{x[1:100], x[100:10000], x[:1], x[10000:]} {
		for _, c := range []Calibrator{pc, ec, &mm} {
			require.NoError(t, c.Observe(part))
		}
	}
	mlo, mhi, err := mm.Range()
	require.NoError(t, err)
	require.Equal(t, [2]float32{-60, 60}, [2]float32{mlo, mhi})

	plo, phi, err := pc.Range()
	require.NoError(t, err)
	require.Equal(t, -plo, phi, "symmetric when negatives were seen")
	// Against the exact empirical percentile of |x|: the histogram answers
	// with a bin's upper edge, bins being at most 2·60/2048 wide after
	// widening.
	abs := make([]float64, len(x))
	for i, v := range x {
		abs[i] = math.Abs(float64(v))
	}
	slices.Sort(abs)
	exact := abs[int(math.Ceil(0.999*float64(len(abs))))-1]
	require.InDelta(t, exact, float64(phi), 2*120.0/2048)

	elo, ehi, err := ec.Range()
	require.NoError(t, err)
	require.Equal(t, -elo, ehi)
	require.Less(t, ehi, float32(30), "outliers clipped")
	require.Greater(t, ehi, float32(3), "bulk kept")

	// Clipping trades error on the few outliers for resolution on the
	// bulk: the bulk's error must be much lower than with min-max.
	var bulk []float32
	for _, v := range x {
		if math.Abs(float64(v)) < 60 {
			bulk = append(bulk, v)
		}
	}
	require.Len(t, bulk, len(x)-5)
	mseMinMax := quantMSE(t, bulk, mlo, mhi)
	require.Less(t, quantMSE(t, bulk, elo, ehi), mseMinMax/4)
	require.Less(t, quantMSE(t, bulk, plo, phi), mseMinMax/4)
}

func TestHistogramCalibratorEdgeCases(t *testing.T) {
	for _, mk := range []func() (Calibrator, error){
		func() (Calibrator, error) { return NewPercentileCalibrator(HistogramOptions{}) },
		func() (Calibrator, error) { return NewEntropyCalibrator(HistogramOptions{}) },
	} {
		c, err := mk()
		require.NoError(t, err)
		_, _, err = c.Range()
		require.ErrorIs(t, err, ErrEmpty)

		require.NoError(t, c.Observe([]float32{0, 0, 0}))
		lo, hi, err := c.Range()
		require.NoError(t, err)
		require.Equal(t, [2]float32{0, 0}, [2]float32{lo, hi}, "all-zero data")
		s, zp, err := CalibratedParams[int8](c, true)
		require.NoError(t, err)
		require.Equal(t, float32(1), s, "zero range -> scale 1, no division by zero")
		require.Equal(t, int8(0), zp)

		// Non-negative data (ReLU outputs) gives [0, t].
		require.NoError(t, c.Observe([]float32{1, 2, 3, 0.5}))
		require.ErrorIs(t, c.Observe([]float32{float32(math.Inf(1))}), ErrNonFinite)
		lo, hi, err = c.Range()
		require.NoError(t, err)
		require.Equal(t, float32(0), lo)
		require.InDelta(t, 3, hi, 0.01)
	}
	for _, o := range []HistogramOptions{{Percentile: -1}, {Percentile: 101}, {QuantizedBins: 1}, {QuantizedBins: 1<<15 + 1}, {Bins: 1<<16 + 1}} {
		_, err := NewPercentileCalibrator(o)
		require.ErrorIs(t, err, ErrRange, "%+v", o)
		_, err = NewEntropyCalibrator(o)
		require.ErrorIs(t, err, ErrRange, "%+v", o)
	}
}

func TestCalibratorsConcurrent(t *testing.T) {
	pc, err := NewPercentileCalibrator(HistogramOptions{})
	require.NoError(t, err)
	ec, err := NewEntropyCalibrator(HistogramOptions{Bins: 256})
	require.NoError(t, err)
	cals := []Calibrator{&MinMaxCalibrator{}, pc, ec}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			x := heavyTailed(uint64(g), 2000)
			for _, c := range cals {
				require.NoError(t, c.Observe(x))
				_, _, err := c.Range()
				require.NoError(t, err)
			}
		})
	}
	wg.Wait()
	lo, hi, err := cals[0].Range()
	require.NoError(t, err)
	require.Equal(t, [2]float32{-60, 60}, [2]float32{lo, hi})
}
