package registry

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/serving"
)

func TestServerServesLatestAndSwaps(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	fl := &fakeLoader{}
	publishN(t, s, "m", 1)
	srv := newServer(t, s, fl, ServerOptions{Policy: Policy{DropPrevious: true}})
	h, err := srv.Model("m", "")
	require.NoError(t, err)
	_, err = h.Predict(ctx, nil)
	require.ErrorIs(t, err, ErrNotServing, "nothing serves before the first sync")

	require.NoError(t, srv.Start(ctx))
	require.Equal(t, int64(1), predictVersion(t, h))
	require.Equal(t, []EventKind{EventLoaded, EventSwapped}, kinds(drainEvents(srv)))

	publishN(t, s, "m", 2)
	require.NoError(t, srv.Sync(ctx))
	require.Equal(t, int64(2), predictVersion(t, h))
	evs := drainEvents(srv)
	require.Equal(t, []EventKind{EventLoaded, EventSwapped, EventUnloaded}, kinds(evs)[:3])
	require.Equal(t, Event{Kind: EventSwapped, Model: "m", Alias: Latest, Version: 2, From: 1}, Event{Kind: evs[1].Kind, Model: evs[1].Model, Alias: evs[1].Alias, Version: evs[1].Version, From: evs[1].From})
	waitFor(t, "version 1 closed", func() bool { return fl.closed.Load() == 1 })

	v, ok := srv.Current("m", Latest)
	require.True(t, ok)
	require.Equal(t, int64(2), v.Number)
	info := h.Info()
	require.Equal(t, "m@latest", info.Name)
	require.Equal(t, "x", info.Inputs[0].Name)

	st := srv.Stats()
	require.Equal(t, uint64(2), st.Loads)
	require.Equal(t, uint64(2), st.Swaps)
	require.Equal(t, uint64(1), st.Unloads)
	require.Equal(t, []ServingStats{{Model: "m", Alias: Latest, Version: 2, Since: st.Serving[0].Since}}, st.Serving)
	require.Len(t, st.Loaded, 1)
	require.Equal(t, int64(2), st.Loaded[0].Version)
	require.Zero(t, st.Loaded[0].InFlight)

	require.NoError(t, srv.Close())
	_, err = h.Predict(ctx, nil)
	require.ErrorIs(t, err, ErrClosed)
	require.Equal(t, int64(0), fl.live(), "Close closes every loaded version")
	require.Zero(t, fl.useAfterClose.Load())
	require.Zero(t, fl.doubleClose.Load())
	for range srv.Events() {
	} // ends: Close closes the events channel
	require.ErrorIs(t, srv.Sync(ctx), ErrClosed)
	_, err = srv.Model("m", "")
	require.ErrorIs(t, err, ErrClosed)
}

func TestServerAliasMoveAndInstantRollback(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	fl := &fakeLoader{}
	for n := int64(1); n <= 3; n++ {
		publishN(t, s, "m", n)
	}
	require.NoError(t, s.SetAlias(ctx, "m", "production", 1))
	srv := newServer(t, s, fl, ServerOptions{Policy: Policy{Latest: -1}})
	prod, err := srv.Model("m", "production")
	require.NoError(t, err)
	canary, err := srv.Model("m", "canary")
	require.NoError(t, err)
	require.NoError(t, srv.Sync(ctx))
	require.Equal(t, int64(1), predictVersion(t, prod))
	_, err = canary.Predict(ctx, nil)
	require.ErrorIs(t, err, ErrNotServing)
	latest, err := srv.Model("m", Latest)
	require.NoError(t, err)
	_, err = latest.Predict(ctx, nil)
	require.ErrorIs(t, err, ErrNotServing, "Policy.Latest < 0 leaves latest unserved")

	require.NoError(t, s.SetAlias(ctx, "m", "production", 2))
	require.NoError(t, s.SetAlias(ctx, "m", "canary", 3))
	require.NoError(t, srv.Sync(ctx))
	require.Equal(t, int64(2), predictVersion(t, prod))
	require.Equal(t, int64(3), predictVersion(t, canary))
	require.Equal(t, int64(3), fl.loaded.Load())
	require.Equal(t, int64(3), fl.live(), "the previous production version stays loaded for rollback")

	_, err = s.Rollback(ctx, "m", "production")
	require.NoError(t, err)
	require.NoError(t, srv.Sync(ctx))
	require.Equal(t, int64(1), predictVersion(t, prod))
	require.Equal(t, int64(3), fl.loaded.Load(), "rollback to a loaded version loads nothing")
	waitFor(t, "version 2 closed", func() bool { return fl.live() == 2 })
}

