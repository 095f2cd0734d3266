package vector

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Compact repairs the links around deleted items and reclaims their slots
// for new inserts, so an index under add/delete churn stays bounded in
// memory. For every live node that links to a deleted one, the new links
// are chosen with the selection heuristic among its surviving neighbours
// and the deleted neighbours' own neighbours; live nodes left without any
// incoming link on the base layer are linked again. Searches keep running
// during the repair and wait only for the short step that frees the slots;
// Add, Upsert, Delete and Save wait for the whole compaction.
func (h *HNSW[K]) Compact(ctx context.Context) error {
	if h.closed.Load() {
		return ErrClosed
	}
	// Deferred before mutMu's unlock, so that it runs after it: the last
	// progress call may use the index.
	var p *progress
	defer func() { p.stop() }()
	h.mutMu.Lock()
	defer h.mutMu.Unlock()
	if h.closed.Load() {
		return ErrClosed
	}
	start := time.Now()
	h.mu.RLock()
	n := int(h.next)
	p = startProgress(h.opts.Progress, "compact", n)
	var dead []uint32
	for s := 0; s < n; s++ {
		if h.flags[s]&flagDeleted != 0 {
			dead = append(dead, uint32(s))
		}
	}
	if len(dead) == 0 {
		h.mu.RUnlock()
		p.finish()
		return nil
	}
	isDead := make([]bool, n)
	for _, s := range dead {
		isDead[s] = true
	}
	h.fixEntryPoint(isDead)
	if err := h.repair(ctx, n, isDead, p); err != nil {
		h.mu.RUnlock()
		return err
	}
	h.mu.RUnlock()

	// No live node links to a dead one any more, and the entry point is
	// live: once in-flight searches (which may still hold dead slots in their
	// heaps) have drained, the slots can be reused.
	h.idMu.Lock()
	h.mu.Lock()
	for _, s := range dead {
		h.flags[s] = 0
		h.links0[int(s)*(h.m0+1)] = 0
		h.upper[s] = nil
		h.meta[s] = nil
		var zero K
		h.keys[s] = zero
		h.levels[s] = 0
	}
	// Reuse low slots first so the high-water mark can shrink back.
	for i := len(dead) - 1; i >= 0; i-- {
		h.free = append(h.free, dead[i])
	}
	h.mu.Unlock()
	h.idMu.Unlock()
	h.deleted.Add(-int64(len(dead)))
	h.st.compactions.Add(1)
	h.st.reclaimed.Add(int64(len(dead)))
	// Routine upkeep that runs on its own after deletes: Debug, like the
	// feature store's sweeps, so a default logger stays quiet about it.
	h.opts.Logger.Debug("vector: compacted", "reclaimed", len(dead), "live", h.live.Load(), "took", time.Since(start))
	p.finish()
	return nil
}

// fixEntryPoint moves the entry point to the live node of highest level
// when it is dead (or clears it when nothing is live).
func (h *HNSW[K]) fixEntryPoint(isDead []bool) {
	h.epMu.Lock()
	defer h.epMu.Unlock()
	epv := h.ep.Load()
	if epv == 0 {
		return
	}
	if s, _ := unpackEP(epv); !isDead[s] {
		return
	}
	best, bestL := -1, -1
	for s := range isDead {
		if !isDead[s] && h.flags[s]&flagUsed != 0 && int(h.levels[s]) > bestL {
			best, bestL = s, int(h.levels[s])
		}
	}
	if best < 0 {
		h.ep.Store(0)
		return
	}
	h.ep.Store(packEP(uint32(best), bestL))
}

