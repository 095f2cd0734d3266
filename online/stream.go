package online

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

// Outcome stream entry fields. Other fields are ignored, so producers may
// add their own.
const (
	// FieldRequestID holds Outcome.RequestID (required).
	FieldRequestID = "request_id"
	// FieldLabel holds Outcome.Label: "0" or "1" (required).
	FieldLabel = "label"
	// FieldTime holds Outcome.Time in Unix nanoseconds, decimal
	// (optional: absent means the time the loop receives it).
	FieldTime = "time"
)

// Sink receives outcomes: *Loop. Flush is called before the entries that
// fed Outcome are acknowledged.
type Sink interface {
	Outcome(ctx context.Context, o Outcome) error
	Flush(ctx context.Context) error
}

// ParseOutcome turns the fields of a stream entry into an Outcome. A
// missing or empty request id, one over MaxRequestIDLen bytes, a label
// other than "0" or "1", a time that is not a decimal int64, or a value
// that is not a string is an error wrapping ErrEntry. It allocates nothing
// beyond the Outcome.
func ParseOutcome(fields map[string]any) (Outcome, error) {
	str := func(k string) (string, bool, error) {
		x, ok := fields[k]
		if !ok {
			return "", false, nil
		}
		s, ok := x.(string)
		if !ok {
			return "", true, fmt.Errorf("%w: field %q is a %T, want a string", ErrEntry, k, x)
		}
		return s, true, nil
	}
	var o Outcome
	id, ok, err := str(FieldRequestID)
	if err != nil {
		return o, err
	}
	if !ok || id == "" {
		return o, fmt.Errorf("%w: no %q field, want the request id of a prediction", ErrEntry, FieldRequestID)
	}
	if len(id) > MaxRequestIDLen {
		return o, fmt.Errorf("%w: %q of %d bytes, want at most %d", ErrEntry, FieldRequestID, len(id), MaxRequestIDLen)
	}
	label, ok, err := str(FieldLabel)
	if err != nil {
		return o, err
	}
	switch {
	case !ok:
		return o, fmt.Errorf("%w: request %q: no %q field, want \"0\" or \"1\"", ErrEntry, id, FieldLabel)
	case label == "0":
	case label == "1":
		o.Label = 1
	default:
		return o, fmt.Errorf("%w: request %q: %s %q, want \"0\" or \"1\"", ErrEntry, id, FieldLabel, truncate(label))
	}
	ts, ok, err := str(FieldTime)
	if err != nil {
		return o, err
	}
	if ok {
		ns, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			return o, fmt.Errorf("%w: request %q: %s %q, want Unix nanoseconds in decimal", ErrEntry, id, FieldTime, truncate(ts))
		}
		o.Time = time.Unix(0, ns)
	}
	o.RequestID = id
	return o, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// PublishOutcome appends o to stream in the format RedisStreamSource
// reads and returns the entry's id. An outcome ParseOutcome would refuse
// is an error wrapping ErrEntry and nothing is published, as is a Time
// beyond what Unix nanoseconds in an int64 hold; a zero Time is left out.
func PublishOutcome(ctx context.Context, rdb redis.UniversalClient, stream string, o Outcome) (string, error) {
	if !o.Time.IsZero() && features.CheckEventTime(o.Time) != nil {
		return "", fmt.Errorf("%w: request %q: time %s, want one Unix nanoseconds in an int64 hold (about 1678 to 2262)", ErrEntry, o.RequestID, o.Time)
	}
	fields := outcomeFields(o)
	if _, err := ParseOutcome(fields); err != nil {
		return "", err
	}
	vals := make([]any, 0, 2*len(fields))
	for _, k := range []string{FieldRequestID, FieldLabel, FieldTime} {
		if v, ok := fields[k]; ok {
			vals = append(vals, k, v)
		}
	}
	id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: vals}).Result()
	if err != nil {
		return "", fmt.Errorf("%w: xadd %q: %w", ErrRedis, stream, err)
	}
	return id, nil
}

