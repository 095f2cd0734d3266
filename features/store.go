package features

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Store is the role a feature store plays for a model server: register
// views, write rows, read dense rows. Memory is the in-process
// implementation; package features/redisstore adds a Redis tier shared by
// replicas behind the same interface.
type Store interface {
	// Register validates and adds a view; registering an identical
	// definition again is a no-op.
	Register(v View) error
	// Select compiles a list of a view's features for dense reads; no
	// names selects every non-string feature in view order.
	Select(view string, features ...string) (*Selection, error)
	// Put writes rows. Each row is validated on its own: an invalid row is
	// not stored (nothing of it), valid rows are, and the errors of the
	// invalid ones are joined into the result. A row older than the
	// stored one for its entity is dropped (event time wins); a row with
	// the zero EventTime takes the time of the write.
	Put(ctx context.Context, view string, rows ...Row) error
	// GetMany reads len(entities) dense rows into dst (row-major,
	// sel.Width() columns each) and one status per selected feature and
	// entity into status. Missing, null and expired values get the
	// feature's default.
	GetMany(ctx context.Context, sel *Selection, entities []string, dst []float32, status []Status) error
	// GetRow reads one entity's typed values, strings included.
	GetRow(ctx context.Context, view, entity string) (Result, error)
}

// Options configures a Memory store. The zero value is ready to use.
type Options struct {
	// Shards splits each view into this many independently locked parts;
	// it is rounded up to a power of two. Zero means 64.
	Shards int
	// DefaultCapacity is the row capacity of views that set none. Zero
	// means 1<<20 rows.
	DefaultCapacity int
	// Clock returns the current time for TTL checks and freshness. Nil
	// means time.Now.
	Clock func() time.Time
	// Name identifies the store in its metrics (the "store" label) and
	// logs (the "store" attribute), so that several stores in one service
	// tell their series apart. Empty by default.
	Name string
	// Logger receives the store's messages. Nil means slog.Default(); pass
	// slog.New(slog.DiscardHandler) to silence it.
	Logger *slog.Logger
	// SweepInterval, when positive, starts one goroutine that removes
	// expired rows at this interval until Close. Zero starts none (expired
	// rows still read as OUTSIDE_MAX_AGE and are reclaimed first by
	// eviction; call Sweep to reclaim them explicitly).
	SweepInterval time.Duration
}

// Result is one entity's typed row, from GetRow.
type Result struct {
	Entity string
	// EventTime of the stored row; zero when not found.
	EventTime time.Time
	// Values holds every feature of the view; null, missing and expired
	// features hold their defaults.
	Values map[string]Value
	// Status holds every feature's status.
	Status map[string]Status
}

// Memory is the in-process feature store: rows in flat per-shard arrays,
// lock-free reads (sequence locks), bounded capacity with CLOCK eviction,
// TTL enforced on read. It is safe for concurrent use.
type Memory struct {
	opts   Options
	shards int
	shift  uint
	now    func() time.Time
	log    *slog.Logger

	custom bool // Options.Clock was given
	base   atomic.Pointer[clockBase]

	mu     sync.Mutex // serialises Register
	views  atomic.Pointer[map[string]*viewStore]
	closed atomic.Bool
	stop   chan struct{}
	done   sync.WaitGroup
}

// New returns an empty store.
func New(opts Options) *Memory {
	m := &Memory{opts: opts, now: opts.Clock, log: opts.Logger}
	n := opts.Shards
	if n <= 0 {
		n = 64
	}
	if n > 1<<16 {
		n = 1 << 16
	}
	m.shards = 1 << bits.Len(uint(n-1))
	m.shift = uint(64 - bits.Len(uint(m.shards-1)))
	m.custom = m.now != nil
	if m.now == nil {
		m.now = time.Now
	}
	t := time.Now()
	m.base.Store(&clockBase{wall: t.UnixNano(), mono: t})
	if m.log == nil {
		m.log = slog.Default()
	}
	if opts.Name != "" {
		m.log = m.log.With("store", opts.Name)
	}
	if m.opts.DefaultCapacity <= 0 {
		m.opts.DefaultCapacity = 1 << 20
	}
	empty := map[string]*viewStore{}
	m.views.Store(&empty)
	if opts.SweepInterval > 0 {
		m.stop = make(chan struct{})
		m.done.Add(1)
		go m.janitor(opts.SweepInterval)
	}
	return m
}

