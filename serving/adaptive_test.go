package serving_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	. "github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/onnx"
	"github.com/quiverml/quiver/serving/servingtest"
)

// drive sends each single-row requests from each of callers goroutines,
// checks every answer is the Doubler's (twice the input), and returns the
// batcher's Stats and the model's runs as they were when three quarters of
// the requests were answered, before callers start to finish: past that
// point fewer rows are queued, and the sizes that serve best change.
func drive(b *Batcher, f *servingtest.Doubler, callers, each int) (Stats, []int, error) {
	var g errgroup.Group
	var done atomic.Int64
	var snap Stats
	var runs []int
	at := int64(callers * each * 3 / 4)
	for c := range callers {
		g.Go(func() error {
			for i := range each {
				v := float32(c*each + i)
				out, err := b.Predict(context.Background(), servingtest.Row(v, 1))
				if err != nil {
					return err
				}
				if y := out["y"].Tensor.Data.([]float32); len(y) != 1 || y[0] != 2*v {
					return fmt.Errorf("caller %d: answer %v to %v", c, y, v)
				}
				if done.Add(1) == at {
					snap, runs = b.Stats(), f.Runs()
				}
			}
			return nil
		})
	}
	err := g.Wait()
	return snap, runs, err
}

// rowsIn returns the fraction of rows that ran in runs of size rows.
func rowsIn(runs []int, rows int) float64 {
	n, total := 0, 0
	for _, r := range runs {
		total += r
		if r == rows {
			n += r
		}
	}
	return float64(n) / float64(total)
}

// The logic tests run the Doubler on a virtual clock with one batch slot:
// a run costs exactly what its cost model says, however busy the machine.
// Runs take no real time, so a batch would hold whoever happened to be
// queued; AlwaysWait makes each batch wait (in real time) for its cap's
// rows, as it would in front of a model whose runs take time.
var logicOpts = BatcherOptions{MaxInFlight: 1, MaxQueueDelay: 50 * time.Millisecond, AlwaysWait: true}

func TestAdaptiveClimbsWhenMergingWins(t *testing.T) {
	clk := &servingtest.Clock{}
	f := &servingtest.Doubler{Cost: servingtest.LinearCost(time.Millisecond, 10*time.Microsecond), Clock: clk}
	b, err := NewBatcherWithClock(f, logicOpts, clk.Now)
	require.NoError(t, err)
	defer b.Close()

	st, _, err := drive(b, f, 64, 100)
	require.NoError(t, err)
	require.Len(t, st.Adaptive, 1)
	g := st.Adaptive[0]
	require.Equal(t, "x[1]", g.Shape)
	require.Equal(t, 64, g.Size, "%+v", g)
	require.Equal(t, []int{1, 2, 4, 8, 16, 32, 64}, sizesOf(g))
	for i := 1; i < len(g.Sizes); i++ {
		require.Greater(t, g.Sizes[i].RowsPerSecond, g.Sizes[i-1].RowsPerSecond, "%+v", g)
	}
	// A batch of 64 rows costs 1.64 virtual milliseconds (a batch that
	// waited its delay out holds fewer).
	require.InEpsilon(t, 64/1.64e-3, g.Sizes[6].RowsPerSecond, 0.05)

	f.ResetRuns()
	st, runs, err := drive(b, f, 64, 100)
	require.NoError(t, err)
	require.Equal(t, 64, st.Adaptive[0].Size)
	require.Greater(t, rowsIn(runs, 64), 0.8, "runs: %v", runs)
}

func TestAdaptiveRunsOneByOneWhenMergingLoses(t *testing.T) {
	clk := &servingtest.Clock{}
	f := &servingtest.Doubler{Cost: servingtest.PowerCost(time.Millisecond, 2), Clock: clk}
	b, err := NewBatcherWithClock(f, logicOpts, clk.Now)
	require.NoError(t, err)
	defer b.Close()

	st, _, err := drive(b, f, 64, 100)
	require.NoError(t, err)
	g := st.Adaptive[0]
	require.Equal(t, 1, g.Size, "%+v", g)
	require.InDelta(t, 1000, g.Sizes[0].RowsPerSecond, 1e-6, "one row per virtual millisecond")
	require.InDelta(t, 500, g.Sizes[1].RowsPerSecond, 1e-6, "two rows per 4 virtual milliseconds")
	require.Zero(t, g.Sizes[2].Batches, "a cap beyond the one that lost is never tried")

	f.ResetRuns()
	st, runs, err := drive(b, f, 64, 100)
	require.NoError(t, err)
	require.Equal(t, 1, st.Adaptive[0].Size)
	require.Greater(t, rowsIn(runs, 1), 0.95, "merging is tried now and then, no more")
	require.Equal(t, 2, slices.Max(runs))
}

