package abtest

import (
	"testing"

	"github.com/stretchr/testify/require"
	"gonum.org/v1/gonum/stat/distuv"
)

func mustLayer(t *testing.T, name string) *Layer {
	t.Helper()
	l, err := NewLayer(name, "")
	require.NoError(t, err)
	return l
}

func TestLayerMutualExclusion(t *testing.T) {
	l := mustLayer(t, "ranking")
	e1 := mustExperiment(t, Config{Name: "e1", Variants: []Variant{{"a", 1}, {"b", 1}}})
	e2 := mustExperiment(t, Config{Name: "e2", Variants: []Variant{{"a", 1}, {"b", 1}}})
	require.NoError(t, l.Add(e1, 0, 0.3))
	require.NoError(t, l.Add(e2, 0.3, 0.8))
	require.Equal(t, []*Experiment{e1, e2}, l.Experiments())
	const n = 100_000
	in1, in2, none := 0, 0, 0
	for i := range n {
		u := unitID(i)
		a1, err := e1.Assign(u, nil)
		require.NoError(t, err)
		a2, err := e2.Assign(u, nil)
		require.NoError(t, err)
		require.False(t, a1.Enrolled && a2.Enrolled, "unit %s is in two experiments of one layer", u)
		la, ok, err := l.Assign(u, nil)
		require.NoError(t, err)
		switch {
		case a1.Enrolled:
			in1++
			require.True(t, ok)
			require.Equal(t, a1, la)
		case a2.Enrolled:
			in2++
			require.True(t, ok)
			require.Equal(t, a2, la)
		default:
			none++
			require.False(t, ok)
			require.Equal(t, ReasonOutsideLayer, a1.Reason)
			require.Equal(t, ReasonOutsideLayer, a2.Reason)
		}
	}
	require.InDelta(t, 0.3, float64(in1)/n, 0.01)
	require.InDelta(t, 0.5, float64(in2)/n, 0.01)
	require.InDelta(t, 0.2, float64(none)/n, 0.01)

	require.True(t, l.Remove(e1))
	require.False(t, l.Remove(e1))
	enrolled := 0
	for i := range 1000 {
		a, _ := e1.Assign(unitID(i), nil)
		if a.Enrolled {
			enrolled++
		}
	}
	require.Equal(t, 1000, enrolled, "a removed experiment enrolls everyone again")
}

// Units' variants in experiments of different layers must be independent:
// a chi-square test of independence on the 2x2 contingency table.
func TestLayersAreIndependent(t *testing.T) {
	l1, l2 := mustLayer(t, "ui"), mustLayer(t, "ranking")
	e1 := mustExperiment(t, Config{Name: "button", Variants: []Variant{{"a", 1}, {"b", 1}}})
	e2 := mustExperiment(t, Config{Name: "ranker", Variants: []Variant{{"a", 1}, {"b", 1}}})
	require.NoError(t, l1.Add(e1, 0, 0.5))
	require.NoError(t, l2.Add(e2, 0, 0.5))
	var table [2][2]float64
	gates := [2][2]float64{}
	const n = 200_000
	for i := range n {
		u := unitID(i)
		a1, _ := e1.Assign(u, nil)
		a2, _ := e2.Assign(u, nil)
		gates[b2i(a1.Enrolled)][b2i(a2.Enrolled)]++
		if a1.Enrolled && a2.Enrolled {
			table[a1.Index][a2.Index]++
		}
	}
	require.Greater(t, independenceP(table), 0.001, "variants across layers: %v", table)
	require.Greater(t, independenceP(gates), 0.001, "layer gates: %v", gates)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// independenceP is the p-value of Pearson's chi-square test of
// independence on a 2x2 table (1 degree of freedom).
func independenceP(t [2][2]float64) float64 {
	var rows, cols [2]float64
	total := 0.0
	for i := range 2 {
		for j := range 2 {
			rows[i] += t[i][j]
			cols[j] += t[i][j]
			total += t[i][j]
		}
	}
	x2 := 0.0
	for i := range 2 {
		for j := range 2 {
			e := rows[i] * cols[j] / total
			d := t[i][j] - e
			x2 += d * d / e
		}
	}
	return distuv.ChiSquared{K: 1}.Survival(x2)
}

func TestLayerErrors(t *testing.T) {
	_, err := NewLayer("", "")
	require.ErrorIs(t, err, ErrConfig)
	_, err = NewLayer("x", "bad\x00salt")
	require.ErrorIs(t, err, ErrConfig)

	l := mustLayer(t, "l")
	e1 := mustExperiment(t, Config{Name: "e1", Variants: []Variant{{"a", 1}}})
	e2 := mustExperiment(t, Config{Name: "e2", Variants: []Variant{{"a", 1}}})
	e1b := mustExperiment(t, Config{Name: "e1", Variants: []Variant{{"a", 1}}})
	require.NoError(t, l.Add(e1, 0.2, 0.4))
	tests := []struct {
		name     string
		e        *Experiment
		from, to float64
		msg      string
	}{
		{"nil", nil, 0, 1, "nil experiment"},
		{"reversed", e2, 0.5, 0.4, "want 0 <= from < to <= 1"},
		{"above 1", e2, 0.5, 1.1, "want 0 <= from < to <= 1"},
		{"negative", e2, -0.1, 0.1, "want 0 <= from < to <= 1"},
		{"too narrow", e2, 0.5, 0.5000001, "narrower than one bucket"},
		{"overlap", e2, 0.3, 0.5, `overlaps experiment "e1"`},
		{"again", e1, 0.6, 0.7, "already has an experiment"},
		{"same name", e1b, 0.6, 0.7, "already has an experiment"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := l.Add(tc.e, tc.from, tc.to)
			require.ErrorIs(t, err, ErrConfig)
			require.Contains(t, err.Error(), tc.msg)
			require.Len(t, l.Experiments(), 1)
		})
	}
	require.NoError(t, l.Add(e2, 0.4, 0.6), "adjacent slices do not overlap")
	other := mustLayer(t, "other")
	err = other.Add(e1, 0, 1)
	require.ErrorIs(t, err, ErrConfig)
	require.Contains(t, err.Error(), `already belongs to layer "l"`)
	require.Empty(t, other.Experiments())
	_, _, err = l.Assign("", nil)
	require.ErrorIs(t, err, ErrEmptyUnit)
}