// clockBase pairs a wall-clock reading with its monotonic reading.
type clockBase struct {
	wall int64
	mono time.Time
}

// nowNanos returns the wall-clock time in Unix nanoseconds for TTL checks
// and freshness. Without Options.Clock it reads only the monotonic clock
// (time.Since) and adds it to a wall-clock base taken at most a second
// earlier, which halves the cost of time.Now on hot paths; wall-clock steps
// are picked up within a second.
func (m *Memory) nowNanos() int64 {
	if m.custom {
		return m.now().UnixNano()
	}
	b := m.base.Load()
	el := time.Since(b.mono)
	if el >= 0 && el < time.Second {
		return b.wall + int64(el)
	}
	t := time.Now()
	m.base.Store(&clockBase{wall: t.UnixNano(), mono: t})
	return t.UnixNano()
}

func (m *Memory) janitor(every time.Duration) {
	defer m.done.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			n, err := m.Sweep(context.Background())
			if err == nil && n > 0 {
				m.log.Debug("features: swept expired rows", "rows", n)
			}
		}
	}
}

// Name returns Options.Name.
func (m *Memory) Name() string { return m.opts.Name }

// Close stops the sweeper and releases the rows. Later calls return
// ErrClosed. Close is idempotent.
func (m *Memory) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	if m.stop != nil {
		close(m.stop)
		m.done.Wait()
	}
	m.mu.Lock()
	empty := map[string]*viewStore{}
	m.views.Store(&empty)
	m.mu.Unlock()
	return nil
}

// viewLimit is MaxViews; tests lower it, since registering MaxViews views
// copies the view map once per view.
var viewLimit = MaxViews

// viewStore holds one view's shards and counters.
type viewStore struct {
	m        *Memory
	s        *schema
	shards   []shard
	shift    uint
	capacity int

	reads [readStripes]readStripe
	w     writeCounters

	stats [statStripes]statStripe
	refMu sync.Mutex
	ref   []FeatureStats

	enc sync.Pool
}

const (
	readStripes = 16
	statStripes = 8
	// ageBuckets: bucket b counts served ages below 2^b milliseconds; the
	// last one everything older.
	ageBuckets = 40
)

// readStripe is a cache-line-padded set of read counters; concurrent
// readers pick stripes at random so they rarely share a line.
type readStripe struct {
	reads, found, notFound, stale, nulls atomic.Uint64
	ageSumMs                             atomic.Uint64
	hist                                 [ageBuckets]atomic.Uint64
	_                                    [64]byte
}

type writeCounters struct {
	writes, staleWrites, rejected, invalidValues, evictions, expirations atomic.Uint64
}

type statStripe struct {
	mu sync.Mutex
	st []runStats
	_  [40]byte
}

func (m *Memory) viewMap() map[string]*viewStore { return *m.views.Load() }

func (m *Memory) view(name string) (*viewStore, error) {
	if m.closed.Load() {
		return nil, ErrClosed
	}
	vs, ok := m.viewMap()[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownView, name)
	}
	return vs, nil
}

// Register validates v and adds it. Registering an identical definition
// again is a no-op; a different definition under a registered name is
// ErrViewExists. A definition a snapshot could not hold (Version above
// MaxVersion, Capacity above MaxCapacity, a string default longer than
// MaxStringLen, more than MaxViews views) is ErrInvalidView, so that every
// registered view survives Save and Load.
func (m *Memory) Register(v View) error {
	if m.closed.Load() {
		return ErrClosed
	}
	s, err := compile(v)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.viewMap()
	if cur, ok := old[v.Name]; ok {
		if sameDefinition(cur.s.view, s.view) {
			return nil
		}
		return fmt.Errorf("%w: %q (version %d) with a different definition", ErrViewExists, v.Name, cur.s.view.Version)
	}
	if len(old) >= viewLimit {
		return v.invalid("the store holds %d views, the most it may hold", viewLimit)
	}
	vs := m.newViewStore(s)
	next := make(map[string]*viewStore, len(old)+1)
	for k, x := range old {
		next[k] = x
	}
	next[v.Name] = vs
	m.views.Store(&next)
	return nil
}

