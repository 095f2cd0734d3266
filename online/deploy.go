package online

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/quiverml/quiver/abtest"
	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/serving"
)

// Decision actions.
const (
	ActionPromote = "promote"
	ActionStop    = "stop"
)

// Decision reasons.
const (
	// ReasonBetter: the candidate met MinAUCGain and MaxLogLossIncrease
	// against production on the same held-out events.
	ReasonBetter = "better"
	// ReasonNoProduction: the production alias pointed at nothing, so the
	// first candidate became production.
	ReasonNoProduction = "no_production"
	// ReasonAUC: the candidate's AUC gain over production was below
	// MinAUCGain.
	ReasonAUC = "auc"
	// ReasonLogLoss: the candidate's log-loss exceeded production's by more
	// than MaxLogLossIncrease.
	ReasonLogLoss = "log_loss"
	// ReasonInconclusive: after four times EvalEvents held-out events the
	// metrics were still undefined (one class only).
	ReasonInconclusive = "inconclusive"
	// ReasonNotServed: after four times EvalEvents held-out events fewer
	// than EvalEvents had been scored by both the candidate (through the
	// canary alias) and production: the candidate never loaded, or
	// production never answered.
	ReasonNotServed = "not_served"
	// ReasonGuardrail: the Guardrail stopped the canary variant for its
	// error rate or latency (Decision.Guardrail holds its decision).
	ReasonGuardrail = "guardrail"
	// ReasonStopped: the canary variant was stopped outside the loop.
	ReasonStopped = "stopped"
	// ReasonPromoteFailed: moving the production alias failed (Err says
	// why); the candidate is stopped.
	ReasonPromoteFailed = "promote_failed"
)

// Decision records what the loop did with one candidate, and why.
type Decision struct {
	Time time.Time
	// Action is ActionPromote or ActionStop; Reason one of the Reason
	// constants.
	Action, Reason string
	// Candidate is the candidate's registry version; Production the
	// version production served when it was judged (its lineage parent).
	Candidate, Production int64
	// CandidateMetrics and ProductionMetrics are both models' metrics on
	// the same held-out events (N of them); empty for ReasonNoProduction
	// and for a guardrail stop before any event was scored.
	CandidateMetrics, ProductionMetrics Metrics
	// MinAUCGain and MaxLogLossIncrease are the bars that applied.
	MinAUCGain, MaxLogLossIncrease float64
	// Guardrail is the guardrail's decision for ReasonGuardrail.
	Guardrail *abtest.Decision
	// Err is the failure behind ReasonPromoteFailed.
	Err string
}

// String summarises the decision on one line.
func (d Decision) String() string {
	s := fmt.Sprintf("%s v%d (production v%d): %s", d.Action, d.Candidate, d.Production, d.Reason)
	if d.CandidateMetrics.N > 0 {
		s += fmt.Sprintf("; candidate %s vs production %s (auc %+.4f, logloss %+.4f)",
			d.CandidateMetrics, d.ProductionMetrics,
			d.CandidateMetrics.AUC-d.ProductionMetrics.AUC, d.CandidateMetrics.LogLoss-d.ProductionMetrics.LogLoss)
	}
	if d.Guardrail != nil {
		s += "; " + d.Guardrail.String()
	}
	if d.Err != "" {
		s += "; " + d.Err
	}
	return s
}

// deployer is the loop's deployment state, guarded by the loop's tmu.
type deployer struct {
	d         *Deploy
	since     int   // joined events since the last candidate
	canary    int64 // version being judged, 0 when none
	parent    int64 // production version when the candidate was published
	opened    bool  // the canary variant has its traffic
	seen      int   // held-out events since the candidate was published
	cand      scored
	prod      scored
	decisions []Decision
}

