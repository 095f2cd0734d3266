package abtest

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"gonum.org/v1/gonum/stat/distuv"
)

func mustExperiment(t testing.TB, cfg Config) *Experiment {
	t.Helper()
	e, err := NewExperiment(cfg)
	require.NoError(t, err)
	return e
}

func unitID(i int) string { return "u" + strconv.Itoa(i) }

func TestNewExperimentErrors(t *testing.T) {
	ab := []Variant{{"a", 1}, {"b", 1}}
	tests := []struct {
		name string
		cfg  Config
		want error
		msg  string
	}{
		{"empty name", Config{Variants: ab}, ErrConfig, "name is empty"},
		{"no variants", Config{Name: "x"}, ErrConfig, "no variants"},
		{"empty variant", Config{Name: "x", Variants: []Variant{{"", 1}}}, ErrConfig, "empty name"},
		{"duplicate", Config{Name: "x", Variants: []Variant{{"a", 1}, {"a", 2}}}, ErrDuplicateVariant, `"a" appears twice`},
		{"negative", Config{Name: "x", Variants: []Variant{{"a", 1}, {"b", -1}}}, ErrWeights, `"b" has weight -1`},
		{"nan", Config{Name: "x", Variants: []Variant{{"a", math.NaN()}}}, ErrWeights, "want a finite weight"},
		{"inf", Config{Name: "x", Variants: []Variant{{"a", math.Inf(1)}}}, ErrWeights, "want a finite weight"},
		{"zero sum", Config{Name: "x", Variants: []Variant{{"a", 0}, {"b", 0}}}, ErrWeights, "sum to 0"},
		{"unknown control", Config{Name: "x", Variants: ab, Control: "c"}, ErrUnknownVariant, `control "c"`},
		{"coverage > 1", Config{Name: "x", Variants: ab, Coverage: 1.5}, ErrConfig, "coverage 1.5"},
		{"coverage < 0", Config{Name: "x", Variants: ab, Coverage: -0.1}, ErrConfig, "coverage -0.1"},
		{"override unknown", Config{Name: "x", Variants: ab, Overrides: map[string]string{"u": "c"}}, ErrUnknownVariant, `names "c"`},
		{"override empty unit", Config{Name: "x", Variants: ab, Overrides: map[string]string{"": "a"}}, ErrEmptyUnit, "override"},
		{"salt with NUL", Config{Name: "x", Salt: "a\x00b", Variants: ab}, ErrConfig, "salt"},
		{"name with 0x01", Config{Name: "x\x01", Variants: ab}, ErrConfig, "salt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewExperiment(tc.cfg)
			require.Nil(t, e)
			require.ErrorIs(t, err, tc.want)
			require.Contains(t, err.Error(), tc.msg)
		})
	}
}

func TestAssignEmptyUnit(t *testing.T) {
	e := mustExperiment(t, Config{Name: "x", Variants: []Variant{{"a", 1}}})
	_, err := e.Assign("", nil)
	require.ErrorIs(t, err, ErrEmptyUnit)
	require.Contains(t, err.Error(), `experiment "x"`)
}

func TestAssignStickyAcrossInstances(t *testing.T) {
	cfg := Config{Name: "sticky", Variants: []Variant{{"a", 1}, {"b", 1}, {"c", 2}}}
	e1 := mustExperiment(t, cfg)
	e2 := mustExperiment(t, cfg) // another process, same configuration
	for i := range 10000 {
		a1, err := e1.Assign(unitID(i), nil)
		require.NoError(t, err)
		again, _ := e1.Assign(unitID(i), nil)
		a2, _ := e2.Assign(unitID(i), nil)
		require.Equal(t, a1, again)
		require.Equal(t, a1, a2)
		require.True(t, a1.Enrolled)
		require.Equal(t, ReasonHash, a1.Reason)
		require.Equal(t, e1.Variants()[a1.Index], a1.Variant)
	}
	// A different salt reshuffles.
	cfg.Salt = "other"
	e3 := mustExperiment(t, cfg)
	moved := 0
	for i := range 10000 {
		a1, _ := e1.Assign(unitID(i), nil)
		a3, _ := e3.Assign(unitID(i), nil)
		if a1.Variant != a3.Variant {
			moved++
		}
	}
	// Independent assignment moves 1 - (1/16 + 1/16 + 1/4) = 62.5% of units.
	require.InDelta(t, 0.625, float64(moved)/10000, 0.03)
}

func TestAssignFollowsWeights(t *testing.T) {
	e := mustExperiment(t, Config{Name: "split", Variants: []Variant{{"a", 10}, {"b", 30}, {"c", 60}}})
	const n = 300_000
	counts := make([]float64, 3)
	for i := range n {
		a, err := e.Assign(unitID(i), nil)
		require.NoError(t, err)
		counts[a.Index]++
	}
	x2 := 0.0
	for i, w := range []float64{0.1, 0.3, 0.6} {
		d := counts[i] - w*n
		x2 += d * d / (w * n)
	}
	p := distuv.ChiSquared{K: 2}.Survival(x2)
	require.Greater(t, p, 0.001, "counts %v", counts)
}

