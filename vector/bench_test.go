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

// The search benchmark data set: a deterministic clustered set (Gaussian
// clusters with varied, anisotropic spreads and uneven sizes), QUIVER_BENCH_N
// vectors (default 100,000) of dimension 128, 200 queries from the same
// distribution, ground truth by exact scan. Built once per process.
type benchSet struct {
	data, queries [][]float32
	truth         [][]int
}

var (
	benchOnce sync.Once
	bench     benchSet

	quiverOnce  sync.Once
	quiverIdx   *HNSW[uint64]
	quiverBuild time.Duration
	quiverBytes float64

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

func getBenchSet() *benchSet {
	benchOnce.Do(func() {
		bench.data, bench.queries = clustered(benchN(), 200, 128, 200, 7)
		bench.truth = groundTruth(bench.data, bench.queries, 10, L2)
		// QUIVER_BENCH_FVECS names a folder to receive the set as
		// base.fvecs, query.fvecs and truth.ivecs, for comparisons with
		// other libraries (benchmarks/vector/hnswlib_bench.py).
		if dir := os.Getenv("QUIVER_BENCH_FVECS"); dir != "" {
			if err := writeFvecs(dir, &bench); err != nil {
				panic(err)
			}
		}
	})
	return &bench
}

// writeFvecs writes the set in the TEXMEX .fvecs/.ivecs layout: per row a
// little-endian int32 dimension then the values.
func writeFvecs(dir string, ds *benchSet) error {
	write := func(name string, rows int, dim func(int) int, put func(w *bufio.Writer, i int)) error {
		f, err := os.Create(filepath.Join(dir, name))
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
	if err := write("base.fvecs", n, d, p); err != nil {
		return err
	}
	n, d, p = vecs(ds.queries)
	if err := write("query.fvecs", n, d, p); err != nil {
		return err
	}
	return write("truth.ivecs", len(ds.truth), func(i int) int { return len(ds.truth[i]) }, func(w *bufio.Writer, i int) {
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

func getQuiver(b *testing.B) *HNSW[uint64] {
	ds := getBenchSet()
	quiverOnce.Do(func() {
		before := heapInUse()
		start := time.Now()
		h, err := NewHNSW[uint64](Options{Dim: 128, M: 16, EfConstruction: 200})
		if err != nil {
			b.Fatal(err)
		}
		if err := h.Add(context.Background(), items(ds.data)...); err != nil {
			b.Fatal(err)
		}
		quiverBuild = time.Since(start)
		quiverIdx = h
		quiverBytes = float64(heapInUse()-before) / float64(len(ds.data))
	})
	return quiverIdx
}

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

// BenchmarkSearch measures one-goroutine k=10 search on the clustered set
// for Quiver's HNSW and coder/hnsw v0.6.1 (same data, M=16,
// efConstruction=200), reporting recall@10 against exact search, qps, the
// build time (Quiver builds on all cores, coder/hnsw on one) and the heap
// bytes per vector.
func BenchmarkSearch(b *testing.B) {
	ds := getBenchSet()
	ctx := context.Background()
	for _, ef := range efs {
		b.Run("index=quiver/ef="+strconv.Itoa(ef), func(b *testing.B) {
			h := getQuiver(b)
			opts := SearchOptions{Ef: ef}
			got := make([][]uint64, len(ds.queries))
			for i, q := range ds.queries {
				res, _ := h.Search(ctx, q, 10, opts)
				for _, r := range res {
					got[i] = append(got[i], r.ID)
				}
			}
			b.ReportAllocs()
			cpu := startCPU()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				if _, err := h.Search(ctx, ds.queries[i%len(ds.queries)], 10, opts); err != nil {
					b.Fatal(err)
				}
				i++
			}
			cpu.report(b)
			b.ReportMetric(recallAt(got, ds.truth), "recall@10")
			b.ReportMetric(quiverBuild.Seconds(), "build_s")
			b.ReportMetric(quiverBytes, "bytes/vec")
		})
	}
	for _, ef := range efs[:5] {
		b.Run("index=quiver-int8/ef="+strconv.Itoa(ef), func(b *testing.B) {
			h := getInt8(b)
			opts := SearchOptions{Ef: ef}
			got := make([][]uint64, len(ds.queries))
			for i, q := range ds.queries {
				res, _ := h.Search(ctx, q, 10, opts)
				for _, r := range res {
					got[i] = append(got[i], r.ID)
				}
			}
			b.ReportAllocs()
			cpu := startCPU()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				if _, err := h.Search(ctx, ds.queries[i%len(ds.queries)], 10, opts); err != nil {
					b.Fatal(err)
				}
				i++
			}
			cpu.report(b)
			b.ReportMetric(recallAt(got, ds.truth), "recall@10")
			b.ReportMetric(int8Load.Seconds(), "load_s")
			b.ReportMetric(h.Stats().BytesPerVector, "bytes/vec")
		})
	}
	for _, ef := range efs {
		b.Run("index=coder/ef="+strconv.Itoa(ef), func(b *testing.B) {
			g := getCoder(b)
			g.EfSearch = ef
			got := make([][]uint64, len(ds.queries))
			for i, q := range ds.queries {
				for _, n := range g.Search(q, 10) {
					got[i] = append(got[i], n.Key)
				}
			}
			b.ReportAllocs()
			cpu := startCPU()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				g.Search(ds.queries[i%len(ds.queries)], 10)
				i++
			}
			cpu.report(b)
			b.ReportMetric(recallAt(got, ds.truth), "recall@10")
			b.ReportMetric(coderBuild.Seconds(), "build_s")
			b.ReportMetric(coderBytes, "bytes/vec")
		})
	}
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

// BenchmarkLoad measures LoadHNSW on the benchmark index (QUIVER_BENCH_N
// vectors of dimension 128), reporting MB/s of file read and parsed.
func BenchmarkLoad(b *testing.B) {
	h := getQuiver(b)
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
