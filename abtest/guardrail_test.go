package abtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func canaryExperiment(t *testing.T) *Experiment {
	t.Helper()
	return mustExperiment(t, Config{Name: "canary", Variants: []Variant{{"canary", 10}, {"control", 90}}, Control: "control"})
}

// feed records n requests of variant, failing the first errs of them, each
// taking lat.
func feed(t *testing.T, tr *Tracker, variant string, n, errs int, lat time.Duration) {
	t.Helper()
	for i := range n {
		require.NoError(t, tr.ObserveRequest(variant, lat, i < errs))
	}
}

func TestGuardrailStopsOnErrorRate(t *testing.T) {
	e := canaryExperiment(t)
	tr := mustTracker(t, "canary", "canary", "control")
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	g, err := NewGuardrail(e, tr, GuardrailOptions{Now: func() time.Time { return now }})
	require.NoError(t, err)

	feed(t, tr, "control", 2000, 20, time.Millisecond) // 1%
	feed(t, tr, "canary", 100, 10, time.Millisecond)   // 10% but below MinRequests (200)
	require.Empty(t, g.Check())

	feed(t, tr, "canary", 400, 0, time.Millisecond) // 10 of 500 = 2%: +1 point, not more
	require.Empty(t, g.Check(), "an increase equal to the margin does not stop")

	feed(t, tr, "canary", 500, 40, time.Millisecond) // 50 of 1000 = 5%
	ds := g.Check()
	require.Len(t, ds, 1)
	d := ds[0]
	require.Equal(t, "canary", d.Variant)
	require.Equal(t, "control", d.Control)
	require.Equal(t, "error_rate", d.Reason)
	require.Equal(t, now, d.Time)
	require.Equal(t, uint64(1000), d.VariantRequests)
	require.Equal(t, uint64(2000), d.ControlRequests)
	require.InDelta(t, 0.05, d.VariantErrorRate, 1e-12)
	require.InDelta(t, 0.01, d.ControlErrorRate, 1e-12)
	// z for 50/1000 vs 20/2000: pooled 70/3000, SE = sqrt(p(1-p)(1/1000+1/2000))
	// = 0.0058446, z = 0.04/0.0058446 = 6.844: one-sided p ~ 3.9e-12.
	require.Less(t, d.ErrorRatePValue, 1e-10)
	require.Equal(t, 10.0, d.Weight)
	require.Contains(t, d.String(), "error rate 0.0500 vs control 0.0100")

	require.Equal(t, 0.0, e.Weights()[0].Weight, "canary routed to 0%")
	require.Equal(t, ds, g.Decisions())
	require.Empty(t, g.Check(), "a stopped variant is not judged again")
	require.True(t, g.Stopped("canary"))
	require.False(t, g.Stopped("control"))
}

func TestGuardrailNeedsSignificance(t *testing.T) {
	e := canaryExperiment(t)
	tr := mustTracker(t, "canary", "canary", "control")
	g, err := NewGuardrail(e, tr, GuardrailOptions{MinRequests: 10})
	require.NoError(t, err)
	feed(t, tr, "control", 50, 0, time.Millisecond)
	feed(t, tr, "canary", 50, 1, time.Millisecond) // +2 points, but 1 error in 50 is noise
	require.Empty(t, g.Check())
	require.Equal(t, 10.0, e.Weights()[0].Weight)
}

func TestGuardrailStopsOnP99(t *testing.T) {
	e := canaryExperiment(t)
	tr := mustTracker(t, "canary", "canary", "control")
	g, err := NewGuardrail(e, tr, GuardrailOptions{MaxP99Ratio: 1.2})
	require.NoError(t, err)
	feed(t, tr, "control", 1000, 0, 10*time.Millisecond)
	feed(t, tr, "canary", 985, 0, 10*time.Millisecond)
	feed(t, tr, "canary", 15, 0, 100*time.Millisecond) // 1.5% slow: p99 = 100ms
	ds := g.Check()
	require.Len(t, ds, 1)
	require.Equal(t, "p99_latency", ds[0].Reason)
	require.InDelta(t, float64(100*time.Millisecond), float64(ds[0].VariantP99), float64(100*time.Millisecond)/16)
	require.InDelta(t, float64(10*time.Millisecond), float64(ds[0].ControlP99), float64(10*time.Millisecond)/16)
	require.Equal(t, 1.2, ds[0].MaxP99Ratio)
	require.Contains(t, ds[0].String(), "p99")
}

func TestGuardrailHealthyCanaryKeepsRunning(t *testing.T) {
	e := canaryExperiment(t)
	tr := mustTracker(t, "canary", "canary", "control")
	g, err := NewGuardrail(e, tr, GuardrailOptions{})
	require.NoError(t, err)
	feed(t, tr, "control", 5000, 50, 10*time.Millisecond)
	feed(t, tr, "canary", 5000, 45, 11*time.Millisecond)
	require.Empty(t, g.Check())
	require.Empty(t, g.Decisions())

	// Disabled checks never stop.
	g2, err := NewGuardrail(e, tr, GuardrailOptions{MaxErrorRateIncrease: -1, MaxP99Ratio: -1})
	require.NoError(t, err)
	feed(t, tr, "canary", 5000, 5000, time.Second)
	require.Empty(t, g2.Check())
}

