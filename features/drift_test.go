package features

import (
	"context"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSketchQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		name string
		gen  func() float64
	}{
		{"normal", func() float64 { return r.NormFloat64()*10 + 3 }},
		{"lognormal", func() float64 { return math.Exp(r.NormFloat64() * 2) }},
		{"with zeros", func() float64 {
			if r.IntN(4) == 0 {
				return 0
			}
			return r.Float64() * 100
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s Sketch
			xs := make([]float64, 20000)
			for i := range xs {
				xs[i] = tc.gen()
				s.Add(xs[i])
			}
			s.Add(math.NaN())
			sort.Float64s(xs)
			require.Equal(t, uint64(len(xs)), s.Count())
			for _, q := range []float64{0.01, 0.1, 0.5, 0.9, 0.99} {
				want := xs[int(q*float64(len(xs)-1))]
				got := s.Quantile(q)
				require.InDelta(t, want, got, math.Abs(want)*0.03+1e-6, "q=%v", q)
			}
			require.Equal(t, xs[0], s.Quantile(0))
			require.Equal(t, xs[len(xs)-1], s.Quantile(1))
			require.True(t, math.IsNaN(s.Quantile(2)))
		})
	}
	var empty Sketch
	require.True(t, math.IsNaN(empty.Quantile(0.5)))
}

func TestSketchMergeAndWideRange(t *testing.T) {
	var a, b, all Sketch
	for i := range 1000 {
		x := math.Pow(10, float64(i%40)-20) // 1e-20 .. 1e19: forces collapsing
		if i%2 == 0 {
			a.Add(x)
		} else {
			b.Add(-x)
		}
		if i%2 == 0 {
			all.Add(x)
		} else {
			all.Add(-x)
		}
	}
	a.Merge(&b)
	require.Equal(t, all.Count(), a.Count())
	require.InDelta(t, all.Quantile(0.75), a.Quantile(0.75), math.Abs(all.Quantile(0.75))*0.03)
	c := a.Clone()
	c.Add(1)
	require.Equal(t, a.Count()+1, c.Count())
}

func TestCompareDetectsShift(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	fill := func(mean, sd float64) *Sketch {
		var s Sketch
		for range 5000 {
			s.Add(r.NormFloat64()*sd + mean)
		}
		return &s
	}
	ref := fill(10, 2)
	same := Compare(ref, fill(10, 2))
	require.Less(t, same.PSI, 0.05)
	require.Less(t, same.KS, 0.05)
	require.Less(t, same.JS, 0.05)
	shifted := Compare(ref, fill(12, 2))
	require.Greater(t, shifted.PSI, 0.25)
	require.InDelta(t, 0.38, shifted.KS, 0.06, "KS of N(10,2) vs N(12,2) is about 0.38")
	require.Greater(t, shifted.JS, 0.1)
	require.Equal(t, DriftScores{}, Compare(ref, &Sketch{}))
}

func TestStoreDriftReport(t *testing.T) {
	v := View{Name: "tx", Entity: "id", Features: []Feature{
		{Name: "amount", Kind: KindFloat32},
		{Name: "count", Kind: KindInt64},
		{Name: "note", Kind: KindString},
	}}
	m, clk := newTestStore(t, Options{}, v)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(5, 6))
	write := func(n int, mean float64) {
		for i := range n {
			require.NoError(t, m.Put(ctx, "tx", Row{Entity: strconv.Itoa(i), EventTime: clk.Now(), Values: map[string]Value{
				"amount": Float32(float32(r.NormFloat64()*5 + mean)), "count": Int64(int64(r.IntN(10))), "note": String("x"),
			}}))
			clk.Add(1)
		}
	}
	rep, err := m.Drift("tx", DriftThresholds{})
	require.NoError(t, err)
	require.False(t, rep.Features[0].Scored, "no reference yet")
	write(2000, 100)
	fs, err := m.FeatureStats("tx")
	require.NoError(t, err)
	require.Equal(t, uint64(2000), fs[0].Count)
	require.InDelta(t, 100, fs[0].Mean, 0.5)
	require.InDelta(t, 25, fs[0].Variance, 2.5)
	require.InDelta(t, 100, fs[0].Quantile(0.5), 1)
	require.Nil(t, fs[2].Sketch)
	require.NoError(t, m.CaptureReference("tx"))
	write(2000, 110)
	rep, err = m.Drift("tx", DriftThresholds{})
	require.NoError(t, err)
	require.Equal(t, []string{"amount"}, rep.Drifted)
	require.True(t, rep.Features[0].Scored)
	require.Greater(t, rep.Features[0].PSI, 0.1)
	require.True(t, rep.Features[1].Scored)
	require.False(t, rep.Features[1].Drifted)
	require.False(t, rep.Features[2].Scored)
	require.Equal(t, 0.1, rep.Thresholds.PSI)

	require.NoError(t, m.ResetStats("tx"))
	fs, _ = m.FeatureStats("tx")
	require.Zero(t, fs[0].Count)
	require.ErrorIs(t, m.SetReference("tx", fs[:1]), ErrInvalidView)
	require.NoError(t, m.SetReference("tx", fs))
	_, err = m.Drift("nope", DriftThresholds{})
	require.ErrorIs(t, err, ErrUnknownView)
}
