package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/quiverml/quiver/features"
	"github.com/redis/go-redis/v9"
)

// ErrRedis wraps failures talking to Redis.
var ErrRedis = errors.New("redisstore: redis")

// Options configures a Tier. The zero value is ready to use.
type Options struct {
	// Prefix starts every Redis key. Zero means "quiver:features". Keys
	// are Prefix:view:vVersion:entity, so a new view version never reads
	// rows written under the old layout.
	Prefix string
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
	t := &Tier{local: local, rdb: rdb, prefix: opts.Prefix, log: opts.Logger}
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

func (t *Tier) key(v features.View, entity string) string {
	return t.prefix + ":" + v.Name + ":v" + strconv.Itoa(v.Version) + ":" + entity
}

// orderKey maps an event time to a string whose byte order is time order.
func orderKey(ts int64) string { return fmt.Sprintf("%016x", uint64(ts)^(1<<63)) }

// Put validates rows, writes the valid ones to Redis in one pipeline (an
// older event never replaces a newer one there either; rows already past
// the view's TTL are not sent) and then to the local store. Invalid rows
// are reported as by features.Memory.Put; a Redis failure wraps ErrRedis
// and leaves the local store untouched.
func (t *Tier) Put(ctx context.Context, view string, rows ...features.Row) error {
	v, err := t.local.View(view)
	if err != nil {
		return err
	}
	var errs []error
	valid := make([]features.Row, 0, len(rows))
	pipe := t.rdb.Pipeline()
	now := time.Now()
	for i, r := range rows {
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
	if pipe.Len() > 0 {
		if err := t.exec(ctx, pipe, v, valid, now); err != nil {
			return errors.Join(append(errs, err)...)
		}
	}
	if len(valid) > 0 {
		if err := t.local.Put(ctx, view, valid...); err != nil {
			errs = append(errs, err)
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

// fetch reads entities from Redis in one pipeline of GETs and caches the
// rows found in the local store. It returns how many it cached.
func (t *Tier) fetch(ctx context.Context, v features.View, entities []string) (int, error) {
	pipe := t.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(entities))
	for i, e := range entities {
		cmds[i] = pipe.Get(ctx, t.key(v, e))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("%w: read: %w", ErrRedis, err)
	}
	rows := make([]features.Row, 0, len(entities))
	for i, c := range cmds {
		s, err := c.Result()
		if err != nil {
			continue
		}
		if len(s) < 16 {
			t.log.Warn("redisstore: short value", "view", v.Name, "entity", entities[i])
			continue
		}
		r, err := t.local.UnmarshalRow(v.Name, entities[i], []byte(s[16:]))
		if err != nil {
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
	return len(rows), nil
}

// GetMany reads from the local store; entities it does not hold are
// fetched from Redis in one pipeline, cached locally and read again.
// Statuses and defaults are as for features.Memory.GetMany. A Redis
// failure is returned wrapped in ErrRedis, with dst and status filled as
// the local store alone could.
func (t *Tier) GetMany(ctx context.Context, sel *features.Selection, entities []string, dst []float32, status []features.Status) error {
	if err := t.local.GetMany(ctx, sel, entities, dst, status); err != nil {
		return err
	}
	k, w := sel.Len(), sel.Width()
	var miss []int
	for i := range entities {
		if status[i*k] == features.StatusNotFound {
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
	n, err := t.fetch(ctx, v, ents)
	if err != nil {
		// dst already holds what the local store could serve (defaults for
		// the misses); a caller that serves it despite the error degrades
		// silently unless the failure is logged here.
		t.log.Warn("redisstore: redis read failed; serving local rows", "view", v.Name, "entities", len(ents), "error", err)
		return err
	}
	if n == 0 {
		return nil
	}
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
// the local store does not hold it.
func (t *Tier) GetRow(ctx context.Context, view, entity string) (features.Result, error) {
	res, err := t.local.GetRow(ctx, view, entity)
	if !errors.Is(err, features.ErrNotFound) {
		return res, err
	}
	v, verr := t.local.View(view)
	if verr != nil {
		return res, verr
	}
	n, ferr := t.fetch(ctx, v, []string{entity})
	if ferr != nil {
		t.log.Warn("redisstore: redis read failed; serving local rows", "view", v.Name, "entities", 1, "error", ferr)
		return res, errors.Join(err, ferr)
	}
	if n == 0 {
		return res, err
	}
	return t.local.GetRow(ctx, view, entity)
}
