package features

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWriteLimitsMatchSnapshot checks that what Put and Register refuse is
// exactly what a snapshot cannot hold, and that a refusal leaves the
// store as it was.
func TestWriteLimitsMatchSnapshot(t *testing.T) {
	strView := func(mut func(*View)) View {
		v := View{Name: "s", Entity: "id", Features: []Feature{{Name: "x", Kind: KindString}}}
		if mut != nil {
			mut(&v)
		}
		return v
	}
	registers := []struct {
		name string
		view View
		err  error
	}{
		{"version at the limit", strView(func(v *View) { v.Version = MaxVersion }), nil},
		{"version over the limit", strView(func(v *View) { v.Version = MaxVersion + 1 }), ErrInvalidView},
		{"capacity at the limit", strView(func(v *View) { v.Capacity = MaxCapacity }), nil},
		{"capacity over the limit", strView(func(v *View) { v.Capacity = MaxCapacity + 1 }), ErrInvalidView},
		{"string default at the limit", strView(func(v *View) { v.Features[0].Default = String(strings.Repeat("d", MaxStringLen)) }), nil},
		{"string default over the limit", strView(func(v *View) { v.Features[0].Default = String(strings.Repeat("d", MaxStringLen+1)) }), ErrInvalidView},
	}
	for _, tc := range registers {
		t.Run("register/"+tc.name, func(t *testing.T) {
			m := New(Options{Shards: 1})
			defer m.Close()
			err := m.Register(tc.view)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				require.Empty(t, m.Views(), "a refused view is not registered")
				return
			}
			require.NoError(t, err)
			got := saveLoad(t, m, Options{Shards: 1})
			require.Len(t, got.Views(), 1)
			require.True(t, sameDefinition(tc.view, got.Views()[0]))
		})
	}

	puts := []struct {
		name string
		val  string
		err  error
	}{
		{"empty string", "", nil},
		{"string at the limit", strings.Repeat("a", MaxStringLen), nil},
		{"string over the limit", strings.Repeat("a", MaxStringLen+1), ErrTooLarge},
	}
	for _, tc := range puts {
		t.Run("put/"+tc.name, func(t *testing.T) {
			m := New(Options{Shards: 1})
			defer m.Close()
			require.NoError(t, m.Register(strView(nil)))
			ctx := context.Background()
			at := time.Unix(1000, 0)
			require.NoError(t, m.Put(ctx, "s", Row{Entity: "e", EventTime: at, Values: map[string]Value{"x": String("before")}}))
			err := m.Put(ctx, "s", Row{Entity: "e", EventTime: at.Add(time.Second), Values: map[string]Value{"x": String(tc.val)}})
			want := tc.val
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				require.Equal(t, 1, RowErrors(err), "a row-level rejection, which ingestion skips")
				want = "before"
			} else {
				require.NoError(t, err)
			}
			got := saveLoad(t, m, Options{Shards: 1})
			res, err := got.GetRow(ctx, "s", "e")
			require.NoError(t, err)
			require.Equal(t, want, res.Values["x"].Str())
		})
	}
}

// TestRegisterRefusesMoreViewsThanASnapshotHolds fills a store to its
// view limit (lowered: the real one takes minutes to reach).
func TestRegisterRefusesMoreViewsThanASnapshotHolds(t *testing.T) {
	require.Equal(t, MaxViews, viewLimit)
	viewLimit = 8
	t.Cleanup(func() { viewLimit = MaxViews })
	m := New(Options{Shards: 1})
	defer m.Close()
	for i := range viewLimit {
		require.NoError(t, m.Register(floatView("v"+strconv.Itoa(i), 1, 0)))
	}
	require.ErrorIs(t, m.Register(floatView("one-more", 1, 0)), ErrInvalidView)
	require.NoError(t, m.Register(floatView("v0", 1, 0)), "re-registering an identical view stays a no-op")
	require.Len(t, m.Views(), viewLimit)
}

func saveLoad(t *testing.T, m *Memory, opts Options) *Memory {
	t.Helper()
	path := filepath.Join(t.TempDir(), "features.snap")
	require.NoError(t, m.Save(context.Background(), path))
	got, err := Load(context.Background(), path, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = got.Close() })
	return got
}

