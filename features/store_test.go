package features

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// fakeClock is a settable clock for TTL and freshness tests.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time               { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Add(d time.Duration)          { c.ns.Add(int64(d)) }
func (c *fakeClock) At(d time.Duration) time.Time { return c.Now().Add(d) }

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func userView() View {
	return View{
		Name:   "user",
		Entity: "user_id",
		TTL:    time.Hour,
		Features: []Feature{
			{Name: "age", Kind: KindFloat32, Default: Float32(-1)},
			{Name: "clicks", Kind: KindInt64},
			{Name: "country", Kind: KindString, Default: String("zz")},
			{Name: "emb", Kind: KindEmbedding, Dim: 3},
		},
	}
}

func newTestStore(t *testing.T, opts Options, views ...View) (*Memory, *fakeClock) {
	t.Helper()
	clk := newFakeClock(t0)
	opts.Clock = clk.Now
	m := New(opts)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	for _, v := range views {
		require.NoError(t, m.Register(v))
	}
	return m, clk
}

func userRow(id string, at time.Time, age float32, clicks int64) Row {
	return Row{Entity: id, EventTime: at, Values: map[string]Value{
		"age": Float32(age), "clicks": Int64(clicks), "country": String("de"), "emb": Embedding([]float32{1, 2, 3}),
	}}
}

