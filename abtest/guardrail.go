package abtest

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"gonum.org/v1/gonum/stat/distuv"
)

// GuardrailOptions configure a Guardrail. Zero values select the defaults
// documented on each field.
type GuardrailOptions struct {
	// Control is the baseline variant. Empty means the experiment's control.
	Control string
	// MaxErrorRateIncrease is how much higher (absolute, 0.01 = one
	// percentage point) a variant's error rate may be than control's before
	// it is stopped. Zero means 0.01; a negative value disables the check.
	MaxErrorRateIncrease float64
	// Alpha is the one-sided significance level the error-rate increase must
	// also reach (two-proportion z-test), so that noise in small samples
	// does not stop a healthy variant. Zero means 0.01; 1 disables the test.
	Alpha float64
	// MaxP99Ratio is how many times control's p99 latency a variant's p99
	// may reach before it is stopped. Zero means 1.5; a negative value
	// disables the check.
	MaxP99Ratio float64
	// MinRequests is the number of requests both the variant and control
	// need before their error rates and latencies are judged. Zero means
	// 200.
	MinRequests uint64
	// MaxConversionRateDecrease is how much lower (absolute, 0.01 = one
	// percentage point) a variant's conversion rate (Tracker.Convert over
	// Tracker.Expose: clicks, purchases, any outcome the service feeds
	// back) may be than control's before it is stopped; the decrease must
	// also reach Alpha in a one-sided two-proportion z-test. Zero disables
	// the check, since not every experiment counts conversions.
	MaxConversionRateDecrease float64
	// MinExposures is the number of exposures both the variant and control
	// need before their conversion rates are judged. Zero means
	// MinRequests.
	MinExposures uint64
	// Logger receives each stop at warn level, a stop that failed at error
	// level, and Run's start and end at info level. Nil means
	// slog.Default(), so a guardrail stopping a canary is never silent;
	// pass slog.New(slog.DiscardHandler) to silence it.
	Logger *slog.Logger
	// Now returns the time recorded in decisions. Nil means time.Now.
	Now func() time.Time
}

// Decision records a guardrail stopping a variant, with the numbers behind it.
type Decision struct {
	Time       time.Time
	Experiment string
	Variant    string
	Control    string
	// Reason is "error_rate", "p99_latency" or "conversion_rate".
	Reason string
	// Requests seen by each side when the decision was taken.
	VariantRequests, ControlRequests uint64
	// Error rates, their difference's one-sided z-test p-value, and the
	// margin that was exceeded.
	VariantErrorRate, ControlErrorRate float64
	ErrorRatePValue                    float64
	MaxErrorRateIncrease               float64
	// p99 latencies and the ratio that was exceeded.
	VariantP99, ControlP99 time.Duration
	MaxP99Ratio            float64
	// Exposures and conversion rates of each side, the one-sided p-value
	// of the variant's decrease, and the margin that was exceeded.
	VariantExposures, ControlExposures           uint64
	VariantConversionRate, ControlConversionRate float64
	ConversionRatePValue                         float64
	MaxConversionRateDecrease                    float64
	// Weight is the variant's weight before it was set to 0.
	Weight float64
}

// String summarises the decision and its numbers on one line.
func (d Decision) String() string {
	switch d.Reason {
	case "error_rate":
		return fmt.Sprintf("stop %s/%s: error rate %.4f vs control %.4f (+%.4f > %.4f, p=%.2g, n=%d/%d)",
			d.Experiment, d.Variant, d.VariantErrorRate, d.ControlErrorRate, d.VariantErrorRate-d.ControlErrorRate,
			d.MaxErrorRateIncrease, d.ErrorRatePValue, d.VariantRequests, d.ControlRequests)
	case "conversion_rate":
		return fmt.Sprintf("stop %s/%s: conversion rate %.4f vs control %.4f (-%.4f > %.4f, p=%.2g, exposures %d/%d)",
			d.Experiment, d.Variant, d.VariantConversionRate, d.ControlConversionRate, d.ControlConversionRate-d.VariantConversionRate,
			d.MaxConversionRateDecrease, d.ConversionRatePValue, d.VariantExposures, d.ControlExposures)
	default:
		return fmt.Sprintf("stop %s/%s: p99 %v vs control %v (x%.2f > x%.2f, n=%d/%d)",
			d.Experiment, d.Variant, d.VariantP99, d.ControlP99, float64(d.VariantP99)/float64(d.ControlP99),
			d.MaxP99Ratio, d.VariantRequests, d.ControlRequests)
	}
}

