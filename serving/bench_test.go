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
	"golang.org/x/sync/errgroup"
)

// benchModel is the tabular MLP used by the throughput benchmarks:
// 64 -> 256 -> 256 -> 1 with ReLU.
const benchModel = "bench_mlp"

// BenchmarkRawRun is the peer: onnxruntime_go's AdvancedSession with
// preallocated tensors, one session and one intra-op thread, called from one
// goroutine. It reports rows/s and the process CPU time per row
// (cpu-ns/row) at batch 1 and batch 64.
func BenchmarkRawRun(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := rawSession(b, batch)
			b.ReportAllocs()
			cpu0, cpuOK := processCPU()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := s.Run(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			reportCPUPerRow(b, cpu0, cpuOK, b.N*batch)
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// reportCPUPerRow reports the process CPU time since cpu0 per row run.
func reportCPUPerRow(b *testing.B, cpu0 time.Duration, cpuOK bool, rows int) {
	if cpu1, ok := processCPU(); ok && cpuOK && rows > 0 {
		b.ReportMetric(float64(cpu1-cpu0)/float64(rows), "cpu-ns/row")
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
		cpu0, cpuOK := processCPU()
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
		b.StopTimer()
		reportCPUPerRow(b, cpu0, cpuOK, b.N/goroutines*goroutines*batch)
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

// runCallers runs b.N single-row requests of width features spread over
// callers goroutines and reports rows/s, the p50/p99 request latency and
// the process CPU time per request (cpu-ns/op).
func runCallers(b *testing.B, callers int, predict func(ctx context.Context, caller int, in map[string]Tensor) error, width int) {
	inputs := make([]map[string]Tensor, callers)
	for i := range inputs {
		inputs[i] = map[string]Tensor{"x": NewTensor([]int64{1, int64(width)}, randomFloats(width))}
	}
	runCallersWith(b, predict, inputs)
}

// runCallersWith is runCallers with the inputs given, one per caller.
func runCallersWith(b *testing.B, predict func(ctx context.Context, caller int, in map[string]Tensor) error, inputs []map[string]Tensor) {
	callers := len(inputs)
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

// adaptiveModels are the models of the adaptive batching benchmarks: two
// where merging pays very differently. bench_mlp is tabular: merging 64
// rows costs little more than one. conv640 is a small conv net on 640x640
// images: a merged batch's working set outgrows the caches, and merging
// can lose.
var adaptiveModels = []struct {
	name, file string
	row        []int64 // a row's shape
	warm       int     // requests run before the first measurement
	slice      int     // requests per turn in BenchmarkAdaptiveInterleaved
}{
	{"mlp", benchModel, []int64{64}, 20000, 6400},
	{"conv640", "conv640", []int64{3, 640, 640}, 640, 64},
}

// adaptiveSettings are what the benchmarks compare: batch=fixedN is a
// batcher with MaxBatchSize N and AdaptiveOff, batch=adaptive one with the
// defaults (AdaptiveAuto), batch=none the callers calling the model
// directly.
var adaptiveSettings = []struct {
	name string
	opts BatcherOptions
}{
	{"adaptive", BatcherOptions{}},
	{"fixed1", BatcherOptions{Adaptive: AdaptiveOff, MaxBatchSize: 1}},
	{"fixed4", BatcherOptions{Adaptive: AdaptiveOff, MaxBatchSize: 4}},
	{"fixed16", BatcherOptions{Adaptive: AdaptiveOff, MaxBatchSize: 16}},
	{"fixed64", BatcherOptions{Adaptive: AdaptiveOff, MaxBatchSize: 64}},
	{"none", BatcherOptions{}},
}

const adaptiveCallers = 64

// adaptiveInputs returns one single-row request per caller; images share
// one input (nothing writes to it), so 64 callers do not hold 64 copies.
func adaptiveInputs(row []int64) []map[string]Tensor {
	n := 1
	for _, d := range row {
		n *= int(d)
	}
	shape := append([]int64{1}, row...)
	inputs := make([]map[string]Tensor, adaptiveCallers)
	shared := map[string]Tensor{"x": NewTensor(shape, randomFloats(n))}
	for c := range inputs {
		inputs[c] = shared
		if n <= 1<<16 {
			inputs[c] = map[string]Tensor{"x": NewTensor(shape, randomFloats(n))}
		}
	}
	return inputs
}

// serveSetting returns what a caller calls under a setting: a new batcher
// in front of m (the caller closes it), or m itself (bt nil).
func serveSetting(m Model, name string, opts BatcherOptions) (predict func(context.Context, int, map[string]Tensor) error, bt *Batcher, err error) {
	if name == "none" {
		return func(ctx context.Context, _ int, in map[string]Tensor) error {
			_, err := m.Predict(ctx, in)
			return err
		}, nil, nil
	}
	opts.KeepModelOpen = true
	if bt, err = NewBatcher(m, opts); err != nil {
		return nil, nil, err
	}
	return func(ctx context.Context, _ int, in map[string]Tensor) error {
		_, err := bt.Predict(ctx, in)
		return err
	}, bt, nil
}

// BenchmarkAdaptive compares adaptive batching with fixed batch sizes and
// with no batcher at all (adaptiveSettings) on bench_mlp and conv640
// (adaptiveModels): 64 callers send single-row requests.
//
// Each setting has its own ONNX Runtime session, warmed before its first
// round by requests of the same workload: a session's first runs at a new
// batch size, or with more runs at once than before, are slow (on conv640,
// memory first touched costs some 40ms of CPU per image), and a shared
// session would hand the settings measured later shapes warmed by the ones
// before. Every round then starts a fresh batcher, so batch=adaptive pays
// for its search inside the measurement. conv640 serves a few hundred rows
// a second: give it -benchtime 3s. The settings run one after the other;
// BenchmarkAdaptiveInterleaved compares them within the same seconds.
func BenchmarkAdaptive(b *testing.B) {
	for _, mc := range adaptiveModels {
		b.Run("model="+mc.name, func(b *testing.B) {
			inputs := adaptiveInputs(mc.row)
			for _, set := range adaptiveSettings {
				var m *onnx.Model // the setting's session, across its rounds
				b.Run("batch="+set.name, func(b *testing.B) {
					if m == nil {
						var err error
						if m, err = onnx.Load(context.Background(), testModel(mc.file), onnx.Options{}); err != nil {
							b.Fatal(err)
						}
						predict, bt, err := serveSetting(m, set.name, set.opts)
						if err != nil {
							b.Fatal(err)
						}
						if err := sendRequests(predict, inputs, mc.warm); err != nil {
							b.Fatal(err)
						}
						if bt != nil {
							bt.Close()
						}
					}
					predict, bt, err := serveSetting(m, set.name, set.opts)
					if err != nil {
						b.Fatal(err)
					}
					runCallersWith(b, predict, inputs)
					if bt == nil {
						return
					}
					if err := bt.Close(); err != nil {
						b.Fatal(err)
					}
					st := bt.Stats()
					if st.Batches > 0 {
						b.ReportMetric(float64(st.Rows)/float64(st.Batches), "rows/batch")
					}
					if len(st.Adaptive) > 0 {
						b.ReportMetric(float64(st.Adaptive[0].Size), "size")
					}
				})
				if m != nil {
					m.Close()
				}
			}
		})
	}
}

// BenchmarkAdaptiveInterleaved serves the settings of BenchmarkAdaptive in
// turns, a slice of requests each (6400 on bench_mlp, 64 on conv640), over
// and over until each has served b.N requests, so that every setting sees
// the same minutes of a shared machine; run one after the other, the
// settings of BenchmarkAdaptive see different ones, and on a machine whose
// load swings, their ratios swing with it. Each setting keeps one warmed
// session and one batcher for the whole run (the adaptive one searches
// once, as in a server). It reports, per setting, rows/s over its own
// turns (<setting>-rows/s) and the process CPU time per row
// (<setting>-cpu-ns/row), and the ratios adaptive/best-fixed (rows/s of
// adaptive over the best of fixed1..fixed64) and adaptive/none.
func BenchmarkAdaptiveInterleaved(b *testing.B) {
	for _, mc := range adaptiveModels {
		b.Run("model="+mc.name, func(b *testing.B) {
			inputs := adaptiveInputs(mc.row)
			type arm struct {
				name      string
				predict   func(context.Context, int, map[string]Tensor) error
				bt        *Batcher
				rows      int
				wall, cpu time.Duration
			}
			var arms []*arm
			for _, set := range adaptiveSettings {
				m, err := onnx.Load(context.Background(), testModel(mc.file), onnx.Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer m.Close()
				predict, bt, err := serveSetting(m, set.name, set.opts)
				if err != nil {
					b.Fatal(err)
				}
				if bt != nil {
					defer bt.Close()
				}
				if err := sendRequests(predict, inputs, mc.warm); err != nil {
					b.Fatal(err)
				}
				arms = append(arms, &arm{name: set.name, predict: predict, bt: bt})
			}
			b.ReportAllocs()
			b.ResetTimer()
			for turn := 0; arms[0].rows < b.N; turn++ {
				// Rotate who goes first, so that no setting always
				// follows the same one. Every turn serves each the same
				// number of requests.
				n := min(mc.slice, b.N-arms[0].rows)
				for k := range arms {
					a := arms[(turn+k)%len(arms)]
					cpu0, _ := processCPU()
					t0 := time.Now()
					if err := sendRequests(a.predict, inputs, n); err != nil {
						b.Fatal(err)
					}
					a.wall += time.Since(t0)
					cpu1, _ := processCPU()
					a.cpu += cpu1 - cpu0
					a.rows += n
				}
			}
			b.StopTimer()
			rate := map[string]float64{}
			for _, a := range arms {
				rate[a.name] = float64(a.rows) / a.wall.Seconds()
				b.ReportMetric(rate[a.name], a.name+"-rows/s")
				b.ReportMetric(float64(a.cpu)/float64(a.rows), a.name+"-cpu-ns/row")
			}
			if st := arms[0].bt.Stats(); len(st.Adaptive) > 0 {
				g := st.Adaptive[0]
				b.ReportMetric(float64(g.Size), "adaptive-size")
				b.ReportMetric(float64(st.Rows)/float64(st.Batches), "adaptive-rows/batch")
				b.ReportMetric(float64(g.Trials), "adaptive-trials")
			}
			bestFixed := max(rate["fixed1"], rate["fixed4"], rate["fixed16"], rate["fixed64"])
			b.ReportMetric(rate["adaptive"]/bestFixed, "adaptive/best-fixed")
			b.ReportMetric(rate["adaptive"]/rate["none"], "adaptive/none")
		})
	}
}

// sendRequests sends n requests from len(inputs) callers through predict.
func sendRequests(predict func(context.Context, int, map[string]Tensor) error, inputs []map[string]Tensor, n int) error {
	var g errgroup.Group
	for c := range inputs {
		share := n / len(inputs)
		if c < n%len(inputs) {
			share++
		}
		g.Go(func() error {
			for range share {
				if err := predict(context.Background(), c, inputs[c]); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
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
