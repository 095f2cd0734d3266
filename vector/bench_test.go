package vector

import (
	"bufio"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/hnsw"
)

// The search benchmark data sets, each built once per process on first
// use: deterministic clustered sets (Gaussian clusters with varied,
// anisotropic spreads and uneven sizes) of QUIVER_BENCH_N vectors (default
// 100,000), 200 queries from the same distribution, ground truth by exact
// scan under the set's metric. "l2-128" is 128-d under L2; "cos-384" is
// 384-d under Cosine, the shape of a small sentence-embedding model's
// output. Sub-benchmarks name them set=<name>.
type benchSet struct {
	data, queries [][]float32
	truth         [][]int
}

// benchSpec describes one data set and the Quiver and peer indexes built
// on it.
type benchSpec struct {
	name     string
	dim      int
	metric   Metric
	clusters int
	seed     uint64
	// suffix names the exported files: base<suffix>.fvecs,
	// query<suffix>.fvecs, truth<suffix>.ivecs.
	suffix string

	setOnce sync.Once
	set     benchSet

	quiverOnce  sync.Once
	quiverIdx   *HNSW[uint64]
	quiverBuild time.Duration
	quiverBytes float64
}

var (
	setL2  = &benchSpec{name: "l2-128", dim: 128, metric: L2, clusters: 200, seed: 7}
	setCos = &benchSpec{name: "cos-384", dim: 384, metric: Cosine, clusters: 200, seed: 11, suffix: "-cos"}
	// benchSets is every data set, in the order benchmarks run them.
	benchSets = []*benchSpec{setL2, setCos}

	int8Once sync.Once
	int8Idx  *HNSW[uint64]
	int8Load time.Duration

	coderOnce  sync.Once
	coderIdx   *hnsw.Graph[uint64]
	coderBuild time.Duration
	coderBytes float64
)

func benchN() int {
	if s := os.Getenv("QUIVER_BENCH_N"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n
		}
	}
	return 100_000
}

// getBenchSet returns the l2-128 set.
func getBenchSet() *benchSet { return setL2.data() }

// data builds the set on first use. QUIVER_BENCH_FVECS names a folder to
// receive it as base<suffix>.fvecs, query<suffix>.fvecs and
// truth<suffix>.ivecs, for the native and Python hnswlib peers
// (benchmarks/vector). The vectors are written as generated (not
// normalised); the peers normalise the cosine set themselves.
func (bs *benchSpec) data() *benchSet {
	bs.setOnce.Do(func() {
		ds := &bs.set
		ds.data, ds.queries = clustered(benchN(), 200, bs.dim, bs.clusters, bs.seed)
		ds.truth = groundTruth(ds.data, ds.queries, 10, bs.metric)
		if dir := os.Getenv("QUIVER_BENCH_FVECS"); dir != "" {
			if err := writeFvecs(dir, bs.suffix, ds); err != nil {
				panic(err)
			}
		}
	})
	return &bs.set
}