func TestRegisterValidates(t *testing.T) {
	good := userView()
	cases := []struct {
		name   string
		mutate func(v *View)
	}{
		{"empty name", func(v *View) { v.Name = "" }},
		{"empty entity", func(v *View) { v.Entity = "" }},
		{"no features", func(v *View) { v.Features = nil }},
		{"negative ttl", func(v *View) { v.TTL = -time.Second }},
		{"negative capacity", func(v *View) { v.Capacity = -1 }},
		{"bad nan policy", func(v *View) { v.NaN = 9 }},
		{"duplicate feature", func(v *View) { v.Features = append(v.Features, Feature{Name: "age", Kind: KindFloat32}) }},
		{"unknown kind", func(v *View) { v.Features[0].Kind = 42 }},
		{"embedding without dim", func(v *View) { v.Features[3].Dim = 0 }},
		{"dim on float", func(v *View) { v.Features[0].Dim = 2 }},
		{"default of wrong kind", func(v *View) { v.Features[0].Default = Int64(1) }},
		{"default of wrong length", func(v *View) { v.Features[3].Default = Embedding([]float32{1}) }},
		{"too many features", func(v *View) {
			for i := range MaxFeatures {
				v.Features = append(v.Features, Feature{Name: "x" + strconv.Itoa(i), Kind: KindFloat32})
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := newTestStore(t, Options{})
			v := userView()
			v.Features = append([]Feature(nil), v.Features...)
			tc.mutate(&v)
			err := m.Register(v)
			require.ErrorIs(t, err, ErrInvalidView)
			_, err = m.Select(v.Name)
			require.ErrorIs(t, err, ErrUnknownView, "a rejected view must not be registered")
		})
	}
	m, _ := newTestStore(t, Options{}, good)
	require.NoError(t, m.Register(userView()), "identical re-registration is a no-op")
	changed := userView()
	changed.Version = 2
	require.ErrorIs(t, m.Register(changed), ErrViewExists)
}

func TestGetManyStatusesAndDefaults(t *testing.T) {
	m, clk := newTestStore(t, Options{}, userView())
	ctx := context.Background()
	require.NoError(t, m.Put(ctx, "user",
		userRow("fresh", clk.At(-time.Minute), 31, 7),
		Row{Entity: "partial", EventTime: clk.Now(), Values: map[string]Value{"clicks": Int64(5)}},
		userRow("old", clk.At(-2*time.Hour), 50, 9),
	))
	sel, err := m.Select("user", "emb", "age", "clicks")
	require.NoError(t, err)
	require.Equal(t, 5, sel.Width())
	require.Equal(t, []int{0, 3, 4}, sel.Columns())
	keys := []string{"fresh", "partial", "missing", "old"}
	dst := make([]float32, len(keys)*sel.Width())
	st := make([]Status, len(keys)*sel.Len())
	require.NoError(t, m.GetMany(ctx, sel, keys, dst, st))
	require.Equal(t, []float32{
		1, 2, 3, 31, 7, // fresh
		0, 0, 0, -1, 5, // partial: emb and age null -> defaults
		0, 0, 0, -1, 0, // missing
		0, 0, 0, -1, 0, // old: outside the TTL
	}, dst)
	require.Equal(t, []Status{
		StatusPresent, StatusPresent, StatusPresent,
		StatusNull, StatusNull, StatusPresent,
		StatusNotFound, StatusNotFound, StatusNotFound,
		StatusOutsideMaxAge, StatusOutsideMaxAge, StatusOutsideMaxAge,
	}, st)

	vs, ok := m.Stats().View("user")
	require.True(t, ok)
	require.Equal(t, uint64(4), vs.Reads)
	require.Equal(t, uint64(2), vs.Found)
	require.Equal(t, uint64(1), vs.NotFound)
	require.Equal(t, uint64(1), vs.Stale)
	require.Equal(t, uint64(2), vs.NullValues)
	require.Equal(t, uint64(2), vs.Freshness.Count)
	require.Equal(t, time.Minute, vs.Freshness.Sum)
	require.Equal(t, time.Duration(1<<16)*time.Millisecond, vs.Freshness.Quantile(1), "a 60s age falls in the 2^16 ms bucket")

	// Get is GetMany for one key.
	one := make([]float32, sel.Width())
	ost := make([]Status, sel.Len())
	require.NoError(t, m.Get(ctx, sel, "fresh", one, ost))
	require.Equal(t, dst[:5], one)
}

func TestGetRowTyped(t *testing.T) {
	m, clk := newTestStore(t, Options{}, userView())
	ctx := context.Background()
	require.NoError(t, m.Put(ctx, "user", userRow("u1", clk.Now(), 20, 1<<40)))
	res, err := m.GetRow(ctx, "user", "u1")
	require.NoError(t, err)
	require.Equal(t, clk.Now(), res.EventTime)
	require.True(t, res.Values["clicks"].Equal(Int64(1<<40)))
	require.Equal(t, "de", res.Values["country"].Str())
	require.Equal(t, []float32{1, 2, 3}, res.Values["emb"].Embedding())
	require.Equal(t, StatusPresent, res.Status["country"])

	res, err = m.GetRow(ctx, "user", "nobody")
	require.ErrorIs(t, err, ErrNotFound)
	require.Equal(t, "zz", res.Values["country"].Str())
	require.Equal(t, StatusNotFound, res.Status["age"])

	clk.Add(2 * time.Hour)
	res, err = m.GetRow(ctx, "user", "u1")
	require.ErrorIs(t, err, ErrExpired)
	require.Equal(t, StatusOutsideMaxAge, res.Status["age"])
	require.Equal(t, float32(-1), res.Values["age"].Float32())

	_, err = m.GetRow(ctx, "nope", "u1")
	require.ErrorIs(t, err, ErrUnknownView)
}

func TestEventTimeWins(t *testing.T) {
	m, clk := newTestStore(t, Options{}, userView())
	ctx := context.Background()
	require.NoError(t, m.Put(ctx, "user", userRow("u", clk.Now(), 2, 2)))
	require.NoError(t, m.Put(ctx, "user", userRow("u", clk.At(-time.Second), 1, 1)))
	res, err := m.GetRow(ctx, "user", "u")
	require.NoError(t, err)
	require.Equal(t, float32(2), res.Values["age"].Float32(), "an older event must not overwrite a newer one")
	require.NoError(t, m.Put(ctx, "user", userRow("u", clk.At(time.Second), 3, 3)))
	res, err = m.GetRow(ctx, "user", "u")
	require.NoError(t, err)
	require.Equal(t, float32(3), res.Values["age"].Float32())
	vs, _ := m.Stats().View("user")
	require.Equal(t, uint64(1), vs.StaleWrites)
	require.Equal(t, uint64(2), vs.Writes)
}

func TestPutRejectsBadRows(t *testing.T) {
	cases := []struct {
		name string
		row  Row
		want error
	}{
		{"unknown feature", Row{Entity: "b", Values: map[string]Value{"nope": Float32(1)}}, ErrUnknownFeature},
		{"wrong type", Row{Entity: "b", Values: map[string]Value{"age": String("x")}}, ErrType},
		{"wrong embedding length", Row{Entity: "b", Values: map[string]Value{"emb": Embedding([]float32{1, 2})}}, ErrDimension},
		{"nan", Row{Entity: "b", Values: map[string]Value{"age": Float32(float32(math.NaN()))}}, ErrInvalidValue},
		{"inf in embedding", Row{Entity: "b", Values: map[string]Value{"emb": Embedding([]float32{1, float32(math.Inf(1)), 2})}}, ErrInvalidValue},
		{"empty entity", Row{Entity: "", Values: map[string]Value{"age": Float32(1)}}, ErrInvalidEntity},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, clk := newTestStore(t, Options{}, userView())
			ctx := context.Background()
			bad := tc.row
			bad.EventTime = clk.Now()
			bad.Values["clicks"] = Int64(99) // a valid value in the same row must not be stored either
			err := m.Put(ctx, "user", userRow("a", clk.Now(), 1, 1), bad, userRow("c", clk.Now(), 3, 3))
			require.ErrorIs(t, err, tc.want)
			require.Contains(t, err.Error(), "row 1")
			n, lerr := m.Len("user")
			require.NoError(t, lerr)
			require.Equal(t, 2, n, "valid rows are stored, the bad one is not")
			_, gerr := m.GetRow(ctx, "user", bad.Entity)
			require.ErrorIs(t, gerr, ErrNotFound)
			vs, _ := m.Stats().View("user")
			require.Equal(t, uint64(1), vs.Rejected)
		})
	}
	m, _ := newTestStore(t, Options{}, userView())
	require.ErrorIs(t, m.Put(context.Background(), "other", Row{Entity: "x"}), ErrUnknownView)
}

