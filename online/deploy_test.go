//go:build cgo

package online_test

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/quiverml/quiver/abtest"
	"github.com/quiverml/quiver/features"
	"github.com/quiverml/quiver/online"
	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/gorgonia/train"
	"github.com/quiverml/quiver/serving/onnx"
	"github.com/stretchr/testify/require"
)

// deployEnv is the serving side of a deploying loop: a registry whose
// model "clicks" has version 1 in production (the pretrained learner,
// exported to ONNX), a server loading versions on ONNX Runtime, handles
// on the production and canary aliases, an experiment routing between
// them (the canary at weight 0 until a candidate comes) and a guardrail.
type deployEnv struct {
	store          *registry.Store
	srv            *registry.Server
	prod, canary   *registry.Handle
	exp            *abtest.Experiment
	router         *abtest.ModelRouter
	guard          *abtest.Guardrail
	clock          *simClock
	s              *sim
	tr             *train.Trainer
	loop           *online.Loop
	withProduction bool
}

type deploySetup struct {
	drift        int  // sim drift event
	noProduction bool // leave the production alias unset
	guard        abtest.GuardrailOptions
	edit         func(*deployEnv, *online.Options)
}

func newDeployEnv(t *testing.T, setup deploySetup) *deployEnv {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	e := &deployEnv{clock: newSimClock()}
	e.s = newSim(t, 5, setup.drift, e.clock)
	e.tr = newTrainer(t, 0.03)
	pretrain(t, e.s, e.tr, 8000, 32)

	var err error
	e.store, err = registry.Open(t.TempDir(), registry.Options{Logger: quiet, Now: e.clock.Now})
	require.NoError(t, err)
	if !setup.noProduction {
		var v1 bytes.Buffer
		require.NoError(t, e.tr.Export(&v1))
		v, err := e.store.Publish(ctx, "clicks", []registry.File{{Name: "model.onnx", Data: v1.Bytes()}}, registry.Meta{})
		require.NoError(t, err)
		require.NoError(t, e.store.SetAlias(ctx, "clicks", "production", v.Number))
	}
	e.srv, err = registry.NewServer(e.store, registry.FileLoader("onnx", onnx.Opener(onnx.Options{})),
		registry.ServerOptions{PollInterval: time.Hour, Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() { e.srv.Close() })
	require.NoError(t, e.srv.Sync(ctx))
	e.prod, err = e.srv.Model("clicks", "production")
	require.NoError(t, err)
	e.canary, err = e.srv.Model("clicks", "canary")
	require.NoError(t, err)

	e.exp, err = abtest.NewExperiment(abtest.Config{Name: "clicks",
		Variants: []abtest.Variant{{Name: "production", Weight: 100}, {Name: "canary", Weight: 0}}, Control: "production"})
	require.NoError(t, err)
	e.router, err = abtest.NewRouter(e.exp, map[string]serving.Model{"production": e.prod, "canary": e.canary},
		abtest.RouterOptions{Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() { e.router.Close() })
	setup.guard.Logger = quiet
	e.guard, err = abtest.NewGuardrail(e.exp, e.router.Tracker(), setup.guard)
	require.NoError(t, err)

	opts := online.Options{Store: e.s.store, Features: []*features.Selection{e.s.user, e.s.item},
		Router: e.router, HoldoutEvery: 4, WindowSize: 250, Clock: e.clock.Now, Logger: quiet,
		Deploy: &online.Deploy{Registry: e.store, Model: "clicks", Production: e.prod, Canary: e.canary, Sync: e.srv.Sync,
			Experiment: e.exp, Guardrail: e.guard, CanaryWeight: 50, Every: 3000, EvalEvents: 300,
			CodeVersion: "test", Tags: map[string]string{"team": "ranking"}}}
	if setup.noProduction {
		opts.Router, opts.Model = nil, e.tr
	}
	if setup.edit != nil {
		setup.edit(e, &opts)
	}
	e.loop, err = online.New(online.LearnerFrom(e.tr), opts)
	require.NoError(t, err)
	t.Cleanup(func() { e.loop.Close() })
	return e
}

// playUntil plays the stream on from where it stopped, in chunks, until
// cond holds or the stream reaches limit events.
func (e *deployEnv) playUntil(t *testing.T, r *streamRun, limit int, cond func() bool) int {
	t.Helper()
	for ; r.next < limit && !cond(); r.next += 250 {
		r.play(t, r.next, r.next+250)
	}
	return r.next
}

func weight(e *abtest.Experiment, variant string) float64 {
	for _, w := range e.Weights() {
		if w.Name == variant {
			return w.Weight
		}
	}
	return -1
}

// After a drift the learner's candidate beats the production model on
// held-out events, is published with its lineage, served as a canary,
// and promoted.
func TestCanaryPromotedWithLineage(t *testing.T) {
	ctx := context.Background()
	// The guardrail watches error rates only: latency on a shared test
	// machine is too noisy to judge a canary by.
	e := newDeployEnv(t, deploySetup{drift: 0, guard: abtest.GuardrailOptions{MaxP99Ratio: -1}})
	var firstTrained time.Time
	var canaryServed int
	r := &streamRun{s: e.s, loop: e.loop, clock: e.clock, predict: func(i int, p online.Prediction) {
		if p.Variant == "canary" {
			canaryServed++
			if p.Version != 2 {
				t.Errorf("event %d: the canary variant served version %d, want 2", i, p.Version)
			}
		}
	}}
	end := e.playUntil(t, r, 12000, func() bool { return len(e.loop.Decisions()) > 0 })
	require.NotEmpty(t, e.loop.Decisions(), "no decision after %d events", end)

	v, err := e.store.Get(ctx, "clicks", 2)
	require.NoError(t, err)
	require.Equal(t, int64(1), v.Lineage.Parent, "the candidate descends from production")
	require.Equal(t, "test", v.Lineage.CodeVersion)
	require.Equal(t, v.Tags["data_from"]+"/"+v.Tags["data_to"], v.Lineage.DataVersion)
	from, err := time.Parse(time.RFC3339Nano, v.Tags["data_from"])
	require.NoError(t, err)
	to, err := time.Parse(time.RFC3339Nano, v.Tags["data_to"])
	require.NoError(t, err)
	firstTrained = simEventTime(0) // event 0 is the first joined, and it is trained on
	require.Equal(t, firstTrained, from)
	require.True(t, to.After(from) && to.Before(simEventTime(3100)), "data window %s..%s", from, to)
	require.Equal(t, "online", v.Tags["source"])
	require.Equal(t, "ranking", v.Tags["team"])
	trained, err := strconv.Atoi(v.Tags["trained_rows"])
	require.NoError(t, err)
	require.Equal(t, 3000*3/4, trained, "3000 events, every 4th held out")
	require.Greater(t, v.Metrics["auc"], 0.8, "the learner's held-out AUC at publish time")
	require.Greater(t, v.Metrics["log_loss"], 0.0)
	require.Equal(t, float64(250), v.Metrics["heldout_events"])

	decs := e.loop.Decisions()
	require.Len(t, decs, 1)
	d := decs[0]
	t.Log(d)
	require.Equal(t, online.ActionPromote, d.Action)
	require.Equal(t, online.ReasonBetter, d.Reason)
	require.Equal(t, int64(2), d.Candidate)
	require.Equal(t, int64(1), d.Production)
	require.Equal(t, 300, d.CandidateMetrics.N)
	require.Equal(t, 300, d.ProductionMetrics.N)
	require.Greater(t, d.CandidateMetrics.AUC, d.ProductionMetrics.AUC+0.2, "after the drift the candidate ranks far better")
	require.Less(t, d.CandidateMetrics.LogLoss, d.ProductionMetrics.LogLoss)

	pv, err := e.store.Resolve(ctx, "clicks", "production")
	require.NoError(t, err)
	require.Equal(t, int64(2), pv.Number)
	cur, ok := e.srv.Current("clicks", "production")
	require.True(t, ok)
	require.Equal(t, int64(2), cur.Number, "the server swapped the promoted version in")
	require.Equal(t, 0.0, weight(e.exp, "canary"), "the canary variant rests until the next candidate")
	require.False(t, e.exp.Stopped("canary"))
	require.Positive(t, canaryServed, "the canary variant served traffic while judged")
	st := e.loop.Stats()
	require.Equal(t, uint64(1), st.Exports)
	require.Equal(t, uint64(1), st.Promotions)
	require.Equal(t, int64(0), st.Canary)
	require.Contains(t, st.Window.Metrics, "production", "windows score the production alias too")

	// Production answers with version 2 from now on.
	r.predict = nil
	p, err := e.loop.Predict(ctx, online.Request{ID: "after", Entities: []string{"u1", "i1"}, Unit: "someone"})
	require.NoError(t, err)
	require.Equal(t, int64(2), p.Version)
}

// A candidate trained on corrupted labels (every trained label flipped,
// the held-out ones true) ranks worse than production and is stopped;
// the next candidate gets the canary variant back, and is stopped too.
func TestCanaryStoppedWhenWorse(t *testing.T) {
	ctx := context.Background()
	e := newDeployEnv(t, deploySetup{drift: -1, guard: abtest.GuardrailOptions{MaxP99Ratio: -1}})
	r := &streamRun{s: e.s, loop: e.loop, clock: e.clock, label: func(k int, y float64) float64 {
		if k%4 == 3 { // held out: the loop holds out every 4th joined event
			return y
		}
		return 1 - y
	}}
	e.playUntil(t, r, 12000, func() bool { return len(e.loop.Decisions()) > 0 })
	decs := e.loop.Decisions()
	require.Len(t, decs, 1)
	d := decs[0]
	t.Log(d)
	require.Equal(t, online.ActionStop, d.Action)
	require.Equal(t, online.ReasonAUC, d.Reason)
	require.Equal(t, int64(2), d.Candidate)
	require.Equal(t, int64(1), d.Production)
	require.Less(t, d.CandidateMetrics.AUC, d.ProductionMetrics.AUC)
	require.True(t, e.exp.Stopped("canary"))
	pv, err := e.store.Resolve(ctx, "clicks", "production")
	require.NoError(t, err)
	require.Equal(t, int64(1), pv.Number, "production stays")
	cv, err := e.store.Resolve(ctx, "clicks", "canary")
	require.NoError(t, err)
	require.Equal(t, int64(2), cv.Number)

	// The next candidate reopens the canary variant...
	e.playUntil(t, r, 12000, func() bool { return e.loop.Stats().Exports == 2 })
	require.False(t, e.exp.Stopped("canary"))
	require.Equal(t, 50.0, weight(e.exp, "canary"))
	require.Equal(t, int64(3), e.loop.Stats().Canary)
	v3, err := e.store.Get(ctx, "clicks", 3)
	require.NoError(t, err)
	require.Equal(t, int64(1), v3.Lineage.Parent, "a stopped candidate is nobody's parent")
	// ...and is stopped as well.
	e.playUntil(t, r, 12000, func() bool { return len(e.loop.Decisions()) == 2 })
	require.Equal(t, online.ActionStop, e.loop.Decisions()[1].Action)
	require.Equal(t, uint64(2), e.loop.Stats().Stops)
}

// A guardrail that stops the canary variant stops the candidate at once,
// before the held-out metrics are in. The guardrail here stops any
// variant whose p99 latency exceeds a billionth of control's: a threshold
// every real canary breaches once it has MinRequests requests, which
// makes the stop deterministic.
func TestGuardrailStopsCanary(t *testing.T) {
	e := newDeployEnv(t, deploySetup{drift: 0, guard: abtest.GuardrailOptions{MaxErrorRateIncrease: -1, MaxP99Ratio: 1e-9, MinRequests: 20}})
	r := &streamRun{s: e.s, loop: e.loop, clock: e.clock}
	e.playUntil(t, r, 12000, func() bool { return len(e.loop.Decisions()) > 0 })
	decs := e.loop.Decisions()
	require.Len(t, decs, 1)
	d := decs[0]
	t.Log(d)
	require.Equal(t, online.ActionStop, d.Action)
	require.Equal(t, online.ReasonGuardrail, d.Reason)
	require.NotNil(t, d.Guardrail)
	require.Equal(t, "p99_latency", d.Guardrail.Reason)
	require.Equal(t, "canary", d.Guardrail.Variant)
	require.GreaterOrEqual(t, d.Guardrail.VariantRequests, uint64(20))
	require.Less(t, d.CandidateMetrics.N, 300, "stopped before the held-out trial ended")
	require.True(t, e.exp.Stopped("canary"))
	pv, err := e.store.Resolve(context.Background(), "clicks", "production")
	require.NoError(t, err)
	require.Equal(t, int64(1), pv.Number)
}

// With no production version yet, the first candidate becomes production.
func TestFirstCandidateBecomesProduction(t *testing.T) {
	ctx := context.Background()
	e := newDeployEnv(t, deploySetup{drift: -1, noProduction: true, edit: func(_ *deployEnv, o *online.Options) {
		o.Deploy.Experiment, o.Deploy.Guardrail, o.Deploy.Every = nil, nil, 500
	}})
	r := &streamRun{s: e.s, loop: e.loop, clock: e.clock}
	e.playUntil(t, r, 4000, func() bool { return len(e.loop.Decisions()) > 0 })
	decs := e.loop.Decisions()
	require.Len(t, decs, 1)
	require.Equal(t, online.ActionPromote, decs[0].Action)
	require.Equal(t, online.ReasonNoProduction, decs[0].Reason)
	require.Equal(t, int64(1), decs[0].Candidate)
	pv, err := e.store.Resolve(ctx, "clicks", "production")
	require.NoError(t, err)
	require.Equal(t, int64(1), pv.Number)
	v, err := e.store.Get(ctx, "clicks", 1)
	require.NoError(t, err)
	require.Equal(t, int64(0), v.Lineage.Parent)
	cur, ok := e.srv.Current("clicks", "production")
	require.True(t, ok)
	require.Equal(t, int64(1), cur.Number)
}

// A candidate the canary alias never serves (here the canary handle
// follows another alias) is given up after four times EvalEvents
// held-out events, so that later candidates are not blocked behind it.
func TestCandidateNeverServedIsStopped(t *testing.T) {
	e := newDeployEnv(t, deploySetup{drift: -1, guard: abtest.GuardrailOptions{MaxP99Ratio: -1}, edit: func(e *deployEnv, o *online.Options) {
		elsewhere, err := e.srv.Model("clicks", "elsewhere")
		require.NoError(t, err)
		o.Deploy.Canary, o.Deploy.Every, o.Deploy.EvalEvents = elsewhere, 1000, 50
	}})
	r := &streamRun{s: e.s, loop: e.loop, clock: e.clock}
	e.playUntil(t, r, 6000, func() bool { return len(e.loop.Decisions()) > 0 })
	decs := e.loop.Decisions()
	require.Len(t, decs, 1)
	require.Equal(t, online.ActionStop, decs[0].Action)
	require.Equal(t, online.ReasonNotServed, decs[0].Reason)
	require.Equal(t, 0.0, weight(e.exp, "canary"), "the canary variant never got traffic")
	require.Equal(t, uint64(0), e.router.Stats().Errors, "no request was routed to an unserved canary")
}
