package servingtest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/serving"
)

func TestCostModels(t *testing.T) {
	lin := LinearCost(time.Millisecond, 10*time.Microsecond)
	require.Equal(t, 1010*time.Microsecond, lin(1))
	require.Equal(t, 1640*time.Microsecond, lin(64))
	sq := PowerCost(time.Millisecond, 2)
	require.Equal(t, time.Millisecond, sq(1))
	require.Equal(t, 9*time.Millisecond, sq(3))
}

func TestDoublerSpendsItsCostOnTheClock(t *testing.T) {
	clk := &Clock{}
	f := &Doubler{Cost: PowerCost(time.Millisecond, 2), Clock: clk}
	out, err := f.Predict(context.Background(), Row(3, 2))
	require.NoError(t, err)
	require.Equal(t, []float32{6, 6}, out["y"].Tensor.Data)
	require.Equal(t, time.Millisecond, clk.Now())
	_, err = f.Predict(context.Background(), map[string]serving.Tensor{"x": serving.NewTensor([]int64{2, 1}, []float32{1, 2})})
	require.NoError(t, err)
	require.Equal(t, 5*time.Millisecond, clk.Now(), "2 rows cost 4ms more")
	require.Equal(t, []int{1, 2}, f.Runs())
	require.Equal(t, 1, f.MaxRunning())
	f.ResetRuns()
	require.Empty(t, f.Runs())
}

func TestDoublerWaitsItsCostUnlessCancelled(t *testing.T) {
	f := &Doubler{Cost: LinearCost(time.Hour, 0)}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.Predict(ctx, Row(1, 1))
	require.ErrorIs(t, err, context.Canceled)
	require.Empty(t, f.Runs(), "a run cut short is not recorded")
}