// outcomeFields encodes o as the fields of a stream entry.
func outcomeFields(o Outcome) map[string]any {
	f := map[string]any{FieldRequestID: o.RequestID, FieldLabel: strconv.FormatFloat(o.Label, 'g', -1, 64)}
	if !o.Time.IsZero() {
		f[FieldTime] = strconv.FormatInt(o.Time.UnixNano(), 10)
	}
	return f
}

// StreamOptions configures a RedisStreamSource. Stream, Group and
// Consumer are required; other zero values select the defaults documented
// on each field.
type StreamOptions struct {
	// Stream is the Redis stream key of the outcomes.
	Stream string
	// Group is the consumer group, created (with the stream) if missing.
	Group string
	// Consumer names this reader within the group. Use a stable name per
	// replica: after a restart it re-reads its unacknowledged entries.
	Consumer string
	// StartID is where a newly created group starts: empty means "0",
	// the whole stream; "$" means only new entries.
	StartID string
	// Count is the most entries per read. Default 256.
	Count int64
	// Block is how long one read waits for entries; the context is
	// checked between reads. Default 200ms.
	Block time.Duration
	// FlushDelay is how long an entry applied to the sink may wait for its
	// acknowledgement, so that a slow stream still fills mini-batches:
	// the source calls Sink.Flush (which trains the loop's partial batch)
	// and acknowledges once the oldest unacknowledged entry has waited
	// FlushDelay, once Count entries wait, and when Run ends. Rows that
	// fill a batch train at once either way. Default one second; negative
	// flushes after every read, so that at a low rate every update trains
	// the few rows of one read. It must be less than ClaimIdle.
	FlushDelay time.Duration
	// ClaimIdle is how long an entry another consumer read stays
	// unacknowledged before this one claims it (XAUTOCLAIM), so that the
	// outcomes a crashed consumer held are applied by a live one. Default
	// one minute; negative never claims.
	ClaimIdle time.Duration
	// Logger receives rejected entries and the error that ends Run. Nil
	// means slog.Default(); pass slog.New(slog.DiscardHandler) to silence
	// it.
	Logger *slog.Logger
}

// StreamStats counts what Run did.
type StreamStats struct {
	// Read entries (claimed ones included); Claimed from other consumers;
	// Joined to a prediction; Unmatched with no pending prediction;
	// Rejected as malformed or invalid; Acked acknowledged.
	Read, Claimed, Joined, Unmatched, Rejected, Acked uint64
}

// RedisStreamSource feeds a Loop (any Sink) with outcomes read from a
// Redis stream through a consumer group. An entry is acknowledged only
// once the update it feeds has been applied (Sink.Flush returned), or
// once it is known that it never can be (malformed, invalid, or with no
// pending prediction); until then it stays pending in the group, so a
// consumer that dies loses nothing: it re-reads its pending entries when
// it restarts, and other consumers claim them after ClaimIdle.
//
// A Loop joins only the predictions it logged itself, and a consumer
// group shares a stream's entries among its consumers: replicas that each
// run a Loop need a stream each (outcomes:<replica>, with the replica in
// the request id so that the outcome reaches the replica that predicted);
// two replicas reading one stream in one group would each drop the
// outcomes of the other's predictions as unmatched.
type RedisStreamSource struct {
	rdb  redis.UniversalClient
	opts StreamOptions
	log  *slog.Logger
}

// NewRedisStreamSource returns a source reading opts.Stream with rdb.
// Missing or negative options are an error wrapping ErrConfig.
func NewRedisStreamSource(rdb redis.UniversalClient, opts StreamOptions) (*RedisStreamSource, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: no Redis client", ErrConfig)
	}
	if opts.Stream == "" || opts.Group == "" || opts.Consumer == "" {
		return nil, fmt.Errorf("%w: StreamOptions needs Stream, Group and Consumer", ErrConfig)
	}
	if opts.Count < 0 || opts.Block < 0 {
		return nil, fmt.Errorf("%w: StreamOptions Count %d and Block %v, want >= 0", ErrConfig, opts.Count, opts.Block)
	}
	if opts.StartID == "" {
		opts.StartID = "0"
	}
	if opts.Count == 0 {
		opts.Count = 256
	}
	if opts.Block == 0 {
		opts.Block = 200 * time.Millisecond
	}
	if opts.ClaimIdle == 0 {
		opts.ClaimIdle = time.Minute
	}
	if opts.FlushDelay == 0 {
		opts.FlushDelay = time.Second
	}
	if opts.ClaimIdle > 0 && opts.FlushDelay >= opts.ClaimIdle {
		// Entries waiting for their flush would look abandoned to the
		// other consumers, which would claim them.
		return nil, fmt.Errorf("%w: StreamOptions FlushDelay %v, want less than ClaimIdle %v", ErrConfig, opts.FlushDelay, opts.ClaimIdle)
	}
	s := &RedisStreamSource{rdb: rdb, opts: opts, log: opts.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("stream", opts.Stream, "group", opts.Group, "consumer", opts.Consumer)
	return s, nil
}

