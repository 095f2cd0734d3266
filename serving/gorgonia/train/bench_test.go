package train_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/gorgonia/train"
)

// benchSpec is the tabular MLP the benchmarks train and serve:
// 64 -> 256 -> 256 -> 1 with ReLU, the shape of serving/onnx's bench_mlp.
var benchSpec = train.MLP{Sizes: []int{64, 256, 256, 1}}

func benchBatch(rows int) (map[string]serving.Tensor, serving.Tensor) {
	rng := rand.New(rand.NewPCG(1, uint64(rows)))
	x := make([]float32, rows*64)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y := make([]float32, rows)
	for i := range y {
		if x[64*i] > 0 {
			y[i] = 1
		}
	}
	return map[string]serving.Tensor{"x": serving.NewTensor([]int64{int64(rows), 64}, x)}, serving.NewTensor([]int64{int64(rows)}, y)
}

// importedBenchSpec is benchSpec exported and imported as an ONNXModel:
// the same model, run through serving/gorgonia's graph.
func importedBenchSpec(b *testing.B) train.Spec {
	src, err := train.New(benchSpec, train.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	var buf bytes.Buffer
	if err := src.Export(&buf); err != nil {
		b.Fatal(err)
	}
	return train.ONNXModel{Model: buf.Bytes()}
}

// BenchmarkTrain measures training steps (forward, backward, solver step,
// snapshot publication) and reports rows/s. The peers in the same run are
// SGD beside Adam, the same MLP imported from its ONNX export, and a
// logistic regression on the same 64 features.
func BenchmarkTrain(b *testing.B) {
	ctx := context.Background()
	for _, m := range []struct {
		name string
		spec train.Spec
	}{{"mlp", benchSpec}, {"mlp-imported", importedBenchSpec(b)}, {"logistic", train.LogisticRegression{Features: 64}}} {
		for _, solver := range []train.Solver{train.Adam, train.SGD} {
			if solver == train.SGD && m.name != "mlp" {
				continue
			}
			for _, rows := range []int{64} {
				name := fmt.Sprintf("model=%s/batch=%d", m.name, rows)
				if solver != train.Adam {
					name += "/solver=" + solver.String()
				}
				b.Run(name, func(b *testing.B) {
					tr, err := train.New(m.spec, train.Options{Solver: solver})
					if err != nil {
						b.Fatal(err)
					}
					defer tr.Close()
					in, y := benchBatch(rows)
					if _, err := tr.Update(ctx, in, y); err != nil { // builds the graph
						b.Fatal(err)
					}
					b.ReportAllocs()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if _, err := tr.Update(ctx, in, y); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
				})
			}
		}
	}
}

// BenchmarkTrainerPredict measures Predict on the benchmark MLP at batch 1
// and 64, with allocations. The peers in the same run are the same MLP
// imported as an ONNXModel (a pooled gorgonia graph instead of the plain-Go
// forward pass), and Predict while another goroutine trains (the cost of
// serving while learning; its allocs/op then count the trainer's too).
func BenchmarkTrainerPredict(b *testing.B) {
	ctx := context.Background()
	imported := importedBenchSpec(b)
	for _, variant := range []string{"", "/model=imported", "/while=training"} {
		for _, rows := range []int{1, 64} {
			name := fmt.Sprintf("batch=%d%s", rows, variant)
			training := variant == "/while=training"
			spec := train.Spec(benchSpec)
			if variant == "/model=imported" {
				spec = imported
			}
			b.Run(name, func(b *testing.B) {
				tr, err := train.New(spec, train.Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer tr.Close()
				in, _ := benchBatch(rows)
				stop, stopped := make(chan struct{}), make(chan struct{})
				go func() {
					defer close(stopped)
					tin, ty := benchBatch(64)
					for training {
						select {
						case <-stop:
							return
						default:
						}
						if _, err := tr.Update(ctx, tin, ty); err != nil {
							return
						}
					}
				}()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := tr.Predict(ctx, in); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
				close(stop)
				<-stopped
			})
		}
	}
}