func (m *Memory) newViewStore(s *schema) *viewStore {
	capacity := s.view.Capacity
	if capacity == 0 {
		capacity = m.opts.DefaultCapacity
	}
	vs := &viewStore{m: m, s: s, shards: make([]shard, m.shards), shift: m.shift, capacity: capacity}
	limit := min((capacity+m.shards-1)/m.shards, maxShardSlots)
	for i := range vs.shards {
		sh := &vs.shards[i]
		sh.limit = limit
		sh.data.Store(newShardData(min(limit, 16), s.words, s.nstr > 0))
	}
	for i := range vs.stats {
		vs.stats[i].st = make([]runStats, len(s.view.Features))
	}
	vs.enc.New = func() any { return new(encoded) }
	return vs
}

// Views returns the registered view definitions, in no particular order.
func (m *Memory) Views() []View {
	var out []View
	for _, vs := range m.viewMap() {
		out = append(out, vs.s.view)
	}
	return out
}

// Select compiles features of view for dense reads (see Selection). With
// no names it selects every non-string feature in view order. A string
// feature is ErrType; an unknown one ErrUnknownFeature.
func (m *Memory) Select(view string, features ...string) (*Selection, error) {
	vs, err := m.view(view)
	if err != nil {
		return nil, err
	}
	return newSelection(vs, features)
}

// Put writes rows to view (see Store.Put). It never blocks on I/O; ctx is
// checked once. Besides the errors of Store.Put, a string value longer
// than MaxStringLen is ErrTooLarge and an event time outside the range of
// CheckEventTime is ErrEventTime (the zero EventTime is the write's time,
// read from Options.Clock): every row Put accepts survives Save and Load.
func (m *Memory) Put(ctx context.Context, view string, rows ...Row) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("features: put: %w", err)
	}
	vs, err := m.view(view)
	if err != nil {
		return err
	}
	e := vs.enc.Get().(*encoded)
	defer vs.enc.Put(e)
	var errs []error
	var now int64 // the write's time, read once for rows without one
	for i := range rows {
		r := &rows[i]
		if err := vs.s.encode(r, e); err != nil {
			vs.w.rejected.Add(1)
			if errors.Is(err, ErrInvalidValue) {
				vs.w.invalidValues.Add(1)
			}
			errs = append(errs, fmt.Errorf("row %d (entity %q): %w", i, r.Entity, err))
			continue
		}
		ts := e.ts
		if e.now {
			if now == 0 {
				now = m.nowNanos()
			}
			ts = now
		}
		vs.write(r.Entity, ts, e)
	}
	return errors.Join(errs...)
}