func TestServerNeverSwapsInABadVersion(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		publish func(t *testing.T, s *Store)
		warmUp  func(ctx context.Context, v Version, m serving.Model) error
		want    error
	}{
		{"load fails", func(t *testing.T, s *Store) { publishText(t, s, "m", "fail") }, nil, nil},
		{"loader panics", func(t *testing.T, s *Store) { publishText(t, s, "m", "panic") }, nil, nil},
		{"checksum fails", func(t *testing.T, s *Store) {
			publishN(t, s, "m", 2)
			dir, _ := s.Dir("m", 2)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "model.bin"), []byte("v9"), 0o644))
		}, nil, ErrChecksum},
		{"warm-up fails", func(t *testing.T, s *Store) { publishN(t, s, "m", 2) },
			func(ctx context.Context, v Version, m serving.Model) error {
				if v.Number == 2 {
					return errors.New("outputs are NaN")
				}
				return nil
			}, ErrWarmUp},
		{"manifest unreadable", func(t *testing.T, s *Store) {
			publishN(t, s, "m", 2)
			dir, _ := s.Dir("m", 2)
			require.NoError(t, os.WriteFile(filepath.Join(dir, ManifestFile), []byte("{"), 0o644))
		}, nil, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			fl := &fakeLoader{}
			publishN(t, s, "m", 1)
			require.NoError(t, s.SetAlias(ctx, "m", "production", 1))
			srv := newServer(t, s, fl, ServerOptions{WarmUp: tt.warmUp})
			prod, err := srv.Model("m", "production")
			require.NoError(t, err)
			latest, err := srv.Model("m", Latest)
			require.NoError(t, err)
			require.NoError(t, srv.Sync(ctx))
			drainEvents(srv)

			tt.publish(t, s)
			if tt.want != ErrCorrupt {
				// Aliases can only point at a readable version.
				require.NoError(t, s.SetAlias(ctx, "m", "production", 2))
			}
			err = srv.Sync(ctx)
			require.Error(t, err)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
			}
			require.Equal(t, int64(1), predictVersion(t, prod), "the current version keeps serving")
			require.Equal(t, int64(1), predictVersion(t, latest))
			evs := drainEvents(srv)
			require.NotEmpty(t, evs)
			require.NotContains(t, kinds(evs), EventSwapped)
			require.Error(t, evs[0].Err)
			st := srv.Stats()
			require.NotEmpty(t, st.LastError)
			if tt.want != ErrCorrupt {
				require.Equal(t, uint64(1), st.LoadFailures)
				require.Equal(t, EventLoadFailed, evs[0].Kind)
			} else {
				require.Equal(t, EventBroken, evs[0].Kind)
			}
			require.Equal(t, fl.loaded.Load()-1, fl.closed.Load(), "a model that failed warm-up is closed")

			// Failures are not retried on every poll.
			loads := fl.loaded.Load()
			_ = srv.Sync(ctx)
			require.Equal(t, loads, fl.loaded.Load())
			require.Empty(t, drainEvents(srv), "a known failure is reported once")
		})
	}
}

