package benchmarks

// Feature-store lookups: Quiver's features.Memory against a plain map with
// an RWMutex (the floor: one hash lookup per key), otter v2, ristretto v2
// and Redis MGET over loopback, all holding the same 1M rows of 32
// float32 values plus an event time. Reads are Zipf-distributed (s=1.01).
// Every store copies each row into the caller's dense buffer; Quiver also
// checks the TTL, writes a status per value and records freshness.
//
//	cd benchmarks && go test -run '^$' -bench 'GetMany50|Get1|Memory1M' -cpu 2 -benchmem .

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/maypok86/otter/v2"
	"github.com/quiverml/quiver/features"
)

const (
	featN     = 1_000_000
	featWidth = 32
	featBatch = 50
	featSeq   = 1 << 16
)

// featRow is a peer's value: an event time and 32 floats (136 bytes).
type featRow struct {
	ts   int64
	vals [featWidth]float32
}

var (
	featKeysOnce sync.Once
	featKeys     []string
	featZipf     []int32
	featNames    []string
)

func featSetupKeys() {
	featKeysOnce.Do(func() {
		featKeys = make([]string, featN)
		for i := range featKeys {
			featKeys[i] = "user:" + strconv.Itoa(i)
		}
		z := rand.NewZipf(rand.New(rand.NewSource(1)), 1.01, 1, featN-1)
		featZipf = make([]int32, featSeq)
		for i := range featZipf {
			featZipf[i] = int32(z.Uint64())
		}
		featNames = make([]string, featWidth)
		for i := range featNames {
			featNames[i] = "f" + strconv.Itoa(i)
		}
	})
}

func featValue(i, j int) float32 { return float32(i%1000) + float32(j)/100 }

// featStore is what each benchmarked store implements.
type featStore interface {
	// getMany fills dst for keys and returns how many were found.
	getMany(keys []string, dst []float32, st []features.Status) (int, error)
	put(key string, r *featRow) error
}

// quiverStore adapts features.Memory.
type quiverStore struct {
	m   *features.Memory
	sel *features.Selection
}

func featView() features.View {
	fs := make([]features.Feature, featWidth)
	for i := range fs {
		fs[i] = features.Feature{Name: featNames[i], Kind: features.KindFloat32}
	}
	return features.View{Name: "bench", Entity: "user_id", Features: fs, TTL: 24 * time.Hour, Capacity: featN + featN/10}
}

func newQuiverStore() *quiverStore {
	featSetupKeys()
	m := features.New(features.Options{})
	if err := m.Register(featView()); err != nil {
		panic(err)
	}
	now := time.Now()
	rows := make([]features.Row, 0, 512)
	vals := make([]map[string]features.Value, cap(rows))
	for i := range vals {
		vals[i] = make(map[string]features.Value, featWidth)
	}
	for i, k := range featKeys {
		v := vals[len(rows)]
		for j, name := range featNames {
			v[name] = features.Float32(featValue(i, j))
		}
		rows = append(rows, features.Row{Entity: k, EventTime: now, Values: v})
		if len(rows) == cap(rows) || i == len(featKeys)-1 {
			if err := m.Put(context.Background(), "bench", rows...); err != nil {
				panic(err)
			}
			rows = rows[:0]
		}
	}
	sel, err := m.Select("bench")
	if err != nil {
		panic(err)
	}
	return &quiverStore{m: m, sel: sel}
}

func (q *quiverStore) getMany(keys []string, dst []float32, st []features.Status) (int, error) {
	if err := q.m.GetMany(context.Background(), q.sel, keys, dst, st); err != nil {
		return 0, err
	}
	hits := 0
	for i := range keys {
		if st[i*featWidth] == features.StatusPresent {
			hits++
		}
	}
	return hits, nil
}

var featValuesPool = sync.Pool{New: func() any { return make(map[string]features.Value, featWidth) }}

func (q *quiverStore) put(key string, r *featRow) error {
	v := featValuesPool.Get().(map[string]features.Value)
	defer featValuesPool.Put(v)
	for j, name := range featNames {
		v[name] = features.Float32(r.vals[j])
	}
	return q.m.Put(context.Background(), "bench", features.Row{Entity: key, EventTime: time.Unix(0, r.ts), Values: v})
}

// mapStore is the floor: one RWMutex, one read lock per 50-key call.
type mapStore struct {
	mu   sync.RWMutex
	rows map[string]*featRow
}

func newMapStore() *mapStore {
	featSetupKeys()
	s := &mapStore{rows: make(map[string]*featRow, featN)}
	now := time.Now().UnixNano()
	for i, k := range featKeys {
		r := &featRow{ts: now}
		for j := range r.vals {
			r.vals[j] = featValue(i, j)
		}
		s.rows[k] = r
	}
	return s
}

func (s *mapStore) getMany(keys []string, dst []float32, _ []features.Status) (int, error) {
	hits := 0
	s.mu.RLock()
	for i, k := range keys {
		if r, ok := s.rows[k]; ok {
			copy(dst[i*featWidth:(i+1)*featWidth], r.vals[:])
			hits++
		}
	}
	s.mu.RUnlock()
	return hits, nil
}

