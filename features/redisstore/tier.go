package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/quiverml/quiver/features"
	"github.com/redis/go-redis/v9"
)

// ErrRedis wraps failures talking to Redis.
var ErrRedis = errors.New("redisstore: redis")

// ErrUnavailable is returned, without contacting Redis, while the tier's
// circuit breaker is open: a recent call failed and the back-off period
// (Options.BreakerBackoff) has not passed. It wraps ErrRedis.
var ErrUnavailable = fmt.Errorf("%w: unavailable after a recent failure (circuit breaker open)", ErrRedis)

// Defaults of Options.
const (
	// DefaultMaxStaleness is Options.MaxStaleness when zero.
	DefaultMaxStaleness = time.Second
	// DefaultBreakerBackoff is Options.BreakerBackoff when zero.
	DefaultBreakerBackoff = time.Second
	// maxBackoffFactor caps the doubling of the back-off after failed
	// probes, as a multiple of Options.BreakerBackoff.
	maxBackoffFactor = 32
)

// Options configures a Tier. The zero value is ready to use.
type Options struct {
	// Prefix starts every Redis key. Zero means "quiver:features". Keys
	// are Prefix:len(view):view:vVersion:entity, with the view name's
	// length in decimal, so no view and entity pair can spell another
	// pair's key, and a new view version never reads rows written under
	// the old layout. (Earlier releases wrote Prefix:view:vVersion:entity;
	// those keys are not read, see the package documentation.)
	Prefix string
	// MaxStaleness is the longest a replica serves its local copy of a
	// row without reading Redis again: a write through another replica is
	// visible through this one at most MaxStaleness later (plus one Redis
	// round trip). Zero means DefaultMaxStaleness; a negative value keeps
	// local copies until they expire or are evicted, which suits a single
	// replica only.
	MaxStaleness time.Duration
	// BreakerBackoff is how long, after a failed Redis call, the tier
	// fails calls that need Redis at once with ErrUnavailable instead of
	// waiting on a dead server. The first call after it probes Redis:
	// success closes the breaker, failure reopens it for twice as long (at
	// most 32 times BreakerBackoff). Zero means DefaultBreakerBackoff.
	BreakerBackoff time.Duration
	// Logger receives Redis read failures (the tier then serves what the
	// local store holds) and undecodable values. Nil means slog.Default();
	// pass slog.New(slog.DiscardHandler) to silence it.
	Logger *slog.Logger
}

// Tier is a features.Store over a local features.Memory and a Redis
// server shared by replicas. It is safe for concurrent use.
type Tier struct {
	local  *features.Memory
	rdb    redis.UniversalClient
	prefix string
	log    *slog.Logger
	now    func() time.Time // replaced by tests

	maxStale time.Duration // < 0: local copies never go stale
	leases   leases
	breaker  breaker
	stats    tierCounters
}

// tierCounters are the tier's traffic with Redis, read by Stats.
type tierCounters struct {
	fetched, found, written, failures, refused, undecodable atomic.Uint64
}

var _ features.Store = (*Tier)(nil)

// putScript stores a row unless the stored one has a later event time.
// Values start with a 16-digit hex key that orders event times as strings.
var putScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, 16) > ARGV[1] then
  return 0