// write stores one encoded row unless a newer one is stored.
func (vs *viewStore) write(key string, ts int64, e *encoded) {
	h := hashKey(key)
	sh := &vs.shards[h>>vs.shift]
	W := vs.s.words
	sh.mu.Lock()
	d := sh.data.Load()
	slot, _ := d.findLocked(h, key)
	if slot >= 0 {
		if ts < d.ts(slot) {
			sh.mu.Unlock()
			vs.w.staleWrites.Add(1)
			return
		}
		sh.seq.Add(1)
		vs.storeLocked(d, slot, ts, e)
		sh.seq.Add(1)
	} else {
		victim := -1
		switch {
		case len(sh.free) > 0:
			slot = int(sh.free[len(sh.free)-1])
			sh.free = sh.free[:len(sh.free)-1]
		case sh.count < len(d.meta):
			slot = sh.count
			sh.count++
		case len(d.meta) < sh.limit:
			n := min(sh.limit, max(16, len(d.meta)+len(d.meta)/2))
			d = d.grownLocked(n, W)
			sh.data.Store(d)
			slot = sh.count
			sh.count++
		default:
			var expired bool
			victim, expired = vs.victimLocked(sh, d)
			slot = victim
			if expired {
				vs.w.expirations.Add(1)
			} else {
				vs.w.evictions.Add(1)
			}
		}
		sh.seq.Add(1)
		if victim >= 0 {
			m := &d.meta[victim]
			vk := m.keyString()
			if _, pos := d.findLocked(hashKey(vk), vk); pos >= 0 {
				d.removeLocked(pos)
			}
		}
		m := &d.meta[slot]
		m.setKey(key)
		m.ref.Store(0)
		vs.storeLocked(d, slot, ts, e)
		d.insertLocked(h, slot)
		sh.seq.Add(1)
	}
	sh.mu.Unlock()
	vs.w.writes.Add(1)
	st := &vs.stats[h&(statStripes-1)]
	st.mu.Lock()
	vs.s.observe(st.st, e)
	st.mu.Unlock()
}

// storeLocked writes a row's values into slot (inside a write section).
func (vs *viewStore) storeLocked(d *shardData, slot int, ts int64, e *encoded) {
	b := slot * d.stride
	atomic.StoreUint32(&d.words[b+hdrTS], uint32(uint64(ts)))
	atomic.StoreUint32(&d.words[b+hdrTS+1], uint32(uint64(ts)>>32))
	atomic.StoreUint32(&d.words[b+hdrPresent], uint32(e.present))
	atomic.StoreUint32(&d.words[b+hdrPresent+1], uint32(e.present>>32))
	dst := d.values(slot, vs.s.words)
	for j, w := range e.words {
		atomic.StoreUint32(&dst[j], w)
	}
	if d.strs != nil {
		strs := make([]string, len(e.strs))
		for j, s := range e.strs {
			strs[j] = strings.Clone(s)
		}
		d.strs[slot].Store(&strs)
	}
}

func (vs *viewStore) expired(ts, now int64) bool {
	return vs.s.ttl > 0 && now-ts > vs.s.ttl
}

// victimLocked picks a slot to reuse with the CLOCK policy, preferring
// expired rows. The shard is full (no free slots).
func (vs *viewStore) victimLocked(sh *shard, d *shardData) (int, bool) {
	now := vs.m.nowNanos()
	n := len(d.meta)
	for range 2*n + 1 {
		s := sh.hand
		sh.hand++
		if sh.hand >= n {
			sh.hand = 0
		}
		m := &d.meta[s]
		if m.klen.Load() == 0 {
			continue
		}
		if vs.expired(d.ts(s), now) {
			return s, true
		}
		if m.ref.Load() != 0 {
			m.ref.Store(0)
			continue
		}
		return s, false
	}
	return sh.hand, false
}

// readAcc accumulates one call's counters before a single flush.
type readAcc struct {
	reads, found, notFound, stale, nulls uint64
	ageSumMs                             uint64
	touched                              uint64 // bit b: hist[b] != 0
	hist                                 [ageBuckets]uint32
}

func (a *readAcc) observeAge(ms uint64) {
	b := min(bits.Len64(ms), ageBuckets-1)
	a.ageSumMs += ms
	a.hist[b]++
	a.touched |= 1 << uint(b)
}

func (vs *viewStore) flush(a *readAcc) {
	st := &vs.reads[rand.Uint32()&(readStripes-1)]
	st.reads.Add(a.reads)
	if a.found != 0 {
		st.found.Add(a.found)
		st.ageSumMs.Add(a.ageSumMs)
		for t := a.touched; t != 0; t &= t - 1 {
			b := bits.TrailingZeros64(t)
			st.hist[b].Add(uint64(a.hist[b]))
		}
	}
	if a.notFound != 0 {
		st.notFound.Add(a.notFound)
	}
	if a.stale != 0 {
		st.stale.Add(a.stale)
	}
	if a.nulls != 0 {
		st.nulls.Add(a.nulls)
	}
}

