package rag

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/quiverml/quiver/vector"
)

// Metadata fields a Store sets on every chunk; the document's own metadata
// is copied beside them.
const (
	FieldDoc   = "_doc"   // document id
	FieldChunk = "_chunk" // chunk number within the document
	FieldText  = "_text"  // chunk text
	FieldStart = "_start" // byte offset of the chunk in the document
	FieldEnd   = "_end"   // byte offset just past the chunk
)

// ErrInput reports a bad document or query.
var ErrInput = errors.New("rag: bad input")

// ErrEmptyQuery reports a query whose embedding is all zeros: none of its
// words mean anything to the embedder (only stop words, or words the
// documents never use), so it has no direction to search in. Errors that
// match it also match ErrInput.
var ErrEmptyQuery = errors.New("rag: query embeds to a zero vector")

// Document is a text to index.
type Document struct {
	ID       string
	Text     string
	Metadata vector.Metadata
}

// Chunk is one indexed piece of a document.
type Chunk struct {
	DocID string
	Index int
	Text  string
	// Start and End are byte offsets: the document's Text[Start:End] == Text.
	Start, End int
	Metadata   vector.Metadata
}

// Hit is a chunk returned by Query with its distance to the query.
type Hit struct {
	Chunk
	Distance float32
}

// StoreOptions configures a Store. The zero value chunks by ChunkOptions{}
// and embeds 32 chunks per call.
type StoreOptions struct {
	Chunking ChunkOptions
	// BatchSize is how many chunks go to the embedder per call (default 32).
	BatchSize int
}

// Store chunks documents, embeds the chunks and keeps them in a vector
// index; Query embeds a question and returns the nearest chunks. The chunk
// text and offsets live in the index's metadata, so saving the index saves
// the store's content. Safe for concurrent use.
type Store struct {
	idx  vector.Index[string]
	emb  Embedder
	opts StoreOptions

	mu   sync.Mutex
	docs map[string]int // document id -> chunk count
}

// NewStore returns a Store over idx (empty, or holding chunks written by a
// Store, in which case documents are not tracked for DeleteDocument).
func NewStore(idx vector.Index[string], emb Embedder, opts StoreOptions) (*Store, error) {
	var err error
	if opts.Chunking, err = opts.Chunking.withDefaults(); err != nil {
		return nil, err
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 32
	}
	return &Store{idx: idx, emb: emb, opts: opts, docs: map[string]int{}}, nil
}

// Index returns the underlying vector index.
func (s *Store) Index() vector.Index[string] { return s.idx }

func chunkID(doc string, i int) string { return doc + "#" + strconv.Itoa(i) }

