package vector

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestParallelBuildKeepsEveryNodeReachable builds small graphs on several
// goroutines (where inserts race for the same link lists) and searches for
// every stored vector: it must come back as its own nearest neighbour. A
// lost in-link makes a node unreachable; under -race scheduling a build
// that overwrote concurrent back-links missed about 1% of the nodes.
func TestParallelBuildKeepsEveryNodeReachable(t *testing.T) {
	ctx := context.Background()
	miss, total := 0, 0
	for rep := 0; rep < 6; rep++ {
		r := rand.New(rand.NewPCG(uint64(rep), 2))
		data := make([][]float32, 300)
		for i := range data {
			data[i] = make([]float32, 8)
			for j := range data[i] {
				data[i][j] = r.Float32()*2 - 1
			}
		}
		h := must(NewHNSW[uint64](Options{Dim: 8, Workers: 4}))
		require.NoError(t, h.Add(ctx, items(data)...))
		for i, v := range data {
			res, err := h.Search(ctx, v, 1, SearchOptions{})
			require.NoError(t, err)
			total++
			if res[0].ID != uint64(i) {
				miss++
			}
		}
	}
	t.Logf("self-search misses: %d of %d", miss, total)
	require.LessOrEqual(t, miss, total/500)
}