func TestServerRetriesAfterRetryAfter(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	fl := &fakeLoader{}
	publishN(t, s, "m", 1)
	var fail atomic.Bool
	fail.Store(true)
	srv := newServer(t, s, fl, ServerOptions{RetryAfter: time.Minute,
		WarmUp: func(context.Context, Version, serving.Model) error {
			if fail.Load() {
				return errors.New("cold")
			}
			return nil
		}})
	start := time.Now()
	var elapsed atomic.Int64
	srv.now = func() time.Time { return start.Add(time.Duration(elapsed.Load())) }
	h, err := srv.Model("m", "")
	require.NoError(t, err)
	require.ErrorIs(t, srv.Sync(ctx), ErrWarmUp)
	fail.Store(false)
	elapsed.Store(int64(59 * time.Second))
	require.NoError(t, srv.Sync(ctx), "a failed version is left alone until RetryAfter has passed")
	_, live := srv.Current("m", "")
	require.False(t, live, "not retried before RetryAfter")
	elapsed.Store(int64(time.Minute))
	require.NoError(t, srv.Sync(ctx))
	require.Equal(t, int64(1), predictVersion(t, h))
}

func TestServerKeepsServingWhenRootVanishes(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	s, err := Open(root, Options{})
	require.NoError(t, err)
	fl := &fakeLoader{}
	publishN(t, s, "m", 1)
	srv := newServer(t, s, fl, ServerOptions{})
	h, err := srv.Model("m", "")
	require.NoError(t, err)
	require.NoError(t, srv.Sync(ctx))

	steps := []struct {
		name        string
		break_, fix func()
		wantErr     bool
	}{
		{"root missing", func() { require.NoError(t, os.Rename(root, root+".away")) },
			func() { require.NoError(t, os.Rename(root+".away", root)) }, true},
		{"root empty", func() { require.NoError(t, os.Rename(filepath.Join(root, "m"), filepath.Join(parent, "m"))) },
			func() { require.NoError(t, os.Rename(filepath.Join(parent, "m"), filepath.Join(root, "m"))) }, false},
		{"model empty", func() {
			require.NoError(t, os.Rename(filepath.Join(root, "m", "1"), filepath.Join(parent, "1")))
		}, func() { require.NoError(t, os.Rename(filepath.Join(parent, "1"), filepath.Join(root, "m", "1"))) }, false},
		{"aliases unreadable", func() {
			require.NoError(t, os.WriteFile(filepath.Join(root, "m", AliasesFile), []byte("{garbage"), 0o644))
		}, func() { require.NoError(t, os.Remove(filepath.Join(root, "m", AliasesFile))) }, true},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.break_()
			err := srv.Sync(ctx)
			if st.wantErr {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, int64(1), predictVersion(t, h))
			require.Equal(t, int64(1), fl.live())
			st.fix()
			require.NoError(t, srv.Sync(ctx))
			require.Equal(t, int64(1), predictVersion(t, h))
		})
	}
	require.Equal(t, int64(1), fl.loaded.Load(), "nothing was reloaded")
	require.NotZero(t, srv.Stats().PollErrors)
}

func TestServerDrainsInFlightBeforeClosing(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	fl := &fakeLoader{gate: make(chan struct{}), inside: make(chan struct{}, 1)}
	publishN(t, s, "m", 1)
	srv := newServer(t, s, fl, ServerOptions{Policy: Policy{DropPrevious: true}})
	h, err := srv.Model("m", "")
	require.NoError(t, err)
	require.NoError(t, srv.Sync(ctx))

	var wg sync.WaitGroup
	wg.Add(1)
	var answered int64
	go func() {
		defer wg.Done()
		_, sv, err := h.PredictVersion(ctx, nil)
		if err == nil {
			answered = sv.Version
		}
	}()
	<-fl.inside // the request is running on version 1

	publishN(t, s, "m", 2)
	require.NoError(t, srv.Sync(ctx))
	v, _ := srv.Current("m", "")
	require.Equal(t, int64(2), v.Number, "new requests go to version 2 at once")
	require.Equal(t, int64(0), fl.closed.Load(), "version 1 stays open while a request runs on it")
	st := srv.Stats()
	require.Len(t, st.Loaded, 1, "version 1 left the loaded set")

	fl.inside = nil
	for _, m := range fl.models {
		m.inside = nil
	}
	close(fl.gate)
	wg.Wait()
	require.Equal(t, int64(1), answered)
	waitFor(t, "version 1 closed", func() bool { return fl.closed.Load() == 1 })
	require.Zero(t, fl.useAfterClose.Load())
}

