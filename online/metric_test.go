package online_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quiverml/quiver/online"
	"github.com/stretchr/testify/require"
)

// pairwiseAUC counts, over every positive-negative pair, the pairs the
// positive wins (1) or ties (1/2): the definition of AUC, in O(n^2).
func pairwiseAUC(scores, labels []float64) float64 {
	var wins, pairs float64
	for i := range scores {
		if labels[i] != 1 {
			continue
		}
		for j := range scores {
			if labels[j] != 0 {
				continue
			}
			pairs++
			switch {
			case scores[i] > scores[j]:
				wins++
			case scores[i] == scores[j]:
				wins += 0.5
			}
		}
	}
	return wins / pairs
}

func TestAUCEqualsPairwiseCount(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 300; trial++ {
		n := 2 + rng.IntN(200)
		levels := 1 + rng.IntN(12) // few levels: many ties
		if trial%3 == 0 {
			levels = 1 << 30 // almost no ties
		}
		scores := make([]float64, n)
		labels := make([]float64, n)
		for i := range scores {
			scores[i] = float64(rng.IntN(levels)) / float64(levels)
			if rng.Float64() < 0.3+0.4*scores[i] {
				labels[i] = 1
			}
		}
		labels[0], labels[1] = 0, 1 // both classes
		got, err := online.AUC(scores, labels)
		require.NoError(t, err)
		require.InDelta(t, pairwiseAUC(scores, labels), got, 1e-12, "trial %d: n=%d levels=%d", trial, n, levels)
	}
}

func TestAUCByHand(t *testing.T) {
	for _, tc := range []struct {
		name           string
		scores, labels []float64
		want           float64
	}{
		{"separated", []float64{0.1, 0.2, 0.8, 0.9}, []float64{0, 0, 1, 1}, 1},
		{"reversed", []float64{0.9, 0.8, 0.2, 0.1}, []float64{0, 0, 1, 1}, 0},
		{"all tied", []float64{0.5, 0.5, 0.5, 0.5}, []float64{0, 1, 0, 1}, 0.5},
		// pairs (p,n): (0.4,0.1) win, (0.4,0.4) tie, (0.4,0.7) loss,
		// (0.8,*) three wins: 4.5 of 6.
		{"tie counts half", []float64{0.1, 0.4, 0.7, 0.4, 0.8}, []float64{0, 0, 0, 1, 1}, 4.5 / 6},
		{"logits", []float64{-3, 2, -1, 5}, []float64{0, 1, 1, 1}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := online.AUC(tc.scores, tc.labels)
			require.NoError(t, err)
			require.InDelta(t, tc.want, got, 1e-15)
		})
	}
}

func TestAUCOneClassIsNaN(t *testing.T) {
	for _, labels := range [][]float64{{1, 1, 1}, {0, 0, 0}, {}} {
		got, err := online.AUC(make([]float64, len(labels)), labels)
		require.ErrorIs(t, err, online.ErrOneClass)
		require.True(t, math.IsNaN(got))
	}
	m, err := online.Evaluate([]float64{0.2, 0.9}, []float64{1, 1})
	require.NoError(t, err, "Evaluate reports a one-class set as AUC NaN, not an error")
	require.True(t, math.IsNaN(m.AUC))
	require.InDelta(t, -(math.Log(0.2)+math.Log(0.9))/2, m.LogLoss, 1e-12)
	require.Equal(t, 2, m.Positives)
}

func TestMetricsRefuseBadInput(t *testing.T) {
	for _, tc := range []struct {
		name           string
		scores, labels []float64
	}{
		{"lengths", []float64{0.1, 0.2}, []float64{0}},
		{"label 2", []float64{0.1, 0.2}, []float64{0, 2}},
		{"soft label", []float64{0.1, 0.2}, []float64{0, 0.5}},
		{"NaN score", []float64{math.NaN(), 0.2}, []float64{0, 1}},
		{"Inf score", []float64{math.Inf(1), 0.2}, []float64{0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auc, err := online.AUC(tc.scores, tc.labels)
			require.ErrorIs(t, err, online.ErrMetric)
			require.True(t, math.IsNaN(auc))
			ll, err := online.LogLoss(tc.scores, tc.labels)
			require.ErrorIs(t, err, online.ErrMetric)
			require.True(t, math.IsNaN(ll))
			_, err = online.Evaluate(tc.scores, tc.labels)
			require.ErrorIs(t, err, online.ErrMetric)
		})
	}
	_, err := online.LogLoss([]float64{1.5}, []float64{1})
	require.ErrorIs(t, err, online.ErrMetric, "a probability above 1")
	_, err = online.LogLoss(nil, nil)
	require.ErrorIs(t, err, online.ErrMetric, "no events")
}

func TestLogLossByHand(t *testing.T) {
	got, err := online.LogLoss([]float64{0.5, 0.5}, []float64{0, 1})
	require.NoError(t, err)
	require.InDelta(t, math.Ln2, got, 1e-15)
	got, err = online.LogLoss([]float64{0.9, 0.2}, []float64{1, 0})
	require.NoError(t, err)
	require.InDelta(t, -(math.Log(0.9)+math.Log(0.8))/2, got, 1e-15)
	// A certain mistake costs -ln(epsilon), not infinity.
	got, err = online.LogLoss([]float64{0, 1}, []float64{1, 0})
	require.NoError(t, err)
	require.InDelta(t, -math.Log(online.LogLossEpsilon), got, 1e-9)
}
