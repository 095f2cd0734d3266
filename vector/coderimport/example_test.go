package coderimport_test

import (
	"bytes"
	"context"
	"fmt"

	"github.com/coder/hnsw"
	"github.com/quiverml/quiver/vector"
	"github.com/quiverml/quiver/vector/coderimport"
)

func ExampleImport() {
	// A graph built and saved with coder/hnsw.
	g := hnsw.NewGraph[string]()
	g.Distance = hnsw.EuclideanDistance
	g.Add(hnsw.MakeNode("a", []float32{0, 0}), hnsw.MakeNode("b", []float32{1, 1}), hnsw.MakeNode("c", []float32{5, 5}))
	var saved bytes.Buffer
	if err := g.Export(&saved); err != nil {
		panic(err)
	}

	ctx := context.Background()
	idx, _ := vector.NewHNSW[string](vector.Options{Dim: 2, Metric: vector.L2})
	n, err := coderimport.Import(ctx, &saved, idx)
	fmt.Println(n, err)
	hits, _ := idx.Search(ctx, []float32{4, 4}, 1, vector.SearchOptions{})
	fmt.Println(hits[0].ID)
	// Output:
	// 3 <nil>
	// c
}