// TestEventTimeRange checks every entry point of the package that turns a
// time into Unix nanoseconds.
func TestEventTimeRange(t *testing.T) {
	minT, maxT := time.Unix(0, math.MinInt64), time.Unix(0, math.MaxInt64)
	cases := []struct {
		name string
		at   time.Time
		err  error
	}{
		{"year 1600", time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC), ErrEventTime},
		{"year 2300", time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), ErrEventTime},
		{"just before the first", minT.Add(-1), ErrEventTime},
		{"just after the last", maxT.Add(1), ErrEventTime},
		{"the first", minT, nil},
		{"the last", maxT, nil},
		{"the epoch", time.Unix(0, 0), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, CheckEventTime(tc.at), tc.err)

			m, _ := newTestStore(t, Options{}, floatView("f", 0, 0))
			ctx := context.Background()
			row := Row{Entity: "e", EventTime: tc.at, Values: map[string]Value{"x": Float32(2)}}
			err := m.Put(ctx, "f", row)
			b, merr := m.MarshalRow("f", row)
			ist, ierr := Ingest(ctx, m, "f", rowChan(row), IngestOptions{OnReject: func(string, error) {}})
			require.NoError(t, ierr, "a bad event time is a row rejection, not the end of ingestion")
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				require.ErrorIs(t, merr, tc.err)
				require.Equal(t, uint64(1), ist.Rejected)
				n, _ := m.Len("f")
				require.Zero(t, n, "nothing of a refused row is stored")
				return
			}
			require.NoError(t, err)
			require.NoError(t, merr)
			require.Zero(t, ist.Rejected)
			dec, err := m.UnmarshalRow("f", "e", b)
			require.NoError(t, err)
			require.True(t, dec.EventTime.Equal(tc.at), "the row codec keeps the time exactly")
			got := saveLoad(t, m, Options{})
			res, err := got.GetRow(ctx, "f", "e")
			require.NoError(t, err)
			require.True(t, res.EventTime.Equal(tc.at), "a snapshot keeps the time exactly: %v", res.EventTime)
		})
	}
}

func rowChan(rows ...Row) <-chan Row {
	ch := make(chan Row, len(rows))
	for _, r := range rows {
		ch <- r
	}
	close(ch)
	return ch
}

// TestOutOfRangeEventTimeDoesNotBlockLaterWrites is the failure the range
// check prevents: a time that wraps to the far future makes every later
// write of the entity look stale.
func TestOutOfRangeEventTimeDoesNotBlockLaterWrites(t *testing.T) {
	m, clk := newTestStore(t, Options{}, floatView("f", 0, 0))
	ctx := context.Background()
	require.ErrorIs(t, m.Put(ctx, "f", Row{Entity: "e", EventTime: time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC), Values: map[string]Value{"x": Float32(1)}}), ErrEventTime)
	require.NoError(t, m.Put(ctx, "f", Row{Entity: "e", EventTime: clk.Now(), Values: map[string]Value{"x": Float32(2)}}))
	res, err := m.GetRow(ctx, "f", "e")
	require.NoError(t, err)
	require.Equal(t, float32(2), res.Values["x"].Float32())
}

// TestZeroEventTimeIsWriteTime: a row without an event time is stamped
// with the store's clock when written, ages from there and obeys the TTL.
func TestZeroEventTimeIsWriteTime(t *testing.T) {
	m, clk := newTestStore(t, Options{}, floatView("f", 0, time.Minute))
	ctx := context.Background()
	require.NoError(t, m.Put(ctx, "f", Row{Entity: "e", Values: map[string]Value{"x": Float32(3)}}))
	res, err := m.GetRow(ctx, "f", "e")
	require.NoError(t, err)
	require.Equal(t, StatusPresent, res.Status["x"])
	require.Equal(t, float32(3), res.Values["x"].Float32())
	require.True(t, res.EventTime.Equal(clk.Now()), "event time %v, want the write's time %v", res.EventTime, clk.Now())

	clk.Add(30 * time.Second)
	require.NoError(t, m.Put(ctx, "f", Row{Entity: "e", EventTime: clk.At(-time.Second), Values: map[string]Value{"x": Float32(4)}}))
	res, err = m.GetRow(ctx, "f", "e")
	require.NoError(t, err)
	require.Equal(t, float32(4), res.Values["x"].Float32(), "an event after the stamped write time replaces it")

	require.NoError(t, m.Put(ctx, "f", Row{Entity: "e", Values: map[string]Value{"x": Float32(5)}}))
	clk.Add(2 * time.Minute)
	_, err = m.GetRow(ctx, "f", "e")
	require.ErrorIs(t, err, ErrExpired, "the TTL runs from the write's time")

	b, err := m.MarshalRow("f", Row{Entity: "e", Values: map[string]Value{"x": Float32(6)}})
	require.NoError(t, err)
	dec, err := m.UnmarshalRow("f", "e", b)
	require.NoError(t, err)
	require.True(t, dec.EventTime.Equal(clk.Now()), "the row codec stamps the encoding's time")
}

