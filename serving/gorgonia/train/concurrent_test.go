package train_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/gorgonia/train"
)

// Predict runs concurrently with Update and always answers with the
// parameters of one completed step: every output a reader sees equals,
// bit for bit, the output of some step's model, never a mix of two steps.
// Info, Stats, Export and Save run alongside too (the race detector checks
// the rest).
func TestPredictDuringUpdate(t *testing.T) {
	spec := train.MLP{Sizes: []int{4, 32, 32, 3}, Output: train.Multiclass}
	t.Run("mlp", func(t *testing.T) {
		predictDuringUpdate(t, newTrainer(t, spec, train.Options{LearningRate: 0.05}))
	})
	t.Run("imported", func(t *testing.T) {
		src := newTrainer(t, spec, train.Options{})
		predictDuringUpdate(t, newTrainer(t, train.ONNXModel{Model: exportBytes(t, src), Output: train.Multiclass}, train.Options{LearningRate: 0.05}))
	})
}

func predictDuringUpdate(t *testing.T, tr *train.Trainer) {
	data := blobs4(512)
	probe := map[string]serving.Tensor{"x": f32([]int64{3, 4}, 1, -1, 0.5, 2, -2, 0.3, 1, 0, 0.1, 0.2, -0.7, 1.5)}
	key := func(out map[string]serving.Value) string {
		y, _ := out["y"].Tensor.Float32s()
		return fmt.Sprint(y)
	}
	ctx := context.Background()
	first, err := tr.Predict(ctx, probe)
	require.NoError(t, err)

	const steps, readers = 60, 3
	stepOutputs := make(chan map[string]bool, 1)
	done := make(chan struct{})
	errs := make(chan error, readers+2)
	go func() { // the trainer
		defer close(done)
		seen := map[string]bool{key(first): true}
		for i := 0; i < steps; i++ {
			from := (i * 32) % data.rows
			in, y := data.batch(from, from+32)
			if _, err := tr.Update(ctx, in, y); err != nil {
				errs <- err
				break
			}
			out, err := tr.Predict(ctx, probe)
			if err != nil {
				errs <- err
				break
			}
			seen[key(out)] = true
		}
		stepOutputs <- seen
	}()
	observed := make(chan []string, readers)
	var wg sync.WaitGroup
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var keys []string
			for {
				select {
				case <-done:
					observed <- keys
					return
				default:
				}
				out, err := tr.Predict(ctx, probe)
				if err != nil {
					errs <- err
					observed <- keys
					return
				}
				keys = append(keys, key(out))
				_ = tr.Info()
				_ = tr.Stats()
			}
		}()
	}
	wg.Add(1)
	go func() { // exports and saves while training
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := tr.Export(&bytes.Buffer{}); err != nil {
				errs <- err
				return
			}
			if err := tr.Save(ctx, &bytes.Buffer{}); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	seen := <-stepOutputs
	require.Greater(t, len(seen), steps/2, "the steps must change the probe's output")
	total := 0
	for r := 0; r < readers; r++ {
		for _, k := range <-observed {
			require.True(t, seen[k], "a prediction matches no step's model: %s", k)
			total++
		}
	}
	require.Greater(t, total, 0)
	t.Logf("%d predictions during %d steps, all from whole steps", total, steps)
}

// blobs4 is a 4-feature version of blobs for the concurrency test.
func blobs4(rows int) *dataset {
	d := blobs(rows, 3, 21)
	x := d.inputs["x"]
	x4 := make([]float32, 0, rows*4)
	for r := 0; r < rows; r++ {
		a, b := x[2*r], x[2*r+1]
		x4 = append(x4, a, b, a*b, a-b)
	}
	d.inputs["x"] = x4
	d.widths = map[string]int{"x": 4}
	return d
}

// A Batcher in front of a trainer merges concurrent requests and answers
// each as the trainer alone would.
func TestBehindBatcher(t *testing.T) {
	tr := newTrainer(t, train.MLP{Sizes: []int{2, 8, 1}}, train.Options{})
	b, err := serving.NewBatcher(tr, serving.BatcherOptions{KeepModelOpen: true})
	require.NoError(t, err)
	defer b.Close()
	ctx := context.Background()
	results := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			in := map[string]serving.Tensor{"x": f32([]int64{1, 2}, float32(i), float32(-i))}
			got, err := b.Predict(ctx, in)
			if err != nil {
				results <- err
				return
			}
			want, err := tr.Predict(ctx, in)
			if err != nil {
				results <- err
				return
			}
			g, _ := got["y"].Tensor.Float32s()
			w, _ := want["y"].Tensor.Float32s()
			if fmt.Sprint(g) != fmt.Sprint(w) {
				results <- fmt.Errorf("request %d: batched %v, alone %v", i, g, w)
				return
			}
			results <- nil
		}()
	}
	for i := 0; i < 8; i++ {
		require.NoError(t, <-results)
	}
}
