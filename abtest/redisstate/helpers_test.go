package redisstate

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/abtest"
	"github.com/quiverml/quiver/internal/logtest"
)

var variants = []string{"control", "canary"}

// quietRedis drops go-redis's own log lines (a refused dial per failed
// flush while a test has Redis down).
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quietRedis{})
	os.Exit(m.Run())
}

// replica is one service replica: its own client, Sync, tracker, bandit
// and experiment.
type replica struct {
	id  string
	rdb *redis.Client
	s   *Sync
	tr  *abtest.Tracker
	b   *abtest.ThompsonBeta
	e   *abtest.Experiment
	log *logtest.Recorder
}

func newClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	// No retries: a dead server (connection refused) fails a flush at once; the
	// timeouts are long for a busy machine.
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 5 * time.Second,
		DialerRetries: 1, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newReplica(t testing.TB, addr, id string, opts Options) *replica {
	t.Helper()
	r := &replica{id: id, rdb: newClient(t, addr), log: &logtest.Recorder{}}
	opts.ReplicaID = id
	if opts.Logger == nil {
		opts.Logger = slog.New(r.log)
	}
	var err error
	r.s, err = New(r.rdb, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.s.Close() })
	r.tr, err = abtest.NewTracker("exp", variants)
	require.NoError(t, err)
	r.b, err = abtest.NewThompsonBeta([]string{"a", "b", "c"}, abtest.BanditOptions{Seed: uint64(len(id)) * 7919})
	require.NoError(t, err)
	r.e, err = abtest.NewExperiment(abtest.Config{Name: "exp", Variants: []abtest.Variant{{Name: "canary", Weight: 10}, {Name: "control", Weight: 90}}, Control: "control"})
	require.NoError(t, err)
	require.NoError(t, r.s.Tracker(r.tr))
	require.NoError(t, r.s.Bandit("ranker", r.b))
	require.NoError(t, r.s.Experiment(r.e))
	return r
}

func newReplicas(t testing.TB, addr string, n int, opts Options) []*replica {
	t.Helper()
	rs := make([]*replica, n)
	for i := range rs {
		rs[i] = newReplica(t, addr, "r"+string(rune('1'+i)), opts)
	}
	return rs
}

// event is one thing some replica records; apply records it on a tracker
// and a bandit.
type event struct {
	replica int
	variant string
	kind    int
	latency time.Duration
	failed  bool
	value   float64
	arm     string
	reward  float64
}

func randomEvents(r *rand.Rand, n, replicas int) []event {
	evs := make([]event, n)
	for i := range evs {
		evs[i] = event{
			replica: r.IntN(replicas),
			variant: variants[r.IntN(len(variants))],
			kind:    r.IntN(5),
			latency: time.Duration(r.ExpFloat64() * float64(3*time.Millisecond)),
			failed:  r.Float64() < 0.05,
			value:   50 + 10*r.NormFloat64(),
			arm:     []string{"a", "b", "c"}[r.IntN(3)],
			reward:  float64(r.IntN(2)),
		}
	}
	return evs
}

func (ev event) apply(t testing.TB, tr *abtest.Tracker, b abtest.Bandit) {
	switch ev.kind {
	case 0:
		require.NoError(t, tr.ObserveRequest(ev.variant, ev.latency, ev.failed))
	case 1:
		require.NoError(t, tr.Expose(ev.variant))
	case 2:
		require.NoError(t, tr.Convert(ev.variant))
	case 3:
		require.NoError(t, tr.Observe(ev.variant, ev.value))
	default:
		require.NoError(t, b.Update(ev.arm, ev.reward))
	}
}

// reference is one tracker and bandit fed every event: what pooled
// replicas must read.
type reference struct {
	tr *abtest.Tracker
	b  *abtest.ThompsonBeta
}

func newReference(t testing.TB) reference {
	tr, err := abtest.NewTracker("exp", variants)
	require.NoError(t, err)
	b, err := abtest.NewThompsonBeta([]string{"a", "b", "c"}, abtest.BanditOptions{})
	require.NoError(t, err)
	return reference{tr, b}
}