// TestLoadSweepsInterruptedSaves leaves the temporary file of a crashed
// Save beside a snapshot and checks that Load removes it and nothing else.
func TestLoadSweepsInterruptedSaves(t *testing.T) {
	m, clk := snapshotStore(t)
	defer m.Close()
	dir := t.TempDir()
	path := filepath.Join(dir, "features.snap")
	ctx := context.Background()
	require.NoError(t, m.Save(ctx, path))
	leftover := filepath.Join(dir, ".features.snap.tmp-0123456789abcdef")
	other := filepath.Join(dir, ".other.snap.tmp-0123456789abcdef")
	for _, p := range []string{leftover, other} {
		require.NoError(t, os.WriteFile(p, []byte("partial"), 0o600))
	}
	got, err := Load(ctx, path, Options{Clock: clk.Now})
	require.NoError(t, err)
	defer got.Close()
	_, err = os.Stat(leftover)
	require.ErrorIs(t, err, os.ErrNotExist, "the interrupted save's temporary file is removed")
	_, err = os.Stat(other)
	require.NoError(t, err, "another file's temporary file is left alone")
}

// TestSnapshotRoundTripProperty saves random stores (every kind, edge
// sizes and times, nulls, NaNs under NaNAllow) and checks that Load gives
// back the same views and rows.
func TestSnapshotRoundTripProperty(t *testing.T) {
	ctx := context.Background()
	for seed := range uint64(16) {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0x5eed))
			now := time.Unix(0, rng.Int64N(math.MaxInt64))
			clk := newFakeClock(now)
			m := New(Options{Shards: 1 << rng.IntN(4), Clock: clk.Now})
			defer m.Close()
			want := map[string]map[string]Row{}
			for vi := range 1 + rng.IntN(4) {
				v := randomView(rng, "view"+strconv.Itoa(vi))
				if err := m.Register(v); err != nil {
					// Definitions beyond the limits are drawn too: refused,
					// or else they must round-trip like the rest.
					require.ErrorIs(t, err, ErrInvalidView)
					continue
				}
				rows := map[string]Row{}
				for range rng.IntN(30) {
					r := randomRow(rng, v)
					if err := m.Put(ctx, v.Name, r); err != nil {
						require.True(t, errors.Is(err, ErrTooLarge) || errors.Is(err, ErrEventTime), "%v", err)
						continue
					}
					if r.EventTime.IsZero() {
						r.EventTime = now
					}
					if old, ok := rows[r.Entity]; !ok || !r.EventTime.Before(old.EventTime) {
						rows[r.Entity] = r
					}
				}
				want[v.Name] = rows
			}
			if seed == 0 {
				// The largest values, which random draws reach rarely.
				v := View{Name: "edges", Entity: "id", Version: MaxVersion, Capacity: MaxCapacity, NaN: NaNAllow, Features: []Feature{
					{Name: "emb", Kind: KindEmbedding, Dim: MaxEmbeddingDim},
					{Name: "s", Kind: KindString, Default: String(strings.Repeat("d", MaxStringLen))},
				}}
				require.NoError(t, m.Register(v))
				r := Row{Entity: strings.Repeat("k", MaxEntityLen), EventTime: time.Unix(0, math.MaxInt64), Values: map[string]Value{
					"emb": randomValue(rng, v.Features[0], NaNAllow), "s": String(strings.Repeat("s", MaxStringLen)),
				}}
				require.NoError(t, m.Put(ctx, v.Name, r))
				want[v.Name] = map[string]Row{r.Entity: r}
			}
			got := saveLoad(t, m, Options{Clock: clk.Now})
			require.Len(t, got.Views(), len(want))
			for _, v := range m.Views() {
				gv, err := got.View(v.Name)
				require.NoError(t, err)
				require.True(t, sameDefinition(v, gv), "view %q", v.Name)
				n, err := got.Len(v.Name)
				require.NoError(t, err)
				require.Equal(t, len(want[v.Name]), n, "view %q", v.Name)
				for ent, r := range want[v.Name] {
					a, errA := m.GetRow(ctx, v.Name, ent)
					b, errB := got.GetRow(ctx, v.Name, ent)
					require.Equal(t, errA == nil, errB == nil, "view %q entity %q: %v vs %v", v.Name, ent, errA, errB)
					require.True(t, b.EventTime.Equal(r.EventTime), "view %q entity %q", v.Name, ent)
					for _, f := range v.Features {
						require.Equal(t, a.Status[f.Name], b.Status[f.Name])
						require.True(t, a.Values[f.Name].Equal(b.Values[f.Name]), "view %q entity %q feature %q: %v vs %v", v.Name, ent, f.Name, a.Values[f.Name], b.Values[f.Name])
					}
				}
			}
		})
	}
}