func TestRangesTileAllBuckets(t *testing.T) {
	tests := []struct {
		weights []float64
		want    []uint32 // upper bounds
	}{
		{[]float64{1, 1}, []uint32{500000, 1000000}},
		{[]float64{5, 95}, []uint32{50000, 1000000}},
		{[]float64{1, 1, 1}, []uint32{333333, 666667, 1000000}},
		{[]float64{0, 1, 0}, []uint32{0, 1000000, 1000000}},
		{[]float64{0.0001, 0.9999}, []uint32{100, 1000000}},
	}
	for _, tc := range tests {
		vs := make([]Variant, len(tc.weights))
		for i, w := range tc.weights {
			vs[i] = Variant{Name: fmt.Sprint("v", i), Weight: w}
		}
		e := mustExperiment(t, Config{Name: "tile", Variants: vs})
		lo := uint32(0)
		for i, r := range e.Ranges() {
			require.Equal(t, lo, r.Lo)
			require.Equal(t, tc.want[i], r.Hi, "weights %v variant %d", tc.weights, i)
			lo = r.Hi
		}
	}
}

func canarySet(t *testing.T, e *Experiment, n int, canary string) map[int]bool {
	t.Helper()
	s := map[int]bool{}
	for i := range n {
		a, err := e.Assign(unitID(i), nil)
		require.NoError(t, err)
		if a.Variant == canary {
			s[i] = true
		}
	}
	return s
}

func TestMonotoneRamp(t *testing.T) {
	for _, layout := range []string{"canary first", "canary last"} {
		t.Run(layout, func(t *testing.T) {
			vs := []Variant{{"canary", 1}, {"control", 99}}
			if layout == "canary last" {
				vs = []Variant{{"control", 99}, {"canary", 1}}
			}
			e := mustExperiment(t, Config{Name: "ramp", Variants: vs, Control: "control"})
			const n = 50_000
			steps := []float64{1, 5, 20, 50, 100}
			var prev map[int]bool
			sets := map[float64]map[int]bool{}
			for _, pct := range steps {
				require.NoError(t, e.SetWeights(map[string]float64{"canary": pct, "control": 100 - pct}))
				cur := canarySet(t, e, n, "canary")
				sets[pct] = cur
				for u := range prev {
					require.True(t, cur[u], "unit %d left the canary when it grew to %v%%", u, pct)
				}
				require.InDelta(t, pct/100, float64(len(cur))/n, 0.01)
				prev = cur
			}
			// Lowering 20% -> 5% removes the units added after 5%, and only them.
			require.NoError(t, e.SetWeights(map[string]float64{"canary": 20, "control": 80}))
			require.NoError(t, e.SetWeights(map[string]float64{"canary": 5, "control": 95}))
			require.Equal(t, sets[5], canarySet(t, e, n, "canary"))
		})
	}
}

func TestSetWeightsErrorsLeaveStateIntact(t *testing.T) {
	e := mustExperiment(t, Config{Name: "w", Variants: []Variant{{"a", 1}, {"b", 3}}})
	before := e.Ranges()
	tests := []struct {
		w    map[string]float64
		want error
	}{
		{map[string]float64{"c": 1}, ErrUnknownVariant},
		{map[string]float64{"a": -1}, ErrWeights},
		{map[string]float64{"a": 0, "b": 0}, ErrWeights},
		{map[string]float64{"a": math.NaN()}, ErrWeights},
	}
	for _, tc := range tests {
		require.ErrorIs(t, e.SetWeights(tc.w), tc.want)
		require.Equal(t, before, e.Ranges())
	}
	require.ErrorIs(t, e.SetCoverage(0), ErrConfig)
	require.ErrorIs(t, e.SetCoverage(math.NaN()), ErrConfig)
	require.Equal(t, 1.0, e.Coverage())
}