// Guardrail stops (routes to 0%) a variant whose error rate, p99 latency or
// (when configured) conversion rate is worse than control's by more than a
// configured margin, and records why. It
// uses Experiment.Stop, so the variant stays stopped until Resume.
// Check evaluates once; Run evaluates periodically. Safe for concurrent use.
type Guardrail struct {
	exp     *Experiment
	tracker *Tracker
	control string
	opts    GuardrailOptions

	mu        sync.Mutex
	decisions []Decision
}

// NewGuardrail returns a guardrail over e, reading the statistics in t
// (normally the ModelRouter's Tracker).
func NewGuardrail(e *Experiment, t *Tracker, opts GuardrailOptions) (*Guardrail, error) {
	if e == nil || t == nil {
		return nil, fmt.Errorf("%w: guardrail needs an experiment and a tracker", ErrConfig)
	}
	for _, n := range e.names {
		if _, ok := t.index[n]; !ok {
			return nil, fmt.Errorf("%w: tracker has no variant %q of experiment %q", ErrUnknownVariant, n, e.name)
		}
	}
	if opts.Control == "" {
		opts.Control = e.Control()
	}
	if _, ok := e.index[opts.Control]; !ok {
		return nil, fmt.Errorf("%w: guardrail control %q, want one of %s", ErrUnknownVariant, opts.Control, quoteList(e.names))
	}
	if opts.MaxErrorRateIncrease == 0 {
		opts.MaxErrorRateIncrease = 0.01
	}
	if opts.Alpha == 0 {
		opts.Alpha = 0.01
	}
	if !(opts.Alpha > 0 && opts.Alpha <= 1) {
		return nil, fmt.Errorf("%w: guardrail alpha %v, want (0, 1]", ErrConfig, opts.Alpha)
	}
	if opts.MaxP99Ratio == 0 {
		opts.MaxP99Ratio = 1.5
	}
	if opts.MinRequests == 0 {
		opts.MinRequests = 200
	}
	if opts.MinExposures == 0 {
		opts.MinExposures = opts.MinRequests
	}
	if opts.MaxConversionRateDecrease < 0 || math.IsNaN(opts.MaxConversionRateDecrease) {
		return nil, fmt.Errorf("%w: guardrail MaxConversionRateDecrease %v, want >= 0 (0 disables the check)", ErrConfig, opts.MaxConversionRateDecrease)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Guardrail{exp: e, tracker: t, control: opts.Control, opts: opts}, nil
}

// Check compares every variant that still has traffic with control, stops
// those that breach a limit, and returns the decisions it took (nil when
// none).
func (g *Guardrail) Check() []Decision {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, _ := g.tracker.Variant(g.control)
	var out []Decision
	for _, w := range g.exp.Weights() {
		if w.Name == g.control || w.Weight == 0 {
			continue
		}
		v, _ := g.tracker.Variant(w.Name)
		serving := c.Requests >= g.opts.MinRequests && v.Requests >= g.opts.MinRequests
		conversions := g.opts.MaxConversionRateDecrease > 0 &&
			c.Exposures >= g.opts.MinExposures && v.Exposures >= g.opts.MinExposures
		if !serving && !conversions {
			continue
		}
		d := Decision{
			Experiment: g.exp.name, Variant: w.Name, Control: g.control,
			VariantRequests: v.Requests, ControlRequests: c.Requests,
			VariantErrorRate: v.ErrorRate, ControlErrorRate: c.ErrorRate,
			MaxErrorRateIncrease: g.opts.MaxErrorRateIncrease,
			VariantP99:           v.P99, ControlP99: c.P99, MaxP99Ratio: g.opts.MaxP99Ratio,
			VariantExposures: v.Exposures, ControlExposures: c.Exposures,
			VariantConversionRate: v.ConversionRate, ControlConversionRate: c.ConversionRate,
			MaxConversionRateDecrease: g.opts.MaxConversionRateDecrease,
			Weight:                    w.Weight, ErrorRatePValue: 1, ConversionRatePValue: 1,
		}
		if zt, err := TwoProportionZTest(c.Errors, c.Requests, v.Errors, v.Requests); serving && err == nil {
			d.ErrorRatePValue = distuv.UnitNormal.Survival(zt.Z) // one-sided: variant worse
		}
		if zt, err := TwoProportionZTest(c.Conversions, c.Exposures, v.Conversions, v.Exposures); conversions && err == nil {
			d.ConversionRatePValue = distuv.UnitNormal.CDF(zt.Z) // one-sided: variant lower
		}
		switch {
		case serving && g.opts.MaxErrorRateIncrease >= 0 && v.ErrorRate-c.ErrorRate > g.opts.MaxErrorRateIncrease &&
			(g.opts.Alpha >= 1 || d.ErrorRatePValue < g.opts.Alpha):
			d.Reason = "error_rate"
		case serving && g.opts.MaxP99Ratio >= 0 && c.P99 > 0 && float64(v.P99) > g.opts.MaxP99Ratio*float64(c.P99):
			d.Reason = "p99_latency"
		case conversions && c.ConversionRate-v.ConversionRate > g.opts.MaxConversionRateDecrease &&
			(g.opts.Alpha >= 1 || d.ConversionRatePValue < g.opts.Alpha):
			d.Reason = "conversion_rate"
		default:
			continue
		}
		d.Time = g.opts.Now()
		if err := g.exp.StopWith(w.Name, StopInfo{Reason: d.Reason, Time: d.Time}); err != nil {
			g.opts.Logger.Error("abtest: guardrail could not stop variant", "experiment", g.exp.name, "variant", w.Name, "error", err)
			continue
		}
		if math.IsNaN(d.ErrorRatePValue) {
			d.ErrorRatePValue = 1
		}
		if math.IsNaN(d.ConversionRatePValue) {
			d.ConversionRatePValue = 1
		}
		attrs := []any{"experiment", d.Experiment, "variant", d.Variant, "reason", d.Reason,
			"error_rate", d.VariantErrorRate, "control_error_rate", d.ControlErrorRate,
			"p_value", d.ErrorRatePValue, "p99", d.VariantP99, "control_p99", d.ControlP99}
		if conversions {
			attrs = append(attrs, "conversion_rate", d.VariantConversionRate,
				"control_conversion_rate", d.ControlConversionRate, "conversion_p_value", d.ConversionRatePValue)
		}
		g.opts.Logger.Warn("abtest: guardrail stopped variant", attrs...)
		g.decisions = append(g.decisions, d)
		out = append(out, d)
	}
	return out
}

// Decisions returns every decision taken so far, oldest first.
func (g *Guardrail) Decisions() []Decision {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Decision(nil), g.decisions...)
}

// Stopped reports whether this guardrail has stopped variant. A ramp
// controller checks it before raising a variant's weight again. A stop
// taken by another replica's guardrail and applied here (abtest/redisstate)
// is not this guardrail's decision: Experiment.Stopped and
// Experiment.StopInfo report it.
func (g *Guardrail) Stopped(variant string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, d := range g.decisions {
		if d.Variant == variant {
			return true
		}
	}
	return false
}

// Run calls Check every interval until ctx is done, then returns ctx's error.
func (g *Guardrail) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("%w: guardrail interval %v, want > 0", ErrConfig, interval)
	}
	g.opts.Logger.Info("abtest: guardrail started", "experiment", g.exp.name, "control", g.control, "interval", interval)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			g.opts.Logger.Info("abtest: guardrail ended", "experiment", g.exp.name)
			return fmt.Errorf("abtest: guardrail stopped: %w", ctx.Err())
		case <-t.C:
			g.Check()
		}
	}
}
