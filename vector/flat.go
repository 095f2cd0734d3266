package vector

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
)

// FlatOptions configures a Flat index.
type FlatOptions struct {
	// Dim is the vector dimension (required, > 0).
	Dim int
	// Metric is the distance (default L2, squared Euclidean).
	Metric Metric
	// Name identifies the index in its metrics (the "index" label). Empty
	// by default.
	Name string
	// Workers bounds the goroutines one SearchBatch call uses (default
	// GOMAXPROCS).
	Workers int
}

// Flat is an exact index: every search scans all vectors. It is the right
// choice below a few tens of thousands of vectors and the ground truth for
// measuring HNSW recall. Vectors live in one contiguous slab; deletes move
// the last vector into the hole.
type Flat[K Key] struct {
	name    string
	dim     int
	metric  Metric
	workers int
	dist    func(a, b []float32) float32

	mu     sync.RWMutex
	vecs   []float32
	keys   []K
	meta   []Metadata
	ids    map[K]int
	closed bool
	pool   sync.Pool
	st     counters
}

var _ Index[uint64] = (*Flat[uint64])(nil)

// NewFlat returns an empty exact index.
func NewFlat[K Key](opts FlatOptions) (*Flat[K], error) {
	if opts.Dim <= 0 {
		return nil, fmt.Errorf("%w: Dim is %d, want > 0", ErrOptions, opts.Dim)
	}
	if !opts.Metric.valid() {
		return nil, fmt.Errorf("%w: unknown metric %d", ErrOptions, opts.Metric)
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	return &Flat[K]{name: opts.Name, dim: opts.Dim, metric: opts.Metric, workers: opts.Workers, dist: distFunc(opts.Metric), ids: make(map[K]int)}, nil
}

// Add inserts items; none is inserted when any is invalid or its id present.
func (f *Flat[K]) Add(ctx context.Context, items ...Item[K]) error {
	return f.insert(ctx, items, false)
}

// Upsert inserts items, replacing those whose id is present.
func (f *Flat[K]) Upsert(ctx context.Context, items ...Item[K]) error {
	return f.insert(ctx, items, true)
}

func (f *Flat[K]) insert(ctx context.Context, items []Item[K], upsert bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("vector: add: %w", err)
	}
	ps, err := prepare(items, f.dim, f.metric, upsert)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	if !upsert {
		for i, p := range ps {
			if _, ok := f.ids[p.id]; ok {
				return fmt.Errorf("%w: item %d: id %s is already in the index", ErrDuplicateID, i, keyString(p.id))
			}
		}
	}
	f.st.inserts.Add(int64(len(ps)))
	for _, p := range ps {
		if i, ok := f.ids[p.id]; ok {
			copy(f.vecs[i*f.dim:(i+1)*f.dim], p.vec)
			f.meta[i] = p.meta
			continue
		}
		f.ids[p.id] = len(f.keys)
		f.vecs = append(f.vecs, p.vec...)
		f.keys = append(f.keys, p.id)
		f.meta = append(f.meta, p.meta)
	}
	return nil
}

// Delete removes ids and returns how many were present.
func (f *Flat[K]) Delete(ctx context.Context, ids ...K) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("vector: delete: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, ErrClosed
	}
	n := 0
	for _, id := range ids {
		i, ok := f.ids[id]
		if !ok {
			continue
		}
		n++
		delete(f.ids, id)
		last := len(f.keys) - 1
		if i != last {
			copy(f.vecs[i*f.dim:(i+1)*f.dim], f.vecs[last*f.dim:])
			f.keys[i], f.meta[i] = f.keys[last], f.meta[last]
			f.ids[f.keys[i]] = i
		}
		var zero K
		f.keys[last], f.meta[last] = zero, nil
		f.vecs, f.keys, f.meta = f.vecs[:last*f.dim], f.keys[:last], f.meta[:last]
	}
	f.st.deletes.Add(int64(n))
	return n, nil
}

// Stats returns a snapshot of the index's counters. Slots is the vector
// capacity; a Flat index has no tombstones.
func (f *Flat[K]) Stats() Stats {
	f.mu.RLock()
	defer f.mu.RUnlock()
	st := Stats{Live: len(f.keys), Slots: cap(f.keys)}
	p := StatsParts{Vectors: int64(cap(f.vecs)) * 4, Metadata: int64(cap(f.meta)) * 8, Keys: int64(len(f.ids)) * (24 + 8) * 3 / 2}
	var zero K
	if _, isStr := any(zero).(string); isStr {
		p.Keys += int64(cap(f.keys)) * 16
		for _, k := range f.keys {
			p.Keys += int64(len(any(k).(string)))
		}
	} else {
		p.Keys += int64(cap(f.keys)) * 8
	}
	b := p.Vectors + p.Metadata + p.Keys
	st.Bytes, st.Parts = b, p
	if st.Live > 0 {
		st.BytesPerVector = float64(b) / float64(st.Live)
	}
	st.Searches = f.st.searches.Load()
	st.Inserts = f.st.inserts.Load()
	st.Deletes = f.st.deletes.Load()
	return st
}

