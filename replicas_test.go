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
// aliases, an experiment routing between them, and a Sync sharing the
// experiment's numbers and decisions through Redis.
type svcReplica struct {
	id     string
	store  *regs3.Store
	srv    *registry.Server
	exp    *abtest.Experiment
	router *abtest.ModelRouter
	sync   *redisstate.Sync

	mu        sync.Mutex
	versions  map[string]int64 // alias -> version that answered last
	sawProd3  time.Time        // when production first answered with version 3
	firstFail error            // guarded by mu
	requests  atomic.Int64
	failures  atomic.Int64
}

const (
	replicaPoll  = 100 * time.Millisecond // registry poll and Redis flush interval
	replicaCount = 3
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
	r := &svcReplica{id: id, versions: map[string]int64{}}
	var err error
	r.store, err = regs3.Open(ctx, regs3.Options{
		Endpoint: s3.Endpoint, Bucket: s3.Bucket(), Prefix: "models", AccessKey: s3.AccessKey, SecretKey: s3.SecretKey,
		CacheDir: t.TempDir(), Retries: 1, DialTimeout: time.Second, Logger: quiet, Name: id,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.store.Close() })
	r.srv, err = registry.NewServer(r.store, registry.FileLoader("onnx", onnx.Opener(onnx.Options{})), registry.ServerOptions{
		PollInterval: replicaPoll, RetryAfter: replicaPoll, Logger: quiet, Name: id,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.srv.Close() })
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
	r.sync, err = redisstate.New(rdb, redisstate.Options{ReplicaID: id, FlushInterval: replicaPoll, Logger: quiet})
	require.NoError(t, err)
	require.NoError(t, r.sync.Tracker(r.router.Tracker()))
	require.NoError(t, r.sync.Experiment(r.exp))
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
		if s.Alias == "production" && s.Version == 3 && r.sawProd3.IsZero() {
			r.sawProd3 = time.Now()
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

// TestReplicasShareRegistryAndExperiments runs three replicas of a
// service against one S3 bucket and one Redis, under load: a version
// published and promoted through replica 1's registry client is served by
// all three with no failed request during the move; then a canary that
// fails every request is stopped by replica 1's guardrail, judging the
// numbers of all three, and the stop reaches all three, after which no
// request fails.
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

	// Load: two callers per replica until stop.
	stop := make(chan struct{})
	var load sync.WaitGroup
	for i, r := range rs {
		for k := range 2 {
			load.Add(1)
			go func() {
				defer load.Done()
				rng := rand.New(rand.NewPCG(uint64(i), uint64(k)))
				for {
					select {
					case <-stop:
						return
					default:
						r.predict(ctx, rng)
					}
				}
			}()
		}
	}
	stopLoad := func() {
		close(stop)
		load.Wait()
	}
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
	for _, r := range rs {
		r.mu.Lock()
		t.Logf("%s: production answered with version 3 %v after the alias move began (registry poll %v)",
			r.id, r.sawProd3.Sub(moved).Round(time.Millisecond), replicaPoll)
		r.mu.Unlock()
	}
	for _, r := range rs {
		r.mu.Lock()
		first := r.firstFail
		r.mu.Unlock()
		require.Zero(t, r.failures.Load(), "%s: failed requests during the move: first %v", r.id, first)
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
	decided := time.Now()
	require.Equal(t, "canary", d.Variant)
	require.Equal(t, "error_rate", d.Reason)
	took := waitUntil(t, 30*time.Second, "the stop on every replica", func() bool {
		for _, r := range rs {
			if !r.exp.Stopped("canary") {
				return false
			}
		}
		return true
	})
	t.Logf("stop decided on replica 1 from %d canary requests of all replicas; applied everywhere %v later (flush interval %v)",
		d.VariantRequests, took, replicaPoll)
	gstop()
	<-gdone
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
	before := make([]int64, len(rs))
	reqs := make([]int64, len(rs))
	for i, r := range rs {
		before[i], reqs[i] = r.failures.Load(), r.requests.Load()
	}
	waitUntil(t, 30*time.Second, "more load after the stop", func() bool {
		for i, r := range rs {
			if r.requests.Load() < reqs[i]+200 {
				return false
			}
		}
		return true
	})
	stopLoad()
	for i, r := range rs {
		require.Equal(t, before[i], r.failures.Load(), "%s: failures after the stop", r.id)
	}
	t.Logf("phase 2 took %v from decision to the end of the check", time.Since(decided).Round(time.Millisecond))

	// The pooled tracker of every replica holds every replica's requests.
	for range 2 {
		for _, r := range rs {
			require.NoError(t, r.sync.Flush(ctx))
		}
	}
	var want uint64
	for _, r := range rs {
		tot := r.router.Tracker().Totals()
		want += tot.Counters["requests/canary"] + tot.Counters["requests/control"]
	}
	for _, r := range rs {
		var got uint64
		for _, v := range r.router.Tracker().Stats() {
			got += v.Requests
		}
		require.Equal(t, want, got, r.id)
	}
}
