//go:build cgo

package quiver_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/quiverml/quiver/abtest"
	"github.com/quiverml/quiver/abtest/redisstate"
	"github.com/quiverml/quiver/internal/logtest"
	"github.com/quiverml/quiver/internal/redistest"
	"github.com/quiverml/quiver/internal/s3test"
	"github.com/quiverml/quiver/registry"
	regs3 "github.com/quiverml/quiver/registry/s3"
	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/onnx"
	"github.com/quiverml/quiver/serving/servingtest"
)

// svcReplica is one replica of a service: its own S3 registry client,
// registry.Server, batchers in front of the "production" and "canary"
// aliases, an experiment routing between them, a bandit, and a Sync
// sharing the experiment's numbers and decisions and the bandit's rewards
// through Redis.
type svcReplica struct {
	id     string
	store  *regs3.Store
	srv    *registry.Server
	exp    *abtest.Experiment
	router *abtest.ModelRouter
	bandit *abtest.ThompsonBeta
	sync   *redisstate.Sync
	log    *logtest.Recorder // what the Sync logs

	mu        sync.Mutex
	versions  map[string]int64        // alias -> version that answered last
	firstSeen map[[2]int64]time.Time  // {version, 0 production / 1 canary} -> first answer
	loadTook  map[int64]time.Duration // version -> fetch + load + warm-up (EventLoaded)
	stoppedAt time.Time               // when the canary's stop took effect here
	firstFail error                   // guarded by mu
	requests  atomic.Int64
	failures  atomic.Int64
}

const (
	replicaPoll  = 100 * time.Millisecond // registry poll and Redis flush interval
	replicaCount = 3
	// boundSlack is what the bound assertions allow on top of the
	// documented bounds for a loaded 2-core machine under -race (goroutine
	// scheduling, the gateway and Redis sharing the cores). The documented
	// bounds are a tenth of a second to a few; the measured times are logged.
	boundSlack = 2 * time.Second
)

// bandit arms and their reward rates; "c" is the best.
var (
	replicaArms  = []string{"a", "b", "c"}
	replicaRates = map[string]float64{"a": 0.04, "b": 0.05, "c": 0.08}
)

func readModel(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(servingtest.ModelPath(name))
	require.NoError(t, err)
	return data
}

func publish(t *testing.T, s *regs3.Store, model string, tag string) int64 {
	t.Helper()
	v, err := s.Publish(context.Background(), "ranker", []registry.File{
		{Name: "model.onnx", Data: readModel(t, model)},
		{Name: "notes.txt", Data: []byte(tag)},
	}, registry.Meta{})
	require.NoError(t, err)
	return v.Number
}

