package abtest

import (
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/internal/latency"
	"github.com/quiverml/quiver/internal/metrics/metricstest"
)

func requireSameSample(t *testing.T, want, got Sample) {
	t.Helper()
	require.Equal(t, want.N, got.N)
	require.InDelta(t, want.Mean, got.Mean, 1e-9*math.Max(1, math.Abs(want.Mean)))
	require.InDelta(t, want.Variance, got.Variance, 1e-9*math.Max(1, want.Variance))
}

func TestMomentsMergeAndRemove(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	xs := make([]float64, 1000)
	for i := range xs {
		xs[i] = 1e6 + 3*r.NormFloat64() // a large mean over a small spread
	}
	all := momentsOf(welfordOf(xs))
	for _, cut := range []int{0, 1, 2, 500, 999, 1000} {
		a, b := momentsOf(welfordOf(xs[:cut])), momentsOf(welfordOf(xs[cut:]))
		requireSameSample(t, all.Sample(), a.Merge(b).Sample())
		// Removing most of a set leaves a small one whose moments are only
		// as exact as the large set's: the error is bounded against all.
		for _, c := range [][2]Moments{{b, all.Remove(a)}, {a, all.Remove(b)}} {
			require.Equal(t, c[0].N, c[1].N)
			require.InDelta(t, c[0].Mean, c[1].Mean, 1e-12*math.Abs(all.Mean)*float64(all.N))
			require.InDelta(t, c[0].M2, c[1].M2, 1e-9*all.M2)
			// Merged back, the error is at rounding level of the whole set.
			requireSameSample(t, all.Sample(), c[1].Merge(all.Remove(c[1])).Sample())
		}
	}
	require.Equal(t, Moments{}, all.Remove(all), "removing everything leaves nothing")
	require.Equal(t, Moments{}, momentsOf(welfordOf(xs[:3])).Remove(all), "removing a superset leaves nothing")
	require.Equal(t, SampleOf(xs), all.Sample())

	require.NoError(t, all.Check())
	require.NoError(t, Moments{}.Check())
	for _, bad := range []Moments{
		{N: 1, Mean: math.NaN()}, {N: 1, Mean: math.Inf(1)}, {N: 2, M2: -1}, {N: 2, M2: math.Inf(1)},
		{N: 0, Mean: 1}, {N: 0, M2: 1}, {N: 1, Mean: 2 * MaxReward},
	} {
		require.ErrorIs(t, bad.Check(), ErrTotals, "%+v", bad)
	}
}

func welfordOf(xs []float64) welford {
	var w welford
	for _, x := range xs {
		w.add(x)
	}
	return w
}

// trafficEvent is one thing a replica records.
type trafficEvent struct {
	variant  string
	kind     int // 0 request, 1 exposure, 2 conversion, 3 metric
	latency  time.Duration
	failed   bool
	value    float64
	recordAt int // which replica records it
}

func randomTraffic(r *rand.Rand, n, replicas int, variants []string) []trafficEvent {
	evs := make([]trafficEvent, n)
	for i := range evs {
		evs[i] = trafficEvent{
			variant:  variants[r.IntN(len(variants))],
			kind:     r.IntN(4),
			latency:  time.Duration(r.ExpFloat64() * float64(5*time.Millisecond)),
			failed:   r.Float64() < 0.1,
			value:    100 + 20*r.NormFloat64(),
			recordAt: r.IntN(replicas),
		}
	}
	return evs
}

func (ev trafficEvent) record(t *testing.T, tr *Tracker) {
	t.Helper()
	switch ev.kind {
	case 0:
		require.NoError(t, tr.ObserveRequest(ev.variant, ev.latency, ev.failed))
	case 1:
		require.NoError(t, tr.Expose(ev.variant))
	case 2:
		require.NoError(t, tr.Convert(ev.variant))
	default:
		require.NoError(t, tr.Observe(ev.variant, ev.value))
	}
}

