package onnx

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/quiverml/quiver/serving"
	"github.com/stretchr/testify/require"
)

// TestManyModelsInOneProcess serves 50 sessions at once, each behind its
// own Batcher, and checks every answer against a plain-Go evaluation of the
// model and that closing the batchers frees every session.
func TestManyModelsInOneProcess(t *testing.T) {
	before := LiveSessions()
	const n = 50
	batchers := make([]*serving.Batcher, n)
	for i := range batchers {
		m, err := Load(context.Background(), testModel("mlp"), Options{Name: fmt.Sprintf("mlp-%d", i)})
		require.NoError(t, err)
		batchers[i], err = serving.NewBatcher(m, serving.BatcherOptions{MaxBatchSize: 8 + i, MaxQueueLength: 16, MaxInFlight: 1})
		require.NoError(t, err)
	}
	require.Equal(t, before+n, LiveSessions())
	x := seq(16, 0.5)
	want := mlpReference(t, x, 1)
	type answer struct {
		batcher int
		y       any
		name    string
		err     error
	}
	answers := make(chan answer, n*4)
	var wg sync.WaitGroup
	for i, b := range batchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 4 {
				out, err := b.Predict(context.Background(), map[string]serving.Tensor{"x": f32([]int64{1, 16}, x...)})
				a := answer{batcher: i, err: err, name: b.Info().Name}
				if err == nil {
					a.y = out["y"].Tensor.Data
				}
				answers <- a
			}
		}()
	}
	wg.Wait()
	close(answers)
	for a := range answers {
		require.NoError(t, a.err, "batcher %d", a.batcher)
		require.InDeltaSlice(t, want, a.y, 1e-4, "batcher %d", a.batcher)
		require.Equal(t, fmt.Sprintf("mlp-%d", a.batcher), a.name)
	}
	for _, b := range batchers {
		require.Equal(t, uint64(4), b.Stats().Rows)
		require.NoError(t, b.Close())
	}
	require.Equal(t, before, LiveSessions(), "every session freed")
}
