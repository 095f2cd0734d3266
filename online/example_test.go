package online_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/quiverml/quiver/features"
	"github.com/quiverml/quiver/online"
	"github.com/quiverml/quiver/serving/gorgonia/train"
)

func ExampleLoop() {
	ctx := context.Background()
	store := features.New(features.Options{})
	defer store.Close()
	_ = store.Register(features.View{Name: "user", Entity: "user_id", TTL: time.Hour, Features: []features.Feature{
		{Name: "age", Kind: features.KindFloat32}, {Name: "visits", Kind: features.KindFloat32}}})
	sel, _ := store.Select("user")

	learner, _ := train.New(train.LogisticRegression{Features: 2}, train.Options{LearningRate: 0.1})
	defer learner.Close()
	loop, err := online.New(online.LearnerFrom(learner), online.Options{
		Store: store, Features: []*features.Selection{sel},
		Model:     learner, // serve from the learner itself; a registry alias in production
		BatchSize: 2, HoldoutEvery: 3, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer loop.Close()

	for i, user := range []string{"u1", "u2", "u3", "u4", "u5", "u6"} {
		_ = store.Put(ctx, "user", features.Row{Entity: user, Values: map[string]features.Value{
			"age": features.Float32(float32(20 + i)), "visits": features.Float32(float32(i % 2))}})
		id := fmt.Sprint("req-", i)
		if _, err := loop.Predict(ctx, online.Request{ID: id, Entities: []string{user}}); err != nil {
			fmt.Println(err)
			return
		}
		// The outcome arrives later; the row it trains on is the one
		// read at prediction time.
		_ = loop.Outcome(ctx, online.Outcome{RequestID: id, Label: float64(i % 2)})
	}
	st := loop.Stats()
	fmt.Printf("joined %d, held out %d, trained on %d rows in %d updates\n", st.Joined, st.HeldOut, st.Trained, st.Updates)
	// Output: joined 6, held out 2, trained on 4 rows in 2 updates
}