func requireSameStats(t *testing.T, want, got []VariantStats) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		w, g := want[i], got[i]
		requireSameSample(t, w.Metric, g.Metric)
		require.InDelta(t, w.MetricLow, g.MetricLow, 1e-6)
		require.InDelta(t, w.MetricHigh, g.MetricHigh, 1e-6)
		w.Metric, g.Metric = Sample{}, Sample{}
		w.MetricLow, w.MetricHigh, g.MetricLow, g.MetricHigh = 0, 0, 0, 0
		require.Equal(t, w, g)
	}
}

// Three replicas' trackers pooled read exactly what one tracker fed every
// event reads, also for events recorded after the pool was read.
func TestTrackerPooledEqualsOneTrackerOfEverything(t *testing.T) {
	variants := []string{"control", "treat"}
	r := rand.New(rand.NewPCG(3, 4))
	all := mustTracker(t, "exp", variants...)
	reps := []*Tracker{mustTracker(t, "exp", variants...), mustTracker(t, "exp", variants...), mustTracker(t, "exp", "control", "treat", "extra")}
	for _, ev := range randomTraffic(r, 6000, 3, variants) {
		ev.record(t, all)
		ev.record(t, reps[ev.recordAt])
	}
	require.NotEqual(t, all.Stats(), reps[0].Stats(), "each replica saw a part")

	var pooled Totals
	bases := make([]Totals, len(reps))
	for i, tr := range reps {
		bases[i] = tr.Totals()
		pooled = pooled.Merge(bases[i])
	}
	require.NoError(t, reps[0].SetPooled(pooled, bases[0]))
	requireSameStats(t, all.Stats(), reps[0].Stats())

	// Recorded after the pool was read: shows at once on the replica.
	for _, ev := range randomTraffic(r, 500, 1, variants) {
		ev.record(t, all)
		ev.record(t, reps[0])
	}
	requireSameStats(t, all.Stats(), reps[0].Stats())
	c, err := reps[0].Variant("treat")
	require.NoError(t, err)
	require.Equal(t, all.Stats()[1].Requests, c.Requests)
	srmAll, err := all.SRM([]Variant{{"control", 1}, {"treat", 1}})
	require.NoError(t, err)
	srmRep, err := reps[0].SRM([]Variant{{"control", 1}, {"treat", 1}})
	require.NoError(t, err)
	require.Equal(t, srmAll.Observed, srmRep.Observed)

	// Totals stay this replica's own: they never include the pool.
	own := reps[0].Totals()
	require.Less(t, own.Counters["requests/treat"], all.Totals().Counters["requests/treat"])

	// The Prometheus series stay this replica's own too.
	mfs := metricstest.Gather(t, reps[0].Collector(prometheus.Labels{"replica": "r0"}))
	for _, mf := range mfs {
		if mf.GetName() != "quiver_abtest_requests_total" {
			continue
		}
		var n float64
		for _, m := range mf.GetMetric() {
			n += m.GetCounter().GetValue()
		}
		require.Equal(t, float64(own.Counters["requests/control"]+own.Counters["requests/treat"]), n)
	}

	// Empty pool and base: back to local numbers.
	require.NoError(t, reps[1].SetPooled(Totals{}, Totals{}))
	fresh := mustTracker(t, "exp", variants...)
	require.NoError(t, fresh.SetPooled(bases[1], Totals{}))
	requireSameStats(t, fresh.Stats(), reps[1].Stats())
}

func TestTrackerTotalsNames(t *testing.T) {
	tr := mustTracker(t, "exp", "a/b", "c")
	require.NoError(t, tr.ObserveRequest("a/b", 20*time.Nanosecond, true))
	require.NoError(t, tr.ObserveRequest("a/b", 3*time.Nanosecond, false))
	require.NoError(t, tr.Expose("c"))
	require.NoError(t, tr.Convert("c"))
	require.NoError(t, tr.Observe("c", 4))
	require.NoError(t, tr.Observe("c", 6))
	got := tr.Totals()
	b20 := strconv.Itoa(latency.Bucket(20 * time.Nanosecond))
	require.Equal(t, "20", b20, "below 32ns every nanosecond has a bucket")
	require.Equal(t, map[string]uint64{
		"requests/a/b": 2, "errors/a/b": 1, "latency_ns/a/b": 23,
		"latency/3/a/b": 1, "latency/" + b20 + "/a/b": 1,
		"exposures/c": 1, "conversions/c": 1,
	}, got.Counters)
	require.Equal(t, map[string]Moments{"metric/c": {N: 2, Mean: 5, M2: 2}}, got.Moments)
}