func newSvcReplica(t *testing.T, ctx context.Context, s3 *s3test.Server, redisAddr, id string) *svcReplica {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	r := &svcReplica{id: id, versions: map[string]int64{}, firstSeen: map[[2]int64]time.Time{},
		loadTook: map[int64]time.Duration{}, log: &logtest.Recorder{}}
	var err error
	r.store, err = regs3.Open(ctx, regs3.Options{
		Endpoint: s3.Endpoint, Bucket: s3.Bucket(), Prefix: "models", AccessKey: s3.AccessKey, SecretKey: s3.SecretKey,
		CacheDir: t.TempDir(), Retries: 1, DialTimeout: time.Second, Logger: quiet, Name: id,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.store.Close() })
	r.srv, err = registry.NewServer(r.store, registry.FileLoader("onnx", onnx.Opener(onnx.Options{})), registry.ServerOptions{
		PollInterval: replicaPoll, RetryAfter: replicaPoll, Logger: quiet, Name: id, EventBuffer: 1024,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.srv.Close() })
	go func() { // ends when Close closes the channel
		for ev := range r.srv.Events() {
			if ev.Kind == registry.EventLoaded {
				r.mu.Lock()
				r.loadTook[ev.Version] = ev.Took
				r.mu.Unlock()
			}
		}
	}()
	require.NoError(t, r.srv.Start(ctx))

	models := map[string]serving.Model{}
	for variant, alias := range map[string]string{"control": "production", "canary": "canary"} {
		h, err := r.srv.Model("ranker", alias)
		require.NoError(t, err)
		b, err := serving.NewBatcher(h, serving.BatcherOptions{MaxQueueDelay: -1, Logger: quiet})
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		models[variant] = b
	}
	r.exp, err = abtest.NewExperiment(abtest.Config{Name: "ranker-canary", Control: "control",
		Variants: []abtest.Variant{{Name: "canary", Weight: 20}, {Name: "control", Weight: 80}}})
	require.NoError(t, err)
	r.router, err = abtest.NewRouter(r.exp, models, abtest.RouterOptions{Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.router.Close() })

	rdb := redis.NewClient(&redis.Options{Addr: redisAddr, MaxRetries: -1, DialTimeout: 5 * time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	r.sync, err = redisstate.New(rdb, redisstate.Options{ReplicaID: id, FlushInterval: replicaPoll, Logger: slog.New(r.log)})
	require.NoError(t, err)
	require.NoError(t, r.sync.Tracker(r.router.Tracker()))
	require.NoError(t, r.sync.Experiment(r.exp))
	r.bandit, err = abtest.NewThompsonBeta(replicaArms, abtest.BanditOptions{Seed: uint64(len(id)) + uint64(id[len(id)-1])})
	require.NoError(t, err)
	require.NoError(t, r.sync.Bandit("ranker-arms", r.bandit))
	r.exp.Watch(func(c abtest.Change) {
		if c.Variant == "canary" && c.Stopped {
			r.mu.Lock()
			if r.stoppedAt.IsZero() {
				r.stoppedAt = time.Now()
			}
			r.mu.Unlock()
		}
	})
	return r
}

// predict sends one request for a random user and records the versions
// that answered and any failure.
func (r *svcReplica) predict(ctx context.Context, rng *rand.Rand) {
	x := make([]float32, 16)
	for i := range x {
		x[i] = rng.Float32()
	}
	hctx := registry.WithServedHook(ctx, func(s registry.Served) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.versions[s.Alias] = s.Version
		k := [2]int64{s.Version, 0}
		if s.Alias == "canary" {
			k[1] = 1
		}
		if _, ok := r.firstSeen[k]; !ok {
			r.firstSeen[k] = time.Now()
		}
	})
	_, err := r.router.Predict(hctx, abtest.Request{
		Unit:   fmt.Sprintf("user-%d", rng.IntN(1_000_000)),
		Inputs: map[string]serving.Tensor{"x": serving.NewTensor([]int64{1, 16}, x)},
	})
	r.requests.Add(1)
	if err != nil {
		r.failures.Add(1)
		r.mu.Lock()
		if r.firstFail == nil {
			r.firstFail = err
		}
		r.mu.Unlock()
	}
}

func (r *svcReplica) version(alias string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.versions[alias]
}

// pooledRequests is the requests of every variant as this replica's
// tracker reports them: pooled across replicas through Redis.
func (r *svcReplica) pooledRequests() uint64 {
	var n uint64
	for _, v := range r.router.Tracker().Stats() {
		n += v.Requests
	}
	return n
}

// ownRequests is the requests this replica served itself.
func (r *svcReplica) ownRequests() uint64 {
	tot := r.router.Tracker().Totals()
	return tot.Counters["requests/canary"] + tot.Counters["requests/control"]
}

// checkMoveBound asserts that production answered with version on every
// replica within the documented bound of an alias move: the registry's
// PollInterval plus fetching, loading and warming the version (measured
// by the Server), plus boundSlack.
func checkMoveBound(t *testing.T, rs []*svcReplica, version int64, moved time.Time) {
	t.Helper()
	for _, r := range rs {
		r.mu.Lock()
		seen, took := r.firstSeen[[2]int64{version, 0}].Sub(moved), r.loadTook[version]
		r.mu.Unlock()
		require.NotZero(t, took, "%s: the Server reported loading version %d", r.id, version)
		bound := replicaPoll + took
		t.Logf("%s: production answered with version %d %v after the alias move (bound: poll %v + fetch/load/warm-up %v)",
			r.id, version, seen.Round(time.Millisecond), replicaPoll, took.Round(time.Millisecond))
		require.Less(t, seen, bound+boundSlack, "%s: version %d served beyond the bound", r.id, version)
	}
}

// flushAll flushes every replica's Sync twice: after the second round,
// every replica's pooled numbers hold everything recorded before it.
func flushAll(t *testing.T, ctx context.Context, rs []*svcReplica) {
	t.Helper()
	for range 2 {
		for _, r := range rs {
			require.NoError(t, r.sync.Flush(ctx))
		}
	}
}

// waitUntil polls cond, which depends on other goroutines' timers (the
// registry's poll, the Sync's flush), until it holds or the deadline
// passes, and returns how long it took.
func waitUntil(t *testing.T, deadline time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > deadline {
			t.Fatalf("%s: not within %v", what, deadline)
		}
		time.Sleep(10 * time.Millisecond) // polling timer-driven work of other goroutines
	}
	return time.Since(start)
}