// writeFvecs writes the set in the TEXMEX .fvecs/.ivecs layout: per row a
// little-endian int32 dimension then the values.
func writeFvecs(dir, suffix string, ds *benchSet) error {
	write := func(name, ext string, rows int, dim func(int) int, put func(w *bufio.Writer, i int)) error {
		f, err := os.Create(filepath.Join(dir, name+suffix+ext))
		if err != nil {
			return err
		}
		w := bufio.NewWriter(f)
		for i := 0; i < rows; i++ {
			binary.Write(w, binary.LittleEndian, int32(dim(i)))
			put(w, i)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		return f.Close()
	}
	vecs := func(vs [][]float32) (int, func(int) int, func(*bufio.Writer, int)) {
		return len(vs), func(i int) int { return len(vs[i]) }, func(w *bufio.Writer, i int) { binary.Write(w, binary.LittleEndian, vs[i]) }
	}
	n, d, p := vecs(ds.data)
	if err := write("base", ".fvecs", n, d, p); err != nil {
		return err
	}
	n, d, p = vecs(ds.queries)
	if err := write("query", ".fvecs", n, d, p); err != nil {
		return err
	}
	return write("truth", ".ivecs", len(ds.truth), func(i int) int { return len(ds.truth[i]) }, func(w *bufio.Writer, i int) {
		for _, id := range ds.truth[i] {
			binary.Write(w, binary.LittleEndian, int32(id))
		}
	})
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// quiver builds the Quiver index on the set once: M=16,
// efConstruction=200, on every core.
func (bs *benchSpec) quiver(b *testing.B) *HNSW[uint64] {
	ds := bs.data()
	bs.quiverOnce.Do(func() {
		before := heapInUse()
		start := time.Now()
		h, err := NewHNSW[uint64](Options{Dim: bs.dim, Metric: bs.metric, M: 16, EfConstruction: 200})
		if err != nil {
			b.Fatal(err)
		}
		if err := h.Add(context.Background(), items(ds.data)...); err != nil {
			b.Fatal(err)
		}
		bs.quiverBuild = time.Since(start)
		bs.quiverIdx = h
		bs.quiverBytes = float64(heapInUse()-before) / float64(len(ds.data))
	})
	return bs.quiverIdx
}

// getQuiver returns the Quiver index on the l2-128 set.
func getQuiver(b *testing.B) *HNSW[uint64] { return setL2.quiver(b) }

// getInt8 is the Quiver graph saved and loaded again with int8 codes.
func getInt8(b *testing.B) *HNSW[uint64] {
	h := getQuiver(b)
	int8Once.Do(func() {
		path := filepath.Join(b.TempDir(), "bench.qvix")
		if err := h.Save(context.Background(), path); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		g, err := LoadHNSW[uint64](context.Background(), path, Options{Quantization: QuantInt8})
		if err != nil {
			b.Fatal(err)
		}
		int8Load = time.Since(start)
		int8Idx = g
		os.Remove(path)
	})
	return int8Idx
}

// getCoder returns coder/hnsw built on the l2-128 set.
func getCoder(b *testing.B) *hnsw.Graph[uint64] {
	ds := getBenchSet()
	coderOnce.Do(func() {
		before := heapInUse()
		start := time.Now()
		g := hnsw.NewGraph[uint64]()
		g.Distance = hnsw.EuclideanDistance
		g.M = 16
		g.EfSearch = 200 // coder/hnsw builds with its search beam: efConstruction=200
		for i, v := range ds.data {
			g.Add(hnsw.MakeNode(uint64(i), v))
		}
		coderBuild = time.Since(start)
		coderIdx = g
		coderBytes = float64(heapInUse()-before) / float64(len(ds.data))
	})
	return coderIdx
}

var efs = []int{16, 24, 32, 40, 48, 64, 128, 256}

// measureSearch reports recall@10 of ids over the set's queries, then
// times search, one query per iteration on one OS thread.
func measureSearch(b *testing.B, ds *benchSet, ids func(q []float32) []uint64, search func(q []float32) error) {
	got := make([][]uint64, len(ds.queries))
	for i, q := range ds.queries {
		got[i] = ids(q)
	}
	b.ReportAllocs()
	cpu := startCPU()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if err := search(ds.queries[i%len(ds.queries)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	cpu.report(b)
	b.ReportMetric(recallAt(got, ds.truth), "recall@10")
}

func quiverIDs(h *HNSW[uint64], opts SearchOptions) func(q []float32) []uint64 {
	return func(q []float32) []uint64 {
		res, _ := h.Search(context.Background(), q, 10, opts)
		ids := make([]uint64, len(res))
		for i, r := range res {
			ids[i] = r.ID
		}
		return ids
	}
}

// BenchmarkSearch measures one-goroutine k=10 search on each data set
// (set=l2-128, set=cos-384) for Quiver's HNSW, and on the l2-128 set for
// Quiver with int8 codes and coder/hnsw v0.6.1 (same data, M=16,
// efConstruction=200), reporting recall@10 against exact search, qps, the
// build time (Quiver builds on all cores, coder/hnsw on one) and the heap
// bytes per vector. coder/hnsw runs on one set only: it returns recall
// below 0.1 on it at every ef, and its one-core build of the 384-d set
// would take minutes.
func BenchmarkSearch(b *testing.B) {
	ctx := context.Background()
	for _, bs := range benchSets {
		b.Run("set="+bs.name, func(b *testing.B) {
			ds := bs.data()
			for _, ef := range efs {
				b.Run("index=quiver/ef="+strconv.Itoa(ef), func(b *testing.B) {
					h := bs.quiver(b)
					opts := SearchOptions{Ef: ef}
					measureSearch(b, ds, quiverIDs(h, opts), func(q []float32) error {
						_, err := h.Search(ctx, q, 10, opts)
						return err
					})
					b.ReportMetric(bs.quiverBuild.Seconds(), "build_s")
					b.ReportMetric(bs.quiverBytes, "bytes/vec")
				})
			}
			if bs != setL2 {
				return
			}
			for _, ef := range efs[:5] {
				b.Run("index=quiver-int8/ef="+strconv.Itoa(ef), func(b *testing.B) {
					h := getInt8(b)
					opts := SearchOptions{Ef: ef}
					measureSearch(b, ds, quiverIDs(h, opts), func(q []float32) error {
						_, err := h.Search(ctx, q, 10, opts)
						return err
					})
					b.ReportMetric(int8Load.Seconds(), "load_s")
					b.ReportMetric(h.Stats().BytesPerVector, "bytes/vec")
				})
			}
			for _, ef := range efs {
				b.Run("index=coder/ef="+strconv.Itoa(ef), func(b *testing.B) {
					g := getCoder(b)
					g.EfSearch = ef
					ids := func(q []float32) []uint64 {
						var out []uint64
						for _, n := range g.Search(q, 10) {
							out = append(out, n.Key)
						}
						return out
					}
					measureSearch(b, ds, ids, func(q []float32) error {
						g.Search(q, 10)
						return nil
					})
					b.ReportMetric(coderBuild.Seconds(), "build_s")
					b.ReportMetric(coderBytes, "bytes/vec")
				})
			}
		})
	}
}

// BenchmarkSearchBatch compares SearchBatch with a loop of Search over
// the same 200 queries of the l2-128 set (k=10, ef=64), on one index in
// one process. SearchBatch spreads the queries over GOMAXPROCS goroutines;
// the loop runs on one.
//
// mode=alternate runs the loop and the batch one after the other in every
// iteration and reports loop_qps, batch_qps and their ratio (speedup), so
// both see the same machine load. mode=loop and mode=batch run one each;
// one op is the whole batch of 200 queries, so allocs/op counts the
// results of 200 searches plus the batch's own (goroutines, result slice).
func BenchmarkSearchBatch(b *testing.B) {
	ctx := context.Background()
	ds := getBenchSet()
	opts := SearchOptions{Ef: 64}
	procs := "/procs=" + strconv.Itoa(runtime.GOMAXPROCS(0))
	loop := func(b *testing.B, h *HNSW[uint64]) {
		for _, q := range ds.queries {
			if _, err := h.Search(ctx, q, 10, opts); err != nil {
				b.Fatal(err)
			}
		}
	}
	batch := func(b *testing.B, h *HNSW[uint64]) {
		if _, err := h.SearchBatch(ctx, ds.queries, 10, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("mode=alternate"+procs, func(b *testing.B) {
		h := getQuiver(b)
		var tl, tb time.Duration
		b.ResetTimer()
		for b.Loop() {
			t0 := time.Now()
			loop(b, h)
			t1 := time.Now()
			batch(b, h)
			tl += t1.Sub(t0)
			tb += time.Since(t1)
		}
		nq := float64(b.N * len(ds.queries))
		b.ReportMetric(nq/tl.Seconds(), "loop_qps")
		b.ReportMetric(nq/tb.Seconds(), "batch_qps")
		b.ReportMetric(tl.Seconds()/tb.Seconds(), "speedup")
	})
	for _, mode := range []string{"loop", "batch"} {
		b.Run("mode="+mode+procs, func(b *testing.B) {
			h := getQuiver(b)
			run := loop
			if mode == "batch" {
				run = batch
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				run(b, h)
			}
			b.ReportMetric(float64(b.N*len(ds.queries))/b.Elapsed().Seconds(), "qps")
		})
	}
}

// BenchmarkFlatSearchBatch compares Flat.SearchBatch, which scans the
// vectors once per group of 8 queries, with a loop of Flat.Search over the
// same 64 queries (k=10) of a 100,000 x 128 index (51 MB of vectors, more
// than the caches hold). Both run on one goroutine (Workers: 1), so the ratio
// is the scan's alone, not parallelism. mode=alternate runs both in every
// iteration and reports loop_qps, batch_qps and speedup; mode=batch
// reports allocs/op for a whole batch.
func BenchmarkFlatSearchBatch(b *testing.B) {
	ctx := context.Background()
	data, queries := clustered(100000, 64, 128, 64, 5)
	f := must(NewFlat[uint64](FlatOptions{Dim: 128, Workers: 1}))
	if err := f.Add(ctx, items(data)...); err != nil {
		b.Fatal(err)
	}
	loop := func() {
		for _, q := range queries {
			if _, err := f.Search(ctx, q, 10, SearchOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	batch := func() {
		if _, err := f.SearchBatch(ctx, queries, 10, SearchOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("mode=alternate", func(b *testing.B) {
		var tl, tb time.Duration
		for b.Loop() {
			t0 := time.Now()
			loop()
			t1 := time.Now()
			batch()
			tl += t1.Sub(t0)
			tb += time.Since(t1)
		}
		nq := float64(b.N * len(queries))
		b.ReportMetric(nq/tl.Seconds(), "loop_qps")
		b.ReportMetric(nq/tb.Seconds(), "batch_qps")
		b.ReportMetric(tl.Seconds()/tb.Seconds(), "speedup")
	})
	b.Run("mode=batch", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			batch()
		}
		b.ReportMetric(float64(b.N*len(queries))/b.Elapsed().Seconds(), "qps")
	})
}

// BenchmarkSearchParallel is BenchmarkSearch for Quiver on every core
// (b.RunParallel), qps summed over goroutines.
func BenchmarkSearchParallel(b *testing.B) {
	ds := getBenchSet()
	ctx := context.Background()
	for _, ef := range []int{32, 64} {
		b.Run("index=quiver/ef="+strconv.Itoa(ef), func(b *testing.B) {
			h := getQuiver(b)
			opts := SearchOptions{Ef: ef}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := h.Search(ctx, ds.queries[i%len(ds.queries)], 10, opts); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "qps")
		})
	}
}

// cpuMeter locks the benchmark to its OS thread and measures the thread's
// CPU time: "qps" is wall-clock queries per second, "cpu_qps" queries per
// second of CPU time, which a busy shared machine distorts much less.
type cpuMeter struct {
	start time.Duration
	ok    bool
}

func startCPU() *cpuMeter {
	runtime.LockOSThread()
	t, ok := threadCPU()
	return &cpuMeter{t, ok}
}

func (c *cpuMeter) report(b *testing.B) {
	t, ok := threadCPU()
	runtime.UnlockOSThread()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "qps")
	if c.ok && ok && t > c.start {
		b.ReportMetric(float64(b.N)/(t-c.start).Seconds(), "cpu_qps")
	}
}

// BenchmarkLoad measures LoadHNSW on the benchmark index of each set
// (QUIVER_BENCH_N vectors), reporting MB/s of file read and parsed.
func BenchmarkLoad(b *testing.B) {
	for _, bs := range benchSets {
		b.Run("set="+bs.name, func(b *testing.B) {
			h := bs.quiver(b)
			path := filepath.Join(b.TempDir(), "load.qvix")
			if err := h.Save(context.Background(), path); err != nil {
				b.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(fi.Size())
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				g, err := LoadHNSW[uint64](context.Background(), path, Options{})
				if err != nil {
					b.Fatal(err)
				}
				g.Close()
			}
		})
	}
}

// BenchmarkLoad1M measures LoadHNSW on a synthetic index of 1,000,000
// vectors of dimension 128 (random vectors, 32 random base-layer links
// each: the loader's work does not depend on graph quality, and building
// a real 1M graph takes minutes). It needs about 3 GB of memory.
func BenchmarkLoad1M(b *testing.B) {
	const n, dim = 1_000_000, 128
	h, err := NewHNSW[uint64](Options{Dim: dim, Capacity: n})
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	for i := range h.vecs[:n*dim] {
		h.vecs[i] = r.Float32()
	}
	for s := 0; s < n; s++ {
		list := h.list(uint32(s), 0)
		list[0] = uint32(h.m0)
		for i := 1; i <= h.m0; i++ {
			t := uint32(r.IntN(n - 1))
			if t >= uint32(s) {
				t++
			}
			list[i] = t
		}
		h.flags[s] = flagUsed
		h.keys[s] = uint64(s)
		h.ids[uint64(s)] = uint32(s)
	}
	h.next = n
	h.live.Store(n)
	h.ep.Store(packEP(0, 0))
	path := filepath.Join(b.TempDir(), "1m.qvix")
	if err := h.Save(context.Background(), path); err != nil {
		b.Fatal(err)
	}
	h.Close()
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		g, err := LoadHNSW[uint64](context.Background(), path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if g.Len() != n {
			b.Fatalf("loaded %d items", g.Len())
		}
		g.Close()
	}
}
