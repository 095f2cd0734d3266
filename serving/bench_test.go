package serving_test

import (
	. "github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/onnx"

	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	ortenv "github.com/quiverml/quiver/internal/ort"
	ort "github.com/yalue/onnxruntime_go"
)

// benchModel is the tabular MLP used by the throughput benchmarks:
// 64 -> 256 -> 256 -> 1 with ReLU.
const benchModel = "bench_mlp"

// BenchmarkRawRun is the peer: onnxruntime_go's AdvancedSession with
// preallocated tensors, one session and one intra-op thread, called from one
// goroutine. It reports rows/s at batch 1 and batch 64.
func BenchmarkRawRun(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := rawSession(b, batch)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := s.Run(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkRawRunParallel is the machine's ceiling for the batcher's shape of
// work: two goroutines, each running its own AdvancedSession (one intra-op
// thread) at 32 rows, which is how the batcher splits 64 waiting callers
// over two batches in flight.
func BenchmarkRawRunParallel(b *testing.B) {
	const batch, goroutines = 32, 2
	b.Run(fmt.Sprintf("batch=%d/goroutines=%d", batch, goroutines), func(b *testing.B) {
		sessions := make([]*ort.AdvancedSession, goroutines)
		for i := range sessions {
			sessions[i] = rawSession(b, batch)
		}
		b.ReportAllocs()
		b.ResetTimer()
		var wg sync.WaitGroup
		for _, s := range sessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < b.N/goroutines; i++ {
					if err := s.Run(); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		b.ReportMetric(float64(b.N/goroutines*goroutines*batch)/b.Elapsed().Seconds(), "rows/s")
	})
}

// rawSession opens bench_mlp as an AdvancedSession with one intra-op thread
// and preallocated tensors of batch rows, freed when b ends.
func rawSession(b *testing.B, batch int) *ort.AdvancedSession {
	b.Helper()
	if err := ortenv.Init(""); err != nil {
		b.Fatal(err)
	}
	x, err := ort.NewTensor(ort.NewShape(int64(batch), 64), randomFloats(batch*64))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { x.Destroy() })
	y, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(batch), 1))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { y.Destroy() })
	so, err := ort.NewSessionOptions()
	if err != nil {
		b.Fatal(err)
	}
	defer so.Destroy()
	so.SetIntraOpNumThreads(1)
	so.SetInterOpNumThreads(1)
	s, err := ort.NewAdvancedSession(testModel(benchModel), []string{"x"}, []string{"y"},
		[]ort.Value{x}, []ort.Value{y}, so)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Destroy() })
	return s
}

// BenchmarkPredict is onnx.Model.Predict (validation, Go<->ORT copies) at
// batch 1 and 64, one goroutine: the cost of the safe API over RawRun.
func BenchmarkPredict(b *testing.B) { benchPredict(b, false) }

// BenchmarkPredictCancellable is BenchmarkPredict under a context that can be
// cancelled, as in a server's request handler: the run carries options that
// terminate it when the context ends.
func BenchmarkPredictCancellable(b *testing.B) { benchPredict(b, true) }

