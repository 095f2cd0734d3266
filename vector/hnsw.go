package vector

import (
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// Options configures an HNSW index. Zero values select the documented defaults.
type Options struct {
	// Dim is the vector dimension (required, > 0).
	Dim int
	// Metric is the distance (default L2, squared Euclidean).
	Metric Metric
	// M is the number of links per node on the upper layers; the base layer
	// keeps 2*M (default 16).
	M int
	// EfConstruction is the beam width used while inserting (default 200).
	EfConstruction int
	// EfSearch is the default beam width of a search (default 64); a search
	// can override it with SearchOptions.Ef.
	EfSearch int
	// Capacity is the number of slots reserved up front (default 1024); the
	// index grows by doubling.
	Capacity int
	// Seed seeds the level generator (default 42), so a build from the same
	// items in the same order is reproducible.
	Seed uint64
	// Workers bounds the goroutines one Add or Upsert call uses to insert a
	// batch (default GOMAXPROCS). Batches below 64 items run on the caller.
	// It bounds the goroutines of one SearchBatch call too.
	Workers int
	// ExactFilterBelow is the estimated filter selectivity (fraction of live
	// items matched) below which a filtered search scans the matching items
	// exactly instead of walking the graph (default 0.05; negative never scans).
	ExactFilterBelow float64
	// CompactRatio triggers a Compact after Delete when tombstones exceed this
	// fraction of the slots in use (default 0.25; negative: only explicit Compact).
	CompactRatio float64
	// Quantization adds int8 codes that the search walks (default
	// QuantNone); see QuantInt8, and QuantInt8Only, which keeps no float
	// vectors in memory.
	Quantization Quantization
	// RescoreFactor: with QuantInt8 or QuantInt8Only the base-layer beam
	// is at least RescoreFactor*k wide and all of it is re-scored on full
	// precision vectors (QuantInt8Only: only with a VectorsFile) (default
	// 4).
	RescoreFactor int
	// VectorsFile, with QuantInt8Only only, names a file that holds the
	// full-precision vectors on disk for re-scoring and Get (any other
	// Quantization is refused with an *OptionError). NewHNSW and LoadHNSW
	// create it, or truncate it, and size it to the index's capacity (4*Dim
	// bytes per slot, sparse until written); each insert writes its vector
	// there and searches read the candidates they re-score through a
	// read-only memory mapping (pread where there is no mmap). The vectors
	// are in the kernel's page cache, not the Go heap: Stats.Bytes leaves
	// them out (Stats.Parts.Mapped counts the mapping), the pages that
	// searches touch count in the process's RSS while they stay cached, and
	// the kernel evicts them under memory pressure, after which a re-score
	// reads them back from disk. The file belongs to the index until Close
	// and is scratch space: it is not a saved index (use Save) and may be
	// removed after Close. Empty (default): results are ranked on the codes.
	VectorsFile string
	// Name identifies the index in its metrics (the "index" label) and logs
	// (the "index" attribute), so that several indexes in one service tell
	// their series apart. Empty by default.
	Name string
	// Logger receives compaction and load messages. Nil means
	// slog.Default(); pass slog.New(slog.DiscardHandler) to silence it.
	Logger *slog.Logger
	// Progress, when not nil, follows long operations: Add and Upsert
	// (Op "add"), LoadHNSW (Op "load") and Compact (Op "compact", counting
	// the slots it looks at). It is called about every 100ms
	// while one of 64 items or more runs, and once at the end with Done ==
	// Total when it succeeds; Done only grows. Calls of one operation never
	// overlap and all happen before it returns. The callback runs on a
	// goroutine that holds none of the index's locks (the last call on the
	// caller's, after they are released), so it may use the index; a slow
	// callback delays only the next report, and the return of the
	// operation by as long as its call in flight.
	Progress func(Progress)
}

func (o Options) withDefaults() (Options, error) {
	if o.Dim <= 0 {
		return o, fmt.Errorf("%w: Dim is %d, want > 0", ErrOptions, o.Dim)
	}
	if !o.Metric.valid() {
		return o, fmt.Errorf("%w: unknown metric %d", ErrOptions, o.Metric)
	}
	if o.M == 0 {
		o.M = 16
	}
	if o.M < 2 || o.M > 128 {
		return o, fmt.Errorf("%w: M is %d, want 2..128", ErrOptions, o.M)
	}
	if o.EfConstruction == 0 {
		o.EfConstruction = 200
	}
	if o.EfConstruction < 1 {
		return o, fmt.Errorf("%w: EfConstruction is %d, want > 0", ErrOptions, o.EfConstruction)
	}
	if o.EfSearch == 0 {
		o.EfSearch = 64
	}
	if o.EfSearch < 1 {
		return o, fmt.Errorf("%w: EfSearch is %d, want > 0", ErrOptions, o.EfSearch)
	}
	if o.Capacity <= 0 {
		o.Capacity = 1024
	}
	if o.Seed == 0 {
		o.Seed = 42
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.ExactFilterBelow == 0 {
		o.ExactFilterBelow = 0.05
	}
	if o.CompactRatio == 0 {
		o.CompactRatio = 0.25
	}
	if err := o.checkStorage(); err != nil {
		return o, err
	}
	if o.RescoreFactor <= 0 {
		o.RescoreFactor = 4
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Name != "" {
		o.Logger = o.Logger.With("index", o.Name)
	}
	return o, nil
}

// slot flags, read and written atomically.
const (
	flagUsed    = 1
	flagDeleted = 2
)

const nStripes = 1 << 12

// maxLevel caps the level generator; with M >= 2 a level above 31 has
// probability below 2^-31 per node.
const maxLevel = 31

// HNSW is a hierarchical navigable small world graph index (Malkov and
// Yashunin, 2016). Vectors live in one contiguous slab; each node's links
// are flat uint32 arrays indexed by slot number. Searches run lock-free
// against concurrent inserts (links are read and written with atomics and
// each node's links are updated under a striped lock); only growth of the
// slab and the final step of Compact briefly exclude searches.
type HNSW[K Key] struct {
	opts Options
	dim  int
	m    int // links per node on upper layers
	m0   int // links per node on layer 0
	ml   float64
	dist func(a, b []float32) float32

	// mu guards the slice headers below: searches and inserts hold it for
	// reading; growth, Close and the freeing step of Compact hold it for writing.
	mu sync.RWMutex
	// mutMu serialises whole-index operations (Save, Compact) against
	// mutators: Add, Upsert and Delete hold it for reading.
	mutMu sync.RWMutex

	vecs   []float32  // slot*dim
	links0 []uint32   // slot*(m0+1): count, then ids
	upper  [][]uint32 // per slot: (level)*(m+1) for levels 1..level
	levels []uint8
	flags  []uint32
	keys   []K
	meta   []Metadata
	// QuantInt8 only: codes (slot*dim), their scales and the vectors'
	// squared norms.
	codes  []int8
	cscale []float32
	norm2  []float32
	// QuantInt8Only only (nil otherwise): see storage.go.
	only *codesOnly

	stripes [nStripes]sync.Mutex

	// idMu guards ids, free and next. Lock order: mutMu, idMu, mu.
	idMu sync.RWMutex
	ids  map[K]uint32
	free []uint32
	next uint32 // slots below next have been handed out at least once

	ep   atomic.Uint64 // 0 when empty, else (level+1)<<32 | slot
	epMu sync.Mutex

	live    atomic.Int64
	deleted atomic.Int64
	seq     atomic.Uint64
	closed  atomic.Bool
	pool    sync.Pool

	st counters
}

var _ Index[string] = (*HNSW[string])(nil)

// NewHNSW returns an empty HNSW index.
func NewHNSW[K Key](opts Options) (*HNSW[K], error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	h := &HNSW[K]{
		opts: o,
		dim:  o.Dim,
		m:    o.M,
		m0:   2 * o.M,
		ml:   1 / math.Log(float64(o.M)),
		dist: distFunc(o.Metric),
		ids:  make(map[K]uint32),
	}
	if err := h.openStorage(); err != nil {
		return nil, err
	}
	h.allocate(o.Capacity)
	return h, nil
}

// allocate sets every per-slot array to capacity c, keeping contents.
func (h *HNSW[K]) allocate(c int) {
	if h.only == nil {
		h.vecs = growSlice(h.vecs, c*h.dim)
	}
	h.links0 = growSlice(h.links0, c*(h.m0+1))
	h.upper = growSlice(h.upper, c)
	h.levels = growSlice(h.levels, c)
	h.flags = growSlice(h.flags, c)
	h.keys = growSlice(h.keys, c)
	h.meta = growSlice(h.meta, c)
	h.allocateStorage(c)
}

func growSlice[T any](s []T, n int) []T {
	if len(s) >= n {
		return s
	}
	out := make([]T, n)
	copy(out, s)
	return out
}

func (h *HNSW[K]) capacity() int { return len(h.levels) }

func (h *HNSW[K]) vec(s uint32) []float32 {
	off := int(s) * h.dim
	return h.vecs[off : off+h.dim : off+h.dim]
}

// list returns the link list of slot s at level l: element 0 is the count.
func (h *HNSW[K]) list(s uint32, l int) []uint32 {
	if l == 0 {
		off := int(s) * (h.m0 + 1)
		return h.links0[off : off+h.m0+1 : off+h.m0+1]
	}
	u := h.upper[s]
	off := (l - 1) * (h.m + 1)
	return u[off : off+h.m+1 : off+h.m+1]
}

func (h *HNSW[K]) maxLinks(l int) int {
	if l == 0 {
		return h.m0
	}
	return h.m
}

func packEP(s uint32, level int) uint64 { return uint64(level+1)<<32 | uint64(s) }

func unpackEP(v uint64) (uint32, int) { return uint32(v), int(v>>32) - 1 }

// randomLevel draws a level from the exponential distribution of the paper
// (mL = 1/ln M) with a splitmix64 stream, so builds are reproducible.
func (h *HNSW[K]) randomLevel() int {
	x := h.opts.Seed + h.seq.Add(1)*0x9e3779b97f4a7c15
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	u := (float64(x>>11) + 0.5) / (1 << 53)
	l := int(-math.Log(u) * h.ml)
	return min(l, maxLevel)
}

// searcher holds the per-search scratch space, pooled so that a search
// allocates only its result slice.
type searcher struct {
	marks []uint32
	epoch uint32
	cand  minHeap
	res   maxHeap
	sel   []cand
	tmp   []cand
	nbs   []uint32
	mrg   []cand
	mrg2  []cand
	qbuf  []float32
	qq    qquery
	// seeds are the entry points of the next searchLayerSeeds.
	seeds []cand
	// layers holds the neighbours chosen for a node being linked, per layer.
	layers [maxLevel + 1][]cand
}

func (h *HNSW[K]) getSearcher() *searcher {
	sc, _ := h.pool.Get().(*searcher)
	if sc == nil {
		sc = &searcher{}
	}
	if len(sc.qbuf) < h.dim {
		sc.qbuf = make([]float32, h.dim)
	}
	return sc
}

// visit starts a new visited set sized for n slots.
func (sc *searcher) reset(n int) {
	if len(sc.marks) < n {
		sc.marks = make([]uint32, n+n/4)
		sc.epoch = 0
	}
	sc.epoch++
	if sc.epoch == 0 { // wrapped: clear once every 2^32 searches
		clear(sc.marks)
		sc.epoch = 1
	}
}

// seen marks s and reports whether it was already marked.
func (sc *searcher) seen(s uint32) bool {
	if sc.marks[s] == sc.epoch {
		return true
	}
	sc.marks[s] = sc.epoch
	return false
}

// distance returns the distance from q to slot s, calling the assembly
// kernels directly when the CPU has them.
func (h *HNSW[K]) distance(q []float32, s uint32) float32 {
	if h.only != nil {
		return h.adistance(q, s)
	}
	v := h.vec(s)
	if hasAsm {
		switch h.opts.Metric {
		case L2:
			return l2sqAsm(q, v)
		case Cosine:
			return 1 - dotAsm(q, v)
		default:
			return -dotAsm(q, v)
		}
	}
	return h.dist(q, v)
}

// descend walks the upper layers from the entry point towards q: greedily
// down to layer 2, then a beam of width upperEf on layer 1, whose nodes
// become the entry points of the base-layer search (left in sc.seeds).
// Several entry points from the layer above make the base-layer walk far
// less sensitive to which nodes the level draw happened to promote: a
// single greedy entry can end in the wrong cluster of clustered data.
func (h *HNSW[K]) descend(sc *searcher, q []float32, epv uint64) {
	cur, top := unpackEP(epv)
	curD := h.distance(q, cur)
	for l := top; l > 1; l-- {
		cur, curD = h.greedy(q, cur, curD, l)
	}
	if top < 1 {
		sc.seeds = append(sc.seeds[:0], cand{curD, cur})
		return
	}
	h.searchLayer(sc, q, cur, curD, upperEf, 1, nil, true)
	sc.seeds = append(sc.seeds[:0], sc.res...)
}

// upperEf is the beam width of the search on layer 1 (see descend). On
// the clustered benchmark sets a greedy descent (width 1, as in hnswlib)
// left the recall at a given ef 0.5-1 point below hnswlib's or above it
// depending only on the level draw. Counting distance computations per
// query (a measure the machine's noise does not move) on the 100k l2-128
// and cos-384 sets, ef 16-64: width 4 reached the recall of width 16 at
// every ef (within one result in 2,000) with 6-10% fewer distances; width
// 2 lost up to 0.6 points on l2-128, width 32 only cost more.
const upperEf = 4

// greedy walks layer l from cur towards q while a neighbour is closer.
func (h *HNSW[K]) greedy(q []float32, cur uint32, curD float32, l int) (uint32, float32) {
	for changed := true; changed; {
		changed = false
		list := h.list(cur, l)
		n := atomic.LoadUint32(&list[0])
		for i := uint32(1); i <= n; i++ {
			nb := atomic.LoadUint32(&list[i])
			if d := h.distance(q, nb); d < curD {
				cur, curD, changed = nb, d, true
			}
		}
	}
	return cur, curD
}

// searchLayer runs the ef-bounded beam search of the paper (Algorithm 2)
// on layer l from ep and leaves up to ef accepted nodes in sc.res. Deleted
// nodes and nodes the filter rejects are walked through but not returned,
// unless keepDeleted (used while inserting, as in hnswlib).
func (h *HNSW[K]) searchLayer(sc *searcher, q []float32, ep uint32, epD float32, ef, l int, f Filter, keepDeleted bool) int {
	return h.searchLayerQ(sc, q, nil, ep, epD, ef, l, f, keepDeleted)
}

// searchLayerQ is searchLayer; with qq not nil, distances are computed on
// the int8 codes (epD must then be a code distance too).
func (h *HNSW[K]) searchLayerQ(sc *searcher, q []float32, qq *qquery, ep uint32, epD float32, ef, l int, f Filter, keepDeleted bool) int {
	sc.seeds = append(sc.seeds[:0], cand{epD, ep})
	return h.searchLayerSeeds(sc, q, qq, ef, l, f, keepDeleted)
}

// searchLayerSeeds is searchLayerQ starting from every node in sc.seeds
// (with their distances) instead of one entry point.
func (h *HNSW[K]) searchLayerSeeds(sc *searcher, q []float32, qq *qquery, ef, l int, f Filter, keepDeleted bool) int {
	sc.reset(int(h.capacity()))
	sc.cand = sc.cand[:0]
	sc.res = sc.res[:0]
	for _, e := range sc.seeds {
		if sc.seen(e.id) {
			continue
		}
		sc.cand.push(e)
		if h.accept(e.id, f, keepDeleted) {
			sc.res.push(e)
			if len(sc.res) > ef {
				sc.res.pop()
			}
		}
	}
	visits := len(sc.seeds)
	for len(sc.cand) > 0 {
		c := sc.cand.pop()
		if len(sc.res) >= ef && c.d > sc.res.top().d {
			break
		}
		// Gather the unvisited neighbours and prefetch their vectors before
		// computing any distance, so the memory loads overlap.
		list := h.list(c.id, l)
		n := atomic.LoadUint32(&list[0])
		nbs := sc.nbs[:0]
		for i := uint32(1); i <= n; i++ {
			nb := atomic.LoadUint32(&list[i])
			if sc.seen(nb) {
				continue
			}
			nbs = append(nbs, nb)
			h.prefetchSlot(nb, qq != nil)
		}
		sc.nbs = nbs
		if l == 0 && len(sc.cand) > 0 { // the likely next expansion's links
			prefetchLinks(h.links0[int(sc.cand[0].id)*(h.m0+1):])
		}
		visits += len(nbs)
		for _, nb := range nbs {
			var d float32
			if qq != nil {
				d = h.qdistance(qq, nb)
			} else {
				d = h.distance(q, nb)
			}
			if len(sc.res) < ef || d < sc.res.top().d {
				sc.cand.push(cand{d, nb})
				if h.accept(nb, f, keepDeleted) {
					sc.res.push(cand{d, nb})
					if len(sc.res) > ef {
						sc.res.pop()
					}
				}
			}
		}
	}
	return visits
}

func (h *HNSW[K]) accept(s uint32, f Filter, keepDeleted bool) bool {
	if !keepDeleted && atomic.LoadUint32(&h.flags[s])&flagDeleted != 0 {
		return false
	}
	return f == nil || f.Match(h.meta[s])
}

// selectNeighbors is the heuristic of the paper (Algorithm 4, without
// extending candidates, as hnswlib): walking candidates by increasing
// distance, keep one only when it is closer to the base than to every kept
// neighbour, which spreads links across directions and keeps clusters
// connected. cands must be sorted by distance; the result reuses out.
func (h *HNSW[K]) selectNeighbors(cands []cand, max int, out []cand) []cand {
	out = out[:0]
	if len(cands) <= max {
		return append(out, cands...)
	}
	for _, c := range cands {
		if len(out) >= max {
			break
		}
		good := true
		for _, s := range out {
			if h.pairDistance(c.id, s.id) < c.d {
				good = false
				break
			}
		}
		if good {
			out = append(out, c)
		}
	}
	return out
}

func sortCands(c []cand) {
	slices.SortFunc(c, func(a, b cand) int {
		switch {
		case a.d < b.d:
			return -1
		case a.d > b.d:
			return 1
		}
		return int(a.id) - int(b.id)
	})
}

// link inserts the prepared slot s into the graph. The caller holds mu for
// reading.
//
// Searches run against the graph while s is linked, so s must not become
// reachable (through a neighbour's list or the entry point) before every
// one of its own lists is written: a walk that reached s on an upper layer
// would descend into its empty lower lists and end there, returning s
// alone. Hence three passes: choose the neighbours on every layer (reading
// only), write s's own lists, and only then add the back-links that make s
// visible; the entry point moves to s last.
func (h *HNSW[K]) link(sc *searcher, s uint32) {
	q := h.nodeVec(s)
	level := int(h.levels[s])
	epv := h.ep.Load()
	if epv == 0 {
		h.epMu.Lock()
		if h.ep.Load() == 0 {
			// The first node: it has no neighbours, so its empty lists are
			// already complete.
			h.ep.Store(packEP(s, level))
			h.epMu.Unlock()
			return
		}
		h.epMu.Unlock()
		epv = h.ep.Load()
	}
	cur, top := unpackEP(epv)
	curD := h.distance(q, cur)
	for l := top; l > level; l-- {
		cur, curD = h.greedy(q, cur, curD, l)
	}
	low := min(level, top)
	for l := low; l >= 0; l-- {
		h.searchLayer(sc, q, cur, curD, h.opts.EfConstruction, l, nil, true)
		sc.tmp = append(sc.tmp[:0], sc.res...)
		sortCands(sc.tmp)
		if len(sc.tmp) > 0 && sc.tmp[0].id == s { // cannot happen, but never self-link
			sc.tmp = sc.tmp[1:]
		}
		sc.layers[l] = h.selectNeighbors(sc.tmp, h.m, sc.layers[l][:0])
		if nbs := sc.layers[l]; len(nbs) > 0 {
			cur, curD = nbs[0].id, nbs[0].d
		}
	}
	for l := low; l >= 0; l-- {
		h.setOwnLinks(sc, s, l, sc.layers[l])
	}
	for l := 0; l <= low; l++ {
		for _, c := range sc.layers[l] {
			h.addLink(sc, c.id, s, c.d, l)
		}
	}
	if level > top {
		h.epMu.Lock()
		if _, t := unpackEP(h.ep.Load()); level > t {
			h.ep.Store(packEP(s, level))
		}
		h.epMu.Unlock()
	}
}

// setOwnLinks writes sel as the links of the node s being inserted on
// layer l. Should another insert already have linked itself into s's list,
// those links are merged rather than overwritten, so that node keeps its
// in-link, and the union is pruned with the heuristic when it exceeds the
// list's capacity.
func (h *HNSW[K]) setOwnLinks(sc *searcher, s uint32, l int, sel []cand) {
	own := h.list(s, l)
	mu := &h.stripes[s%nStripes]
	mu.Lock()
	defer mu.Unlock()
	kept := sel
	if n := int(own[0]); n > 0 {
		q := h.nodeVec(s)
		merged := append(sc.mrg[:0], sel...)
	next:
		for i := 1; i <= n; i++ {
			id := own[i]
			for _, c := range merged {
				if c.id == id {
					continue next
				}
			}
			merged = append(merged, cand{h.distance(q, id), id})
		}
		sortCands(merged)
		sc.mrg = merged
		kept = h.selectNeighbors(merged, h.maxLinks(l), sc.mrg2[:0])
		sc.mrg2 = kept
	}
	for i, c := range kept {
		atomic.StoreUint32(&own[i+1], c.id)
	}
	atomic.StoreUint32(&own[0], uint32(len(kept)))
}

// addLink adds s (at distance d) to the links of nb on layer l, pruning
// with the heuristic when the list is full.
func (h *HNSW[K]) addLink(sc *searcher, nb, s uint32, d float32, l int) {
	mu := &h.stripes[nb%nStripes]
	mu.Lock()
	defer mu.Unlock()
	list := h.list(nb, l)
	n := int(atomic.LoadUint32(&list[0]))
	for i := 1; i <= n; i++ {
		if list[i] == s {
			return
		}
	}
	max := h.maxLinks(l)
	if n < max {
		atomic.StoreUint32(&list[n+1], s)
		atomic.StoreUint32(&list[0], uint32(n+1))
		return
	}
	cs := make([]cand, 0, n+1)
	if cap(sc.sel) >= n+1 {
		cs = sc.sel[:0]
	}
	cs = append(cs, cand{d, s})
	for i := 1; i <= n; i++ {
		id := list[i]
		cs = append(cs, cand{h.pairDistance(nb, id), id})
	}
	sortCands(cs)
	kept := h.selectNeighbors(cs, max, []cand(sc.res[:0]))
	for i, c := range kept {
		atomic.StoreUint32(&list[i+1], c.id)
	}
	atomic.StoreUint32(&list[0], uint32(len(kept)))
	sc.sel = cs
}