func TestServerCloseWaitsForInFlight(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	fl := &fakeLoader{gate: make(chan struct{}), inside: make(chan struct{}, 1)}
	publishN(t, s, "m", 1)
	srv := newServer(t, s, fl, ServerOptions{})
	h, err := srv.Model("m", "")
	require.NoError(t, err)
	require.NoError(t, srv.Start(ctx))
	errc := make(chan error, 1)
	go func() { _, err := h.Predict(ctx, nil); errc <- err }()
	<-fl.inside
	closed := make(chan struct{})
	go func() { _ = srv.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned with a request in flight")
	case <-time.After(20 * time.Millisecond):
	}
	close(fl.gate)
	require.NoError(t, <-errc)
	<-closed
	require.Equal(t, int64(0), fl.live())
}

func TestServerPolicyAndMaxLoaded(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		opts      ServerOptions
		wantLive  []int64
		wantCount int64
	}{
		{"default: latest and aliased", ServerOptions{}, []int64{2, 5}, 2},
		{"latest 3", ServerOptions{Policy: Policy{Latest: 3}}, []int64{2, 3, 4, 5}, 4},
		{"explicit versions", ServerOptions{Policy: Policy{Versions: []int64{1, 99}}}, []int64{1, 2, 5}, 3},
		{"cap keeps required", ServerOptions{Policy: Policy{Latest: 4}, MaxLoaded: 3}, []int64{2, 4, 5}, 3},
		{"cap below required", ServerOptions{MaxLoaded: 1}, []int64{2, 5}, 2},
		{"aliases filter", ServerOptions{Aliases: []string{"canary"}}, []int64{5}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			fl := &fakeLoader{}
			for n := int64(1); n <= 5; n++ {
				publishN(t, s, "m", n)
			}
			require.NoError(t, s.SetAlias(ctx, "m", "production", 2))
			srv := newServer(t, s, fl, tt.opts)
			require.NoError(t, srv.Sync(ctx))
			var got []int64
			for _, l := range srv.Stats().Loaded {
				got = append(got, l.Version)
			}
			require.Equal(t, tt.wantLive, got)
			require.Equal(t, tt.wantCount, fl.live())
		})
	}
}

func TestServerArchivedAndDeletedLatest(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	fl := &fakeLoader{}
	publishN(t, s, "m", 1)
	publishN(t, s, "m", 2)
	srv := newServer(t, s, fl, ServerOptions{Policy: Policy{DropPrevious: true}})
	h, err := srv.Model("m", "")
	require.NoError(t, err)
	require.NoError(t, srv.Sync(ctx))
	require.Equal(t, int64(2), predictVersion(t, h))
	require.NoError(t, s.Archive(ctx, "m", 2))
	require.NoError(t, srv.Sync(ctx))
	require.Equal(t, int64(1), predictVersion(t, h), "archiving the newest version moves latest back")
	require.NoError(t, s.Unarchive(ctx, "m", 2))
	require.NoError(t, srv.Sync(ctx))
	require.Equal(t, int64(2), predictVersion(t, h))
	require.NoError(t, s.Delete(ctx, "m", 2))
	require.NoError(t, srv.Sync(ctx))
	require.Equal(t, int64(1), predictVersion(t, h))

	// A deleted number published again is a new version, loaded afresh.
	publishN(t, s, "m", 2)
	loads := fl.loaded.Load()
	require.NoError(t, srv.Sync(ctx))
	require.Equal(t, int64(2), predictVersion(t, h))
	require.Equal(t, loads+1, fl.loaded.Load())
	waitFor(t, "only one version left", func() bool { return fl.live() == 1 })
}

