package vector

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
)

type prepared[K Key] struct {
	id   K
	vec  []float32
	meta Metadata
}

func prepare[K Key](items []Item[K], dim int, m Metric, allowDup bool) ([]prepared[K], error) {
	out := make([]prepared[K], len(items))
	var seen map[K]int
	if len(items) > 1 {
		seen = make(map[K]int, len(items))
	}
	for i, it := range items {
		v, err := checkVector(it.Vector, dim, m)
		if err != nil {
			return nil, fmt.Errorf("vector: item %d (id %s): %w", i, keyString(it.ID), err)
		}
		md, err := checkMetadata(it.Metadata)
		if err != nil {
			return nil, fmt.Errorf("vector: item %d (id %s): %w", i, keyString(it.ID), err)
		}
		if seen != nil {
			if j, dup := seen[it.ID]; dup && !allowDup {
				return nil, fmt.Errorf("%w: id %s at items %d and %d", ErrDuplicateID, keyString(it.ID), j, i)
			}
			seen[it.ID] = i
		}
		out[i] = prepared[K]{it.ID, v, md}
	}
	if allowDup && seen != nil && len(seen) < len(items) { // Upsert: the last item of an id wins
		kept := out[:0]
		for i, p := range out {
			if seen[p.id] == i {
				kept = append(kept, p)
			}
		}
		out = kept
	}
	return out, nil
}

// Add inserts items, in parallel for large batches (Options.Workers). It
// inserts none of them when any id is present or repeated, or any vector or
// metadata is invalid. A cancelled ctx stops a batch between items: the
// items not yet linked are removed again and the error wraps ctx.Err().
func (h *HNSW[K]) Add(ctx context.Context, items ...Item[K]) error {
	return h.insert(ctx, items, false)
}

// Upsert inserts items, replacing any present with the same id (the old
// version is deleted first). Within one call the last item of an id wins.
func (h *HNSW[K]) Upsert(ctx context.Context, items ...Item[K]) error {
	return h.insert(ctx, items, true)
}

func (h *HNSW[K]) insert(ctx context.Context, items []Item[K], upsert bool) error {
	if h.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("vector: add: %w", err)
	}
	if len(items) == 0 {
		return nil
	}
	ps, err := prepare(items, h.dim, h.opts.Metric, upsert)
	if err != nil {
		return err
	}
	// Deferred first, so it runs after mutMu is released: the last
	// progress call may use the index.
	p := startProgress(h.opts.Progress, "add", len(ps))
	defer p.stop()
	h.mutMu.RLock()
	defer h.mutMu.RUnlock()
	if h.closed.Load() {
		return ErrClosed
	}
	slots, err := h.place(ps, upsert)
	if err != nil {
		return err
	}
	h.st.inserts.Add(int64(len(slots)))
	defer h.dropPending(slots)
	if err := h.linkAll(ctx, slots, p); err != nil {
		return err
	}
	p.finish()
	return nil
}