func TestNaNPolicies(t *testing.T) {
	nan := float32(math.NaN())
	for _, tc := range []struct {
		policy NaNPolicy
		status Status
	}{{NaNNull, StatusNull}, {NaNAllow, StatusPresent}} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			v := userView()
			v.NaN = tc.policy
			m, clk := newTestStore(t, Options{}, v)
			ctx := context.Background()
			require.NoError(t, m.Put(ctx, "user", Row{Entity: "n", EventTime: clk.Now(), Values: map[string]Value{"age": Float32(nan)}}))
			sel, err := m.Select("user", "age")
			require.NoError(t, err)
			dst, st := make([]float32, 1), make([]Status, 1)
			require.NoError(t, m.GetMany(ctx, sel, []string{"n"}, dst, st))
			require.Equal(t, tc.status, st[0])
			fs, err := m.FeatureStats("user")
			require.NoError(t, err)
			require.Equal(t, uint64(1), fs[0].NaNs)
			require.Equal(t, uint64(0), fs[0].Count, "NaN never enters the running statistics")
		})
	}
}

func TestSelectAndBufferErrors(t *testing.T) {
	m, _ := newTestStore(t, Options{}, userView())
	_, err := m.Select("user", "country")
	require.ErrorIs(t, err, ErrType)
	_, err = m.Select("user", "nope")
	require.ErrorIs(t, err, ErrUnknownFeature)
	_, err = m.Select("user", "age", "age")
	require.ErrorIs(t, err, ErrInvalidView)
	sel, err := m.Select("user")
	require.NoError(t, err)
	require.Equal(t, []string{"age", "clicks", "emb"}, sel.Features())
	ctx := context.Background()
	require.ErrorIs(t, m.GetMany(ctx, sel, []string{"a", "b"}, make([]float32, 5), make([]Status, 6)), ErrBuffer)
	require.ErrorIs(t, m.GetMany(ctx, sel, []string{"a", "b"}, make([]float32, 10), make([]Status, 5)), ErrBuffer)
	other, _ := newTestStore(t, Options{}, userView())
	require.ErrorIs(t, other.GetMany(ctx, sel, nil, nil, nil), ErrUnknownView)
	require.ErrorIs(t, m.GetMany(ctx, nil, nil, nil, nil), ErrUnknownView)
}