// startLoad runs two callers per replica until the returned function is
// called, which waits for them.
func startLoad(ctx context.Context, rs []*svcReplica, seed uint64) (stop func()) {
	done := make(chan struct{})
	var load sync.WaitGroup
	for i, r := range rs {
		for k := range 2 {
			load.Go(func() {
				rng := rand.New(rand.NewPCG(seed+uint64(i), uint64(k)))
				for {
					select {
					case <-done:
						return
					default:
						r.predict(ctx, rng)
					}
				}
			})
		}
	}
	return func() {
		close(done)
		load.Wait()
	}
}

// requireNoFailures asserts that no replica's request failed since the
// failure counts in before.
func requireNoFailures(t *testing.T, rs []*svcReplica, before []int64, when string) {
	t.Helper()
	for i, r := range rs {
		r.mu.Lock()
		first := r.firstFail
		r.mu.Unlock()
		require.Equal(t, before[i], r.failures.Load(), "%s: failed requests %s: first %v", r.id, when, first)
	}
}

// moreRequests waits until every replica answered n more requests.
func moreRequests(t *testing.T, rs []*svcReplica, n int64, what string) {
	t.Helper()
	from := make([]int64, len(rs))
	for i, r := range rs {
		from[i] = r.requests.Load()
	}
	waitUntil(t, 60*time.Second, what, func() bool {
		for i, r := range rs {
			if r.requests.Load() < from[i]+n {
				return false
			}
		}
		return true
	})
}