// Run reads the stream until ctx ends, feeding every outcome to sink, and
// acknowledges the entries after sink.Flush returns (see FlushDelay). It
// first re-reads this consumer's pending entries (delivered before a
// crash or restart, never acknowledged), then, every ClaimIdle/2, claims
// entries other consumers left pending for ClaimIdle, and reads new ones.
// A sink error other than ErrUnknownRequest and ErrOutcome (which are
// counted and acknowledged) ends Run with that error and leaves the
// unacknowledged entries pending. When ctx ends, Run flushes and
// acknowledges what it applied (taking at most five seconds more) and
// returns ctx's error wrapped.
func (s *RedisStreamSource) Run(ctx context.Context, sink Sink) (StreamStats, error) {
	var st StreamStats
	err := s.run(ctx, sink, &st)
	if err != nil && ctx.Err() == nil {
		// Run usually runs on a goroutine of its own, where a returned
		// error is easily dropped; learning stopping must not be silent.
		s.log.Error("online: outcome stream stopped", "error", err)
	}
	return st, err
}

func (s *RedisStreamSource) run(ctx context.Context, sink Sink, st *StreamStats) error {
	err := s.rdb.XGroupCreateMkStream(ctx, s.opts.Stream, s.opts.Group, s.opts.StartID).Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return s.redisErr(ctx, "create group", err)
	}
	a := &acker{}
	next := "0" // own pending entries first
	var lastClaim time.Time
	for {
		if a.due(s.opts) {
			if err := s.ack(ctx, sink, a, st); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return s.stop(ctx, sink, a, st)
		}
		if next == ">" && s.opts.ClaimIdle > 0 && time.Since(lastClaim) >= s.opts.ClaimIdle/2 {
			lastClaim = time.Now()
			if err := s.claim(ctx, sink, a, st); err != nil {
				return s.failed(ctx, sink, a, st, err)
			}
		}
		res, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: s.opts.Group, Consumer: s.opts.Consumer, Streams: []string{s.opts.Stream, next},
			Count: s.opts.Count, Block: a.block(s.opts),
		}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return s.failed(ctx, sink, a, st, s.redisErr(ctx, "xreadgroup", err))
		}
		var msgs []redis.XMessage
		if len(res) > 0 {
			msgs = res[0].Messages
		}
		if next != ">" {
			if len(msgs) == 0 {
				next = ">"
				continue
			}
			next = msgs[len(msgs)-1].ID
		}
		if err := s.handle(ctx, sink, msgs, a, st); err != nil {
			return s.failed(ctx, sink, a, st, err)
		}
	}
}

// acker holds the ids of the entries applied to the sink and not yet
// acknowledged, and when the oldest of them was applied.
type acker struct {
	ids    []string
	oldest time.Time
}

func (a *acker) add(id string) {
	if len(a.ids) == 0 {
		a.oldest = time.Now()
	}
	a.ids = append(a.ids, id)
}

// due reports whether the waiting entries are to be flushed and
// acknowledged now, between two reads.
func (a *acker) due(o StreamOptions) bool {
	return len(a.ids) > 0 && (o.FlushDelay < 0 || int64(len(a.ids)) >= o.Count || time.Since(a.oldest) >= o.FlushDelay)
}

// block is how long the next read may wait: Block, or less when waiting
// entries come due sooner. Never 0, which Redis reads as "forever".
func (a *acker) block(o StreamOptions) time.Duration {
	b := o.Block
	if len(a.ids) > 0 && o.FlushDelay > 0 {
		b = min(b, o.FlushDelay-time.Since(a.oldest))
	}
	return max(b, time.Millisecond)
}