func floatView(name string, capacity int, ttl time.Duration) View {
	return View{Name: name, Entity: "id", Capacity: capacity, TTL: ttl, Features: []Feature{{Name: "x", Kind: KindFloat32}}}
}

func TestCapacityEvictsWithClock(t *testing.T) {
	m, clk := newTestStore(t, Options{Shards: 1}, floatView("v", 64, 0))
	ctx := context.Background()
	sel, err := m.Select("v")
	require.NoError(t, err)
	dst, st := make([]float32, 1), make([]Status, 1)
	put := func(k string, x float32) {
		require.NoError(t, m.Put(ctx, "v", Row{Entity: k, EventTime: clk.Now(), Values: map[string]Value{"x": Float32(x)}}))
	}
	put("hot", 42)
	for i := range 1000 {
		require.NoError(t, m.GetMany(ctx, sel, []string{"hot"}, dst, st))
		put("k"+strconv.Itoa(i), float32(i))
	}
	n, err := m.Len("v")
	require.NoError(t, err)
	require.Equal(t, 64, n)
	require.NoError(t, m.GetMany(ctx, sel, []string{"hot", "k999", "k0"}[:1], dst, st))
	require.Equal(t, StatusPresent, st[0], "a key read between inserts keeps its CLOCK bit and survives")
	require.Equal(t, float32(42), dst[0])
	res, err := m.GetRow(ctx, "v", "k999")
	require.NoError(t, err)
	require.Equal(t, float32(999), res.Values["x"].Float32())
	_, err = m.GetRow(ctx, "v", "k0")
	require.ErrorIs(t, err, ErrNotFound)
	vs, _ := m.Stats().View("v")
	require.Equal(t, uint64(1001-64), vs.Evictions)
}

func TestSweepAndDelete(t *testing.T) {
	m, clk := newTestStore(t, Options{Shards: 4}, floatView("v", 0, time.Minute))
	ctx := context.Background()
	for i := range 100 {
		at := clk.Now()
		if i%2 == 0 {
			at = clk.At(-2 * time.Minute)
		}
		require.NoError(t, m.Put(ctx, "v", Row{Entity: "k" + strconv.Itoa(i), EventTime: at, Values: map[string]Value{"x": Float32(float32(i))}}))
	}
	n, err := m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 50, n)
	left, _ := m.Len("v")
	require.Equal(t, 50, left)
	for i := range 100 {
		_, err := m.GetRow(ctx, "v", "k"+strconv.Itoa(i))
		if i%2 == 0 {
			require.ErrorIs(t, err, ErrNotFound)
		} else {
			require.NoError(t, err)
		}
	}
	require.NoError(t, m.Delete(ctx, "v", "k1"))
	require.NoError(t, m.Delete(ctx, "v", "k1"))
	_, err = m.GetRow(ctx, "v", "k1")
	require.ErrorIs(t, err, ErrNotFound)
	// Freed slots are reused.
	require.NoError(t, m.Put(ctx, "v", Row{Entity: "new", EventTime: clk.Now(), Values: map[string]Value{"x": Float32(1)}}))
	left, _ = m.Len("v")
	require.Equal(t, 50, left)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = m.Sweep(cctx)
	require.ErrorIs(t, err, context.Canceled)
}