var edgeTimes = []time.Time{{}, time.Unix(0, math.MinInt64), time.Unix(0, math.MaxInt64), time.Unix(0, 0), time.Unix(0, -1),
	time.Unix(0, math.MinInt64).Add(-1), time.Unix(0, math.MaxInt64).Add(1)}

func randomView(rng *rand.Rand, name string) View {
	v := View{
		Name: name, Entity: "id",
		Version:  []int{0, 1, MaxVersion, rng.IntN(MaxVersion), MaxVersion + 1}[rng.IntN(5)],
		Capacity: []int{0, 1 << 12, MaxCapacity, 4096 + rng.IntN(MaxCapacity-4096), MaxCapacity + 1}[rng.IntN(5)],
		NaN:      NaNPolicy(rng.IntN(3)),
	}
	nf := 1 + rng.IntN(12)
	if rng.IntN(4) == 0 {
		nf = MaxFeatures
	}
	for i := range nf {
		f := Feature{Name: "f" + strconv.Itoa(i), Kind: Kind(1 + rng.IntN(4))}
		if f.Kind == KindEmbedding {
			f.Dim = []int{1, 3, 17, MaxEmbeddingDim}[rng.IntN(4)]
			if f.Dim == MaxEmbeddingDim && rng.IntN(32) != 0 {
				f.Dim = 2
			}
		}
		if rng.IntN(2) == 0 {
			f.Default = randomValue(rng, f, NaNAllow)
		}
		v.Features = append(v.Features, f)
	}
	return v
}

func randomRow(rng *rand.Rand, v View) Row {
	r := Row{Entity: randomKey(rng), Values: map[string]Value{}}
	if rng.IntN(3) == 0 {
		r.EventTime = edgeTimes[rng.IntN(len(edgeTimes))]
	} else {
		r.EventTime = time.Unix(0, int64(rng.Uint64()))
	}
	for _, f := range v.Features {
		switch rng.IntN(4) {
		case 0: // missing
		case 1:
			r.Values[f.Name] = Null()
		default:
			r.Values[f.Name] = randomValue(rng, f, v.NaN)
		}
	}
	return r
}

func randomKey(rng *rand.Rand) string {
	switch rng.IntN(4) {
	case 0:
		return strings.Repeat("k", 1+rng.IntN(MaxEntityLen))
	case 1:
		return string(rune('a' + rng.IntN(3))) // few keys: rows replace each other
	default:
		return "e" + strconv.Itoa(rng.IntN(30))
	}
}

func randomFloat(rng *rand.Rand, nan NaNPolicy) float32 {
	if nan == NaNAllow && rng.IntN(8) == 0 {
		return []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}[rng.IntN(3)]
	}
	return []float32{0, -0.0, math.MaxFloat32, math.SmallestNonzeroFloat32, rng.Float32()*2 - 1}[rng.IntN(5)]
}

func randomValue(rng *rand.Rand, f Feature, nan NaNPolicy) Value {
	switch f.Kind {
	case KindFloat32:
		return Float32(randomFloat(rng, nan))
	case KindInt64:
		return Int64([]int64{0, math.MinInt64, math.MaxInt64, int64(rng.Uint64())}[rng.IntN(4)])
	case KindString:
		n := []int{0, 1, 300, MaxStringLen, MaxStringLen + 1}[rng.IntN(5)]
		if n == MaxStringLen && rng.IntN(16) != 0 {
			n = 2
		}
		// Long values repeat a random 64-byte pattern: random enough to
		// catch a misplaced byte, cheap enough under the race detector.
		b := make([]byte, min(n, 64))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return String(strings.Repeat(string(b), n/max(len(b), 1)) + string(b[:n%max(len(b), 1)]))
	default:
		x := make([]float32, f.Dim)
		for i := range min(len(x), 64) {
			x[i] = randomFloat(rng, nan)
		}
		for i := 64; i < len(x); i++ {
			x[i] = x[i%64]
		}
		return Embedding(x)
	}
}