func benchPredict(b *testing.B, cancellable bool) {
	m, err := onnx.Load(context.Background(), testModel(benchModel), onnx.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			in := map[string]Tensor{"x": NewTensor([]int64{int64(batch), 64}, randomFloats(batch*64))}
			ctx := context.Background()
			if cancellable {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				defer cancel()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := m.Predict(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkBatcher serves single-row requests from 64 concurrent callers
// through a Batcher with default options (max batch 64, 1ms delay, one
// batch in flight per core) and reports rows/s and per-request latency.
func BenchmarkBatcher(b *testing.B) { benchBatcher(b, false) }

// BenchmarkBatcherInto is BenchmarkBatcher with each caller reusing its
// output buffers through PredictInto, so answering allocates nothing.
func BenchmarkBatcherInto(b *testing.B) { benchBatcher(b, true) }

func benchBatcher(b *testing.B, into bool) {
	for _, callers := range []int{64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			m, err := onnx.Load(context.Background(), testModel(benchModel), onnx.Options{})
			if err != nil {
				b.Fatal(err)
			}
			bt, err := NewBatcher(m, BatcherOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer bt.Close()
			outs := make([]map[string]Tensor, callers)
			for i := range outs {
				outs[i] = map[string]Tensor{}
			}
			runCallers(b, callers, func(ctx context.Context, c int, in map[string]Tensor) error {
				if into {
					return bt.PredictInto(ctx, in, outs[c])
				}
				_, err := bt.Predict(ctx, in)
				return err
			}, 64)
			st := bt.Stats()
			if st.Batches > 0 {
				b.ReportMetric(float64(st.Rows)/float64(st.Batches), "rows/batch")
			}
		})
	}
}

// BenchmarkBatcherMaxBatch sweeps MaxBatchSize under the same 64 callers:
// with fewer rows per batch than callers, one batch fills while another
// runs, so both cores stay busy.
func BenchmarkBatcherMaxBatch(b *testing.B) {
	for _, max := range []int{16, 32, 64} {
		b.Run(fmt.Sprintf("callers=64/max=%d", max), func(b *testing.B) {
			m, err := onnx.Load(context.Background(), testModel(benchModel), onnx.Options{})
			if err != nil {
				b.Fatal(err)
			}
			bt, err := NewBatcher(m, BatcherOptions{MaxBatchSize: max})
			if err != nil {
				b.Fatal(err)
			}
			defer bt.Close()
			runCallers(b, 64, func(ctx context.Context, _ int, in map[string]Tensor) error {
				_, err := bt.Predict(ctx, in)
				return err
			}, 64)
		})
	}
}

// runCallers runs b.N single-row requests spread over callers goroutines and
// reports rows/s, the p50/p99 request latency and the process CPU time per
// request (cpu-ns/op).
func runCallers(b *testing.B, callers int, predict func(ctx context.Context, caller int, in map[string]Tensor) error, width int) {
	inputs := make([]map[string]Tensor, callers)
	for i := range inputs {
		inputs[i] = map[string]Tensor{"x": NewTensor([]int64{1, int64(width)}, randomFloats(width))}
	}
	lat := make([][]time.Duration, callers)
	var wg sync.WaitGroup
	ctx := context.Background()
	b.ReportAllocs()
	share := func(c int) int { // b.N split evenly over the callers
		n := b.N / callers
		if c < b.N%callers {
			n++
		}
		return n
	}
	for c := 0; c < callers; c++ {
		lat[c] = make([]time.Duration, 0, share(c))
	}
	cpu0, cpuOK := processCPU()
	b.ResetTimer()
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now() // one clock read per request: each end is the next start
			for range share(c) {
				if err := predict(ctx, c, inputs[c]); err != nil {
					b.Error(err)
					return
				}
				t1 := time.Now()
				lat[c] = append(lat[c], t1.Sub(t0))
				t0 = t1
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if cpu1, ok := processCPU(); ok && cpuOK {
		// CPU time of the whole process per request, all cores together.
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2]), "p50-ns")
		b.ReportMetric(float64(all[len(all)*99/100]), "p99-ns")
	}
}

// BenchmarkBatcherOverhead measures the batching layer alone (queue, merge,
// split, wake-ups) in front of a model that does no work, against calling
// that model directly.
func BenchmarkBatcherOverhead(b *testing.B) {
	in := map[string]Tensor{"x": NewTensor([]int64{1, 4}, []float32{1, 2, 3, 4})}
	ctx := context.Background()
	b.Run("direct", func(b *testing.B) {
		m := nopModel{}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := m.Predict(ctx, in); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("batcher/callers=%d", callers), func(b *testing.B) {
			bt, err := NewBatcher(nopModel{}, BatcherOptions{MaxQueueDelay: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer bt.Close()
			runCallers(b, callers, func(ctx context.Context, _ int, in map[string]Tensor) error {
				_, err := bt.Predict(ctx, in)
				return err
			}, 4)
		})
	}
}

// nopModel echoes its input: a model that costs nothing to run.
type nopModel struct{}

func (nopModel) Info() Info {
	return Info{
		Name:      "nop",
		Inputs:    []IOInfo{{Name: "x", Kind: KindTensor, ElementType: Float32, Shape: []int64{-1, 4}}},
		Outputs:   []IOInfo{{Name: "x", Kind: KindTensor, ElementType: Float32, Shape: []int64{-1, 4}}},
		Batchable: true,
	}
}

func (nopModel) Predict(_ context.Context, in map[string]Tensor) (map[string]Value, error) {
	return map[string]Value{"x": TensorValue(in["x"])}, nil
}

func (nopModel) Close() error { return nil }

func randomFloats(n int) []float32 {
	rng := rand.New(rand.NewPCG(7, 7))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}