func TestSweeperGoroutine(t *testing.T) {
	m := New(Options{SweepInterval: time.Millisecond})
	require.NoError(t, m.Register(floatView("v", 0, time.Millisecond)))
	require.NoError(t, m.Put(context.Background(), "v", Row{Entity: "a", EventTime: time.Now().Add(-time.Second), Values: map[string]Value{"x": Float32(1)}}))
	require.Eventually(t, func() bool { n, _ := m.Len("v"); return n == 0 }, 5*time.Second, time.Millisecond)
	require.NoError(t, m.Close())
	require.NoError(t, m.Close())
	require.ErrorIs(t, m.Put(context.Background(), "v"), ErrClosed)
	_, err := m.Select("v")
	require.ErrorIs(t, err, ErrClosed)
}

func TestLongKeysAndGrowth(t *testing.T) {
	m, clk := newTestStore(t, Options{Shards: 2}, floatView("v", 0, 0))
	ctx := context.Background()
	key := func(i int) string {
		if i%3 == 0 {
			return fmt.Sprintf("a-rather-long-entity-key-%08d", i) // beyond the 16 inline bytes
		}
		return strconv.Itoa(i)
	}
	for i := range 3000 {
		require.NoError(t, m.Put(ctx, "v", Row{Entity: key(i), EventTime: clk.Now(), Values: map[string]Value{"x": Float32(float32(i))}}))
	}
	sel, _ := m.Select("v")
	keys := make([]string, 3000)
	for i := range keys {
		keys[i] = key(i)
	}
	dst, st := make([]float32, 3000), make([]Status, 3000)
	require.NoError(t, m.GetMany(ctx, sel, keys, dst, st))
	for i := range keys {
		require.Equal(t, StatusPresent, st[i], keys[i])
		require.Equal(t, float32(i), dst[i], keys[i])
	}
	// Keys sharing their first 16 bytes are told apart.
	require.NoError(t, m.GetMany(ctx, sel, []string{"a-rather-long-entity-key-99999999"}, dst[:1], st[:1]))
	require.Equal(t, StatusNotFound, st[0])
}

// TestConcurrentReadsSeeWholeRows writes rows whose 32 values are all
// equal to a version number while readers check every row they read is
// whole: a torn read would mix versions.
func TestConcurrentReadsSeeWholeRows(t *testing.T) {
	fs := make([]Feature, 32)
	for i := range fs {
		fs[i] = Feature{Name: "f" + strconv.Itoa(i), Kind: KindFloat32}
	}
	m, clk := newTestStore(t, Options{Shards: 4}, View{Name: "v", Entity: "id", Features: fs, Capacity: 200})
	ctx := context.Background()
	sel, _ := m.Select("v")
	const keys = 300 // above capacity: eviction runs too
	stop := make(chan struct{})
	errc := make(chan error, 4)
	var writers, readers sync.WaitGroup
	for w := range 2 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			vals := make(map[string]Value, 32)
			for n := 1; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				for j := range fs {
					vals[fs[j].Name] = Float32(float32(n))
				}
				k := "k" + strconv.Itoa((n*7+w)%keys)
				if err := m.Put(ctx, "v", Row{Entity: k, EventTime: clk.At(time.Duration(n)), Values: vals}); err != nil {
					errc <- err
					return
				}
				if w == 0 && n%10 == 0 {
					if err := m.Delete(ctx, "v", "k"+strconv.Itoa(n%keys)); err != nil {
						errc <- err
						return
					}
				}
			}
		}()
	}
	var bad atomic.Int64
	for r := range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			batch := make([]string, 20)
			dst, st := make([]float32, 20*32), make([]Status, 20*32)
			for n := 0; n < 300; n++ {
				for i := range batch {
					batch[i] = "k" + strconv.Itoa((n*13+i*17+r)%keys)
				}
				if err := m.GetMany(ctx, sel, batch, dst, st); err != nil {
					errc <- err
					return
				}
				for i := range batch {
					row := dst[i*32 : (i+1)*32]
					for _, x := range row {
						if x != row[0] {
							bad.Add(1)
						}
					}
				}
			}
		}()
	}
	// The readers make 300 reads each while the writers keep writing; the
	// writers stop once the readers are done.
	readers.Wait()
	close(stop)
	writers.Wait()
	close(errc)
	for err := range errc {
		require.NoError(t, err)
	}
	require.GreaterOrEqual(t, m.Stats().Views[0].Reads, uint64(2*300*20))
	require.Zero(t, bad.Load(), "readers saw rows mixing two writes")
	n, _ := m.Len("v")
	require.LessOrEqual(t, n, 200)
}

