//go:build !race

package abtest

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/serving"
)

// The race detector's instrumentation allocates, so this file is built
// without it.
func TestHotPathsDoNotAllocate(t *testing.T) {
	e := mustExperiment(t, Config{Name: "alloc", Variants: []Variant{{"a", 1}, {"b", 1}}, Coverage: 0.5,
		Overrides: map[string]string{"qa": "a"}, Target: Equals("k", "v")})
	l := mustLayer(t, "alloc-layer")
	require.NoError(t, l.Add(e, 0, 0.7))
	attrs := Attributes{"k": "v"}
	units := benchUnits()
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		_, _ = e.Assign(units[i&1023], attrs)
		_, _, _ = l.Assign(units[i&1023], attrs)
		i++
	})
	require.Zero(t, allocs, "Assign")
	long := strings.Repeat("long-unit-id/", 20) // past the stack buffer: streaming path
	allocs = testing.AllocsPerRun(1000, func() { _, _ = e.Assign(long, attrs) })
	require.Zero(t, allocs, "Assign of a long unit id")

	r := newTestRouter(t, e, map[string]serving.Model{"a": newFake("a"), "b": newFake("b")}, RouterOptions{})
	ctx := context.Background()
	allocs = testing.AllocsPerRun(1000, func() {
		_, _ = r.Predict(ctx, Request{Unit: units[i&1023], Attributes: attrs, Inputs: testInputs})
		i++
	})
	require.Zero(t, allocs, "ModelRouter.Predict")

	// Pooled with other replicas, recording and selecting stay in memory.
	tr := mustTracker(t, "alloc", "a", "b")
	base := tr.Totals()
	require.NoError(t, tr.SetPooled(base.Merge(Totals{Counters: map[string]uint64{"requests/a": 10}}), base))
	allocs = testing.AllocsPerRun(1000, func() {
		_ = tr.ObserveRequest("a", 1000, false)
		_ = tr.Expose("a")
	})
	require.Zero(t, allocs, "pooled Tracker.ObserveRequest and Expose")
	b, err := NewThompsonBeta([]string{"x", "y"}, BanditOptions{})
	require.NoError(t, err)
	bt := b.Totals()
	require.NoError(t, b.SetPooled(bt.Merge(Totals{Moments: map[string]Moments{"arm/x": {N: 10, Mean: 0.5, M2: 2.5}}}), bt))
	allocs = testing.AllocsPerRun(1000, func() { _ = b.Update(b.Select(), 1) })
	require.Zero(t, allocs, "pooled bandit Select and Update")
}
