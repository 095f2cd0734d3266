package features

import (
	"context"
	"math/rand"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The benchmark data set: benchN entities of a view with 32 float32
// features, read with Zipf-distributed keys (s = 1.01). It is built once
// per process.
const (
	benchN     = 1_000_000
	benchWidth = 32
	benchBatch = 50
	benchSeq   = 1 << 16
)

var (
	benchOnce  sync.Once
	benchStore *Memory
	benchSel   *Selection
	benchKeys  []string
	benchZipf  []int32
	benchRow   Row
)

func benchView() View {
	fs := make([]Feature, benchWidth)
	for i := range fs {
		fs[i] = Feature{Name: "f" + strconv.Itoa(i), Kind: KindFloat32}
	}
	return View{Name: "bench", Entity: "user_id", Features: fs, TTL: time.Hour, Capacity: benchN + benchN/10}
}

func benchSetup(b *testing.B) {
	b.Helper()
	benchOnce.Do(func() {
		benchStore = New(Options{})
		if err := benchStore.Register(benchView()); err != nil {
			panic(err)
		}
		benchKeys = make([]string, benchN)
		vals := make(map[string]Value, benchWidth)
		now := time.Now()
		rows := make([]Row, 0, 1000)
		for i := range benchKeys {
			benchKeys[i] = "user:" + strconv.Itoa(i)
		}
		for i, k := range benchKeys {
			for j := range benchWidth {
				vals["f"+strconv.Itoa(j)] = Float32(float32(i + j))
			}
			rows = append(rows, Row{Entity: k, EventTime: now, Values: vals})
			if len(rows) == cap(rows) {
				if err := benchStore.Put(context.Background(), "bench", rows...); err != nil {
					panic(err)
				}
				rows = rows[:0]
			}
		}
		var err error
		if benchSel, err = benchStore.Select("bench"); err != nil {
			panic(err)
		}
		z := rand.NewZipf(rand.New(rand.NewSource(1)), 1.01, 1, benchN-1)
		benchZipf = make([]int32, benchSeq)
		for i := range benchZipf {
			benchZipf[i] = int32(z.Uint64())
		}
		benchRow = Row{Values: vals}
	})
}

// BenchmarkGetMany50 reads 50 Zipf-distributed keys per op into a caller
// buffer (32 float32 columns), with 2 goroutines under -cpu 2; the rw
// variants turn 10% or 50% of operations into single-row writes.
func BenchmarkGetMany50(b *testing.B) {
	benchSetup(b)
	for _, mix := range []struct {
		name   string
		writes int
	}{{"read", 0}, {"rw=9:1", 10}, {"rw=1:1", 50}} {
		b.Run(mix.name, func(b *testing.B) { benchMixed(b, benchBatch, mix.writes) })
	}
}

// BenchmarkGet reads one Zipf-distributed key per op.
func BenchmarkGet(b *testing.B) {
	benchSetup(b)
	benchMixed(b, 1, 0)
}

// BenchmarkPut writes one 32-feature row per op to Zipf-distributed keys
// (existing rows, newer event time).
func BenchmarkPut(b *testing.B) {
	benchSetup(b)
	benchMixed(b, 1, 100)
}

func benchMixed(b *testing.B, batch, writes int) {
	b.ReportAllocs()
	b.SetParallelism(1)
	var seed sync.Mutex
	next := int64(0)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		seed.Lock()
		next++
		r := rand.New(rand.NewSource(next))
		seed.Unlock()
		keys := make([]string, batch)
		dst := make([]float32, batch*benchWidth)
		st := make([]Status, batch*benchWidth)
		row := Row{Values: benchRow.Values}
		pos := r.Intn(benchSeq)
		ctx := context.Background()
		for n := 0; pb.Next(); n++ {
			if writes > 0 && n%100 < writes {
				row.Entity = benchKeys[benchZipf[pos]]
				row.EventTime = time.Now()
				pos = (pos + 1) & (benchSeq - 1)
				if err := benchStore.Put(ctx, "bench", row); err != nil {
					b.Error(err)
					return
				}
				continue
			}
			for i := range keys {
				keys[i] = benchKeys[benchZipf[pos]]
				pos = (pos + 1) & (benchSeq - 1)
			}
			if err := benchStore.GetMany(ctx, benchSel, keys, dst, st); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