func TestGetManyDoesNotAllocate(t *testing.T) {
	m, clk := newTestStore(t, Options{}, userView())
	ctx := context.Background()
	keys := make([]string, 50)
	for i := range keys {
		keys[i] = "u" + strconv.Itoa(i)
		if i%5 != 0 {
			require.NoError(t, m.Put(ctx, "user", userRow(keys[i], clk.Now(), 1, 2)))
		}
	}
	sel, _ := m.Select("user")
	dst, st := make([]float32, 50*sel.Width()), make([]Status, 50*sel.Len())
	allocs := testing.AllocsPerRun(100, func() {
		if err := m.GetMany(ctx, sel, keys, dst, st); err != nil {
			panic(err)
		}
	})
	require.Zero(t, allocs)
}

func TestCollector(t *testing.T) {
	m, clk := newTestStore(t, Options{}, userView())
	ctx := context.Background()
	require.NoError(t, m.Put(ctx, "user", userRow("a", clk.Now(), 1, 1)))
	_, _ = m.GetRow(ctx, "user", "a")
	_, _ = m.GetRow(ctx, "user", "b")
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(m.Collector(nil)))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range mt.GetLabel() {
				if l.GetName() == "result" {
					key += "/" + l.GetValue()
				}
			}
			switch {
			case mt.GetCounter() != nil:
				got[key] = mt.GetCounter().GetValue()
			case mt.GetGauge() != nil:
				got[key] = mt.GetGauge().GetValue()
			case mt.GetHistogram() != nil:
				got[key] = float64(mt.GetHistogram().GetSampleCount())
			}
		}
	}
	require.Equal(t, 1.0, got["quiver_features_reads_total/found"])
	require.Equal(t, 1.0, got["quiver_features_reads_total/not_found"])
	require.Equal(t, 1.0, got["quiver_features_writes_total/stored"])
	require.Equal(t, 1.0, got["quiver_features_rows"])
	require.Equal(t, 1.0, got["quiver_features_served_age_seconds"])
}

func TestErrorsAreDistinct(t *testing.T) {
	all := []error{ErrInvalidView, ErrViewExists, ErrUnknownView, ErrUnknownFeature, ErrType, ErrDimension,
		ErrInvalidValue, ErrInvalidEntity, ErrBuffer, ErrNotFound, ErrExpired, ErrClosed, ErrSnapshot, ErrChecksum, ErrVersion}
	for i, a := range all {
		for j, b := range all {
			require.Equal(t, i == j, errors.Is(a, b))
		}
	}
}

func TestWallClockWithoutOptionsClock(t *testing.T) {
	m := New(Options{})
	defer m.Close()
	near := func() {
		t.Helper()
		d := time.Duration(m.nowNanos() - time.Now().UnixNano())
		require.Less(t, d.Abs(), 100*time.Millisecond)
	}
	near()
	// A stale base (as after a wall-clock step more than a second ago) is
	// replaced on the next read.
	m.base.Store(&clockBase{wall: 0, mono: time.Now().Add(-2 * time.Second)})
	near()
	near()
}