func TestServedHook(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	fl := &fakeLoader{}
	publishN(t, s, "m", 4)
	require.NoError(t, s.SetAlias(ctx, "m", "canary", 4))
	srv := newServer(t, s, fl, ServerOptions{})
	require.NoError(t, srv.Sync(ctx))
	h, err := srv.Model("m", "canary")
	require.NoError(t, err)
	var got []Served
	hctx := WithServedHook(ctx, func(s Served) { got = append(got, s) })
	var m serving.Model = h // as a router would hold it
	_, err = m.Predict(hctx, nil)
	require.NoError(t, err)
	require.Equal(t, []Served{{Model: "m", Alias: "canary", Version: 4}}, got)
	require.NoError(t, h.Close())
	_, err = h.Predict(ctx, nil)
	require.ErrorIs(t, err, ErrClosed)
	h2, err := srv.Model("m", "canary")
	require.NoError(t, err)
	require.Equal(t, int64(4), predictVersion(t, h2), "closing a handle leaves the version loaded")
}

func TestServerBadOptions(t *testing.T) {
	s := newStore(t)
	fl := &fakeLoader{}
	_, err := NewServer(nil, fl.load, ServerOptions{})
	require.ErrorIs(t, err, ErrBadInput)
	_, err = NewServer(s, nil, ServerOptions{})
	require.ErrorIs(t, err, ErrBadInput)
	_, err = NewServer(s, fl.load, ServerOptions{Models: []string{"../m"}})
	require.ErrorIs(t, err, ErrInvalidName)
	_, err = NewServer(s, fl.load, ServerOptions{Aliases: []string{"a/b"}})
	require.ErrorIs(t, err, ErrInvalidName)
	_, err = NewServer(s, fl.load, ServerOptions{MaxLoaded: -1})
	require.ErrorIs(t, err, ErrBadInput)
	srv := newServer(t, s, fl, ServerOptions{})
	_, err = srv.Model("../m", "")
	require.ErrorIs(t, err, ErrInvalidName)
	_, err = srv.Model("m", "a\x00")
	require.ErrorIs(t, err, ErrInvalidName)
	require.NoError(t, srv.Start(context.Background()))
	require.ErrorIs(t, srv.Start(context.Background()), ErrBadInput)
}

func TestServerPollsInBackground(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	fl := &fakeLoader{}
	publishN(t, s, "m", 1)
	srv, err := NewServer(s, fl.load, ServerOptions{PollInterval: 5 * time.Millisecond})
	require.NoError(t, err)
	defer srv.Close()
	require.NoError(t, srv.Start(ctx))
	h, err := srv.Model("m", "")
	require.NoError(t, err)
	publishN(t, s, "m", 2)
	waitFor(t, "the poller to swap in version 2", func() bool {
		v, ok := h.Version()
		return ok && v.Number == 2
	})
	require.Equal(t, int64(2), predictVersion(t, h))
}