// feed records evs on the reference and on their replicas.
func feed(t testing.TB, ref reference, rs []*replica, evs []event) {
	for _, ev := range evs {
		ev.apply(t, ref.tr, ref.b)
		ev.apply(t, rs[ev.replica].tr, rs[ev.replica].b)
	}
}

// matches reports whether r reads exactly what ref reads: counters and
// latency quantiles equal, means and variances equal to rounding.
func matches(ref reference, r *replica) bool {
	want, got := ref.tr.Stats(), r.tr.Stats()
	for i := range want {
		w, g := want[i], got[i]
		if !closeSample(w.Metric, g.Metric) {
			return false
		}
		w.Metric, g.Metric = abtest.Sample{}, abtest.Sample{}
		w.MetricLow, w.MetricHigh, g.MetricLow, g.MetricHigh = 0, 0, 0, 0
		if w != g {
			return false
		}
	}
	wa, ga := ref.b.Stats(), r.b.Stats()
	for i := range wa {
		if wa[i].Pulls != ga[i].Pulls || !near(wa[i].Mean, ga[i].Mean) || !near(wa[i].Variance, ga[i].Variance) {
			return false
		}
	}
	return true
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(a)) }

func closeSample(a, b abtest.Sample) bool {
	return a.N == b.N && near(a.Mean, b.Mean) && near(a.Variance, b.Variance)
}

// requireMatches fails with both sides' numbers when r does not read
// what ref reads.
func requireMatches(t testing.TB, ref reference, r *replica) {
	t.Helper()
	if !matches(ref, r) {
		require.Equal(t, ref.tr.Stats(), r.tr.Stats(), "replica %s", r.id)
		require.Equal(t, ref.b.Stats(), r.b.Stats(), "replica %s", r.id)
	}
}

// flushAll flushes every replica once, in order, and returns the errors.
func flushAll(ctx context.Context, rs []*replica) []error {
	errs := make([]error, len(rs))
	for i, r := range rs {
		errs[i] = r.s.Flush(ctx)
	}
	return errs
}

// converge flushes every replica until each reads what ref reads, for at
// most rounds rounds (each replica needs its own flush and then, to see
// the others', one more).
func converge(t testing.TB, ctx context.Context, ref reference, rs []*replica, rounds int) {
	t.Helper()
	for range rounds {
		for _, err := range flushAll(ctx, rs) {
			require.NoError(t, err)
		}
		all := true
		for _, r := range rs {
			all = all && matches(ref, r)
		}
		if all {
			return
		}
	}
	for _, r := range rs {
		requireMatches(t, ref, r)
	}
}

// faultHook makes a client lose the reply of one exchange after Redis ran
// it, or records one exchange's flush scripts to deliver them again later.
type faultHook struct {
	mu       sync.Mutex
	drop     bool
	record   bool
	nDropped int
	saved    [][]any
}

func (h *faultHook) set(drop, record bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.drop, h.record = drop, record
}

func (h *faultHook) dropped() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nDropped
}

func (h *faultHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *faultHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *faultHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.record {
			h.record = false
			for _, c := range cmds {
				if args := c.Args(); len(args) > 3 && args[0] == "evalsha" && args[1] == flushScript.Hash() {
					h.saved = append(h.saved, append([]any(nil), args...))
				}
			}
		}
		if h.drop && err == nil {
			h.drop = false
			h.nDropped++
			return errors.New("reply lost")
		}
		return err
	}
}

// replay delivers the recorded flush scripts again and returns their replies.
func (h *faultHook) replay(ctx context.Context, t testing.TB, rdb *redis.Client) [][]any {
	t.Helper()
	h.mu.Lock()
	saved := h.saved
	h.mu.Unlock()
	var out [][]any
	for _, args := range saved {
		v, err := rdb.Do(ctx, args...).Slice()
		require.NoError(t, err)
		out = append(out, v)
	}
	return out
}
