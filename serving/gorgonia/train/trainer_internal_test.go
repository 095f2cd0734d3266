package train

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/serving"
)

// An Update waiting for the one in progress gives up when its context
// ends, and changes nothing.
func TestUpdateWaitCanceled(t *testing.T) {
	tr, err := New(LogisticRegression{Features: 2}, Options{})
	require.NoError(t, err)
	defer tr.Close()
	tr.sem <- struct{}{} // an update in progress
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		_, err := tr.Update(ctx, map[string]serving.Tensor{"x": serving.NewTensor([]int64{1, 2}, []float32{1, 2})},
			serving.NewTensor([]int64{1}, []float32{1}))
		res <- err
	}()
	cancel()
	require.ErrorIs(t, <-res, context.Canceled)
	tr.unlock()
	require.Equal(t, int64(0), tr.Stats().Step)
}

// lateCancel is a context that ends after its Err has been asked n times:
// it lets a test cancel Update between computing the gradient and applying
// the step.
type lateCancel struct {
	context.Context
	n int
}

func (c *lateCancel) Err() error {
	if c.n > 0 {
		c.n--
		return nil
	}
	return context.Canceled
}

func (c *lateCancel) Done() <-chan struct{}       { return nil }
func (c *lateCancel) Deadline() (time.Time, bool) { return time.Time{}, false }

// A context that ends while the gradient is computed is noticed before the
// step is applied, which then is not.
func TestUpdateCanceledBeforeStep(t *testing.T) {
	tr, err := New(MLP{Sizes: []int{2, 3, 1}}, Options{})
	require.NoError(t, err)
	defer tr.Close()
	before := clone2(tr.params)
	beforeSlots := [][]float32{append([]float32(nil), tr.slots[0][0]...), append([]float32(nil), tr.slots[1][0]...)}
	// Update asks Err once before taking the lock, then again before the step.
	ctx := &lateCancel{Context: context.Background(), n: 1}
	_, err = tr.Update(ctx, map[string]serving.Tensor{"x": serving.NewTensor([]int64{1, 2}, []float32{1, 2})},
		serving.NewTensor([]int64{1}, []float32{1}))
	require.ErrorIs(t, err, context.Canceled)
	require.Contains(t, err.Error(), "step not applied")
	require.Equal(t, before, tr.params)
	require.Equal(t, beforeSlots, [][]float32{tr.slots[0][0], tr.slots[1][0]})
	require.Equal(t, int64(0), tr.step)
	require.Equal(t, int64(0), tr.snap.Load().step)
}

// Trainers build one graph per power-of-two capacity, however the batch
// sizes vary.
func TestGraphsPerCapacity(t *testing.T) {
	tr, err := New(LogisticRegression{Features: 1}, Options{})
	require.NoError(t, err)
	defer tr.Close()
	for n := 1; n <= 40; n++ {
		x := make([]float32, n)
		y := make([]float32, n)
		_, err := tr.Update(context.Background(), map[string]serving.Tensor{"x": serving.NewTensor([]int64{int64(n), 1}, x)}, serving.NewTensor([]int64{int64(n)}, y))
		require.NoError(t, err)
	}
	caps := []int{}
	for c := range tr.graphs {
		caps = append(caps, c)
	}
	require.ElementsMatch(t, []int{1, 2, 4, 8, 16, 32, 64}, caps)
}