func TestSetPooledBadInputLeavesState(t *testing.T) {
	tr := mustTracker(t, "exp", "a", "b")
	require.NoError(t, tr.ObserveRequest("a", time.Millisecond, false))
	before := tr.Stats()
	bad := Totals{Moments: map[string]Moments{"metric/a": {N: 1, Mean: math.NaN()}}}
	require.ErrorIs(t, tr.SetPooled(bad, Totals{}), ErrTotals)
	require.ErrorIs(t, tr.SetPooled(Totals{}, bad), ErrTotals)
	require.Equal(t, before, tr.Stats())

	// Names the tracker does not know are ignored.
	require.NoError(t, tr.SetPooled(Totals{Counters: map[string]uint64{
		"requests/zz": 5, "nonsense": 1, "latency/x/a": 3, "latency/99999/a": 3, "latency/-1/a": 1, "latency/3": 1,
	}, Moments: map[string]Moments{"metric/zz": {N: 1, Mean: 1}, "metric": {N: 1, Mean: 1}}}, Totals{}))
	require.Equal(t, before, tr.Stats())

	b, err := NewThompsonBeta(arms3, BanditOptions{})
	require.NoError(t, err)
	require.NoError(t, b.Update("a", 1))
	bs := b.Stats()
	require.ErrorIs(t, b.SetPooled(Totals{Moments: map[string]Moments{"arm/a": {N: 1, Mean: 2}}}, Totals{}), ErrTotals)
	require.ErrorIs(t, b.SetPooled(Totals{Moments: map[string]Moments{"arm/a": {N: 2, M2: -1}}}, Totals{}), ErrTotals)
	require.Equal(t, bs, b.Stats())
}

func TestBanditPooled(t *testing.T) {
	for _, bc := range banditCases() {
		t.Run(bc.name, func(t *testing.T) {
			env := rand.New(rand.NewPCG(5, 6))
			all, err := bc.new(1)
			require.NoError(t, err)
			reps := make([]Bandit, 3)
			for i := range reps {
				reps[i], err = bc.new(uint64(i + 10))
				require.NoError(t, err)
			}
			for i := range 900 {
				arm := arms3[i%3]
				rew := bc.reward(env, i%3)
				require.NoError(t, all.Update(arm, rew))
				require.NoError(t, reps[env.IntN(3)].Update(arm, rew))
			}
			var pooled Totals
			bases := make([]Totals, 3)
			for i, b := range reps {
				bases[i] = b.(Poolable).Totals()
				pooled = pooled.Merge(bases[i])
			}
			require.NoError(t, reps[0].(Poolable).SetPooled(pooled, bases[0]))
			requireSameArms(t, all.Stats(), reps[0].Stats())
			require.NoError(t, all.Update("b", 1))
			require.NoError(t, reps[0].Update("b", 1))
			requireSameArms(t, all.Stats(), reps[0].Stats())

			// Snapshot holds this replica's own rewards; Restore drops the pool.
			snap, err := reps[0].Snapshot()
			require.NoError(t, err)
			require.NoError(t, reps[0].Restore(snap))
			var own uint64
			for _, s := range reps[0].Stats() {
				own += s.Pulls
			}
			require.Equal(t, bases[0].Moments["arm/a"].N+bases[0].Moments["arm/b"].N+bases[0].Moments["arm/c"].N+1, own)
		})
	}
}

func requireSameArms(t *testing.T, want, got []ArmStats) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i].Arm, got[i].Arm)
		require.Equal(t, want[i].Pulls, got[i].Pulls)
		require.InDelta(t, want[i].Mean, got[i].Mean, 1e-9)
		require.InDelta(t, want[i].Variance, got[i].Variance, 1e-9)
	}
}

