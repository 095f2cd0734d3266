package serving_test

import (
	"context"
	"sync"
	"testing"
	"time"

	. "github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/servingtest"
	"github.com/stretchr/testify/require"
)

// TestBatcherFollowsPinner puts a Batcher in front of a Switch before it
// has a model, then switches between two models with different input
// names while requests are queued: each request is validated against, and
// runs on, the model it was pinned to; requests pinned to different models
// never share a batch; every pin is released.
func TestBatcherFollowsPinner(t *testing.T) {
	sw := &servingtest.Switch{}
	b, err := NewBatcher(sw, BatcherOptions{Adaptive: AdaptiveOff, MaxBatchSize: 8, MaxInFlight: 1, MaxQueueDelay: time.Hour})
	require.NoError(t, err)
	defer b.Close()

	_, err = b.Predict(context.Background(), servingtest.Row(1, 2))
	require.ErrorIs(t, err, ErrNotReady, "nothing to serve yet: a retryable error")
	require.Equal(t, uint64(1), b.Stats().Errors[ErrKindNotReady])

	a := &servingtest.Doubler{ModelName: "a", Gate: make(chan struct{})}
	other := &servingtest.Doubler{ModelName: "b", InputName: "z"}
	sw.Set(a)
	openGate := sync.OnceFunc(func() { close(a.Gate) })
	defer openGate()

	type answer struct {
		name string
		y    []float32
		err  error
	}
	answers := make(chan answer, 16)
	var wg sync.WaitGroup
	send := func(name string, in map[string]Tensor) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := b.Predict(context.Background(), in)
			a := answer{name: name, err: err}
			if err == nil {
				a.y, _ = out["y"].Tensor.Float32s()
			}
			answers <- a
		}()
	}
	full := map[string]Tensor{"x": NewTensor([]int64{8, 1}, make([]float32, 8))}
	send("full", full) // a full batch on a: runs at once and holds the only slot
	require.Eventually(t, func() bool { return b.Stats().InFlight == 1 }, 5*time.Second, time.Millisecond)
	send("a1", servingtest.Row(1, 1))
	send("a2", servingtest.Row(2, 1))
	waitQueued(t, b, 2)

	sw.Set(other)
	_, err = b.Predict(context.Background(), servingtest.Row(3, 1))
	require.ErrorIs(t, err, ErrInput, "after the switch, input x is unknown")
	send("b1", map[string]Tensor{"z": NewTensor([]int64{1, 1}, []float32{4})})
	send("b2", map[string]Tensor{"z": NewTensor([]int64{1, 1}, []float32{5})})
	waitQueued(t, b, 4)
	openGate()
	wg.Wait()
	close(answers)

	got := map[string][]float32{}
	for a := range answers {
		require.NoError(t, a.err, a.name)
		got[a.name] = a.y
	}
	require.Equal(t, []float32{2}, got["a1"])
	require.Equal(t, []float32{4}, got["a2"])
	require.Equal(t, []float32{8}, got["b1"])
	require.Equal(t, []float32{10}, got["b2"])
	require.Equal(t, []int{8, 2}, a.Runs(), "a ran the full batch, then its two queued requests merged")
	require.Equal(t, []int{2}, other.Runs(), "b's two requests merged, apart from a's")
	require.Equal(t, 0, sw.Held(), "every pin released")
	require.Equal(t, []string{"z"}, []string{b.Info().Inputs[0].Name}, "Info follows the switch")
}