// lookup finds key and, when found, copies the selected values into dst.
// It returns the row's event time and null mask.
func (vs *viewStore) lookup(sel *Selection, key string, dst []float32) (found bool, ts int64, present uint64) {
	h := hashKey(key)
	q0, q1 := keyWords(key)
	sh := &vs.shards[h>>vs.shift]
	for attempt := 0; ; attempt++ {
		s1 := sh.seq.Load()
		if s1&1 != 0 {
			spin(attempt)
			continue
		}
		d := sh.data.Load()
		slot := d.find(sh, s1, h, key, q0, q1)
		if slot == torn {
			spin(attempt)
			continue
		}
		if slot < 0 {
			if sh.seq.Load() != s1 {
				continue
			}
			return false, 0, 0
		}
		ts, present = d.ts(slot), d.present(slot)
		if sel != nil {
			sel.copyRow(d.values(slot, vs.s.words), dst)
		}
		if sh.seq.Load() != s1 {
			continue
		}
		if m := &d.meta[slot]; m.ref.Load() == 0 {
			m.ref.Store(1)
		}
		return true, ts, present
	}
}

// readInto reads one entity into its dst row and status slots.
func (vs *viewStore) readInto(sel *Selection, key string, dst []float32, status []Status, now int64, a *readAcc) {
	found, ts, present := vs.lookup(sel, key, dst)
	vs.finish(sel, found, ts, present, dst, status, now, a)
}

// finish writes statuses and defaults for one looked-up entity.
func (vs *viewStore) finish(sel *Selection, found bool, ts int64, present uint64, dst []float32, status []Status, now int64, a *readAcc) {
	a.reads++
	switch {
	case !found:
		a.notFound++
		copy(dst, sel.defaults)
		copy(status, sel.stNotFound)
	case vs.expired(ts, now):
		a.stale++
		copy(dst, sel.defaults)
		copy(status, sel.stExpired)
	default:
		a.found++
		age := now - ts
		if age < 0 {
			age = 0
		}
		a.observeAge(uint64(age) / uint64(time.Millisecond))
		a.nulls += uint64(sel.fillStatus(present, dst, status))
	}
}

func (m *Memory) checkRead(sel *Selection, n int, dst []float32, status []Status) error {
	if m.closed.Load() {
		return ErrClosed
	}
	if sel == nil || sel.vs == nil || sel.vs.m != m {
		return fmt.Errorf("%w: selection is nil or belongs to another store; create it with this store's Select", ErrUnknownView)
	}
	if len(dst) < n*sel.width {
		return fmt.Errorf("%w: dst holds %d float32s, want %d (%d entities x %d columns)", ErrBuffer, len(dst), n*sel.width, n, sel.width)
	}
	if len(status) < n*len(sel.names) {
		return fmt.Errorf("%w: status holds %d, want %d (%d entities x %d features)", ErrBuffer, len(status), n*len(sel.names), n, len(sel.names))
	}
	return nil
}

// GetMany reads len(entities) rows into dst and status (see
// Store.GetMany). It takes no locks and, with caller buffers, allocates
// nothing. It never blocks; ctx is not consulted.
//
// Keys are processed in groups: first every key's index entry is loaded,
// then every candidate row is touched, then rows are verified and copied.
// The loads of one phase do not depend on each other, so the processor
// overlaps their cache misses instead of paying them one key at a time.
func (m *Memory) GetMany(_ context.Context, sel *Selection, entities []string, dst []float32, status []Status) error {
	if err := m.checkRead(sel, len(entities), dst, status); err != nil {
		return err
	}
	vs := sel.vs
	now := m.nowNanos()
	var a readAcc
	for start := 0; start < len(entities); start += batchKeys {
		end := min(start+batchKeys, len(entities))
		vs.readBatch(sel, entities[start:end], dst[start*sel.width:end*sel.width], status[start*len(sel.names):end*len(sel.names)], now, &a)
	}
	vs.flush(&a)
	return nil
}

// batchKeys is the group size of GetMany's phased lookups.
const batchKeys = 16