func (s *mapStore) put(key string, r *featRow) error {
	s.mu.Lock()
	if cur, ok := s.rows[key]; ok {
		*cur = *r
	} else {
		c := *r
		s.rows[key] = &c
	}
	s.mu.Unlock()
	return nil
}

// otterStore holds *featRow values in otter v2.
type otterStore struct {
	c *otter.Cache[string, *featRow]
}

func newOtterStore() *otterStore {
	featSetupKeys()
	c := otter.Must(&otter.Options[string, *featRow]{MaximumSize: featN + featN/10})
	now := time.Now().UnixNano()
	for i, k := range featKeys {
		r := &featRow{ts: now}
		for j := range r.vals {
			r.vals[j] = featValue(i, j)
		}
		c.Set(k, r)
	}
	return &otterStore{c: c}
}

func (s *otterStore) getMany(keys []string, dst []float32, _ []features.Status) (int, error) {
	hits := 0
	for i, k := range keys {
		if r, ok := s.c.GetIfPresent(k); ok {
			copy(dst[i*featWidth:(i+1)*featWidth], r.vals[:])
			hits++
		}
	}
	return hits, nil
}

func (s *otterStore) put(key string, r *featRow) error {
	c := *r
	s.c.Set(key, &c)
	return nil
}

// ristrettoStore holds *featRow values in ristretto v2 (which may drop
// sets under contention).
type ristrettoStore struct {
	c *ristretto.Cache[string, *featRow]
}

func newRistrettoStore() *ristrettoStore {
	featSetupKeys()
	c, err := ristretto.NewCache(&ristretto.Config[string, *featRow]{
		NumCounters: 10 * featN, MaxCost: featN + featN/10, BufferItems: 64, IgnoreInternalCost: true,
	})
	if err != nil {
		panic(err)
	}
	now := time.Now().UnixNano()
	for i, k := range featKeys {
		r := &featRow{ts: now}
		for j := range r.vals {
			r.vals[j] = featValue(i, j)
		}
		for !c.Set(k, r, 1) {
			c.Wait()
		}
	}
	c.Wait()
	return &ristrettoStore{c: c}
}

func (s *ristrettoStore) getMany(keys []string, dst []float32, _ []features.Status) (int, error) {
	hits := 0
	for i, k := range keys {
		if r, ok := s.c.Get(k); ok {
			copy(dst[i*featWidth:(i+1)*featWidth], r.vals[:])
			hits++
		}
	}
	return hits, nil
}

func (s *ristrettoStore) put(key string, r *featRow) error {
	c := *r
	s.c.Set(key, &c, 1)
	return nil
}

// redisStore reads with MGET and writes with SET; a value is the event
// time and 32 little-endian floats.
type redisStore struct {
	r *featuresRedis
}

func encodeFeatRow(r *featRow, buf []byte) []byte {
	buf = binary.LittleEndian.AppendUint64(buf[:0], uint64(r.ts))
	for _, v := range r.vals {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
	}
	return buf
}

func newRedisStore(tb testing.TB) (*redisStore, error) {
	featSetupKeys()
	r, err := startFeaturesRedis(tb)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	now := time.Now().UnixNano()
	pipe := r.client.Pipeline()
	for i, k := range featKeys {
		row := featRow{ts: now}
		for j := range row.vals {
			row.vals[j] = featValue(i, j)
		}
		pipe.Set(ctx, k, encodeFeatRow(&row, nil), 0)
		if pipe.Len() == 1000 || i == len(featKeys)-1 {
			if _, err := pipe.Exec(ctx); err != nil {
				r.stop()
				return nil, err
			}
		}
	}
	return &redisStore{r: r}, nil
}

func (s *redisStore) getMany(keys []string, dst []float32, _ []features.Status) (int, error) {
	vals, err := s.r.client.MGet(context.Background(), keys...).Result()
	if err != nil {
		return 0, err
	}
	hits := 0
	for i, v := range vals {
		b, ok := v.(string)
		if !ok || len(b) != 8+4*featWidth {
			continue
		}
		hits++
		out := dst[i*featWidth : (i+1)*featWidth]
		for j := range out {
			out[j] = math.Float32frombits(binary.LittleEndian.Uint32([]byte(b[8+4*j : 12+4*j])))
		}
	}
	return hits, nil
}

func (s *redisStore) put(key string, r *featRow) error {
	return s.r.client.Set(context.Background(), key, encodeFeatRow(r, nil), 0).Err()
}

// Each store is built once per process and kept for every sub-benchmark.
var (
	featStoresMu sync.Mutex
	featStores   = map[string]featStore{}
	featStoreErr = map[string]error{}
)