// ack flushes the sink, then acknowledges the waiting entries.
func (s *RedisStreamSource) ack(ctx context.Context, sink Sink, a *acker, st *StreamStats) error {
	if err := sink.Flush(ctx); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("online: stream %q: %w", s.opts.Stream, cerr)
		}
		return fmt.Errorf("online: stream %q: flush: %w", s.opts.Stream, err)
	}
	n, err := s.rdb.XAck(ctx, s.opts.Stream, s.opts.Group, a.ids...).Result()
	if err != nil {
		return s.redisErr(ctx, "xack", err)
	}
	st.Acked += uint64(n)
	a.ids = a.ids[:0]
	return nil
}

// stop ends Run when ctx has ended: what was applied is flushed and
// acknowledged on a context of its own, so that a shutdown leaves no
// applied entry for redelivery.
func (s *RedisStreamSource) stop(ctx context.Context, sink Sink, a *acker, st *StreamStats) error {
	cerr := fmt.Errorf("online: stream %q: %w", s.opts.Stream, ctx.Err())
	if len(a.ids) == 0 {
		return cerr
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.ack(fctx, sink, a, st); err != nil {
		s.log.Warn("online: acknowledging applied outcomes at shutdown", "entries", len(a.ids), "error", err)
	}
	return cerr
}

// failed ends Run with err; when err is ctx's, as stop does.
func (s *RedisStreamSource) failed(ctx context.Context, sink Sink, a *acker, st *StreamStats, err error) error {
	if ctx.Err() != nil {
		return s.stop(ctx, sink, a, st)
	}
	return err
}

// claim takes over the entries other consumers left pending for
// ClaimIdle, and applies them.
func (s *RedisStreamSource) claim(ctx context.Context, sink Sink, a *acker, st *StreamStats) error {
	start := "0-0"
	for {
		msgs, nextStart, err := s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: s.opts.Stream, Group: s.opts.Group, Consumer: s.opts.Consumer,
			MinIdle: s.opts.ClaimIdle, Start: start, Count: s.opts.Count,
		}).Result()
		if err != nil {
			return s.redisErr(ctx, "xautoclaim", err)
		}
		if len(msgs) > 0 {
			st.Claimed += uint64(len(msgs))
			s.log.Info("online: claimed outcomes left pending by another consumer", "entries", len(msgs))
			if err := s.handle(ctx, sink, msgs, a, st); err != nil {
				return err
			}
		}
		if nextStart == "0-0" || nextStart == "" {
			return nil
		}
		start = nextStart
	}
}

// handle feeds msgs to the sink and adds them to a's waiting entries; run
// acknowledges them when they are due.
func (s *RedisStreamSource) handle(ctx context.Context, sink Sink, msgs []redis.XMessage, a *acker, st *StreamStats) error {
	for _, m := range msgs {
		st.Read++
		o, err := ParseOutcome(m.Values)
		if err != nil {
			st.Rejected++
			s.log.Warn("online: rejected stream entry", "id", m.ID, "error", err)
			a.add(m.ID)
			continue
		}
		err = sink.Outcome(ctx, o)
		switch {
		case err == nil:
			st.Joined++
		case errors.Is(err, ErrUnknownRequest):
			st.Unmatched++
			s.log.Debug("online: outcome without a pending prediction", "id", m.ID, "error", err)
		case errors.Is(err, ErrOutcome):
			st.Rejected++
			s.log.Warn("online: rejected outcome", "id", m.ID, "error", err)
		default:
			if cerr := ctx.Err(); cerr != nil {
				return fmt.Errorf("online: stream %q: %w", s.opts.Stream, cerr)
			}
			return fmt.Errorf("online: stream %q entry %s: %w", s.opts.Stream, m.ID, err)
		}
		a.add(m.ID)
	}
	return nil
}

func (s *RedisStreamSource) redisErr(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("online: stream %q: %w", s.opts.Stream, cerr)
	}
	return fmt.Errorf("%w: %s %q: %w", ErrRedis, op, s.opts.Stream, err)
}