// publish exports the learner as a candidate, publishes it, points the
// canary alias at it and opens the experiment's canary variant. Failures
// are logged and counted; the next attempt comes Every events later.
func (l *Loop) publish(ctx context.Context) {
	dep := l.dep
	d := dep.d
	dep.since = 0
	fail := func(step string, err error) {
		l.stats.exportErrors.Add(1)
		l.log.Error("online: candidate not deployed", "step", step, "model", d.Model, "error", err)
	}
	var buf bytes.Buffer
	if err := l.learner.Export(&buf); err != nil {
		fail("export", err)
		return
	}
	var parent int64
	if v, err := d.Registry.Resolve(ctx, d.Model, d.ProductionAlias); err == nil {
		parent = v.Number
	} else if !errors.Is(err, registry.ErrNotFound) {
		fail("resolve production", err)
		return
	}
	meta := registry.Meta{
		Format:  "onnx",
		Metrics: map[string]float64{},
		Tags:    map[string]string{"source": "online", "trained_rows": strconv.FormatUint(l.trainN, 10)},
		Lineage: registry.Lineage{Parent: parent, CodeVersion: d.CodeVersion},
	}
	for k, v := range d.Tags {
		meta.Tags[k] = v
	}
	if l.opts.Name != "" {
		meta.Tags["loop"] = l.opts.Name
	}
	if !l.first.IsZero() {
		from, to := l.first.UTC().Format(time.RFC3339Nano), l.last.UTC().Format(time.RFC3339Nano)
		meta.Lineage.DataVersion = from + "/" + to // an ISO 8601 interval
		meta.Tags["data_from"], meta.Tags["data_to"] = from, to
		meta.Description = fmt.Sprintf("online candidate trained on %d rows with prediction times %s to %s", l.trainN, from, to)
	}
	if m, err := Evaluate(l.recent.scores, l.recent.labels); err == nil && m.N > 0 {
		meta.Metrics["heldout_events"] = float64(m.N)
		meta.Metrics["log_loss"] = m.LogLoss
		if !math.IsNaN(m.AUC) {
			meta.Metrics["auc"] = m.AUC
		}
	}
	v, err := d.Registry.Publish(ctx, d.Model, []registry.File{{Name: d.Artifact, Data: buf.Bytes()}}, meta)
	if err != nil {
		fail("publish", err)
		return
	}
	l.stats.exports.Add(1)
	l.log.Info("online: candidate published", "model", d.Model, "version", v.Number, "parent", parent,
		"auc", meta.Metrics["auc"], "log_loss", meta.Metrics["log_loss"], "data", meta.Lineage.DataVersion)
	if parent == 0 {
		if err := d.Registry.SetAlias(ctx, d.Model, d.ProductionAlias, v.Number); err != nil {
			fail("set production alias", err)
			return
		}
		l.sync(ctx)
		l.decide(Decision{Action: ActionPromote, Reason: ReasonNoProduction, Candidate: v.Number})
		return
	}
	if err := d.Registry.SetAlias(ctx, d.Model, d.CanaryAlias, v.Number); err != nil {
		fail("set canary alias", err)
		return
	}
	l.sync(ctx)
	dep.canary, dep.parent, dep.opened, dep.seen = v.Number, parent, false, 0
	dep.cand.reset()
	dep.prod.reset()
	if vr, ok := d.Canary.(interface {
		Version() (registry.Version, bool)
	}); ok {
		if cur, ok := vr.Version(); ok && cur.Number == v.Number {
			l.openCanary()
		}
	}
}

// openCanary gives the experiment's canary variant its traffic, once the
// canary alias serves the candidate: before, its requests would fail.
func (l *Loop) openCanary() {
	dep := l.dep
	d := dep.d
	dep.opened = true
	e := d.Experiment
	if e == nil {
		return
	}
	if e.Stopped(d.CanaryVariant) {
		if err := e.Resume(d.CanaryVariant); err != nil {
			l.log.Error("online: resuming the canary variant", "variant", d.CanaryVariant, "error", err)
			return
		}
	}
	if err := e.SetWeights(map[string]float64{d.CanaryVariant: d.CanaryWeight}); err != nil {
		l.log.Error("online: opening the canary variant", "variant", d.CanaryVariant, "error", err)
	}
}

func (l *Loop) sync(ctx context.Context) {
	if l.dep.d.Sync == nil {
		return
	}
	if err := l.dep.d.Sync(ctx); err != nil {
		// The server retries on its next poll; judging waits for the
		// canary handle to serve the candidate.
		l.log.Warn("online: registry sync after an alias move", "error", err)
	}
}