// place checks ids, reserves slots, writes vectors and metadata and
// publishes the ids. Nothing is changed when it fails.
func (h *HNSW[K]) place(ps []prepared[K], upsert bool) ([]uint32, error) {
	h.idMu.Lock()
	defer h.idMu.Unlock()
	if !upsert {
		for i, p := range ps {
			if _, ok := h.ids[p.id]; ok {
				return nil, fmt.Errorf("%w: item %d: id %s is already in the index", ErrDuplicateID, i, keyString(p.id))
			}
		}
	}
	fresh := len(ps) - len(h.free)
	if fresh > 0 && uint64(h.next)+uint64(fresh) > math.MaxUint32-1 {
		return nil, fmt.Errorf("%w: %d slots in use", ErrFull, h.next)
	}
	if need := int(h.next) + max(fresh, 0); need > h.capacity() {
		h.mu.Lock()
		h.allocate(max(need, 2*h.capacity()))
		h.mu.Unlock()
		h.st.grows.Add(1)
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if err := h.writeVectorsFile(ps); err != nil {
		return nil, err
	}
	slots := make([]uint32, len(ps))
	for i, p := range ps {
		var s uint32
		if n := len(h.free); n > 0 {
			s = h.free[n-1]
			h.free = h.free[:n-1]
		} else {
			s = h.next
			atomic.StoreUint32(&h.next, s+1) // read without idMu by filtered scans
		}
		slots[i] = s
		h.store(s, p.vec)
		level := h.randomLevel()
		h.levels[s] = uint8(level)
		h.links0[int(s)*(h.m0+1)] = 0
		if level > 0 {
			h.upper[s] = make([]uint32, level*(h.m+1))
		} else {
			h.upper[s] = nil
		}
		h.keys[s] = p.id
		h.meta[s] = p.meta
		if old, ok := h.ids[p.id]; ok { // upsert: tombstone the old version
			atomic.OrUint32(&h.flags[old], flagDeleted)
			h.live.Add(-1)
			h.deleted.Add(1)
		}
		atomic.StoreUint32(&h.flags[s], flagUsed)
		h.ids[p.id] = s
		h.live.Add(1)
	}
	return slots, nil
}

// linkAll links the placed slots into the graph, on up to Workers goroutines.
// p (may be nil) counts the linked slots.
func (h *HNSW[K]) linkAll(ctx context.Context, slots []uint32, p *progress) error {
	workers := h.opts.Workers
	if len(slots) < 64 {
		workers = 1
	}
	var next atomic.Int64
	var stop atomic.Bool
	done := make([]bool, len(slots))
	work := func() {
		sc := h.getSearcher()
		defer h.pool.Put(sc)
		for !stop.Load() {
			i := int(next.Add(1)) - 1
			if i >= len(slots) {
				return
			}
			if i%64 == 0 && ctx.Err() != nil {
				stop.Store(true)
				return
			}
			h.mu.RLock()
			h.link(sc, slots[i])
			h.mu.RUnlock()
			done[i] = true
			p.add(1)
		}
	}
	if workers == 1 {
		work()
	} else {
		var wg sync.WaitGroup
		for range workers {
			wg.Go(work)
		}
		wg.Wait()
	}
	if !stop.Load() {
		return nil
	}
	// Cancelled: tombstone the items that were never linked.
	h.idMu.Lock()
	n := 0
	for i, s := range slots {
		if done[i] {
			continue
		}
		n++
		h.mu.RLock()
		if cur, ok := h.ids[h.keys[s]]; ok && cur == s {
			delete(h.ids, h.keys[s])
			atomic.OrUint32(&h.flags[s], flagDeleted)
			h.live.Add(-1)
			h.deleted.Add(1)
		}
		h.mu.RUnlock()
	}
	h.idMu.Unlock()
	return fmt.Errorf("vector: add cancelled, %d of %d items not inserted: %w", n, len(slots), ctx.Err())
}

// Delete removes ids and returns how many were present. Deleted items stop
// appearing in results at once; their slots are reclaimed by Compact, which
// runs automatically once tombstones exceed Options.CompactRatio.
func (h *HNSW[K]) Delete(ctx context.Context, ids ...K) (int, error) {
	if h.closed.Load() {
		return 0, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("vector: delete: %w", err)
	}
	h.mutMu.RLock()
	h.idMu.Lock()
	h.mu.RLock()
	n := 0
	for _, id := range ids {
		s, ok := h.ids[id]
		if !ok {
			continue
		}
		delete(h.ids, id)
		atomic.OrUint32(&h.flags[s], flagDeleted)
		n++
	}
	h.mu.RUnlock()
	h.idMu.Unlock()
	h.live.Add(-int64(n))
	dead := h.deleted.Add(int64(n))
	h.mutMu.RUnlock()
	h.st.deletes.Add(int64(n))
	if r := h.opts.CompactRatio; r > 0 && dead >= 32 && float64(dead) > r*float64(dead+h.live.Load()) {
		if err := h.Compact(ctx); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Get returns the item stored under id: a copy of its vector (under
// QuantInt8Only read from the VectorsFile, or without one the dequantized
// code, an approximation), and its metadata shared with the index.
func (h *HNSW[K]) Get(id K) (Item[K], bool) {
	if h.closed.Load() {
		return Item[K]{}, false
	}
	h.idMu.RLock()
	defer h.idMu.RUnlock()
	s, ok := h.ids[id]
	if !ok {
		return Item[K]{}, false
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.levels == nil {
		return Item[K]{}, false
	}
	return Item[K]{ID: id, Vector: h.getVec(s), Metadata: h.meta[s]}, true
}

// Len returns the number of live items.
func (h *HNSW[K]) Len() int { return int(h.live.Load()) }

// Dim returns the vector dimension.
func (h *HNSW[K]) Dim() int { return h.dim }

// Metric returns the index's distance.
func (h *HNSW[K]) Metric() Metric { return h.opts.Metric }

// Close releases the index's memory after in-flight calls finish. Later
// calls return ErrClosed (Get returns false).
func (h *HNSW[K]) Close() error {
	if h.closed.Swap(true) {
		return nil
	}
	h.mutMu.Lock()
	defer h.mutMu.Unlock()
	h.idMu.Lock()
	defer h.idMu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.vecs, h.links0, h.upper, h.levels, h.flags, h.keys, h.meta = nil, nil, nil, nil, nil, nil, nil
	err := h.closeStorage()
	h.ids = nil
	h.free = nil
	h.next = 0
	h.ep.Store(0)
	if err != nil {
		return fmt.Errorf("vector: close: %w", err)
	}
	return nil
}

// Search returns up to k items nearest to query, closest first. With a
// filter, items that do not match are never returned; when the filter's
// estimated selectivity is below Options.ExactFilterBelow, or the graph walk
// finds fewer than k matches, the matching items are scanned exactly, so a
// selective filter still yields k results when k items match.
func (h *HNSW[K]) Search(ctx context.Context, query []float32, k int, opts SearchOptions) ([]Result[K], error) {
	if err := checkK(k); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("vector: search: %w", err)
	}
	if h.closed.Load() {
		return nil, ErrClosed
	}
	sc := h.getSearcher()
	defer h.pool.Put(sc)
	q, err := prepareQuery(query, h.dim, h.opts.Metric, sc.qbuf)
	if err != nil {
		return nil, err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.levels == nil {
		return nil, ErrClosed
	}
	h.st.searches.Add(1)
	if n := int(h.live.Load()); k > n { // no more results exist; also bounds k*RescoreFactor
		k = max(n, 1)
	}
	ef := opts.Ef
	if ef <= 0 {
		ef = h.opts.EfSearch
	}
	ef = max(ef, k)
	f := opts.Filter
	if f != nil && h.opts.ExactFilterBelow > 0 && h.selectivity(f) < h.opts.ExactFilterBelow {
		return h.exactFiltered(sc, q, k, f), nil
	}
	epv := h.ep.Load()
	if epv == 0 {
		return []Result[K]{}, nil
	}
	h.descend(sc, q, epv)
	if h.codes == nil {
		h.searchLayerSeeds(sc, q, nil, ef, 0, f, false)
	} else if h.only != nil {
		// QuantInt8Only walks with the float query against the codes
		// (distance is the asymmetric one), from every seed.
		h.searchLayerSeeds(sc, q, nil, max(ef, k*h.opts.RescoreFactor), 0, f, false)
		if h.only.vf != nil {
			h.rescore(sc, q)
		}
	} else {
		cur, curD := sc.seeds[0].id, sc.seeds[0].d
		for _, c := range sc.seeds[1:] {
			if c.d < curD {
				cur, curD = c.id, c.d
			}
		}
		ef = max(ef, k*h.opts.RescoreFactor)
		qq := &sc.qq
		if len(qq.code) < h.dim {
			qq.code = make([]int8, h.dim)
		}
		qq.code = qq.code[:h.dim]
		qq.scale = encodeInt8(qq.code, q)
		qq.norm2 = dotGo(q, q)
		h.searchLayerQ(sc, q, qq, cur, h.qdistance(qq, cur), ef, 0, f, false)
		h.rescore(sc, q)
	}
	if f != nil && len(sc.res) < k && int64(len(sc.res)) < h.live.Load() {
		return h.exactFiltered(sc, q, k, f), nil
	}
	return h.collect(sc, k), nil
}

// rescore replaces the code distances in sc.res with float distances.
func (h *HNSW[K]) rescore(sc *searcher, q []float32) {
	sc.tmp = append(sc.tmp[:0], sc.res...)
	sc.res = sc.res[:0]
	h.prefetchExact(sc.tmp)
	for _, c := range sc.tmp {
		sc.res.push(cand{h.exactDistance(q, c.id), c.id})
	}
}

// collect turns the best k of sc.res into results, closest first.
func (h *HNSW[K]) collect(sc *searcher, k int) []Result[K] {
	for len(sc.res) > k {
		sc.res.pop()
	}
	out := make([]Result[K], len(sc.res))
	for i := len(out) - 1; i >= 0; i-- {
		c := sc.res.pop()
		out[i] = Result[K]{ID: h.keys[c.id], Distance: c.d, Metadata: h.meta[c.id]}
	}
	return out
}

// selectivity estimates the fraction of live items f matches from an
// evenly spaced sample of at most 512 slots.
func (h *HNSW[K]) selectivity(f Filter) float64 {
	n := int(atomic.LoadUint32(&h.next))
	if n == 0 {
		return 1
	}
	step := max(1, n/512)
	seen, hit := 0, 0
	for s := 0; s < n; s += step {
		if atomic.LoadUint32(&h.flags[s]) != flagUsed {
			continue
		}
		seen++
		if f.Match(h.meta[s]) {
			hit++
		}
	}
	if seen == 0 {
		return 1
	}
	return float64(hit) / float64(seen)
}

// exactFiltered scans every live item that f matches.
func (h *HNSW[K]) exactFiltered(sc *searcher, q []float32, k int, f Filter) []Result[K] {
	h.st.exactScans.Add(1)
	sc.res = sc.res[:0]
	n := int(atomic.LoadUint32(&h.next))
	for s := 0; s < n; s++ {
		if atomic.LoadUint32(&h.flags[s]) != flagUsed || !f.Match(h.meta[s]) {
			continue
		}
		d := h.exactDistance(q, uint32(s))
		if len(sc.res) < k {
			sc.res.push(cand{d, uint32(s)})
		} else if d < sc.res.top().d {
			sc.res.pop()
			sc.res.push(cand{d, uint32(s)})
		}
	}
	return h.collect(sc, k)
}
