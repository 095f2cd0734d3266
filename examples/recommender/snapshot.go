package main

import (
	"math"
	"time"

	"github.com/quiverml/quiver/abtest"
)

// Snapshot is the experiment's state and statistics at one moment: what
// GET /experiment returns and what the demo prints at the end.
type Snapshot struct {
	Experiment string            `json:"experiment"`
	Variants   []VariantSnapshot `json:"variants"`
	Decisions  []DecisionReport  `json:"guardrail_decisions"`
	// Serving is the version each alias serves now.
	Serving map[string]int64 `json:"serving"`
	// Swaps are the alias moves the registry Server applied.
	Swaps  []SwapReport   `json:"swaps"`
	Shadow ShadowSnapshot `json:"shadow"`
	// Int8 is how the shadow's int8 model agreed with v2 before release.
	Int8 AgreementReport `json:"int8_agreement"`
}

// VariantSnapshot is one variant's split and outcomes.
type VariantSnapshot struct {
	Name    string  `json:"name"`
	Weight  float64 `json:"weight"`
	Stopped bool    `json:"stopped"`
	// Requests and Errors are the router's counts; P50 and P99 its model
	// latencies (batcher queue and run).
	Requests uint64        `json:"requests"`
	Errors   uint64        `json:"errors"`
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
	// Exposures are recommendations shown, Clicks those clicked; CTR is
	// their ratio with its 95% Wilson interval.
	Exposures uint64  `json:"exposures"`
	Clicks    uint64  `json:"clicks"`
	CTR       float64 `json:"ctr"`
	CTRLow    float64 `json:"ctr_low"`
	CTRHigh   float64 `json:"ctr_high"`
	// Outcomes counts feedback received; NoClickRate is the share without
	// a click, what the click guardrail judges.
	Outcomes    uint64  `json:"outcomes"`
	NoClickRate float64 `json:"no_click_rate"`
}

// DecisionReport is a guardrail decision.
type DecisionReport struct {
	Guardrail string    `json:"guardrail"`
	Variant   string    `json:"variant"`
	Reason    string    `json:"reason"`
	Time      time.Time `json:"time"`
	Summary   string    `json:"summary"`
	// The numbers the decision was taken on: the rate judged (errors or
	// recommendations without a click) on each side, the counts behind
	// them, and the one-sided p-value of the difference.
	VariantRate float64         `json:"variant_rate"`
	ControlRate float64         `json:"control_rate"`
	VariantN    uint64          `json:"variant_n"`
	ControlN    uint64          `json:"control_n"`
	PValue      float64         `json:"p_value"`
	Decision    abtest.Decision `json:"-"`
}

// SwapReport is one alias move applied by the registry Server.
type SwapReport struct {
	Time  time.Time `json:"time"`
	Alias string    `json:"alias"`
	From  int64     `json:"from"`
	To    int64     `json:"to"`
}

// ShadowSnapshot counts the copies sent to the shadow variant.
type ShadowSnapshot struct {
	Alias     string        `json:"alias"`
	Version   int64         `json:"version"`
	Enqueued  uint64        `json:"enqueued"`
	Dropped   uint64        `json:"dropped"`
	Completed uint64        `json:"completed"`
	Failed    uint64        `json:"failed"`
	P99       time.Duration `json:"p99_ns"`
}

// AgreementReport is the int8 release check.
type AgreementReport struct {
	Users         int      `json:"users"`
	Rows          int      `json:"rows"`
	TopKOverlap   float64  `json:"top10_overlap"`
	Top1          float64  `json:"top1_agreement"`
	ScoreMaxAbs   float64  `json:"score_max_abs_err"`
	ScoreSQNRdB   *float64 `json:"score_sqnr_db"` // nil when the scores are equal (infinite SQNR)
	BytesFloat    int      `json:"bytes_float"`
	BytesQuantize int      `json:"bytes_int8"`
}

// Snapshot returns the experiment's state now.
func (a *App) Snapshot() Snapshot {
	s := Snapshot{Experiment: a.exp.Name(), Serving: a.servedVersions(), Decisions: []DecisionReport{}, Swaps: []SwapReport{}}
	weights := map[string]float64{}
	for _, w := range a.exp.Weights() {
		weights[w.Name] = w.Weight
	}
	for _, vs := range a.router.Tracker().Stats() {
		o, _ := a.clicks.Variant(vs.Variant)
		s.Variants = append(s.Variants, VariantSnapshot{
			Name: vs.Variant, Weight: weights[vs.Variant], Stopped: a.exp.Stopped(vs.Variant),
			Requests: vs.Requests, Errors: vs.Errors, P50: vs.P50, P99: vs.P99,
			Exposures: vs.Exposures, Clicks: vs.Conversions,
			CTR: vs.ConversionRate, CTRLow: vs.ConversionLow, CTRHigh: vs.ConversionHigh,
			Outcomes: o.Requests, NoClickRate: o.ErrorRate,
		})
	}
	for _, g := range a.guards {
		for _, d := range g.g.Decisions() {
			r := DecisionReport{Guardrail: g.name, Variant: d.Variant, Reason: d.Reason, Time: d.Time, Decision: d,
				VariantRate: d.VariantErrorRate, ControlRate: d.ControlErrorRate,
				VariantN: d.VariantRequests, ControlN: d.ControlRequests, PValue: d.ErrorRatePValue}
			switch {
			case g.name == "clicks":
				r.Reason = "no_click_rate"
				r.Summary = "no-click rate above production's by more than the margin, significantly"
			case d.Reason == "p99_latency":
				r.Summary = "model latency p99 above the allowed multiple of production's"
			default:
				r.Summary = "error rate above production's by more than the margin, significantly"
			}
			s.Decisions = append(s.Decisions, r)
		}
	}
	a.swapsMu.Lock()
	for _, e := range a.swaps {
		s.Swaps = append(s.Swaps, SwapReport{Time: e.Time, Alias: e.Alias, From: e.From, To: e.Version})
	}
	a.swapsMu.Unlock()
	rs := a.router.Stats()
	s.Shadow = ShadowSnapshot{Alias: aliasShadow, Version: s.Serving[aliasShadow],
		Enqueued: rs.ShadowEnqueued, Dropped: rs.ShadowDropped, Completed: rs.ShadowCompleted, Failed: rs.ShadowFailed}
	if st, err := a.router.ShadowTracker().Variant(aliasShadow); err == nil {
		s.Shadow.P99 = st.P99
	}
	ag := a.startup.Agreement
	s.Int8 = AgreementReport{Users: ag.Users, Rows: ag.Rows, TopKOverlap: ag.TopKOverlap, Top1: ag.Top1,
		ScoreMaxAbs: ag.Scores.MaxAbs, BytesFloat: ag.BytesBefore, BytesQuantize: ag.BytesAfter}
	if sq := ag.Scores.SQNR; !math.IsInf(sq, 0) && !math.IsNaN(sq) {
		s.Int8.ScoreSQNRdB = &sq
	}
	return s
}
