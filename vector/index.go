package vector

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// Metric is the distance an index ranks by. Smaller distances are closer.
type Metric uint8

// Metrics.
const (
	// L2 is the squared Euclidean distance.
	L2 Metric = iota
	// Cosine is 1 - cosine similarity. Vectors are normalised on insert and
	// zero vectors are rejected.
	Cosine
	// InnerProduct is the negated dot product (maximum inner product search).
	InnerProduct
)

func (m Metric) String() string {
	switch m {
	case L2:
		return "l2"
	case Cosine:
		return "cosine"
	case InnerProduct:
		return "inner_product"
	}
	return fmt.Sprintf("metric(%d)", uint8(m))
}

func (m Metric) valid() bool { return m <= InnerProduct }

// Key is the type of the caller's ids: strings or uint64 numbers.
type Key interface{ string | uint64 }

// Item is one vector with its id and optional metadata.
type Item[K Key] struct {
	ID     K
	Vector []float32
	// Metadata holds string, bool and number fields used by filters.
	Metadata Metadata
}

// Metadata maps field names to values of type string, bool, int, int8,
// int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32 or
// float64. Values keep their Go types in the index and through Save and
// Load: an int64 stored is an int64 read back. Add refuses any other type
// (named types defined on these included) with ErrMetadata. Filters compare
// numbers by value across types.
type Metadata map[string]any

// Result is one search hit.
type Result[K Key] struct {
	ID K
	// Distance to the query under the index's metric (squared for L2).
	Distance float32
	// Metadata is the stored metadata, shared with the index: do not modify.
	Metadata Metadata
}

// SearchOptions tunes one search. The zero value uses the index defaults.
type SearchOptions struct {
	// Ef is the HNSW beam width; 0 means the index's EfSearch. It is raised
	// to k when smaller. Flat indexes ignore it.
	Ef int
	// Filter, when not nil, restricts results to items whose metadata match.
	Filter Filter
}

// Index is a vector index keyed by K. Implementations are safe for
// concurrent use: searches run in parallel with inserts and deletes.
type Index[K Key] interface {
	// Add inserts items. It fails, inserting none of them, when an id is
	// already present or repeated, or when a vector or metadata is invalid.
	Add(ctx context.Context, items ...Item[K]) error
	// Upsert inserts items, replacing those whose id is present.
	Upsert(ctx context.Context, items ...Item[K]) error
	// Delete removes the ids and returns how many were present.
	Delete(ctx context.Context, ids ...K) (int, error)
	// Search returns up to k items nearest to query, closest first.
	Search(ctx context.Context, query []float32, k int, opts SearchOptions) ([]Result[K], error)
	// Get returns the stored item: a copy of its vector (normalised under
	// Cosine) and its metadata, which is shared with the index (do not modify).
	Get(id K) (Item[K], bool)
	// Len returns the number of live items.
	Len() int
	// Dim returns the vector dimension.
	Dim() int
	// Metric returns the distance the index ranks by.
	Metric() Metric
	// Save writes the index to path atomically (temporary file, fsync, rename).
	Save(ctx context.Context, path string) error
	// Close releases the index; later calls return ErrClosed.
	Close() error
}

// Sentinel errors, checked with errors.Is.
var (
	// ErrDimension reports a vector whose length is not the index dimension.
	ErrDimension = errors.New("vector: wrong dimension")
	// ErrInvalidVector reports a vector holding NaN or Inf.
	ErrInvalidVector = errors.New("vector: vector holds NaN or Inf")
	// ErrZeroVector reports a zero vector under the Cosine metric.
	ErrZeroVector = errors.New("vector: zero vector has no direction under cosine")
	// ErrInvalidK reports k <= 0.
	ErrInvalidK = errors.New("vector: k must be positive")
	// ErrDuplicateID reports an Add of an id already present or repeated in the call.
	ErrDuplicateID = errors.New("vector: duplicate id")
	// ErrNotFound reports an id that is not in the index.
	ErrNotFound = errors.New("vector: id not found")
	// ErrMetadata reports a metadata value whose type Metadata cannot hold.
	ErrMetadata = errors.New("vector: unsupported metadata value")
	// ErrOptions reports invalid options.
	ErrOptions = errors.New("vector: invalid options")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("vector: index is closed")
	// ErrCorrupt reports a saved index that is truncated or damaged.
	ErrCorrupt = errors.New("vector: corrupt index file")
	// ErrVersion reports a saved index written by an unknown format version.
	ErrVersion = errors.New("vector: unsupported index file version")
	// ErrKeyType reports a saved index whose id type differs from the one asked for.
	ErrKeyType = errors.New("vector: index file has a different id type")
	// ErrFull reports an index that reached its maximum of 2^32-2 slots.
	ErrFull = errors.New("vector: index is full")
)

// checkVector validates v for an index of dimension dim under metric m and
// returns the vector to store (a normalised copy under Cosine, else a copy).
func checkVector(v []float32, dim int, m Metric) ([]float32, error) {
	if len(v) != dim {
		return nil, fmt.Errorf("%w: got %d, want %d", ErrDimension, len(v), dim)
	}
	var sq float64
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("%w: element %d is %v", ErrInvalidVector, i, x)
		}
		sq += float64(x) * float64(x)
	}
	out := make([]float32, dim)
	copy(out, v)
	if m == Cosine {
		if sq == 0 || math.IsInf(sq, 0) {
			return nil, fmt.Errorf("%w: norm is %v", ErrZeroVector, math.Sqrt(sq))
		}
		inv := 1 / math.Sqrt(sq)
		for i := range out {
			out[i] = float32(float64(out[i]) * inv)
		}
	}
	return out, nil
}

// prepareQuery validates a query into buf (reused) and returns it.
func prepareQuery(q []float32, dim int, m Metric, buf []float32) ([]float32, error) {
	if len(q) != dim {
		return nil, fmt.Errorf("%w: query has %d elements, want %d", ErrDimension, len(q), dim)
	}
	var sq float64
	for i, x := range q {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("%w: query element %d is %v", ErrInvalidVector, i, x)
		}
		sq += float64(x) * float64(x)
	}
	if m != Cosine {
		return q, nil
	}
	if sq == 0 || math.IsInf(sq, 0) {
		return nil, fmt.Errorf("%w: query norm is %v", ErrZeroVector, math.Sqrt(sq))
	}
	buf = buf[:dim]
	inv := 1 / math.Sqrt(sq)
	for i, x := range q {
		buf[i] = float32(float64(x) * inv)
	}
	return buf, nil
}

func checkK(k int) error {
	if k <= 0 {
		return fmt.Errorf("%w: got %d", ErrInvalidK, k)
	}
	return nil
}

func keyString[K Key](k K) string {
	switch v := any(k).(type) {
	case string:
		return fmt.Sprintf("%q", v)
	case uint64:
		return fmt.Sprintf("%d", v)
	}
	return "?"
}
