// Command quickstart serves an ONNX model through Quiver's dynamic batcher
// from many goroutines and prints throughput, latency percentiles and the
// batch sizes seen, next to the same load served one request at a time and
// through PredictInto (answers written into reused buffers).
//
// By default it serves the tabular MLP (64 -> 256 -> 256 -> 1) embedded in the
// binary (model/demo_mlp.onnx, a copy of testdata/models/bench_mlp.onnx); pass
// -model to serve your own .onnx file (every input needs a dynamic leading
// batch axis for batching; other models run unbatched).
//
//	go run ./examples/quickstart -callers 64 -duration 5s
package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/onnx"
)

//go:embed model/demo_mlp.onnx
var demoMLP []byte

func main() {
	modelPath := flag.String("model", "", "ONNX model file (default: a built-in 64->256->256->1 MLP)")
	callers := flag.Int("callers", 64, "concurrent goroutines, each sending one-row requests")
	duration := flag.Duration("duration", 4*time.Second, "how long each phase runs")
	maxBatch := flag.Int("max-batch", 64, "largest batch in rows")
	delay := flag.Duration("delay", time.Millisecond, "longest a request waits for company")
	flag.Parse()
	if err := run(*modelPath, *callers, *duration, *maxBatch, *delay); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(modelPath string, callers int, duration time.Duration, maxBatch int, delay time.Duration) error {
	var (
		m   *onnx.Model
		err error
	)
	if modelPath == "" {
		m, err = onnx.LoadBytes(context.Background(), demoMLP, onnx.Options{Name: "demo_mlp", WarmUp: true})
		if err != nil {
			return err
		}
	} else if m, err = onnx.Load(context.Background(), modelPath, onnx.Options{WarmUp: true}); err != nil {
		return err
	}
	info := m.Info()
	fmt.Printf("model %s on %s: inputs %v, outputs %v, batchable=%v %s\n",
		info.Name, info.Provider, info.Inputs, info.Outputs, info.Batchable, info.BatchReason)

	requests := make([]map[string]serving.Tensor, callers)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range requests {
		if requests[i], err = oneRow(info, rng); err != nil {
			return err
		}
	}

	// Phase 1: every caller runs the model directly, one row per run.
	direct := load(callers, duration, func(ctx context.Context, i int) error {
		_, err := m.Predict(ctx, requests[i])
		return err
	})
	fmt.Printf("\none row per run, %d callers:   %8.0f rows/s  p50 %v  p99 %v\n",
		callers, direct.rate, direct.p50, direct.p99)

	// Phase 2: the same callers through the dynamic batcher.
	b, err := serving.NewBatcher(m, serving.BatcherOptions{MaxBatchSize: maxBatch, MaxQueueDelay: delay})
	if err != nil {
		m.Close()
		return err
	}
	defer b.Close()
	batched := load(callers, duration, func(ctx context.Context, i int) error {
		_, err := b.Predict(ctx, requests[i])
		return err
	})
	fmt.Printf("dynamic batching, %d callers:  %8.0f rows/s  p50 %v  p99 %v  (%.1fx)\n",
		callers, batched.rate, batched.p50, batched.p99, batched.rate/direct.rate)
	if batched.errs+direct.errs > 0 {
		return fmt.Errorf("%d requests failed", batched.errs+direct.errs)
	}

	// Phase 3: PredictInto, each caller reusing its output tensors, so that
	// answering a request allocates nothing (tensor outputs only).
	if !slices.ContainsFunc(info.Outputs, func(o serving.IOInfo) bool { return o.Kind != serving.KindTensor }) {
		outs := make([]map[string]serving.Tensor, callers)
		for i := range outs {
			outs[i] = map[string]serving.Tensor{}
		}
		into := load(callers, duration, func(ctx context.Context, i int) error {
			return b.PredictInto(ctx, requests[i], outs[i])
		})
		fmt.Printf("batching into reused buffers:  %8.0f rows/s  p50 %v  p99 %v  (%.1fx)\n",
			into.rate, into.p50, into.p99, into.rate/direct.rate)
		if into.errs > 0 {
			return fmt.Errorf("%d requests failed", into.errs)
		}
	}

	st := b.Stats()
	fmt.Printf("\nbatcher stats:\n%s\n", st)
	return nil
}

// oneRow builds a one-row request with random data for every input.
func oneRow(info serving.Info, rng *rand.Rand) (map[string]serving.Tensor, error) {
	in := map[string]serving.Tensor{}
	for _, io := range info.Inputs {
		if io.ElementType != serving.Float32 {
			return nil, fmt.Errorf("input %q is %s; this example fills float32 inputs only", io.Name, io.ElementType)
		}
		shape := make([]int64, len(io.Shape))
		n := 1
		for i, d := range io.Shape {
			if d < 0 {
				d = 1
			}
			shape[i] = d
			n *= int(d)
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		in[io.Name] = serving.NewTensor(shape, x)
	}
	return in, nil
}

type result struct {
	rate     float64
	p50, p99 time.Duration
	errs     int64
}

// load runs predict from callers goroutines for d and measures it.
func load(callers int, d time.Duration, predict func(context.Context, int) error) result {
	ctx := context.Background()
	deadline := time.Now().Add(d)
	var n, errs atomic.Int64
	lat := make([][]time.Duration, callers)
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if err := predict(ctx, c); err != nil {
					if errs.Add(1) == 1 {
						log.Printf("request failed: %v", err)
					}
					continue
				}
				lat[c] = append(lat[c], time.Since(t0))
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	r := result{rate: float64(n.Load()) / elapsed.Seconds(), errs: errs.Load()}
	if len(all) > 0 {
		slices.Sort(all)
		r.p50 = all[len(all)/2].Round(time.Microsecond)
		r.p99 = all[len(all)*99/100].Round(time.Microsecond)
	}
	return r
}
