package rag

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/vector"
	"github.com/stretchr/testify/require"
)

func TestSplitChars(t *testing.T) {
	text := strings.Repeat("alpha beta gamma delta épsilon ", 40) // 1240 runes, multi-byte letters
	cases := []struct {
		name string
		o    ChunkOptions
	}{
		{"default", ChunkOptions{}},
		{"small", ChunkOptions{Size: 50, Overlap: 10}},
		{"no overlap", ChunkOptions{Size: 64, Overlap: -1}},
		{"tokens", ChunkOptions{Unit: Tokens, Size: 20, Overlap: 5}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spans, err := Split(text, c.o)
			require.NoError(t, err)
			require.NotEmpty(t, spans)
			o, _ := c.o.withDefaults()
			covered := make([]bool, len(text))
			for i, sp := range spans {
				chunk := text[sp.Start:sp.End]
				require.True(t, utf8.ValidString(chunk), "span %d cuts a rune", i)
				r, _ := utf8.DecodeRuneInString(chunk)
				require.False(t, unicode.IsSpace(r), "span %d starts with space", i)
				if o.Unit == Chars {
					require.LessOrEqual(t, utf8.RuneCountInString(chunk), o.Size)
				} else {
					require.LessOrEqual(t, len(strings.Fields(chunk)), o.Size)
				}
				if i > 0 {
					require.Greater(t, sp.Start, spans[i-1].Start, "spans advance")
					if o.Overlap > 0 {
						require.Less(t, sp.Start, spans[i-1].End, "consecutive spans overlap")
					}
				}
				for j := sp.Start; j < sp.End; j++ {
					covered[j] = true
				}
			}
			for i, r := range text {
				if !unicode.IsSpace(r) {
					require.True(t, covered[i], "byte %d not covered", i)
				}
			}
		})
	}
}

func TestSplitEdgeCases(t *testing.T) {
	spans, err := Split("", ChunkOptions{})
	require.NoError(t, err)
	require.Empty(t, spans)
	spans, err = Split("   \n\t ", ChunkOptions{Size: 3, Overlap: 1})
	require.NoError(t, err)
	require.Empty(t, spans)
	spans, err = Split("  short text  ", ChunkOptions{})
	require.NoError(t, err)
	require.Equal(t, []Span{{2, 12}}, spans)
	spans, err = Split(strings.Repeat("x", 25), ChunkOptions{Size: 10, Overlap: 2}) // no spaces: hard cuts
	require.NoError(t, err)
	require.Equal(t, []Span{{0, 10}, {8, 18}, {16, 25}}, spans)
	for _, o := range []ChunkOptions{{Size: -1}, {Size: 10, Overlap: 10}, {Unit: 7}} {
		_, err := Split("abc", o)
		require.ErrorIs(t, err, ErrChunkOptions)
	}
}

// bowEmbedder is a deterministic lexical embedder for tests.
func bowEmbedder(dim int) Embedder {
	feat := HashedBagOfWords(dim)
	return EmbedderFunc(func(_ context.Context, texts []string) ([][]float32, error) {
		out := make([][]float32, len(texts))
		for i, t := range texts {
			out[i] = feat(t)
			if allZero(out[i]) {
				out[i][0] = 1e-3 // keep cosine defined for texts without words
			}
		}
		return out, nil
	})
}

func allZero(v []float32) bool {
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
}

var docs = []Document{
	{ID: "go", Text: "Go is a statically typed compiled language. Goroutines and channels make concurrency simple. The garbage collector runs concurrently.", Metadata: vector.Metadata{"topic": "programming"}},
	{ID: "hnsw", Text: "HNSW builds a layered proximity graph. Search descends the layers greedily, then runs a beam search with width ef on the bottom layer.", Metadata: vector.Metadata{"topic": "search"}},
	{ID: "bread", Text: "Sourdough bread needs flour, water, salt and a starter. Let the dough rise overnight, then bake it in a hot oven.", Metadata: vector.Metadata{"topic": "cooking"}},
}

func newStore(t *testing.T) *Store {
	t.Helper()
	idx, err := vector.NewHNSW[string](vector.Options{Dim: 256, Metric: vector.Cosine})
	require.NoError(t, err)
	s, err := NewStore(idx, bowEmbedder(256), StoreOptions{Chunking: ChunkOptions{Unit: Tokens, Size: 12, Overlap: 3}, BatchSize: 4})
	require.NoError(t, err)
	return s
}