func TestCollector(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	fl := &fakeLoader{}
	publishN(t, s, "m", 3)
	srv := newServer(t, s, fl, ServerOptions{})
	require.NoError(t, srv.Sync(ctx))
	h, err := srv.Model("m", "")
	require.NoError(t, err)
	predictVersion(t, h)
	predictVersion(t, h)
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(srv.Collector(nil)))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			got[mf.GetName()] += v
		}
	}
	require.Equal(t, 1.0, got["quiver_registry_loads_total"])
	require.Equal(t, 1.0, got["quiver_registry_load_seconds"], "one load timed")
	require.Equal(t, 1.0, got["quiver_registry_swaps_total"])
	require.Equal(t, 1.0, got["quiver_registry_loaded_versions"])
	require.Equal(t, 3.0, got["quiver_registry_serving_version"])
	require.Equal(t, 0.0, got["quiver_registry_version_in_flight"])
	require.Len(t, got, 13)
	srv.mu.RLock()
	l := srv.models["m"].lives[0]
	srv.mu.RUnlock()
	l.refs.Add(1) // a request in flight
	defer l.refs.Add(-1)
	require.Equal(t, int64(1), srv.Stats().Loaded[0].InFlight)
}

func TestServerPoke(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	fl := &fakeLoader{}
	publishN(t, s, "m", 1)
	require.NoError(t, s.SetAlias(ctx, "m", "production", 1))
	srv := newServer(t, s, fl, ServerOptions{}) // polls hourly
	require.NoError(t, srv.Start(ctx))
	h, err := srv.Model("m", "production")
	require.NoError(t, err)
	publishN(t, s, "m", 2)
	require.NoError(t, s.SetAlias(ctx, "m", "production", 2))
	srv.Poke()
	waitFor(t, "the poke to swap in version 2", func() bool {
		v, ok := h.Version()
		return ok && v.Number == 2
	})
	_, err = s.Rollback(ctx, "m", "production")
	require.NoError(t, err)
	loads := fl.loaded.Load()
	srv.Poke()
	waitFor(t, "the poke to roll back", func() bool {
		v, ok := h.Version()
		return ok && v.Number == 1
	})
	require.Equal(t, loads, fl.loaded.Load(), "the rollback needed no load")
}

// TestServerSwapStress swaps fast between fake versions under traffic:
// no request may fail or reach a closed model, and every model is closed
// once at the end.
func TestServerSwapStress(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	fl := &fakeLoader{}
	for n := int64(1); n <= 3; n++ {
		publishN(t, s, "m", n)
	}
	require.NoError(t, s.SetAlias(ctx, "m", "production", 1))
	srv := newServer(t, s, fl, ServerOptions{Policy: Policy{Latest: -1, DropPrevious: true}})
	require.NoError(t, srv.Sync(ctx))
	h, err := srv.Model("m", "production")
	require.NoError(t, err)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, err := h.PredictVersion(ctx, nil); err != nil {
					failures.Add(1)
				}
				runtime.Gosched() // leave the writer some CPU on small machines
			}
		}()
	}
	for i := range 40 {
		require.NoError(t, s.SetAlias(ctx, "m", "production", int64(i%3)+1))
		require.NoError(t, srv.Sync(ctx))
	}
	close(stop)
	wg.Wait()
	require.Zero(t, failures.Load())
	require.Zero(t, fl.useAfterClose.Load())
	require.NoError(t, srv.Close())
	require.Equal(t, int64(0), fl.live())
	require.Zero(t, fl.doubleClose.Load())
}

func TestServerSyncsModelsInParallel(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	fl := &fakeLoader{}
	models := []string{"a", "b", "c", "d", "e"}
	for _, m := range models {
		publishN(t, s, m, 1)
		require.NoError(t, s.SetAlias(ctx, m, "production", 1))
	}
	publishText(t, s, "c", "fail") // c/2 fails; the others must not care
	srv := newServer(t, s, fl, ServerOptions{Parallel: 3})
	err := srv.Sync(ctx)
	require.Error(t, err)
	for _, m := range models {
		h, err := srv.Model(m, "production")
		require.NoError(t, err)
		require.Equal(t, int64(1), predictVersion(t, h), m)
	}
	st := srv.Stats()
	require.Len(t, st.Serving, 2*len(models))
	require.Equal(t, uint64(1), st.LoadFailures)
}

