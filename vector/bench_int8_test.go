package vector

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The QuantInt8Only benchmark: float (QuantNone) against QuantInt8Only
// with a vectors file (re-scored on full precision, "int8only-file") and
// without one (ranked on the codes, "int8only"), on two sets: the 128-d L2
// clustered set of BenchmarkSearch (QUIVER_BENCH_N vectors, default
// 100,000) and a 384-d Cosine clustered set (QUIVER_INT8_BENCH_N, default
// 50,000). QuantInt8Only indexes are built by Add (asymmetric
// construction), M=16, efConstruction=200, as the float one. The
// file-less index is the file-backed one saved and loaded again without a
// file (same graph, same codes), so the two differ only in re-scoring.
//
// Each sub-benchmark reports recall@10, qps and cpu_qps (one goroutine),
// bytes/vec (Stats.BytesPerVector), heap_bytes/vec (Go heap growth while
// the index was built or loaded) and for the int8 indexes bytes_ratio
// (their bytes/vec over the float index's), mapped_bytes/vec (the vectors
// file's mapping, page cache not heap) and Stats.Parts per vector. Run with -count to
// interleave the indexes' samples on a noisy machine.
type int8Bench struct {
	name   string
	spec   func() *benchSet
	metric Metric
	dim    int
	float  func(b *testing.B) (*HNSW[uint64], float64)

	once                 sync.Once
	file, nofile         *HNSW[uint64]
	fileHeap, nofileHeap float64
	fileBuild            time.Duration
	cosOnce              sync.Once
	cosFloat             *HNSW[uint64]
	cosFloatHeap         float64
	cosSet               benchSet
	cosSetOnce           sync.Once
}

func int8BenchN() int {
	if s := os.Getenv("QUIVER_INT8_BENCH_N"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n
		}
	}
	return 50_000
}

var (
	int8L2 = &int8Bench{name: "l2-128", metric: L2, dim: 128, spec: getBenchSet}
	int8Co = &int8Bench{name: "cos-384", metric: Cosine, dim: 384}
)

func init() {
	int8L2.float = func(b *testing.B) (*HNSW[uint64], float64) {
		h := getQuiver(b)
		return h, h.Stats().BytesPerVector
	}
	int8Co.spec = func() *benchSet {
		ib := int8Co
		ib.cosSetOnce.Do(func() {
			ib.cosSet.data, ib.cosSet.queries = clustered(int8BenchN(), 200, 384, 200, 11)
			ib.cosSet.truth = groundTruth(ib.cosSet.data, ib.cosSet.queries, 10, Cosine)
		})
		return &ib.cosSet
	}
	int8Co.float = func(b *testing.B) (*HNSW[uint64], float64) {
		ib := int8Co
		ib.cosOnce.Do(func() {
			ds := ib.spec()
			before := heapInUse()
			h, err := NewHNSW[uint64](Options{Dim: 384, Metric: Cosine, M: 16, EfConstruction: 200})
			if err != nil {
				b.Fatal(err)
			}
			if err := h.Add(context.Background(), items(ds.data)...); err != nil {
				b.Fatal(err)
			}
			ib.cosFloat = h
			ib.cosFloatHeap = float64(heapInUse()-before) / float64(len(ds.data))
		})
		return ib.cosFloat, ib.cosFloatHeap
	}
}

// int8Indexes builds the set's QuantInt8Only indexes once. Their files
// live in a directory of the process's lifetime (removed by the OS's temp
// cleaning, not by the benchmark: the indexes outlive any one b).
func (ib *int8Bench) int8Indexes(b *testing.B) (file, nofile *HNSW[uint64]) {
	ds := ib.spec()
	ib.once.Do(func() {
		dir, err := os.MkdirTemp("", "quiver-int8-bench")
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		before := heapInUse()
		start := time.Now()
		h, err := NewHNSW[uint64](Options{Dim: ib.dim, Metric: ib.metric, M: 16, EfConstruction: 200,
			Quantization: QuantInt8Only, VectorsFile: filepath.Join(dir, "vectors")})
		if err != nil {
			b.Fatal(err)
		}
		if err := h.Add(ctx, items(ds.data)...); err != nil {
			b.Fatal(err)
		}
		ib.fileBuild = time.Since(start)
		ib.fileHeap = float64(heapInUse()-before) / float64(len(ds.data))
		path := filepath.Join(dir, "index.qvix")
		if err := h.Save(ctx, path); err != nil {
			b.Fatal(err)
		}
		before = heapInUse()
		g, err := LoadHNSW[uint64](ctx, path, Options{Quantization: QuantInt8Only})
		if err != nil {
			b.Fatal(err)
		}
		ib.nofileHeap = float64(heapInUse()-before) / float64(len(ds.data))
		os.Remove(path)
		ib.file, ib.nofile = h, g
	})
	return ib.file, ib.nofile
}

// measureInt8 reports recall@10 of h over the set's queries, then times
// search, one query per iteration on one locked OS thread.
func measureInt8(b *testing.B, ds *benchSet, h *HNSW[uint64], ef int) {
	ctx := context.Background()
	opts := SearchOptions{Ef: ef}
	got := make([][]uint64, len(ds.queries))
	for i, q := range ds.queries {
		res, err := h.Search(ctx, q, 10, opts)
		if err != nil {
			b.Fatal(err)
		}
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
}

func BenchmarkInt8Storage(b *testing.B) {
	for _, ib := range []*int8Bench{int8L2, int8Co} {
		for _, ef := range []int{16, 32, 64, 128} {
			efs := "/ef=" + strconv.Itoa(ef)
			b.Run("set="+ib.name+"/index=float"+efs, func(b *testing.B) {
				h, heap := ib.float(b)
				measureInt8(b, ib.spec(), h, ef)
				b.ReportMetric(h.Stats().BytesPerVector, "bytes/vec")
				if heap > 0 {
					b.ReportMetric(heap, "heap_bytes/vec")
				}
			})
			b.Run("set="+ib.name+"/index=int8only-file"+efs, func(b *testing.B) {
				f, _ := ib.float(b)
				h, _ := ib.int8Indexes(b)
				measureInt8(b, ib.spec(), h, ef)
				st := h.Stats()
				b.ReportMetric(st.BytesPerVector, "bytes/vec")
				b.ReportMetric(ib.fileHeap, "heap_bytes/vec")
				b.ReportMetric(st.BytesPerVector/f.Stats().BytesPerVector, "bytes_ratio")
				b.ReportMetric(float64(st.Parts.Mapped)/float64(st.Live), "mapped_bytes/vec")
				b.ReportMetric(float64(st.Parts.Codes)/float64(st.Live), "codes_bytes/vec")
				b.ReportMetric(float64(st.Parts.Links)/float64(st.Live), "links_bytes/vec")
				b.ReportMetric(float64(st.Parts.Keys+st.Parts.Metadata)/float64(st.Live), "keys_meta_bytes/vec")
				b.ReportMetric(ib.fileBuild.Seconds(), "build_s")
			})
			b.Run("set="+ib.name+"/index=int8only"+efs, func(b *testing.B) {
				f, _ := ib.float(b)
				_, h := ib.int8Indexes(b)
				measureInt8(b, ib.spec(), h, ef)
				st := h.Stats()
				b.ReportMetric(st.BytesPerVector, "bytes/vec")
				b.ReportMetric(ib.nofileHeap, "heap_bytes/vec")
				b.ReportMetric(st.BytesPerVector/f.Stats().BytesPerVector, "bytes_ratio")
			})
		}
	}
}