func TestStoreQuery(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	n, err := s.AddDocuments(ctx, docs...)
	require.NoError(t, err)
	require.Equal(t, s.Index().Len(), n)
	require.Greater(t, n, len(docs))

	cases := []struct{ q, doc string }{
		{"how does the beam search with ef work on the bottom layer", "hnsw"},
		{"bake sourdough bread in the oven", "bread"},
		{"goroutines and channels for concurrency", "go"},
	}
	byID := map[string]string{}
	for _, d := range docs {
		byID[d.ID] = d.Text
	}
	for _, c := range cases {
		hits, err := s.Query(ctx, c.q, 2, QueryOptions{})
		require.NoError(t, err)
		require.Len(t, hits, 2)
		require.Equal(t, c.doc, hits[0].DocID, "query %q", c.q)
		h := hits[0]
		require.Equal(t, byID[h.DocID][h.Start:h.End], h.Text, "offsets point into the source")
		require.LessOrEqual(t, hits[0].Distance, hits[1].Distance)
	}
	hits, err := s.Query(ctx, "bread", 3, QueryOptions{Filter: vector.Eq("topic", "search")})
	require.NoError(t, err)
	for _, h := range hits {
		require.Equal(t, "hnsw", h.DocID)
	}

	// replacing a document with a shorter version drops its stale chunks
	_, err = s.AddDocuments(ctx, Document{ID: "bread", Text: "Flatbread needs no starter."})
	require.NoError(t, err)
	hits, err = s.Query(ctx, "sourdough starter overnight", 10, QueryOptions{Filter: vector.Eq(FieldDoc, "bread")})
	require.NoError(t, err)
	require.Len(t, hits, 1)
	require.Equal(t, "Flatbread needs no starter.", hits[0].Text)

	del, err := s.DeleteDocument(ctx, "go")
	require.NoError(t, err)
	require.Positive(t, del)
	hits, err = s.Query(ctx, "goroutines", 10, QueryOptions{})
	require.NoError(t, err)
	for _, h := range hits {
		require.NotEqual(t, "go", h.DocID)
	}
}

func TestStoreBadInput(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	_, err := s.AddDocuments(ctx, Document{ID: "", Text: "x"})
	require.ErrorIs(t, err, ErrInput)
	_, err = s.AddDocuments(ctx, Document{ID: "a", Text: "x"}, Document{ID: "a", Text: "y"})
	require.ErrorIs(t, err, ErrInput)
	_, err = s.Query(ctx, "x", 0, QueryOptions{})
	require.ErrorIs(t, err, vector.ErrInvalidK)

	boom := errors.New("boom")
	idx, _ := vector.NewFlat[string](vector.FlatOptions{Dim: 4})
	bad, err := NewStore(idx, EmbedderFunc(func(context.Context, []string) ([][]float32, error) { return nil, boom }), StoreOptions{})
	require.NoError(t, err)
	_, err = bad.AddDocuments(ctx, docs...)
	require.ErrorIs(t, err, boom)
	require.Zero(t, idx.Len())
	short, err := NewStore(idx, EmbedderFunc(func(context.Context, []string) ([][]float32, error) { return [][]float32{{1, 0, 0}}, nil }), StoreOptions{})
	require.NoError(t, err)
	_, err = short.AddDocuments(ctx, docs[0])
	require.Error(t, err)
	require.Zero(t, idx.Len(), "nothing indexed when embeddings do not fit")
}

func TestMMRPrefersDiversity(t *testing.T) {
	q := []float32{1, 0}
	cands := [][]float32{{1, 0}, {0.999, 0.04}, {0.8, 0.6}, nil}
	require.Equal(t, []int{0, 1, 2}, MMR(q, cands, 3, 1, vector.Cosine), "lambda 1 is plain relevance")
	require.Equal(t, []int{0, 2}, MMR(q, cands, 2, 0.3, vector.Cosine), "the near-duplicate is passed over")
	require.Equal(t, []int{0, 2}, MMR(q, cands, 2, 0.3, vector.L2))
	require.Len(t, MMR(q, cands, 10, 0.5, vector.Cosine), 3, "nil candidates are skipped")
}

// fakeModel is a serving.Model that sums input features into 2 outputs.
type fakeModel struct{ calls int }

func (m *fakeModel) Info() serving.Info {
	return serving.Info{Inputs: []serving.IOInfo{{Name: "x"}}, Outputs: []serving.IOInfo{{Name: "y"}}}
}
func (m *fakeModel) Close() error { return nil }
func (m *fakeModel) Predict(_ context.Context, in map[string]serving.Tensor) (map[string]serving.Value, error) {
	m.calls++
	x := in["x"]
	data := x.Data.([]float32)
	n, f := int(x.Shape[0]), int(x.Shape[1])
	out := make([]float32, 2*n)
	for i := 0; i < n; i++ {
		for j := 0; j < f; j++ {
			out[2*i+j%2] += data[i*f+j]
		}
	}
	return map[string]serving.Value{"y": serving.TensorValue(serving.NewTensor([]int64{int64(n), 2}, out))}, nil
}

func TestModelEmbedder(t *testing.T) {
	m := &fakeModel{}
	e := ModelEmbedder{Model: m, Features: func(s string) []float32 { return []float32{float32(len(s)), 1, 2} }}
	vecs, err := e.Embed(context.Background(), []string{"ab", "abcd"})
	require.NoError(t, err)
	require.Equal(t, [][]float32{{4, 1}, {6, 1}}, vecs)
	require.Equal(t, 1, m.calls, "one batch per call")

	e.Output = "missing"
	_, err = e.Embed(context.Background(), []string{"a"})
	require.ErrorIs(t, err, ErrEmbedding)
	e.Output = ""
	e.Features = func(s string) []float32 { return make([]float32, len(s)) }
	_, err = e.Embed(context.Background(), []string{"a", "bb"})
	require.ErrorIs(t, err, ErrEmbedding)
}