// judge adds a held-out event to the candidate's trial and decides once it
// has EvalEvents of them; tmu held. prodVersion is -1 when production
// could not score the event.
func (l *Loop) judge(ctx context.Context, r *record, label, prod float64, prodVersion int64) {
	dep := l.dep
	d := dep.d
	dep.seen++
	if d.Experiment != nil && dep.opened {
		if g := d.Guardrail; g != nil {
			for _, gd := range g.Check() {
				if gd.Variant == d.CanaryVariant {
					gd := gd
					l.stop(Decision{Reason: ReasonGuardrail, Guardrail: &gd})
					return
				}
			}
		}
		if d.Experiment.Stopped(d.CanaryVariant) {
			dec := Decision{Reason: ReasonStopped}
			if g := d.Guardrail; g != nil {
				for _, gd := range g.Decisions() {
					if gd.Variant == d.CanaryVariant {
						gd := gd
						dec.Reason, dec.Guardrail = ReasonGuardrail, &gd
					}
				}
			}
			l.stop(dec)
			return
		}
	}
	if dep.seen > 4*d.EvalEvents && len(dep.cand.scores) < d.EvalEvents {
		// The canary never served the candidate (it failed to load, say),
		// or production never answered: give up rather than block every
		// later candidate.
		l.stop(Decision{Reason: ReasonNotServed})
		return
	}
	if prodVersion < 0 || prodVersion == dep.canary {
		return
	}
	s, v, err := l.score(ctx, d.Canary, r.row)
	if err != nil {
		if !errors.Is(err, serving.ErrNotReady) { // not loaded yet: wait
			l.scoreFailed(d.CanaryAlias, err)
		}
		return
	}
	if v != dep.canary { // the server has not swapped the candidate in yet
		return
	}
	if !dep.opened {
		l.openCanary()
	}
	dep.cand.add(s, label)
	dep.prod.add(prod, label)
	n := len(dep.cand.scores)
	if n < d.EvalEvents {
		return
	}
	cm, _ := Evaluate(dep.cand.scores, dep.cand.labels)
	pm, _ := Evaluate(dep.prod.scores, dep.prod.labels)
	dec := Decision{CandidateMetrics: cm, ProductionMetrics: pm, Production: prodVersion}
	switch {
	case math.IsNaN(cm.AUC) || math.IsNaN(pm.AUC):
		if dep.seen <= 4*d.EvalEvents {
			return // one class so far: wait for more events
		}
		dec.Reason = ReasonInconclusive
	case cm.AUC-pm.AUC < d.MinAUCGain:
		dec.Reason = ReasonAUC
	case cm.LogLoss-pm.LogLoss > d.MaxLogLossIncrease:
		dec.Reason = ReasonLogLoss
	default:
		dec.Action, dec.Reason = ActionPromote, ReasonBetter
		l.promote(ctx, dec)
		return
	}
	l.stop(dec)
}

func (l *Loop) promote(ctx context.Context, dec Decision) {
	dep := l.dep
	d := dep.d
	dec.Candidate = dep.canary
	if err := d.Registry.SetAlias(ctx, d.Model, d.ProductionAlias, dep.canary); err != nil {
		dec.Action, dec.Reason, dec.Err = ActionStop, ReasonPromoteFailed, err.Error()
		l.stop(dec)
		return
	}
	l.sync(ctx)
	if e := d.Experiment; e != nil {
		// Production now serves the candidate too: the canary variant
		// rests until the next candidate.
		if err := e.SetWeights(map[string]float64{d.CanaryVariant: 0}); err != nil {
			l.log.Warn("online: closing the canary variant after a promotion", "error", err)
		}
	}
	l.decide(dec)
}

func (l *Loop) stop(dec Decision) {
	dep := l.dep
	d := dep.d
	dec.Action = ActionStop
	dec.Candidate = dep.canary
	if dec.Production == 0 {
		dec.Production = dep.parent
	}
	if e := d.Experiment; e != nil && !e.Stopped(d.CanaryVariant) {
		if err := e.Stop(d.CanaryVariant); err != nil {
			l.log.Error("online: stopping the canary variant", "variant", d.CanaryVariant, "error", err)
		}
	}
	l.decide(dec)
}

// decide records dec and ends the candidate's trial.
func (l *Loop) decide(dec Decision) {
	dep := l.dep
	d := dep.d
	dec.Time = l.opts.Clock()
	dec.MinAUCGain, dec.MaxLogLossIncrease = d.MinAUCGain, d.MaxLogLossIncrease
	if dec.Production == 0 && dec.Reason != ReasonNoProduction {
		dec.Production = dep.parent
	}
	if dec.Action == ActionPromote {
		l.stats.promotions.Add(1)
	} else {
		l.stats.stops.Add(1)
	}
	if len(dep.decisions) >= l.opts.MaxDecisions {
		copy(dep.decisions, dep.decisions[1:])
		dep.decisions = dep.decisions[:len(dep.decisions)-1]
	}
	dep.decisions = append(dep.decisions, dec)
	l.log.Info("online: candidate decision", "decision", dec.String())
	dep.canary, dep.parent = 0, 0
	dep.cand.reset()
	dep.prod.reset()
}

// Decisions returns the candidate decisions kept, oldest first (nil
// without Deploy).
func (l *Loop) Decisions() []Decision {
	if l.dep == nil {
		return nil
	}
	l.tmu.Lock()
	defer l.tmu.Unlock()
	return append([]Decision(nil), l.dep.decisions...)
}

func (s *scored) add(x, label float64) {
	s.scores = append(s.scores, x)
	s.labels = append(s.labels, label)
}

func (s *scored) reset() { s.scores, s.labels = s.scores[:0], s.labels[:0] }