func TestStop(t *testing.T) {
	e := mustExperiment(t, Config{Name: "stop", Variants: []Variant{{"canary", 10}, {"control", 90}}, Control: "control"})
	require.NoError(t, e.Stop("canary"))
	require.Empty(t, canarySet(t, e, 5000, "canary"))
	require.Equal(t, []Variant{{"canary", 0}, {"control", 90}}, e.Weights())
	require.True(t, e.Stopped("canary"))
	require.False(t, e.Stopped("control"))
	require.False(t, e.Stopped("nope"))

	// A ramp cannot give a stopped variant traffic until it is resumed.
	err := e.SetWeights(map[string]float64{"canary": 20, "control": 80})
	require.ErrorIs(t, err, ErrStopped)
	require.Contains(t, err.Error(), "call Resume")
	require.Equal(t, []Variant{{"canary", 0}, {"control", 90}}, e.Weights(), "state intact")
	require.NoError(t, e.SetWeights(map[string]float64{"canary": 0, "control": 50}), "weight 0 stays allowed")
	require.NoError(t, e.Resume("canary"))
	require.False(t, e.Stopped("canary"))
	require.NoError(t, e.SetWeights(map[string]float64{"canary": 20, "control": 80}))
	require.NotEmpty(t, canarySet(t, e, 5000, "canary"))

	require.NoError(t, e.Stop("canary"))
	err = e.Stop("control")
	require.ErrorIs(t, err, ErrWeights, "stopping the last variant with traffic")
	require.False(t, e.Stopped("control"), "a failed Stop changes nothing")
	require.ErrorIs(t, e.Stop("nope"), ErrUnknownVariant)
	require.ErrorIs(t, e.Resume("nope"), ErrUnknownVariant)
}

func TestOverridesAndTargeting(t *testing.T) {
	e := mustExperiment(t, Config{
		Name:      "target",
		Variants:  []Variant{{"control", 0}, {"treat", 1}},
		Overrides: map[string]string{"qa-1": "control"},
		Target:    All(Equals("country", "DE"), In("platform", "ios", "android"), Not(Has("employee"))),
	})
	tests := []struct {
		unit     string
		attrs    Attributes
		variant  string
		enrolled bool
		reason   Reason
	}{
		{"qa-1", nil, "control", false, ReasonOverride},
		{"u1", Attributes{"country": "DE", "platform": "ios"}, "treat", true, ReasonHash},
		{"u1", Attributes{"country": "DE", "platform": "android"}, "treat", true, ReasonHash},
		{"u1", Attributes{"country": "FR", "platform": "ios"}, "control", false, ReasonNotTargeted},
		{"u1", Attributes{"country": "DE", "platform": "web"}, "control", false, ReasonNotTargeted},
		{"u1", Attributes{"country": "DE", "platform": "ios", "employee": "1"}, "control", false, ReasonNotTargeted},
		{"u1", nil, "control", false, ReasonNotTargeted},
	}
	for _, tc := range tests {
		a, err := e.Assign(tc.unit, tc.attrs)
		require.NoError(t, err)
		require.Equal(t, tc.variant, a.Variant, "%s %v", tc.unit, tc.attrs)
		require.Equal(t, tc.enrolled, a.Enrolled)
		require.Equal(t, tc.reason, a.Reason)
		require.Equal(t, "target", a.Experiment)
	}
	require.True(t, Any(Equals("a", "1"), Equals("b", "2"))(Attributes{"b": "2"}))
	require.False(t, Any()(Attributes{"b": "2"}))
	require.True(t, All()(nil))
	require.Equal(t, "not_targeted", ReasonNotTargeted.String())
	require.Equal(t, "reason(99)", Reason(99).String())
}

func TestCoverageMonotoneAndKeepsVariants(t *testing.T) {
	e := mustExperiment(t, Config{Name: "cov", Coverage: 0.1, Variants: []Variant{{"a", 1}, {"b", 1}}})
	const n = 50_000
	enrolled := map[int]string{}
	for i := range n {
		a, _ := e.Assign(unitID(i), nil)
		if a.Enrolled {
			enrolled[i] = a.Variant
		} else {
			require.Equal(t, "a", a.Variant, "unenrolled units get the control")
			require.Equal(t, ReasonNotCovered, a.Reason)
		}
	}
	require.InDelta(t, 0.1, float64(len(enrolled))/n, 0.01)
	require.NoError(t, e.SetCoverage(0.5))
	count := 0
	for i := range n {
		a, _ := e.Assign(unitID(i), nil)
		if v, ok := enrolled[i]; ok {
			require.True(t, a.Enrolled)
			require.Equal(t, v, a.Variant, "raising coverage must not move enrolled units")
		}
		if a.Enrolled {
			count++
		}
	}
	require.InDelta(t, 0.5, float64(count)/n, 0.01)
}

func TestConcurrentAssignAndRamp(t *testing.T) {
	e := mustExperiment(t, Config{Name: "conc", Variants: []Variant{{"canary", 1}, {"control", 99}}})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				if _, err := e.Assign(unitID(g*10000+i), nil); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for pct := 1.0; pct <= 50; pct++ {
		require.NoError(t, e.SetWeights(map[string]float64{"canary": pct, "control": 100 - pct}))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, uint32(500000), e.Ranges()[0].Hi)
}

func TestErrorsAreDistinct(t *testing.T) {
	all := []error{ErrEmptyUnit, ErrStopped, ErrWeights, ErrDuplicateVariant, ErrUnknownVariant, ErrConfig, ErrInsufficientData, ErrReward, ErrSnapshot, ErrClosed}
	for i, a := range all {
		for j, b := range all {
			require.Equal(t, i == j, errors.Is(a, b))
		}
	}
}
