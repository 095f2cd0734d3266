package online_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/quiverml/quiver/features"
	"github.com/quiverml/quiver/online"
	"github.com/quiverml/quiver/serving"
)

// benchIDs returns n distinct request ids, made before the timer starts.
func benchIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "r" + strconv.Itoa(i)
	}
	return ids
}

// BenchmarkPredict compares a prediction through the loop (features read
// from the store, the learner's answer, the prediction logged) with its
// peer path=direct: the same two feature reads and the same model call
// without the loop.
func BenchmarkPredict(b *testing.B) {
	ctx := context.Background()
	clock := newSimClock()
	s := newSim(b, 1, -1, clock)
	tr := newTrainer(b, 0.03)
	for u := 0; u < simUsers; u++ {
		putUser(b, s, "u"+strconv.Itoa(u), simStart, float32(u)/simUsers)
	}
	b.Run("path=loop", func(b *testing.B) {
		l := newLoop(b, s, clock, tr, func(o *online.Options) { o.MaxPending = 1 << 16 })
		ids := benchIDs(b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			_, err := l.Predict(ctx, online.Request{ID: ids[i], Entities: []string{"u" + strconv.Itoa(i%simUsers), "i" + strconv.Itoa(i%simItems)}})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("path=direct", func(b *testing.B) {
		sels := []*features.Selection{s.user, s.item}
		status := make([]features.Status, simUserDim)
		ids := benchIDs(b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			row := make([]float32, simWidth)
			keys := []string{"u" + strconv.Itoa(i%simUsers), "i" + strconv.Itoa(i%simItems)}
			for k, sel := range sels {
				if err := s.store.GetMany(ctx, sel, keys[k:k+1], row[k*simUserDim:(k+1)*simUserDim], status); err != nil {
					b.Fatal(err)
				}
			}
			out, err := tr.Predict(ctx, map[string]serving.Tensor{"x": serving.NewTensor([]int64{1, simWidth}, row)})
			if err != nil || len(ids[i]) == 0 {
				b.Fatal(err)
			}
			_ = out
		}
	})
}

// BenchmarkOutcome measures joining an outcome and learning from it
// (batches of 32 rows; every 10th event held out and scored), per
// outcome, against its peer path=direct: the learner's Update on batches
// of the same size and its Predict on the held-out rows, fed by hand.
func BenchmarkOutcome(b *testing.B) {
	ctx := context.Background()
	clock := newSimClock()
	s := newSim(b, 1, -1, clock)
	for u := 0; u < simUsers; u++ {
		putUser(b, s, "u"+strconv.Itoa(u), simStart, float32(u)/simUsers)
	}
	b.Run("path=loop", func(b *testing.B) {
		tr := newTrainer(b, 0.03)
		l := newLoop(b, s, clock, tr, func(o *online.Options) { o.MaxPending = b.N + 1 })
		ids := benchIDs(b.N)
		for i := 0; i < b.N; i++ {
			_, err := l.Predict(ctx, online.Request{ID: ids[i], Entities: []string{"u" + strconv.Itoa(i%simUsers), "i" + strconv.Itoa(i%simItems)}})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := l.Outcome(ctx, online.Outcome{RequestID: ids[i], Label: float64(i % 2)}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("path=direct", func(b *testing.B) {
		tr := newTrainer(b, 0.03)
		x, y := s.batch(32)
		in := map[string]serving.Tensor{"x": serving.NewTensor([]int64{32, simWidth}, x)}
		target := serving.NewTensor([]int64{32, 1}, y)
		one := map[string]serving.Tensor{"x": serving.NewTensor([]int64{1, simWidth}, x[:simWidth])}
		rows := 0
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if i%10 == 9 { // held out: scored
				if _, err := tr.Predict(ctx, one); err != nil {
					b.Fatal(err)
				}
				continue
			}
			if rows++; rows%32 == 0 {
				if _, err := tr.Update(ctx, in, target); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