func featGetStore(b *testing.B, name string) featStore {
	b.Helper()
	featStoresMu.Lock()
	defer featStoresMu.Unlock()
	if s, ok := featStores[name]; ok {
		return s
	}
	if err := featStoreErr[name]; err != nil {
		b.Fatal(err)
	}
	var s featStore
	switch name {
	case "quiver":
		s = newQuiverStore()
	case "map":
		s = newMapStore()
	case "otter":
		s = newOtterStore()
	case "ristretto":
		s = newRistrettoStore()
	case "redis":
		rs, err := newRedisStore(b)
		if err != nil {
			featStoreErr[name] = err
			b.Fatal(err)
		}
		s = rs
	}
	featStores[name] = s
	return s
}

var featStoreNames = []string{"quiver", "map", "otter", "ristretto", "redis"}

// featRun runs 2 goroutines (with -cpu 2) of which writePct percent of
// operations write one row and the rest read batch keys.
func featRun(b *testing.B, s featStore, batch, writePct int) {
	b.Helper()
	b.ReportAllocs()
	b.SetParallelism(1)
	var seedMu sync.Mutex
	seed := int64(0)
	var (
		failed       error
		hits, looked atomic.Int64
	)
	cpu0 := featCPU(s)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		seedMu.Lock()
		seed++
		r := rand.New(rand.NewSource(seed))
		seedMu.Unlock()
		keys := make([]string, batch)
		dst := make([]float32, batch*featWidth)
		st := make([]features.Status, batch*featWidth)
		row := &featRow{}
		pos := r.Intn(featSeq)
		var myHits, myLooked int64
		for n := 0; pb.Next(); n++ {
			if writePct > 0 && n%100 < writePct {
				i := int(featZipf[pos])
				pos = (pos + 1) & (featSeq - 1)
				row.ts = time.Now().UnixNano()
				for j := range row.vals {
					row.vals[j] = featValue(i+n, j)
				}
				if err := s.put(featKeys[i], row); err != nil {
					failed = err
				}
				continue
			}
			for i := range keys {
				keys[i] = featKeys[featZipf[pos]]
				pos = (pos + 1) & (featSeq - 1)
			}
			h, err := s.getMany(keys, dst, st)
			if err != nil {
				failed = err
			}
			myHits += int64(h)
			myLooked += int64(len(keys))
		}
		hits.Add(myHits)
		looked.Add(myLooked)
	})
	if failed != nil {
		b.Fatal(failed)
	}
	b.StopTimer()
	if looked.Load() > 0 {
		b.ReportMetric(float64(hits.Load())/float64(looked.Load()), "hit-ratio")
	}
	// CPU time per op (this process, plus redis-server for Redis): on a
	// shared machine it measures the work done rather than time spent
	// waiting for a core.
	b.ReportMetric(float64(featCPU(s)-cpu0)/float64(b.N), "cpu-ns/op")
}

// featCPU returns the CPU time used so far by this process and, for the
// Redis store, by redis-server.
func featCPU(s featStore) time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	d := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if rs, ok := s.(*redisStore); ok {
		d += processCPU(rs.r.cmd.Process.Pid)
	}
	return d
}

// processCPU reads utime+stime of pid from /proc (clock ticks of 10ms).
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// BenchmarkGetMany50 reads 50 Zipf keys per op (read only).
func BenchmarkGetMany50(b *testing.B) {
	for _, name := range featStoreNames {
		b.Run("store="+name, func(b *testing.B) { featRun(b, featGetStore(b, name), featBatch, 0) })
	}
}

// BenchmarkGetMany50Mixed mixes GetMany(50) with single-row writes: 9:1
// and 1:1 reads to writes (by operation count).
func BenchmarkGetMany50Mixed(b *testing.B) {
	for _, mix := range []struct {
		name string
		pct  int
	}{{"rw=9:1", 10}, {"rw=1:1", 50}} {
		for _, name := range featStoreNames {
			b.Run(mix.name+"/store="+name, func(b *testing.B) { featRun(b, featGetStore(b, name), featBatch, mix.pct) })
		}
	}
}

// BenchmarkGet1 reads one Zipf key per op.
func BenchmarkGet1(b *testing.B) {
	for _, name := range featStoreNames {
		b.Run("store="+name, func(b *testing.B) { featRun(b, featGetStore(b, name), 1, 0) })
	}
}

// BenchmarkMemory1M builds a fresh store of 1M rows and reports heap bytes
// per entry (the raw payload is 136 bytes plus an ~11-byte key).
func BenchmarkMemory1M(b *testing.B) {
	for _, name := range []string{"quiver", "map", "otter", "ristretto"} {
		b.Run("store="+name, func(b *testing.B) {
			featSetupKeys()
			var keep featStore
			for range b.N {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				switch name {
				case "quiver":
					keep = newQuiverStore()
				case "map":
					keep = newMapStore()
				case "otter":
					keep = newOtterStore()
				case "ristretto":
					keep = newRistrettoStore()
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/featN, "bytes/entry")
				runtime.KeepAlive(keep)
				keep = nil
			}
		})
	}
}