// TestReplicasShareRegistryAndExperiments runs three replicas of a
// service against one S3 bucket and one Redis, under load:
//  1. a version published and promoted through replica 1's registry
//     client is served by all three within the documented bound, with no
//     failed request during the move;
//  2. a canary that fails every request is stopped by replica 1's
//     guardrail, judging the numbers of all three, and the stop reaches
//     all three within the documented bound, after which no request fails;
//  3. bandits fed rewards on all three hold, at every flush, the posterior
//     of one bandit fed every reward;
//  4. Redis dies: every replica logs it once, keeps serving and counting
//     locally, and shares again, exactly, when Redis returns (empty);
//  5. the S3 server dies: every replica keeps serving what it has,
//     publishes and alias moves fail with regs3.ErrUnavailable, and after
//     the restart a new version is published, promoted and served by all
//     three within the bound.
func TestReplicasShareRegistryAndExperiments(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s3 := s3test.Start(t, s3test.Options{})
	rd := redistest.Start(t, redistest.Options{})

	ci, err := regs3.Open(ctx, regs3.Options{Endpoint: s3.Endpoint, Bucket: s3.Bucket(), Prefix: "models",
		AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, CacheDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ci.Close() })
	require.Equal(t, int64(1), publish(t, ci, "mlp", "one"))
	require.Equal(t, int64(2), publish(t, ci, "mlp", "two"))
	require.NoError(t, ci.SetAlias(ctx, "ranker", "production", 1))
	require.NoError(t, ci.SetAlias(ctx, "ranker", "canary", 2))

	rs := make([]*svcReplica, replicaCount)
	var loops errgroup.Group
	for i := range rs {
		rs[i] = newSvcReplica(t, ctx, s3, rd.Addr, fmt.Sprintf("replica-%d", i+1))
		loops.Go(func() error { return rs[i].sync.Run(ctx) })
	}
	t.Cleanup(func() {
		for _, r := range rs {
			_ = r.sync.Close()
		}
		_ = loops.Wait()
	})
	for _, r := range rs {
		waitUntil(t, 60*time.Second, r.id+" serving both aliases", func() bool {
			p, ok1 := r.srv.Current("ranker", "production")
			c, ok2 := r.srv.Current("ranker", "canary")
			return ok1 && ok2 && p.Number == 1 && c.Number == 2
		})
	}
	noFailures := make([]int64, len(rs))

	// Load: two callers per replica until stopLoad.
	stopLoad := startLoad(ctx, rs, 0)
	waitUntil(t, 30*time.Second, "load on every replica", func() bool {
		for _, r := range rs {
			if r.version("production") != 1 || r.requests.Load() < 50 {
				return false
			}
		}
		return true
	})

	// Phase 1: replica 1 publishes version 3 and promotes it.
	require.Equal(t, int64(3), publish(t, rs[0].store, "mlp", "three"))
	moved := time.Now()
	require.NoError(t, rs[0].store.SetAlias(ctx, "ranker", "production", 3))
	waitUntil(t, 60*time.Second, "production version 3 answering on every replica", func() bool {
		for _, r := range rs {
			if r.version("production") != 3 {
				return false
			}
		}
		return true
	})
	checkMoveBound(t, rs, 3, moved)
	requireNoFailures(t, rs, noFailures, "during the move")
	for _, r := range rs {
		require.Greater(t, r.requests.Load(), int64(100), r.id)
	}

	// Phase 2: replica 2 points the canary at a version whose model wants
	// 64 inputs, not 16: every canary request fails. Replica 1's guardrail
	// judges the pooled numbers of all three replicas.
	guard, err := abtest.NewGuardrail(rs[0].exp, rs[0].router.Tracker(), abtest.GuardrailOptions{
		MinRequests: 100, MaxP99Ratio: -1, Logger: slog.New(slog.DiscardHandler)}) // latency is noise on a shared machine
	require.NoError(t, err)
	gctx, gstop := context.WithCancel(ctx)
	gdone := make(chan error, 1)
	go func() { gdone <- guard.Run(gctx, replicaPoll) }()
	require.Equal(t, int64(4), publish(t, rs[1].store, "bench_mlp", "broken"))
	// The move breaks callers, which the registry refuses unless forced:
	// the guardrail is the net under a forced mistake.
	require.ErrorIs(t, rs[1].store.SetAlias(ctx, "ranker", "canary", 4), registry.ErrIncompatible)
	require.NoError(t, rs[1].store.SetAlias(ctx, "ranker", "canary", 4, registry.MoveOptions{Force: true}))
	waitUntil(t, 60*time.Second, "the guardrail on replica 1 stopping the canary", func() bool {
		return len(guard.Decisions()) > 0
	})
	d := guard.Decisions()[0]
	require.Equal(t, "canary", d.Variant)
	require.Equal(t, "error_rate", d.Reason)
	waitUntil(t, 30*time.Second, "the stop on every replica", func() bool {
		for _, r := range rs {
			if !r.exp.Stopped("canary") {
				return false
			}
		}
		return true
	})
	gstop()
	<-gdone
	// The documented bound: written at once, applied by every other
	// replica at its next flush, within FlushInterval + 2 round trips.
	for _, r := range rs {
		r.mu.Lock()
		took := r.stoppedAt.Sub(d.Time)
		r.mu.Unlock()
		t.Logf("%s: canary stopped %v after replica 1's decision (flush interval %v)", r.id, took.Round(time.Millisecond), replicaPoll)
		require.Less(t, took, replicaPoll+boundSlack, "%s: the stop arrived beyond the bound", r.id)
	}
	t.Logf("stop decided on replica 1 from %d canary requests of all replicas", d.VariantRequests)
	var local uint64
	for _, r := range rs {
		local += r.router.Tracker().Totals().Counters["requests/canary"]
		info, _ := r.exp.StopInfo("canary")
		require.Equal(t, "error_rate", info.Reason)
		if r != rs[0] {
			require.Equal(t, "replica-1", info.Replica)
		}
	}
	require.Greater(t, local, d.VariantRequests/2, "the decision counted requests of every replica")
	// After the stop reached everyone, nothing fails.
	for i, r := range rs {
		noFailures[i] = r.failures.Load()
	}
	moreRequests(t, rs, 200, "more load after the stop")
	stopLoad()
	requireNoFailures(t, rs, noFailures, "after the stop")

	// Phase 3: a bandit on each replica, each fed a third of the rewards.
	// At every flush, every replica's posterior is the one of a bandit fed
	// every reward (TestBanditPooledConvergesLikeOneReplica in
	// abtest/redisstate measures what that buys: the best arm found as
	// reliably as by one replica fed everything).
	one, err := abtest.NewThompsonBeta(replicaArms, abtest.BanditOptions{Seed: 1})
	require.NoError(t, err)
	env := rand.New(rand.NewPCG(21, 22))
	for round := range 60 {
		for _, r := range rs {
			arm := r.bandit.Select()
			reward := 0.0
			if env.Float64() < replicaRates[arm] {
				reward = 1
			}
			require.NoError(t, r.bandit.Update(arm, reward))
			require.NoError(t, one.Update(arm, reward))
		}
		if (round+1)%10 != 0 {
			continue
		}
		flushAll(t, ctx, rs)
		want := one.Stats()
		for _, r := range rs {
			got := r.bandit.Stats()
			require.Len(t, got, len(want))
			for k := range want {
				require.Equal(t, want[k].Arm, got[k].Arm)
				require.Equal(t, want[k].Pulls, got[k].Pulls, "%s, round %d: arm %s", r.id, round, want[k].Arm)
				require.InDelta(t, want[k].Mean, got[k].Mean, 1e-9, "%s, round %d: arm %s", r.id, round, want[k].Arm)
			}
		}
	}

	// Phase 4: Redis dies. Every replica logs it once, keeps serving and
	// reads the last pooled numbers plus its own; when Redis returns
	// (empty: no persistence), they share again and converge exactly.
	flushAll(t, ctx, rs)
	pooled0 := rs[0].pooledRequests()
	for _, r := range rs {
		require.Equal(t, pooled0, r.pooledRequests(), r.id)
	}
	rd.Kill()
	waitUntil(t, 30*time.Second, "every replica logging the Redis outage", func() bool {
		for _, r := range rs {
			if r.log.Count(slog.LevelWarn, "redis unavailable") == 0 {
				return false
			}
		}
		return true
	})
	rng := rand.New(rand.NewPCG(31, 32))
	for i, r := range rs {
		for range 50 * (i + 1) {
			r.predict(ctx, rng)
		}
		require.ErrorIs(t, r.sync.Err(), redisstate.ErrRedis, r.id)
		require.Equal(t, pooled0+uint64(50*(i+1)), r.pooledRequests(),
			"%s: during the outage, the last pooled numbers plus its own", r.id)
	}
	requireNoFailures(t, rs, noFailures, "while Redis is down")
	rd.Restart()
	want := pooled0 + 50 + 100 + 150
	took := waitUntil(t, 30*time.Second, "every replica sharing again", func() bool {
		for _, r := range rs {
			if r.pooledRequests() != want || r.log.Count(slog.LevelInfo, "available again") == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("after Redis returned, every replica held every replica's outage traffic %v later", took.Round(time.Millisecond))
	for _, r := range rs {
		require.Equal(t, 1, r.log.Count(slog.LevelWarn, "redis unavailable"), "%s: the outage is logged once", r.id)
		require.NoError(t, r.sync.Err(), r.id)
		require.True(t, r.exp.Stopped("canary"), "%s: the stop outlives Redis losing its data", r.id)
	}

	// Phase 5: the S3 server dies under load. Replicas keep serving from
	// what they hold; writes fail with a typed error; after the restart a
	// publish and a move made through replica 3 reach all three.
	stopLoad = startLoad(ctx, rs, 100)
	moreRequests(t, rs, 50, "load before the S3 outage")
	s3.Kill()
	waitUntil(t, 30*time.Second, "every registry client noticing the outage", func() bool {
		for _, r := range rs {
			if !r.store.Stats().Offline {
				return false
			}
		}
		return true
	})
	_, err = rs[2].store.Publish(ctx, "ranker", []registry.File{{Name: "model.onnx", Data: readModel(t, "mlp")}}, registry.Meta{})
	require.ErrorIs(t, err, regs3.ErrUnavailable)
	require.ErrorIs(t, rs[2].store.SetAlias(ctx, "ranker", "production", 2), regs3.ErrUnavailable)
	moreRequests(t, rs, 200, "serving while S3 is down")
	requireNoFailures(t, rs, noFailures, "while S3 is down")
	for _, r := range rs {
		require.Equal(t, int64(3), r.version("production"), r.id)
	}
	s3.Restart()
	require.Equal(t, int64(5), publish(t, rs[2].store, "mlp", "five"), "the failed publish took no number")
	moved = time.Now()
	require.NoError(t, rs[2].store.SetAlias(ctx, "ranker", "production", 5))
	waitUntil(t, 60*time.Second, "production version 5 answering on every replica", func() bool {
		for _, r := range rs {
			if r.version("production") != 5 {
				return false
			}
		}
		return true
	})
	checkMoveBound(t, rs, 5, moved)
	stopLoad()
	requireNoFailures(t, rs, noFailures, "after S3 returned")
	for _, r := range rs {
		require.False(t, r.store.Stats().Offline, r.id)
	}

	// The pooled tracker of every replica holds every replica's requests.
	flushAll(t, ctx, rs)
	var total uint64
	for _, r := range rs {
		total += r.ownRequests()
	}
	for _, r := range rs {
		require.Equal(t, total, r.pooledRequests(), r.id)
	}
}
