package gorgonia

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/quiverml/quiver/serving"
	"github.com/stretchr/testify/require"
)

// TestBehindBatcher serves the MLP behind a Batcher whose runs are all 8
// rows (merged requests, padded): every request's answer must equal the
// model's answer for that row run alone.
func TestBehindBatcher(t *testing.T) {
	m := load(t, "mlp", Options{})
	direct := load(t, "mlp", Options{})
	b, err := serving.NewBatcher(m, serving.BatcherOptions{
		AllowedBatchSizes: []int{8}, MaxQueueDelay: 50 * time.Millisecond, AlwaysWait: true, MaxInFlight: 1,
	})
	require.NoError(t, err)
	defer b.Close()

	const callers = 16
	rows := make([][]float32, callers)
	want := make([][]float32, callers)
	for i := range rows {
		rows[i] = randomFloats(uint64(100+i), 16)
		out := predict(t, direct, map[string]serving.Tensor{"x": f32(sh(1, 16), rows[i]...)})
		want[i] = out["y"].Tensor.Data.([]float32)
	}
	type answer struct {
		i   int
		y   any
		err error
	}
	answers := make(chan answer, callers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out, err := b.Predict(context.Background(), map[string]serving.Tensor{"x": f32(sh(1, 16), rows[i]...)})
			a := answer{i: i, err: err}
			if err == nil {
				a.y = out["y"].Tensor.Data
			}
			answers <- a
		}()
	}
	close(start)
	wg.Wait()
	close(answers)
	for a := range answers {
		require.NoError(t, a.err)
		require.InDeltaSlice(t, want[a.i], a.y, 1e-6, "caller %d", a.i)
	}
	st := b.Stats()
	require.Equal(t, uint64(callers), st.Rows)
	require.Less(t, st.Batches, uint64(callers), "requests were merged")
	require.Equal(t, 8*st.Batches, st.Rows+st.Padding, "every run is 8 rows")
	ms := m.Stats()
	require.Equal(t, 1, ms.Shapes, "one compiled shape: batch 8")
	require.Equal(t, st.Batches, ms.Runs)
}

// TestConcurrentPredict runs many goroutines at different batch sizes on
// one model (run it with -race): each answer equals the reference.
func TestConcurrentPredict(t *testing.T) {
	m := load(t, "mlp", Options{MaxIdle: 2, MaxShapes: 2})
	type job struct {
		x    []float32
		rows int
		want []float32
	}
	jobs := make([]job, 12)
	for i := range jobs {
		rows := 1 + i%3
		x := randomFloats(uint64(i), rows*16)
		jobs[i] = job{x: x, rows: rows, want: mlpReference(t, x, rows)}
	}
	errs := make(chan error, len(jobs)*4)
	got := make(chan [2]any, len(jobs)*4)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range jobs {
				j := jobs[(k+g)%len(jobs)]
				out, err := m.Predict(context.Background(), map[string]serving.Tensor{"x": f32(sh(int64(j.rows), 16), j.x...)})
				if err != nil {
					errs <- err
					continue
				}
				got <- [2]any{j.want, out["y"].Tensor.Data}
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(got)
	for err := range errs {
		require.NoError(t, err)
	}
	n := 0
	for p := range got {
		require.InDeltaSlice(t, p[0], p[1], 1e-5)
		n++
	}
	require.Equal(t, 4*len(jobs), n)
	st := m.Stats()
	require.LessOrEqual(t, st.Shapes, 2, "MaxShapes bounds the cache")
	require.LessOrEqual(t, st.Idle, 4, "MaxIdle bounds each shape")
	require.Positive(t, st.Evictions, "three batch sizes through a cache of two")
}

// TestConcurrentCompiles compiles new shapes while other goroutines run
// compiled ones, on models with scalar and vector parameters shared by
// every machine (run it with -race).
func TestConcurrentCompiles(t *testing.T) {
	for _, name := range []string{"ops_elementwise", "ops_conv"} {
		m := load(t, name, Options{MaxShapes: 3, MaxIdle: 1})
		info := m.Info()
		errs := make(chan error, 64)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range 6 {
					in := map[string]serving.Tensor{}
					for _, io := range info.Inputs {
						shape := make([]int64, len(io.Shape))
						n := 1
						for i, d := range io.Shape {
							if d < 0 {
								d = int64(1 + (g+k)%4)
								if i > 1 {
									d += 4
								}
							}
							shape[i] = d
							n *= int(d)
						}
						in[io.Name] = f32(shape, randomFloats(uint64(k), n)...)
					}
					if _, err := m.Predict(context.Background(), in); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err, name)
		}
	}
}
