package features_test

import (
	"context"
	"fmt"
	"time"

	"github.com/quiverml/quiver/features"
)

func Example() {
	ctx := context.Background()
	store := features.New(features.Options{})
	defer store.Close()
	err := store.Register(features.View{
		Name: "user", Entity: "user_id", TTL: time.Hour,
		Features: []features.Feature{
			{Name: "age", Kind: features.KindFloat32, Default: features.Float32(-1)},
			{Name: "orders", Kind: features.KindInt64},
			{Name: "emb", Kind: features.KindEmbedding, Dim: 2},
		},
	})
	if err != nil {
		panic(err)
	}
	err = store.Put(ctx, "user", features.Row{Entity: "u1", EventTime: time.Now(), Values: map[string]features.Value{
		"age": features.Float32(31), "orders": features.Int64(4), "emb": features.Embedding([]float32{0.5, 0.25}),
	}})
	if err != nil {
		panic(err)
	}
	sel, err := store.Select("user", "age", "orders", "emb")
	if err != nil {
		panic(err)
	}
	ids := []string{"u1", "u2"}
	dst := make([]float32, len(ids)*sel.Width())
	status := make([]features.Status, len(ids)*sel.Len())
	if err := store.GetMany(ctx, sel, ids, dst, status); err != nil {
		panic(err)
	}
	fmt.Println(dst[:4], status[:3])
	fmt.Println(dst[4:], status[3:])
	// Output:
	// [31 4 0.5 0.25] [PRESENT PRESENT PRESENT]
	// [-1 0 0 0] [NOT_FOUND NOT_FOUND NOT_FOUND]
}

func ExampleMemory_Drift() {
	store := features.New(features.Options{})
	defer store.Close()
	_ = store.Register(features.View{Name: "tx", Entity: "id", Features: []features.Feature{{Name: "amount", Kind: features.KindFloat32}}})
	put := func(shift float32) {
		for i := range 1000 {
			_ = store.Put(context.Background(), "tx", features.Row{Entity: fmt.Sprint(i), EventTime: time.Now(),
				Values: map[string]features.Value{"amount": features.Float32(float32(i%100) + shift)}})
		}
	}
	put(0)
	_ = store.CaptureReference("tx") // the training-time window
	put(30)                          // serving traffic drifted upwards
	rep, _ := store.Drift("tx", features.DriftThresholds{})
	fmt.Println("drifted:", rep.Drifted)
	// Output: drifted: [amount]
}

func ExampleIngest() {
	store := features.New(features.Options{})
	defer store.Close()
	_ = store.Register(features.View{Name: "v", Entity: "id", Features: []features.Feature{{Name: "x", Kind: features.KindFloat32}}})
	src := make(chan features.Row)
	go func() {
		defer close(src)
		for i := range 1000 {
			src <- features.Row{Entity: fmt.Sprint(i), EventTime: time.Now(), Values: map[string]features.Value{"x": features.Float32(float32(i))}}
		}
	}()
	stats, err := features.Ingest(context.Background(), store, "v", src, features.IngestOptions{BatchSize: 100})
	n, _ := store.Len("v")
	fmt.Println(stats.Rows, n, err)
	// Output: 1000 1000 <nil>
}