// TestAdaptiveOneByOneFillsEverySlot checks that a cap of 1 (where a group
// starts) still runs MaxInFlight requests at once.
func TestAdaptiveOneByOneFillsEverySlot(t *testing.T) {
	f := &servingtest.Doubler{Gate: make(chan struct{}), Entered: make(chan struct{}, 3)}
	b, err := NewBatcher(f, BatcherOptions{MaxInFlight: 2, MaxQueueDelay: time.Hour})
	require.NoError(t, err)
	defer b.Close()
	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			_, err := b.Predict(context.Background(), servingtest.Row(float32(i), 1))
			errs <- err
		}()
	}
	<-f.Entered
	<-f.Entered
	waitQueued(t, b, 1)
	require.Equal(t, 2, b.Stats().InFlight, "both slots run while the third request waits")
	close(f.Gate)
	for range 3 {
		require.NoError(t, <-errs)
	}
	require.Equal(t, []int{1, 1, 1}, f.Runs(), "the queued requests were not merged")
	require.Equal(t, 2, f.MaxRunning())
}

func TestAdaptiveReexploresAfterVersionChange(t *testing.T) {
	clk := &servingtest.Clock{}
	loses := &servingtest.Doubler{Version: 1, Cost: servingtest.PowerCost(time.Millisecond, 2), Clock: clk}
	wins := &servingtest.Doubler{Version: 2, Cost: servingtest.LinearCost(time.Millisecond, 10*time.Microsecond), Clock: clk}
	sw := &servingtest.Switch{}
	sw.Set(loses)
	b, err := NewBatcherWithClock(sw, logicOpts, clk.Now)
	require.NoError(t, err)
	defer b.Close()

	stats, _, err := drive(b, loses, 64, 60)
	require.NoError(t, err)
	st := stats.Adaptive
	require.Len(t, st, 1)
	require.Equal(t, int64(1), st[0].Version)
	require.Equal(t, 1, st[0].Size)

	sw.Set(wins)
	stats, _, err = drive(b, wins, 64, 60)
	require.NoError(t, err)
	st = stats.Adaptive
	require.Len(t, st, 1, "the groups of the model served now")
	require.Equal(t, int64(2), st[0].Version)
	require.Equal(t, 64, st[0].Size, "%+v", st[0])
	require.Equal(t, 0, sw.Held())
}

func TestAdaptiveUsesAllowedBatchSizes(t *testing.T) {
	clk := &servingtest.Clock{}
	f := &servingtest.Doubler{Cost: servingtest.LinearCost(time.Millisecond, 10*time.Microsecond), Clock: clk}
	opts := logicOpts
	opts.AllowedBatchSizes = []int{12, 3, 6}
	b, err := NewBatcherWithClock(f, opts, clk.Now)
	require.NoError(t, err)
	defer b.Close()
	st, _, err := drive(b, f, 16, 100)
	require.NoError(t, err)
	g := st.Adaptive[0]
	require.Equal(t, []int{3, 6, 12}, sizesOf(g))
	require.Equal(t, 12, g.Size)
	for _, n := range f.Runs() {
		require.Contains(t, []int{3, 6, 12}, n, "every run is padded to an allowed size")
	}
}

func TestAdaptiveGroupsByShape(t *testing.T) {
	clk := &servingtest.Clock{}
	f := &servingtest.Doubler{Cost: servingtest.PowerCost(time.Millisecond, 2), Clock: clk}
	b, err := NewBatcherWithClock(f, BatcherOptions{MaxBatchSize: 8, MaxInFlight: 1}, clk.Now)
	require.NoError(t, err)
	defer b.Close()
	for _, k := range []int{3, 2} {
		_, err := b.Predict(context.Background(), servingtest.Row(1, k))
		require.NoError(t, err)
	}
	// A worker reports a batch when it comes back for the next one, or
	// when it stops.
	require.NoError(t, b.Close())
	st := b.Stats()
	require.Equal(t, []string{"x[2]", "x[3]"}, []string{st.Adaptive[0].Shape, st.Adaptive[1].Shape})
	require.Equal(t, []int{1, 2, 4, 8}, sizesOf(st.Adaptive[0]))
	require.Equal(t, uint64(1), st.Adaptive[0].Sizes[0].Batches)
	require.Contains(t, st.String(), "adaptive x[2]: size 1")

	off, err := NewBatcher(&servingtest.Doubler{}, BatcherOptions{Adaptive: AdaptiveOff})
	require.NoError(t, err)
	defer off.Close()
	_, err = off.Predict(context.Background(), servingtest.Row(1, 2))
	require.NoError(t, err)
	require.Empty(t, off.Stats().Adaptive)

	one, err := NewBatcher(&servingtest.Doubler{}, BatcherOptions{MaxBatchSize: 1})
	require.NoError(t, err)
	defer one.Close()
	_, err = one.Predict(context.Background(), servingtest.Row(1, 2))
	require.NoError(t, err)
	require.Empty(t, one.Stats().Adaptive, "nothing to choose with a single size")
}

