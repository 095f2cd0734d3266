package vector_test

import (
	"context"
	"fmt"
	"math"

	"github.com/quiverml/quiver/vector"
)

func Example() {
	ctx := context.Background()
	idx, err := vector.NewHNSW[string](vector.Options{Dim: 2, Metric: vector.L2})
	if err != nil {
		panic(err)
	}
	_ = idx.Add(ctx,
		vector.Item[string]{ID: "paris", Vector: []float32{2.35, 48.86}, Metadata: vector.Metadata{"country": "FR", "pop": 2.1}},
		vector.Item[string]{ID: "lyon", Vector: []float32{4.84, 45.76}, Metadata: vector.Metadata{"country": "FR", "pop": 0.5}},
		vector.Item[string]{ID: "brussels", Vector: []float32{4.35, 50.85}, Metadata: vector.Metadata{"country": "BE", "pop": 1.2}},
	)
	hits, _ := idx.Search(ctx, []float32{3, 50}, 2, vector.SearchOptions{})
	for _, h := range hits {
		fmt.Printf("%s %.2f\n", h.ID, h.Distance)
	}
	hits, _ = idx.Search(ctx, []float32{3, 50}, 1, vector.SearchOptions{
		Filter: vector.And(vector.Eq("country", "FR"), vector.Range("pop", 1, math.Inf(1))),
	})
	fmt.Println("largest French city nearby:", hits[0].ID)
	// Output:
	// paris 1.72
	// brussels 2.54
	// largest French city nearby: paris
}

func ExampleFlat() {
	ctx := context.Background()
	idx, _ := vector.NewFlat[uint64](vector.FlatOptions{Dim: 3, Metric: vector.Cosine})
	_ = idx.Add(ctx,
		vector.Item[uint64]{ID: 1, Vector: []float32{1, 0, 0}},
		vector.Item[uint64]{ID: 2, Vector: []float32{0.7, 0.7, 0}},
		vector.Item[uint64]{ID: 3, Vector: []float32{0, 0, 1}},
	)
	hits, _ := idx.Search(ctx, []float32{1, 0.1, 0}, 2, vector.SearchOptions{})
	fmt.Println(hits[0].ID, hits[1].ID)
	// Output: 1 2
}