// repair relinks every live node whose lists hold dead nodes, on Workers
// goroutines, then relinks nodes left unreachable on layer 0. p (may be
// nil) counts the slots looked at.
func (h *HNSW[K]) repair(ctx context.Context, n int, isDead []bool, p *progress) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var cancelled atomic.Bool
	for range h.opts.Workers {
		wg.Go(func() {
			sc := h.getSearcher()
			defer h.pool.Put(sc)
			for {
				s := int(next.Add(1)) - 1
				if s >= n {
					return
				}
				if s%1024 == 0 {
					if ctx.Err() != nil {
						cancelled.Store(true)
						return
					}
					p.add(min(1024, n-s))
				}
				if isDead[s] || h.flags[s]&flagUsed == 0 {
					continue
				}
				for l := int(h.levels[s]); l >= 0; l-- {
					h.repairList(sc, uint32(s), l, isDead)
				}
			}
		})
	}
	wg.Wait()
	if cancelled.Load() {
		// The repaired lists are valid; dead nodes stay tombstoned.
		return fmt.Errorf("vector: compact: %w", ctx.Err())
	}
	// A node whose every in-link came from dead nodes is unreachable now:
	// connect it again the way an insert would.
	indeg := make([]bool, n)
	for s := 0; s < n; s++ {
		if isDead[s] || h.flags[s]&flagUsed == 0 {
			continue
		}
		list := h.list(uint32(s), 0)
		for i := uint32(1); i <= list[0]; i++ {
			indeg[list[i]] = true
		}
	}
	epS, _ := unpackEP(h.ep.Load())
	sc := h.getSearcher()
	defer h.pool.Put(sc)
	for s := 0; s < n; s++ {
		if indeg[s] || isDead[s] || h.flags[s]&flagUsed == 0 || uint32(s) == epS {
			continue
		}
		h.relink(sc, uint32(s))
	}
	return nil
}

// repairList replaces the dead entries of s's list on layer l.
func (h *HNSW[K]) repairList(sc *searcher, s uint32, l int, isDead []bool) {
	list := h.list(s, l)
	cnt := int(list[0])
	hasDead := false
	for i := 1; i <= cnt; i++ {
		if isDead[list[i]] {
			hasDead = true
			break
		}
	}
	if !hasDead {
		return
	}
	sc.reset(h.capacity())
	sc.seen(s)
	cs := sc.tmp[:0]
	add := func(id uint32) {
		if isDead[id] || sc.seen(id) {
			return
		}
		cs = append(cs, cand{h.pairDistance(s, id), id})
	}
	for i := 1; i <= cnt; i++ {
		id := list[i]
		if !isDead[id] {
			add(id)
			continue
		}
		dl := h.list(id, l)
		for j := uint32(1); j <= dl[0]; j++ {
			add(dl[j])
		}
	}
	sortCands(cs)
	sc.sel = h.selectNeighbors(cs, h.maxLinks(l), sc.sel)
	mu := &h.stripes[s%nStripes]
	mu.Lock()
	for i, c := range sc.sel {
		atomic.StoreUint32(&list[i+1], c.id)
	}
	atomic.StoreUint32(&list[0], uint32(len(sc.sel)))
	mu.Unlock()
	sc.tmp = cs
}

// relink searches layer 0 for s's neighbours and adds s to their lists.
func (h *HNSW[K]) relink(sc *searcher, s uint32) {
	epv := h.ep.Load()
	if epv == 0 {
		return
	}
	q := h.nodeVec(s)
	cur, top := unpackEP(epv)
	curD := h.distance(q, cur)
	for l := top; l > 0; l-- {
		cur, curD = h.greedy(q, cur, curD, l)
	}
	h.searchLayer(sc, q, cur, curD, h.opts.EfConstruction, 0, nil, false)
	sc.tmp = sc.tmp[:0]
	for _, c := range sc.res {
		if c.id != s {
			sc.tmp = append(sc.tmp, c)
		}
	}
	sortCands(sc.tmp)
	sc.sel = h.selectNeighbors(sc.tmp, h.m, sc.sel)
	nbs := append(sc.tmp[:0], sc.sel...)
	for _, c := range nbs {
		h.addLink(sc, c.id, s, c.d, 0)
	}
}