// A greedy replica that saw arm a win locally follows the pool, where c wins.
func TestBanditSelectsFromPool(t *testing.T) {
	b, err := NewEpsilonGreedy(arms3, BanditOptions{Epsilon: -1})
	require.NoError(t, err)
	for _, arm := range arms3 {
		require.NoError(t, b.Update(arm, 0))
	}
	require.NoError(t, b.Update("a", 1))
	require.Equal(t, "a", b.Select())
	base := b.Totals()
	pooled := base.Merge(Totals{Moments: map[string]Moments{"arm/c": {N: 100, Mean: 0.9, M2: 9}}})
	require.NoError(t, b.SetPooled(pooled, base))
	require.Equal(t, "c", b.Select())
	st := b.Stats()
	require.Equal(t, uint64(101), st[2].Pulls)
	require.InDelta(t, 0.9*100/101, st[2].Mean, 1e-12)
}

func TestExperimentStopInfoAndWatch(t *testing.T) {
	e := mustExperiment(t, Config{Name: "w", Variants: []Variant{{"canary", 10}, {"control", 90}}, Control: "control"})
	var got []Change
	cancel := e.Watch(func(c Change) { got = append(got, c) })
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

	require.NoError(t, e.StopWith("canary", StopInfo{Reason: "error_rate", Time: at}))
	info, stopped := e.StopInfo("canary")
	require.True(t, stopped)
	require.Equal(t, StopInfo{Reason: "error_rate", Time: at}, info)
	require.NoError(t, e.Stop("canary"), "stopping a stopped variant is a no-op")
	info, _ = e.StopInfo("canary")
	require.Equal(t, "error_rate", info.Reason, "the first reason is kept")
	require.NoError(t, e.Resume("control"), "resuming a running variant is a no-op")
	require.Equal(t, []Change{{Experiment: "w", Variant: "canary", Stopped: true, Info: StopInfo{Reason: "error_rate", Time: at}, Seq: 1}}, got)

	require.NoError(t, e.Resume("canary"))
	_, stopped = e.StopInfo("canary")
	require.False(t, stopped)
	require.Len(t, got, 2)
	require.False(t, got[1].Stopped)
	require.Equal(t, uint64(2), got[1].Seq)
	require.Equal(t, StopReasonManual, got[1].Info.Reason)
	require.False(t, got[1].Info.Time.IsZero())

	// A change from another replica.
	require.NoError(t, e.ApplyChange(Change{Variant: "canary", Stopped: true, Info: StopInfo{Reason: "p99_latency", Time: at, Replica: "r2"}, Seq: 99, Experiment: "ignored"}))
	require.Equal(t, Change{Experiment: "w", Variant: "canary", Stopped: true, Info: StopInfo{Reason: "p99_latency", Time: at, Replica: "r2"}, Seq: 3, Remote: true}, got[2])
	require.Equal(t, 0.0, e.Weights()[0].Weight)
	require.ErrorIs(t, e.SetWeights(map[string]float64{"canary": 5}), ErrStopped)
	err := e.ApplyChange(Change{Variant: "control", Stopped: true})
	require.ErrorIs(t, err, ErrWeights, "the last variant with traffic")
	require.ErrorIs(t, e.ApplyChange(Change{Variant: "nope"}), ErrUnknownVariant)
	_, stopped = e.StopInfo("nope")
	require.False(t, stopped)
	require.Len(t, got, 3, "failed changes are not reported")

	cancel()
	require.NoError(t, e.Resume("canary"))
	require.Len(t, got, 3, "cancelled")
}

func TestGuardrailRecordsReasonOnExperiment(t *testing.T) {
	e := canaryExperiment(t)
	tr := mustTracker(t, "canary", "canary", "control")
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	g, err := NewGuardrail(e, tr, GuardrailOptions{Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	changes := make(chan Change, 1)
	e.Watch(func(c Change) { changes <- c })
	feed(t, tr, "control", 2000, 20, time.Millisecond)
	feed(t, tr, "canary", 1000, 50, time.Millisecond)
	require.Len(t, g.Check(), 1)
	info, stopped := e.StopInfo("canary")
	require.True(t, stopped)
	require.Equal(t, StopInfo{Reason: "error_rate", Time: now}, info)
	c := <-changes
	require.True(t, c.Stopped)
	require.False(t, c.Remote)
}