func ExampleStore() {
	ctx := context.Background()
	idx, _ := vector.NewHNSW[string](vector.Options{Dim: 256, Metric: vector.Cosine})
	store, _ := NewStore(idx, bowEmbedder(256), StoreOptions{Chunking: ChunkOptions{Unit: Tokens, Size: 12, Overlap: 3}})
	store.AddDocuments(ctx, docs...)
	hits, _ := store.Query(ctx, "bake bread in a hot oven", 1, QueryOptions{})
	fmt.Println(hits[0].DocID, "|", hits[0].Text)
	// Output: bread | Let the dough rise overnight, then bake it in a hot oven.
}

func TestHashedFeatures(t *testing.T) {
	plain := HashedBagOfWords(64)
	v := plain("Alpha beta, alpha!")
	var sq float64
	nonzero := 0
	for _, x := range v {
		sq += float64(x) * float64(x)
		if x != 0 {
			nonzero++
		}
	}
	require.InDelta(t, 1, sq, 1e-5, "unit length")
	require.LessOrEqual(t, nonzero, 2, "two distinct tokens")
	require.Equal(t, v, plain("alpha BETA alpha"), "case and punctuation do not matter")

	weighted := HashedFeatures(64, Tokenize, func(tok string) float32 {
		if tok == "beta" {
			return 0
		}
		return 2
	})
	require.Equal(t, plain("alpha"), weighted("alpha beta"), "weight 0 drops a token")
	require.Equal(t, make([]float32, 64), weighted("beta"), "no tokens left: zero vector")
}

func TestQueryZeroEmbedding(t *testing.T) {
	ctx := context.Background()
	for _, metric := range []vector.Metric{vector.Cosine, vector.L2, vector.InnerProduct} {
		t.Run(metric.String(), func(t *testing.T) {
			idx, err := vector.NewFlat[string](vector.FlatOptions{Dim: 64, Metric: metric})
			require.NoError(t, err)
			feat := HashedFeatures(64, Tokenize, func(tok string) float32 {
				if tok == "alpha" {
					return 1
				}
				return 0 // every other word is unknown
			})
			emb := EmbedderFunc(func(_ context.Context, texts []string) ([][]float32, error) {
				out := make([][]float32, len(texts))
				for i, text := range texts {
					out[i] = feat(text)
				}
				return out, nil
			})
			s, err := NewStore(idx, emb, StoreOptions{})
			require.NoError(t, err)
			_, err = s.AddDocuments(ctx, Document{ID: "a", Text: "alpha alpha"})
			require.NoError(t, err)

			_, err = s.Query(ctx, "zebra quagga", 1, QueryOptions{})
			require.ErrorIs(t, err, ErrEmptyQuery)
			require.ErrorIs(t, err, ErrInput)
			require.Contains(t, err.Error(), `"zebra quagga"`)

			hits, err := s.Query(ctx, "alpha", 1, QueryOptions{})
			require.NoError(t, err, "the store still answers known words")
			require.Len(t, hits, 1)
		})
	}
}

// Chunk offsets and numbers read back whatever number type the index
// returns, before and after a save and load.
func TestChunkOffsetsSurviveSaveAndLoad(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	_, err := s.AddDocuments(ctx, docs...)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "rag.hnsw")
	require.NoError(t, s.Index().(*vector.HNSW[string]).Save(ctx, path))
	loaded, err := vector.LoadHNSW[string](ctx, path, vector.Options{})
	require.NoError(t, err)
	s2, err := NewStore(loaded, bowEmbedder(256), StoreOptions{})
	require.NoError(t, err)
	byID := map[string]string{}
	for _, d := range docs {
		byID[d.ID] = d.Text
	}
	for name, st := range map[string]*Store{"in memory": s, "loaded": s2} {
		hits, err := st.Query(ctx, "beam search with width ef on the bottom layer", 3, QueryOptions{})
		require.NoError(t, err, name)
		require.NotEmpty(t, hits, name)
		for _, h := range hits {
			require.Equal(t, byID[h.DocID][h.Start:h.End], h.Text, "%s: offsets point into the source", name)
			require.Positive(t, h.End, name)
		}
	}
	for _, md := range []vector.Metadata{
		{FieldStart: 3, FieldEnd: 9, FieldChunk: 2},
		{FieldStart: int64(3), FieldEnd: int64(9), FieldChunk: int64(2)},
		{FieldStart: 3.0, FieldEnd: 9.0, FieldChunk: 2.0},
	} {
		c := chunkOf(md)
		require.Equal(t, [3]int{3, 9, 2}, [3]int{c.Start, c.End, c.Index}, "%T", md[FieldStart])
	}
}