func TestGuardrailErrorsAndRun(t *testing.T) {
	e := canaryExperiment(t)
	tr := mustTracker(t, "canary", "canary", "control")
	_, err := NewGuardrail(nil, tr, GuardrailOptions{})
	require.ErrorIs(t, err, ErrConfig)
	_, err = NewGuardrail(e, mustTracker(t, "canary", "control"), GuardrailOptions{})
	require.ErrorIs(t, err, ErrUnknownVariant)
	_, err = NewGuardrail(e, tr, GuardrailOptions{Control: "nope"})
	require.ErrorIs(t, err, ErrUnknownVariant)
	_, err = NewGuardrail(e, tr, GuardrailOptions{Alpha: 2})
	require.ErrorIs(t, err, ErrConfig)

	g, err := NewGuardrail(e, tr, GuardrailOptions{})
	require.NoError(t, err)
	require.ErrorIs(t, g.Run(context.Background(), 0), ErrConfig)
	feed(t, tr, "control", 1000, 0, time.Millisecond)
	feed(t, tr, "canary", 1000, 500, time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- g.Run(ctx, time.Millisecond) }()
	require.Eventually(t, func() bool { return len(g.Decisions()) == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	err = <-done
	require.True(t, errors.Is(err, context.Canceled))
}

// expose records n exposures of variant, converting the first conv.
func expose(t *testing.T, tr *Tracker, variant string, n, conv int) {
	t.Helper()
	for i := range n {
		require.NoError(t, tr.Expose(variant))
		if i < conv {
			require.NoError(t, tr.Convert(variant))
		}
	}
}

// TestGuardrailStopsOnConversionRate judges outcomes fed back to the
// tracker (no request counts at all, as for a tracker of clicks): a drop
// within the margin or without significance keeps the canary; a
// significant drop beyond it stops the canary.
func TestGuardrailStopsOnConversionRate(t *testing.T) {
	e := canaryExperiment(t)
	tr := mustTracker(t, "canary", "canary", "control")
	off, err := NewGuardrail(e, tr, GuardrailOptions{})
	require.NoError(t, err)
	g, err := NewGuardrail(e, tr, GuardrailOptions{MaxConversionRateDecrease: 0.02, MinExposures: 300})
	require.NoError(t, err)

	expose(t, tr, "control", 2000, 200) // 10%
	expose(t, tr, "canary", 200, 0)     // 0%, but below MinExposures
	require.Empty(t, g.Check())
	expose(t, tr, "canary", 800, 81) // 81/1000 = 8.1%: -1.9 points, within the margin
	require.Empty(t, g.Check())
	require.Empty(t, off.Check(), "conversions are judged only when a margin is set")

	expose(t, tr, "canary", 1000, 39) // 120/2000 = 6%: -4 points
	ds := g.Check()
	require.Len(t, ds, 1)
	d := ds[0]
	require.Equal(t, "conversion_rate", d.Reason)
	require.Equal(t, uint64(2000), d.VariantExposures)
	require.Equal(t, uint64(2000), d.ControlExposures)
	require.InDelta(t, 0.06, d.VariantConversionRate, 1e-12)
	require.InDelta(t, 0.10, d.ControlConversionRate, 1e-12)
	// 120/2000 vs 200/2000: pooled 0.08, SE = sqrt(0.08*0.92*2/2000) =
	// 0.0085790, z = -0.04/0.0085790 = -4.663: one-sided p ~ 1.6e-6.
	require.InDelta(t, 1.56e-6, d.ConversionRatePValue, 0.1e-6)
	require.Equal(t, 0.02, d.MaxConversionRateDecrease)
	require.Contains(t, d.String(), "conversion rate 0.0600 vs control 0.1000")
	require.Equal(t, 0.0, e.Weights()[0].Weight, "canary routed to 0%")
	info, ok := e.StopInfo("canary")
	require.True(t, ok)
	require.Equal(t, "conversion_rate", info.Reason)
}

func TestGuardrailConversionNeedsSignificance(t *testing.T) {
	e := canaryExperiment(t)
	tr := mustTracker(t, "canary", "canary", "control")
	g, err := NewGuardrail(e, tr, GuardrailOptions{MaxConversionRateDecrease: 0.01, MinExposures: 20})
	require.NoError(t, err)
	expose(t, tr, "control", 40, 4) // 10%
	expose(t, tr, "canary", 40, 2)  // 5%: -5 points, but 2 in 40 is noise
	require.Empty(t, g.Check())
	_, err = NewGuardrail(e, tr, GuardrailOptions{MaxConversionRateDecrease: -0.1})
	require.ErrorIs(t, err, ErrConfig)
}