// Search scans every item and returns the k nearest, closest first.
func (f *Flat[K]) Search(ctx context.Context, query []float32, k int, opts SearchOptions) ([]Result[K], error) {
	if err := checkK(k); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("vector: search: %w", err)
	}
	sc, _ := f.pool.Get().(*searcher)
	if sc == nil {
		sc = &searcher{qbuf: make([]float32, f.dim)}
	}
	defer f.pool.Put(sc)
	q, err := prepareQuery(query, f.dim, f.metric, sc.qbuf)
	if err != nil {
		return nil, err
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return nil, ErrClosed
	}
	f.st.searches.Add(1)
	res := sc.res[:0]
	for i := range f.keys {
		if opts.Filter != nil && !opts.Filter.Match(f.meta[i]) {
			continue
		}
		res.keep(k, cand{f.dist(q, f.vecs[i*f.dim:(i+1)*f.dim]), uint32(i)})
	}
	out := f.results(&res)
	sc.res = res
	return out, nil
}

// results empties res into the results it holds, nearest first; the
// caller holds f.mu.
func (f *Flat[K]) results(res *maxHeap) []Result[K] {
	out := make([]Result[K], len(*res))
	for i := len(out) - 1; i >= 0; i-- {
		c := res.pop()
		out[i] = Result[K]{ID: f.keys[c.id], Distance: c.d, Metadata: f.meta[c.id]}
	}
	return out
}

// Get returns the item stored under id: a copy of its vector, and its
// metadata shared with the index.
func (f *Flat[K]) Get(id K) (Item[K], bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	i, ok := f.ids[id]
	if !ok || f.closed {
		return Item[K]{}, false
	}
	return Item[K]{ID: id, Vector: append([]float32(nil), f.vecs[i*f.dim:(i+1)*f.dim]...), Metadata: f.meta[i]}, true
}

// Len returns the number of items.
func (f *Flat[K]) Len() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.keys)
}

// Dim returns the vector dimension.
func (f *Flat[K]) Dim() int { return f.dim }

// Metric returns the index's distance.
func (f *Flat[K]) Metric() Metric { return f.metric }

// Close releases the index; later calls return ErrClosed.
func (f *Flat[K]) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	f.vecs, f.keys, f.meta, f.ids = nil, nil, nil, map[K]int{}
	return nil
}

// Save writes the index to path atomically.
func (f *Flat[K]) Save(ctx context.Context, path string) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return ErrClosed
	}
	return writeAtomic(ctx, path, func(e *encoder) error {
		header{kind: kindFlat, keyType: keyTypeOf[K](), metric: uint8(f.metric), dim: uint32(f.dim)}.write(e)
		e.u32(uint32(len(f.keys)))
		e.f32s(f.vecs)
		for i := range f.keys {
			encodeKey(e, f.keys[i])
			encodeMeta(e, f.meta[i])
		}
		return nil
	})
}

// LoadFlat reads an index written by Flat.Save. A truncated or damaged
// file returns an error matching ErrCorrupt. Before reading, it removes the
// temporary files that Saves to path interrupted by a crash left behind
// (logging through slog.Default); do not load a path while a Save to it is
// in flight.
func LoadFlat[K Key](ctx context.Context, path string) (*Flat[K], error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("vector: load: %w", err)
	}
	sweep(path, slog.Default())
	b, err := readVerified(path)
	if err != nil {
		return nil, err
	}
	return decodeFlat[K](b)
}

func decodeFlat[K Key](b []byte) (*Flat[K], error) {
	d := newSliceDecoder(b)
	hd, err := readHeader(d, kindFlat, keyTypeOf[K]())
	if err != nil {
		return nil, err
	}
	n := int(d.u32())
	if d.err != nil {
		return nil, d.err
	}
	// Every item stores its vector, a key and a metadata count: refuse
	// counts the file cannot hold before allocating for them.
	if need := int64(n) * (4*int64(hd.dim) + int64(minKeyBytes[K]()) + 4); need > int64(d.remaining()) {
		return nil, fmt.Errorf("%w: %d vectors of dimension %d need %d bytes, the file has %d left", ErrCorrupt, n, hd.dim, need, d.remaining())
	}
	f, err := NewFlat[K](FlatOptions{Dim: int(hd.dim), Metric: Metric(hd.metric)})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	f.vecs = make([]float32, n*f.dim)
	d.f32s(f.vecs)
	f.keys = make([]K, n)
	f.meta = make([]Metadata, n)
	for i := 0; i < n; i++ {
		f.keys[i] = decodeKey[K](d)
		f.meta[i] = decodeMeta(d)
		if d.err != nil {
			return nil, d.err
		}
		if _, dup := f.ids[f.keys[i]]; dup {
			return nil, fmt.Errorf("%w: id %s stored twice", ErrCorrupt, keyString(f.keys[i]))
		}
		f.ids[f.keys[i]] = i
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	if _, err := checkVectors(f.vecs); err != nil {
		return nil, err
	}
	return f, nil
}

func checkVectors(v []float32) (int, error) {
	for i, x := range v {
		if x != x || x > 3.4028235e38 || x < -3.4028235e38 {
			return i, fmt.Errorf("%w: vector element %d is %v", ErrCorrupt, i, x)
		}
	}
	return 0, nil
}