end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
`)

// New returns a Tier caching rows in local and sharing them through rdb.
func New(local *features.Memory, rdb redis.UniversalClient, opts Options) *Tier {
	t := &Tier{local: local, rdb: rdb, prefix: opts.Prefix, log: opts.Logger, now: time.Now, maxStale: opts.MaxStaleness}
	if t.maxStale == 0 {
		t.maxStale = DefaultMaxStaleness
	}
	t.breaker.base = opts.BreakerBackoff
	if t.breaker.base <= 0 {
		t.breaker.base = DefaultBreakerBackoff
	}
	for i := range t.leases.shards {
		t.leases.shards[i].m = map[leaseKey]int64{}
	}
	if t.prefix == "" {
		t.prefix = "quiver:features"
	}
	if t.log == nil {
		t.log = slog.Default()
	}
	if name := local.Name(); name != "" {
		t.log = t.log.With("store", name)
	}
	return t
}

// Local returns the in-process store behind the tier.
func (t *Tier) Local() *features.Memory { return t.local }

// Register registers v in the local store.
func (t *Tier) Register(v features.View) error { return t.local.Register(v) }

// Select compiles a selection on the local store.
func (t *Tier) Select(view string, names ...string) (*features.Selection, error) {
	return t.local.Select(view, names...)
}

// key is the Redis key of entity's row of v. The view name is
// length-prefixed: with plain separators, view "a:v0:b" and entity "x"
// would share the key of view "a" and entity "b:v0:x".
func (t *Tier) key(v features.View, entity string) string {
	return t.prefix + ":" + strconv.Itoa(len(v.Name)) + ":" + v.Name + ":v" + strconv.Itoa(v.Version) + ":" + entity
}

// orderKey maps an event time to a string whose byte order is time order.
func orderKey(ts int64) string { return fmt.Sprintf("%016x", uint64(ts)^(1<<63)) }

// Put validates rows, writes the valid ones to Redis in one pipeline (an
// older event never replaces a newer one there either; rows already past
// the view's TTL are not sent) and then to the local store. Invalid rows
// are reported as by features.Memory.Put (a zero EventTime is stamped
// with the time of the call); a Redis failure wraps ErrRedis (ErrUnavailable
// while the circuit breaker is open) and leaves the local store untouched.
func (t *Tier) Put(ctx context.Context, view string, rows ...features.Row) error {
	v, err := t.local.View(view)
	if err != nil {
		return err
	}
	var errs []error
	valid := make([]features.Row, 0, len(rows))
	pipe := t.rdb.Pipeline()
	now := t.now()
	for i, r := range rows {
		if r.EventTime.IsZero() {
			// Stamp the write's time here, so that Redis and the local
			// store hold the same event time.
			r.EventTime = now
		}
		payload, err := t.local.MarshalRow(view, r)
		if err != nil {
			errs = append(errs, fmt.Errorf("row %d (entity %q): %w", i, r.Entity, err))
			continue
		}
		valid = append(valid, r)
		var pxat int64
		if v.TTL > 0 {
			exp := r.EventTime.Add(v.TTL)
			if !exp.After(now) {
				continue
			}
			pxat = exp.UnixMilli()
		}
		ok := orderKey(r.EventTime.UnixNano())
		putScript.EvalSha(ctx, pipe, []string{t.key(v, r.Entity)}, ok, ok+string(payload), pxat)
	}
	if n := pipe.Len(); n > 0 {
		if err := t.allow(now); err != nil {
			return errors.Join(append(errs, err)...)
		}
		err := t.exec(ctx, pipe, v, valid, now)
		t.done(ctx, err)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		t.stats.written.Add(uint64(n))
	}
	if len(valid) > 0 {
		if err := t.local.Put(ctx, view, valid...); err != nil {
			errs = append(errs, err)
		}
		for _, r := range valid {
			t.leases.renew(view, r.Entity, now.UnixNano(), t.maxStale)
		}
	}
	return errors.Join(errs...)
}

// exec runs the pipeline, loading the script and retrying once when Redis
// does not know it (a fresh or restarted server).
func (t *Tier) exec(ctx context.Context, pipe redis.Pipeliner, v features.View, valid []features.Row, now time.Time) error {
	_, err := pipe.Exec(ctx)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		if lerr := putScript.Load(ctx, t.rdb).Err(); lerr != nil {
			return fmt.Errorf("%w: load script: %w", ErrRedis, lerr)
		}
		retry := t.rdb.Pipeline()
		for _, r := range valid {
			var pxat int64
			if v.TTL > 0 {
				exp := r.EventTime.Add(v.TTL)
				if !exp.After(now) {
					continue
				}
				pxat = exp.UnixMilli()
			}
			payload, _ := t.local.MarshalRow(v.Name, r)
			ok := orderKey(r.EventTime.UnixNano())
			putScript.EvalSha(ctx, retry, []string{t.key(v, r.Entity)}, ok, ok+string(payload), pxat)
		}
		_, err = retry.Exec(ctx)
	}
	if err != nil {
		return fmt.Errorf("%w: write: %w", ErrRedis, err)
	}
	return nil
}

// fetch reads entities from Redis in one pipeline of GETs, caches the
// rows found in the local store and renews their leases. An entity Redis
// no longer holds (expired, deleted) is removed from the local store, so a
// stale local copy is not served. It returns how many rows it cached.
func (t *Tier) fetch(ctx context.Context, v features.View, entities []string) (int, error) {
	now := t.now()
	if err := t.allow(now); err != nil {
		return 0, err
	}
	t.stats.fetched.Add(uint64(len(entities)))
	pipe := t.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(entities))
	for i, e := range entities {
		cmds[i] = pipe.Get(ctx, t.key(v, e))
	}
	_, err := pipe.Exec(ctx)
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	t.done(ctx, err)
	if err != nil {
		return 0, fmt.Errorf("%w: read: %w", ErrRedis, err)
	}
	rows := make([]features.Row, 0, len(entities))
	for i, c := range cmds {
		s, err := c.Result()
		if errors.Is(err, redis.Nil) {
			if derr := t.local.Delete(ctx, v.Name, entities[i]); derr != nil {
				return 0, derr
			}
			continue
		}
		if err != nil {
			continue
		}
		t.stats.found.Add(1)
		if len(s) < 16 {
			t.stats.undecodable.Add(1)
			t.log.Warn("redisstore: short value", "view", v.Name, "entity", entities[i])
			continue
		}
		r, err := t.local.UnmarshalRow(v.Name, entities[i], []byte(s[16:]))
		if err != nil {
			t.stats.undecodable.Add(1)
			t.log.Warn("redisstore: undecodable value", "view", v.Name, "entity", entities[i], "error", err)
			continue
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	if err := t.local.Put(ctx, v.Name, rows...); err != nil {
		return 0, err
	}
	for _, r := range rows {
		t.leases.renew(v.Name, r.Entity, now.UnixNano(), t.maxStale)
	}
	return len(rows), nil
}

// GetMany reads from the local store; entities it does not hold, or whose
// local copy is older than Options.MaxStaleness, are fetched from Redis in
// one pipeline, cached locally and read again. Statuses and defaults are
// as for features.Memory.GetMany. A Redis failure is returned wrapped in
// ErrRedis (ErrUnavailable, at once, while the circuit breaker is open),
// with dst and status filled as the local store alone could.
func (t *Tier) GetMany(ctx context.Context, sel *features.Selection, entities []string, dst []float32, status []features.Status) error {
	if err := t.local.GetMany(ctx, sel, entities, dst, status); err != nil {
		return err
	}
	k, w := sel.Len(), sel.Width()
	var miss []int
	now := t.now().UnixNano()
	for i, e := range entities {
		if status[i*k] == features.StatusNotFound || !t.leases.fresh(sel.View(), e, now, t.maxStale) {
			miss = append(miss, i)
		}
	}
	if len(miss) == 0 {
		return nil
	}
	v, err := t.local.View(sel.View())
	if err != nil {
		return err
	}
	ents := make([]string, len(miss))
	for j, i := range miss {
		ents[j] = entities[i]
	}
	_, err = t.fetch(ctx, v, ents)
	if err != nil {
		// dst already holds what the local store could serve (defaults for
		// the misses); a caller that serves it despite the error degrades
		// silently unless the failure is logged here.
		t.log.Warn("redisstore: redis read failed; serving local rows", "view", v.Name, "entities", len(ents), "error", err)
		return err
	}
	// Read every fetched entity again, found or not: fetch also removes
	// stale local copies of rows Redis no longer holds.
	sub := make([]float32, len(miss)*w)
	subSt := make([]features.Status, len(miss)*k)
	if err := t.local.GetMany(ctx, sel, ents, sub, subSt); err != nil {
		return err
	}
	for j, i := range miss {
		copy(dst[i*w:(i+1)*w], sub[j*w:(j+1)*w])
		copy(status[i*k:(i+1)*k], subSt[j*k:(j+1)*k])
	}
	return nil
}

// GetRow reads a typed row locally, reading it through from Redis when
// the local store does not hold it or its local copy is older than
// Options.MaxStaleness.
func (t *Tier) GetRow(ctx context.Context, view, entity string) (features.Result, error) {
	res, err := t.local.GetRow(ctx, view, entity)
	held := err == nil || errors.Is(err, features.ErrExpired)
	if !held && !errors.Is(err, features.ErrNotFound) {
		return res, err // unknown view, closed store
	}
	if held && t.leases.fresh(view, entity, t.now().UnixNano(), t.maxStale) {
		return res, err
	}
	v, verr := t.local.View(view)
	if verr != nil {
		return res, verr
	}
	if _, ferr := t.fetch(ctx, v, []string{entity}); ferr != nil {
		t.log.Warn("redisstore: redis read failed; serving local rows", "view", v.Name, "entities", 1, "error", ferr)
		return res, errors.Join(err, ferr)
	}
	return t.local.GetRow(ctx, view, entity)
}

// allow asks the circuit breaker whether a call may go to Redis now,
// counting the calls it refuses.
func (t *Tier) allow(now time.Time) error {
	err := t.breaker.allow(now)
	if err != nil {
		t.stats.refused.Add(1)
	}
	return err
}

// done records a Redis call's outcome with the breaker, counting failures
// that are not the caller's own context ending.
func (t *Tier) done(ctx context.Context, err error) {
	if err != nil && ctx.Err() == nil {
		t.stats.failures.Add(1)
	}
	t.breaker.done(ctx, err, t.now())
}

// leases records when this tier last wrote or read each local row through
// Redis, so that reads know which local copies are older than
// MaxStaleness. An entry older than that means the same as no entry, which
// lets each shard drop such entries in bulk and keeps the map bounded by
// the rows used within one MaxStaleness.
type leases struct {
	shards [leaseShards]leaseShard
}

const leaseShards = 64

type leaseKey struct{ view, entity string }

type leaseShard struct {
	mu     sync.Mutex
	m      map[leaseKey]int64 // Unix nanoseconds of the last renewal
	pruned int64
	_      [40]byte
}

func (l *leases) shard(entity string) *leaseShard {
	return &l.shards[xxhash.Sum64String(entity)%leaseShards]
}

// fresh reports whether the local copy of entity may be served at now.
func (l *leases) fresh(view, entity string, now int64, maxStale time.Duration) bool {
	if maxStale < 0 {
		return true
	}
	sh := l.shard(entity)
	sh.mu.Lock()
	at, ok := sh.m[leaseKey{view, entity}]
	sh.mu.Unlock()
	return ok && now-at <= int64(maxStale)
}

// renew records that entity's local copy matched Redis at now.
func (l *leases) renew(view, entity string, now int64, maxStale time.Duration) {
	if maxStale < 0 {
		return
	}
	sh := l.shard(entity)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.m[leaseKey{view, entity}] = now
	if now-sh.pruned > int64(maxStale) {
		sh.pruned = now
		for k, at := range sh.m {
			if now-at > int64(maxStale) {
				delete(sh.m, k)
			}
		}
	}
}

// breaker fails Redis calls at once for a back-off period after a failure
// and lets one call through afterwards to probe whether Redis is back.
type breaker struct {
	mu        sync.Mutex
	base      time.Duration
	backoff   time.Duration
	openUntil time.Time // zero: closed
	probing   bool
}

// open reports whether the breaker refuses calls at now (a probe may be
// due).
func (b *breaker) open() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.openUntil.IsZero()
}

// allow returns nil when a call may go to Redis, and ErrUnavailable while
// the breaker is open or another call is probing.
func (b *breaker) allow(now time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openUntil.IsZero() {
		return nil
	}
	if b.probing || now.Before(b.openUntil) {
		return ErrUnavailable
	}
	b.probing = true
	return nil
}

// done records a call's outcome. A call ended by its own context says
// nothing about Redis.
func (b *breaker) done(ctx context.Context, err error, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case err == nil:
		b.openUntil, b.backoff = time.Time{}, 0
	case ctx.Err() != nil:
	case b.openUntil.IsZero():
		b.backoff = b.base
		b.openUntil = now.Add(b.backoff)
	default:
		b.backoff = min(2*b.backoff, maxBackoffFactor*b.base)
		b.openUntil = now.Add(b.backoff)
	}
	b.probing = false
}