func (vs *viewStore) readBatch(sel *Selection, keys []string, dst []float32, status []Status, now int64, a *readAcc) {
	var (
		hs     [batchKeys]uint64
		q0, q1 [batchKeys]uint64
		seqs   [batchKeys]uint64
		ds     [batchKeys]*shardData
		slots  [batchKeys]int32
		sink   uint32
	)
	// Phase 1: hash, snapshot the shard, load the first index entry.
	for i, key := range keys {
		h := hashKey(key)
		hs[i] = h
		q0[i], q1[i] = keyWords(key)
		sh := &vs.shards[h>>vs.shift]
		seqs[i] = sh.seq.Load()
		d := sh.data.Load()
		ds[i] = d
		e := atomic.LoadUint32(&d.idx[h&d.mask])
		slots[i] = -1
		if e != 0 && entryTag(e) == tagOf(h) {
			slots[i] = int32(entrySlot(e))
		}
	}
	// Phase 2: touch each candidate's key and row lines.
	for i := range keys {
		d, s := ds[i], int(slots[i])
		if s < 0 || s >= len(d.meta) {
			continue
		}
		b := s * d.stride
		sink += d.meta[s].klen.Load() + atomic.LoadUint32(&d.words[b]) + atomic.LoadUint32(&d.words[b+d.stride-1])
		if d.stride > 32 {
			sink += atomic.LoadUint32(&d.words[b+16])
		}
	}
	_ = sink
	// Phase 3: verify and copy; anything unusual takes the careful path.
	w, k := sel.width, len(sel.names)
	for i, key := range keys {
		out, st := dst[i*w:(i+1)*w], status[i*k:(i+1)*k]
		d, s, s1 := ds[i], int(slots[i]), seqs[i]
		sh := &vs.shards[hs[i]>>vs.shift]
		if s1&1 == 0 && s >= 0 && s < len(d.meta) {
			m := &d.meta[s]
			if ok, _ := m.matches(sh, s1, key, q0[i], q1[i]); ok {
				ts, present := d.ts(s), d.present(s)
				sel.copyRow(d.values(s, vs.s.words), out)
				if sh.seq.Load() == s1 {
					if m.ref.Load() == 0 {
						m.ref.Store(1)
					}
					vs.finish(sel, true, ts, present, out, st, now, a)
					continue
				}
			}
		}
		vs.readInto(sel, key, out, st, now, a)
	}
}

// Get reads one entity's dense row into dst and status: GetMany for a
// single key.
func (m *Memory) Get(_ context.Context, sel *Selection, entity string, dst []float32, status []Status) error {
	if err := m.checkRead(sel, 1, dst, status); err != nil {
		return err
	}
	var a readAcc
	sel.vs.readInto(sel, entity, dst[:sel.width], status[:len(sel.names)], m.nowNanos(), &a)
	sel.vs.flush(&a)
	return nil
}