// AddDocuments chunks, embeds and indexes docs, replacing any earlier
// version of a document with the same id. It returns the number of chunks
// indexed. Embedding runs before anything is written, so an embedder error
// leaves the store unchanged.
func (s *Store) AddDocuments(ctx context.Context, docs ...Document) (int, error) {
	var items []vector.Item[string]
	var texts []string
	counts := map[string]int{}
	for di, d := range docs {
		if d.ID == "" {
			return 0, fmt.Errorf("%w: document %d has an empty id", ErrInput, di)
		}
		if _, dup := counts[d.ID]; dup {
			return 0, fmt.Errorf("%w: document id %q given twice", ErrInput, d.ID)
		}
		spans, err := Split(d.Text, s.opts.Chunking)
		if err != nil {
			return 0, err
		}
		counts[d.ID] = len(spans)
		for i, sp := range spans {
			md := vector.Metadata{}
			for k, v := range d.Metadata {
				md[k] = v
			}
			md[FieldDoc] = d.ID
			md[FieldChunk] = i
			md[FieldText] = d.Text[sp.Start:sp.End]
			md[FieldStart] = sp.Start
			md[FieldEnd] = sp.End
			items = append(items, vector.Item[string]{ID: chunkID(d.ID, i), Metadata: md})
			texts = append(texts, d.Text[sp.Start:sp.End])
		}
	}
	for lo := 0; lo < len(texts); lo += s.opts.BatchSize {
		hi := min(lo+s.opts.BatchSize, len(texts))
		vecs, err := s.emb.Embed(ctx, texts[lo:hi])
		if err != nil {
			return 0, fmt.Errorf("rag: embed chunks %d..%d: %w", lo, hi-1, err)
		}
		if len(vecs) != hi-lo {
			return 0, fmt.Errorf("%w: embedder returned %d vectors for %d texts", ErrEmbedding, len(vecs), hi-lo)
		}
		for i, v := range vecs {
			items[lo+i].Vector = v
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var stale []string
	for id, n := range counts {
		for i := n; i < s.docs[id]; i++ { // the new version has fewer chunks
			stale = append(stale, chunkID(id, i))
		}
	}
	if err := s.idx.Upsert(ctx, items...); err != nil {
		return 0, err
	}
	if len(stale) > 0 {
		if _, err := s.idx.Delete(ctx, stale...); err != nil {
			return 0, err
		}
	}
	for id, n := range counts {
		s.docs[id] = n
	}
	return len(items), nil
}

// DeleteDocument removes every chunk of a document added through this
// Store and returns how many were removed.
func (s *Store) DeleteDocument(ctx context.Context, id string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.docs[id]
	if !ok {
		return 0, nil
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = chunkID(id, i)
	}
	del, err := s.idx.Delete(ctx, ids...)
	if err != nil {
		return del, err
	}
	delete(s.docs, id)
	return del, nil
}

// QueryOptions tunes Query. The zero value returns the k nearest chunks.
type QueryOptions struct {
	// Filter restricts chunks by metadata (document fields or FieldDoc).
	Filter vector.Filter
	// Ef overrides the HNSW beam width.
	Ef int
	// MMR re-ranks Fetch candidates with maximal marginal relevance, trading
	// relevance for diversity by Lambda (1: relevance only; default 0.5).
	MMR    bool
	Lambda float64
	// Fetch is how many candidates MMR chooses from (default 4*k).
	Fetch int
}

// Query embeds text and returns the k best chunks, closest first (or in
// MMR order). A text whose embedding is all zeros returns ErrEmptyQuery:
// under cosine such a vector has no direction, and under the other metrics
// it would rank chunks by their norm alone, an answer to no question.
func (s *Store) Query(ctx context.Context, text string, k int, o QueryOptions) ([]Hit, error) {
	if k <= 0 {
		return nil, fmt.Errorf("%w: k is %d, want > 0", vector.ErrInvalidK, k)
	}
	vecs, err := s.emb.Embed(ctx, []string{text})
	if err != nil {
		return nil, fmt.Errorf("rag: embed query: %w", err)
	}
	if len(vecs) != 1 {
		return nil, fmt.Errorf("%w: embedder returned %d vectors for 1 text", ErrEmbedding, len(vecs))
	}
	q := vecs[0]
	if isZero(q) {
		return nil, fmt.Errorf("%w: %w: %q has no words the embedder knows; rephrase it with the documents' terms", ErrInput, ErrEmptyQuery, text)
	}
	fetch := k
	if o.MMR {
		fetch = o.Fetch
		if fetch <= 0 {
			fetch = 4 * k
		}
		fetch = max(fetch, k)
	}
	res, err := s.idx.Search(ctx, q, fetch, vector.SearchOptions{Ef: o.Ef, Filter: o.Filter})
	if err != nil {
		return nil, err
	}
	order := make([]int, len(res))
	for i := range order {
		order[i] = i
	}
	if o.MMR {
		lambda := o.Lambda
		if lambda == 0 {
			lambda = 0.5
		}
		cands := make([][]float32, len(res))
		for i, r := range res {
			it, ok := s.idx.Get(r.ID)
			if !ok { // deleted meanwhile
				continue
			}
			cands[i] = it.Vector
		}
		order = MMR(q, cands, k, lambda, s.idx.Metric())
	}
	hits := make([]Hit, 0, min(k, len(order)))
	for _, i := range order[:min(k, len(order))] {
		hits = append(hits, Hit{Chunk: chunkOf(res[i].Metadata), Distance: res[i].Distance})
	}
	return hits, nil
}

func isZero(v []float32) bool {
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
}

func chunkOf(md vector.Metadata) Chunk {
	c := Chunk{Metadata: md}
	c.DocID, _ = md[FieldDoc].(string)
	c.Text, _ = md[FieldText].(string)
	c.Index, _ = intField(md[FieldChunk])
	c.Start, _ = intField(md[FieldStart])
	c.End, _ = intField(md[FieldEnd])
	return c
}

// intField reads an offset or chunk number: an int as the Store wrote it,
// or whichever number type the index hands back (a loaded index may give
// float64 or int64).
func intField(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int64:
		return int(x), true
	case int32:
		return int(x), true
	case uint64:
		return int(x), true
	case uint32:
		return int(x), true
	case float64:
		return int(x), true
	case float32:
		return int(x), true
	}
	return 0, false
}
