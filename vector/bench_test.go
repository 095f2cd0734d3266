package vector

import (
	"context"
	"os"
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
	})
	return &bench
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

var efs = []int{16, 24, 32, 48, 64, 128, 256}

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