// GetRow reads one entity's typed row. The Result is always filled
// (defaults for missing values); the error wraps ErrNotFound or
// ErrExpired when the row is absent or outside the TTL.
func (m *Memory) GetRow(_ context.Context, view, entity string) (Result, error) {
	vs, err := m.view(view)
	if err != nil {
		return Result{}, err
	}
	s := vs.s
	res := Result{Entity: entity, Values: make(map[string]Value, len(s.view.Features)), Status: make(map[string]Status, len(s.view.Features))}
	h := hashKey(entity)
	q0, q1 := keyWords(entity)
	sh := &vs.shards[h>>vs.shift]
	words := make([]uint32, s.words)
	var (
		found   bool
		ts      int64
		present uint64
		strs    []string
	)
	for attempt := 0; ; attempt++ {
		s1 := sh.seq.Load()
		if s1&1 != 0 {
			spin(attempt)
			continue
		}
		d := sh.data.Load()
		slot := d.find(sh, s1, h, entity, q0, q1)
		if slot == torn {
			spin(attempt)
			continue
		}
		if slot >= 0 {
			ts, present = d.ts(slot), d.present(slot)
			src := d.values(slot, s.words)
			for j := range words {
				words[j] = atomic.LoadUint32(&src[j])
			}
			if d.strs != nil {
				if p := d.strs[slot].Load(); p != nil {
					strs = *p
				}
			}
		}
		if sh.seq.Load() == s1 {
			found = slot >= 0
			break
		}
	}
	now := m.nowNanos()
	a := readAcc{}
	var status Status
	switch {
	case !found:
		status, err = StatusNotFound, fmt.Errorf("%w: view %q entity %q", ErrNotFound, view, entity)
		a.reads, a.notFound = 1, 1
	case vs.expired(ts, now):
		status, err = StatusOutsideMaxAge, fmt.Errorf("%w: view %q entity %q: age %v > TTL %v", ErrExpired, view, entity, time.Duration(now-ts), s.view.TTL)
		a.reads, a.stale = 1, 1
		res.EventTime = time.Unix(0, ts)
	default:
		res.EventTime = time.Unix(0, ts)
		a.reads, a.found = 1, 1
		a.observeAge(uint64(max(0, now-ts)) / uint64(time.Millisecond))
	}
	for i, f := range s.view.Features {
		if status != 0 {
			res.Values[f.Name], res.Status[f.Name] = s.defaultValue(i), status
			continue
		}
		v, st := s.value(i, present, words, strs)
		if st == StatusNull {
			a.nulls++
		}
		res.Values[f.Name], res.Status[f.Name] = v, st
	}
	vs.flush(&a)
	return res, err
}

// Delete removes entity's row from view; deleting an absent entity is not
// an error.
func (m *Memory) Delete(_ context.Context, view, entity string) error {
	vs, err := m.view(view)
	if err != nil {
		return err
	}
	h := hashKey(entity)
	sh := &vs.shards[h>>vs.shift]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	d := sh.data.Load()
	slot, pos := d.findLocked(h, entity)
	if slot < 0 {
		return nil
	}
	sh.seq.Add(1)
	d.removeLocked(pos)
	d.clearSlotLocked(slot)
	sh.seq.Add(1)
	sh.free = append(sh.free, uint32(slot))
	return nil
}

// Sweep removes every row older than its view's TTL and returns how many
// it removed. It locks one shard at a time; ctx ends it between shards.
func (m *Memory) Sweep(ctx context.Context) (int, error) {
	if m.closed.Load() {
		return 0, ErrClosed
	}
	total := 0
	now := m.nowNanos()
	for _, vs := range m.viewMap() {
		if vs.s.ttl == 0 {
			continue
		}
		for i := range vs.shards {
			if err := ctx.Err(); err != nil {
				return total, fmt.Errorf("features: sweep: %w", err)
			}
			total += vs.sweepShard(&vs.shards[i], now)
		}
	}
	return total, nil
}

func (vs *viewStore) sweepShard(sh *shard, now int64) int {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	d := sh.data.Load()
	var dead []int
	for s := range d.meta[:sh.count] {
		mt := &d.meta[s]
		if mt.klen.Load() != 0 && vs.expired(d.ts(s), now) {
			dead = append(dead, s)
		}
	}
	if len(dead) == 0 {
		return 0
	}
	sh.seq.Add(1)
	for _, s := range dead {
		k := d.meta[s].keyString()
		if _, pos := d.findLocked(hashKey(k), k); pos >= 0 {
			d.removeLocked(pos)
		}
		d.clearSlotLocked(s)
		sh.free = append(sh.free, uint32(s))
	}
	sh.seq.Add(1)
	vs.w.expirations.Add(uint64(len(dead)))
	return len(dead)
}

// Len returns the number of rows view holds (expired rows included until
// they are swept or evicted).
func (m *Memory) Len(view string) (int, error) {
	vs, err := m.view(view)
	if err != nil {
		return 0, err
	}
	return vs.rows(), nil
}

func (vs *viewStore) rows() int {
	n := 0
	for i := range vs.shards {
		sh := &vs.shards[i]
		sh.mu.Lock()
		n += sh.count - len(sh.free)
		sh.mu.Unlock()
	}
	return n
}