// A rollback to the version kept loaded swaps at once, while the version
// that becomes the alias's new "previous" is still loading.
func TestServerRollbackSwapsBeforeLoadingOthers(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	for n := int64(1); n <= 3; n++ {
		publishN(t, s, "m", n)
	}
	for _, n := range []int64{3, 1, 2} { // production's history: 3, 1; it serves 2
		require.NoError(t, s.SetAlias(ctx, "m", "production", n))
	}
	fl := &fakeLoader{}
	started := make(chan int64, 1)
	release := make(chan struct{})
	var releaseOnce sync.Once
	load := func(ctx context.Context, v Version, dir string) (serving.Model, error) {
		if v.Number == 3 {
			started <- v.Number
			<-release
		}
		return fl.load(ctx, v, dir)
	}
	srv, err := NewServer(s, load, ServerOptions{Policy: Policy{Latest: -1}, PollInterval: time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // runs first
	prod, err := srv.Model("m", "production")
	require.NoError(t, err)
	require.NoError(t, srv.Sync(ctx))
	require.Equal(t, int64(2), predictVersion(t, prod))
	require.Equal(t, int64(2), fl.live(), "2 serves, 1 is kept for rollback")

	to, err := s.Rollback(ctx, "m", "production") // serves 1, history 3
	require.NoError(t, err)
	require.Equal(t, int64(1), to)
	done := make(chan error, 1)
	go func() { done <- srv.Sync(ctx) }()
	require.Equal(t, int64(3), <-started, "the new previous version loads")
	cur, ok := srv.Current("m", "production")
	require.True(t, ok)
	require.Equal(t, int64(1), cur.Number, "the rollback is served while 3 still loads")
	require.Equal(t, int64(1), predictVersion(t, prod))

	releaseOnce.Do(func() { close(release) })
	require.NoError(t, <-done)
	require.Equal(t, int64(1), predictVersion(t, prod))
	waitFor(t, "version 2 closed", func() bool { return fl.live() == 2 })
}

// lockedBuffer is a bytes.Buffer safe for a logger and a test to share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestServerServesLatestWithCorruptAliases(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// syncFirst runs one Sync before the alias table is damaged.
		syncFirst bool
		// wantProd is the version production serves after the damage; 0
		// means none.
		wantProd int64
	}{
		{"fresh start", false, 0},
		{"damaged while serving", true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			publishN(t, s, "m", 1)
			publishN(t, s, "m", 2)
			require.NoError(t, s.SetAlias(ctx, "m", "production", 1))
			var logs lockedBuffer
			fl := &fakeLoader{}
			srv := newServer(t, s, fl, ServerOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if tt.syncFirst {
				require.NoError(t, srv.Sync(ctx))
			}
			aliasFile := filepath.Join(s.Root(), "m", AliasesFile)
			require.NoError(t, os.WriteFile(aliasFile, []byte("{\"format_version\": 1, \"model\": "), 0o644))

			err := srv.Sync(ctx)
			require.ErrorIs(t, err, ErrCorrupt)
			latest, err := srv.Model("m", Latest)
			require.NoError(t, err)
			require.Equal(t, int64(2), predictVersion(t, latest), "latest serves without the alias table")
			prod, err := srv.Model("m", "production")
			require.NoError(t, err)
			if tt.wantProd == 0 {
				_, err = prod.Predict(ctx, nil)
				require.ErrorIs(t, err, ErrNotServing)
			} else {
				require.Equal(t, tt.wantProd, predictVersion(t, prod), "the alias stays where it was")
			}
			out := logs.String()
			require.Contains(t, out, "level=ERROR")
			require.Contains(t, out, aliasFile, "the log names the file")

			// Once repaired, the aliases serve again.
			require.NoError(t, os.Remove(aliasFile))
			require.NoError(t, s.SetAlias(ctx, "m", "production", 1))
			require.NoError(t, srv.Sync(ctx))
			require.Equal(t, int64(1), predictVersion(t, prod))
		})
	}
}
