package vector_test

import (
	"context"
	"fmt"

	"github.com/quiverml/quiver/vector"
)

func ExampleHNSW_SearchBatch() {
	ctx := context.Background()
	var done []int
	idx, err := vector.NewHNSW[string](vector.Options{
		Dim: 2,
		// Called about every 100ms during a long Add or load, and once
		// at the end with Done == Total.
		Progress: func(p vector.Progress) { done = append(done, p.Done) },
	})
	if err != nil {
		panic(err)
	}
	_ = idx.Add(ctx,
		vector.Item[string]{ID: "paris", Vector: []float32{2.35, 48.86}},
		vector.Item[string]{ID: "lyon", Vector: []float32{4.84, 45.76}},
		vector.Item[string]{ID: "brussels", Vector: []float32{4.35, 50.85}},
	)
	fmt.Println("added:", done[len(done)-1])
	queries := [][]float32{{3, 50}, {5, 45}, {7, 70}}
	results, err := idx.SearchBatch(ctx, queries, 1, vector.SearchOptions{})
	if err != nil {
		panic(err)
	}
	for i, hits := range results {
		fmt.Println(queries[i], "->", hits[0].ID)
	}
	_, err = idx.SearchBatch(ctx, [][]float32{{3, 50}, {1}}, 1, vector.SearchOptions{})
	fmt.Println(err)
	// Output:
	// added: 3
	// [3 50] -> paris
	// [5 45] -> lyon
	// [7 70] -> brussels
	// vector: search batch: query 1 of 2: vector: wrong dimension: query has 1 elements, want 2
}