func TestAdaptiveForgetsTheLeastRecentlyUsedShape(t *testing.T) {
	b, err := NewBatcher(&servingtest.Doubler{}, BatcherOptions{MaxInFlight: 1})
	require.NoError(t, err)
	defer b.Close()
	for k := 1; k <= 70; k++ {
		_, err := b.Predict(context.Background(), servingtest.Row(1, k))
		require.NoError(t, err)
	}
	_, err = b.Predict(context.Background(), servingtest.Row(1, 7)) // used again: kept
	require.NoError(t, err)
	_, err = b.Predict(context.Background(), servingtest.Row(1, 71))
	require.NoError(t, err)
	var shapes []string
	for _, g := range b.Stats().Adaptive {
		shapes = append(shapes, g.Shape)
	}
	require.Len(t, shapes, 64, "at most 64 shape groups per model")
	require.Contains(t, shapes, "x[71]")
	require.Contains(t, shapes, "x[7]")
	require.NotContains(t, shapes, "x[8]", "the least recently used went first")
}

func TestAdaptiveString(t *testing.T) {
	require.Equal(t, "auto", AdaptiveAuto.String())
	require.Equal(t, "off", AdaptiveOff.String())
	require.Equal(t, "on", AdaptiveOn.String())
	require.Equal(t, "Adaptive(9)", Adaptive(9).String())
}

func sizesOf(g AdaptiveGroup) []int {
	var s []int
	for _, z := range g.Sizes {
		s = append(s, z.Size)
	}
	return s
}

// TestAdaptiveServesCorrectResultsOnONNXRuntime runs bench_mlp on ONNX
// Runtime behind an adaptive batcher (the default) and checks every answer
// against the model run on that request alone, whatever sizes the search
// tries.
func TestAdaptiveServesCorrectResultsOnONNXRuntime(t *testing.T) {
	m, err := onnx.Load(context.Background(), testModel(benchModel), onnx.Options{})
	require.NoError(t, err)
	b, err := NewBatcher(m, BatcherOptions{KeepModelOpen: true})
	require.NoError(t, err)
	defer m.Close()
	const callers, each = 32, 60
	type answer struct {
		in, out map[string]Tensor
		err     error
	}
	answers := make(chan answer, callers*each)
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := map[string]Tensor{}
			for i := range each {
				x := randomFloats(64)
				x[0] = float32(c*each + i) // every request differs
				in := map[string]Tensor{"x": NewTensor([]int64{1, 64}, x)}
				if i%2 == 0 {
					res, err := b.Predict(context.Background(), in)
					a := answer{in: in, err: err}
					if err == nil {
						a.out = map[string]Tensor{"y": res["y"].Tensor}
					}
					answers <- a
					continue
				}
				err := b.PredictInto(context.Background(), in, out)
				y := out["y"] // reused by the next call: keep a copy
				y.Data = slices.Clone(y.Data.([]float32))
				answers <- answer{in: in, out: map[string]Tensor{"y": y}, err: err}
			}
		}()
	}
	wg.Wait()
	require.NoError(t, b.Close())
	close(answers)
	n := 0
	for a := range answers {
		require.NoError(t, a.err)
		want, err := m.Predict(context.Background(), a.in)
		require.NoError(t, err)
		require.Equal(t, []int64{1, 1}, a.out["y"].Shape)
		require.InDeltaSlice(t, want["y"].Tensor.Data, a.out["y"].Data, 1e-5)
		n++
	}
	require.Equal(t, callers*each, n)
	st := b.Stats()
	require.Len(t, st.Adaptive, 1)
	g := st.Adaptive[0]
	require.Equal(t, "x[64]", g.Shape)
	var batches, rows uint64
	for _, z := range g.Sizes {
		batches += z.Batches
		rows += z.Rows
	}
	require.Equal(t, st.Batches, batches, "every batch ran under one of the group's caps")
	require.Equal(t, st.Rows, rows)
	t.Logf("chosen size %d after %d trials; %s", g.Size, g.Trials, st)
}
