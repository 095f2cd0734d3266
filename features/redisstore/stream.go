package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/quiverml/quiver/features"
	"github.com/redis/go-redis/v9"
)

// ErrMessage reports a stream entry that is not a valid row.
var ErrMessage = errors.New("redisstore: bad stream message")

// Stream entry fields. Every other field is a feature value in text:
// float32 and int64 in decimal, strings as is, embeddings as
// comma-separated floats. A missing feature is null.
const (
	FieldEntity    = "entity"
	FieldEventTime = "event_time" // Unix nanoseconds, decimal
)

// StreamOptions configures a StreamSource. Stream, Group and Consumer are
// required.
type StreamOptions struct {
	// Stream is the Redis stream key.
	Stream string
	// Group is the consumer group, created (with the stream) if missing.
	Group string
	// Consumer names this reader within the group. Use a stable name per
	// replica: after a restart it re-reads its unacknowledged entries.
	Consumer string
	// StartID is where a newly created group starts: zero means "0", the
	// whole stream; "$" means only new entries.
	StartID string
	// Count is the most entries per read and per batch. Zero means 256.
	Count int64
	// Block is how long one read waits for entries; the context is checked
	// between reads. Zero means 200ms.
	Block time.Duration
	// Logger receives rejected entries and the error that ends Run. Nil
	// means slog.Default(); pass slog.New(slog.DiscardHandler) to silence it.
	Logger *slog.Logger
}

// StreamStats counts what Run did.
type StreamStats struct {
	// Read entries, Stored rows, Rejected entries (malformed or invalid;
	// acknowledged so they are not redelivered), Acked entries.
	Read, Stored, Rejected, Acked uint64
}

// StreamSource feeds a features.Writer from a Redis stream through a
// consumer group.
type StreamSource struct {
	rdb  redis.UniversalClient
	opts StreamOptions
	log  *slog.Logger
}

// NewStreamSource returns a source reading opts.Stream with rdb.
func NewStreamSource(rdb redis.UniversalClient, opts StreamOptions) *StreamSource {
	if opts.StartID == "" {
		opts.StartID = "0"
	}
	if opts.Count <= 0 {
		opts.Count = 256
	}
	if opts.Block <= 0 {
		opts.Block = 200 * time.Millisecond
	}
	s := &StreamSource{rdb: rdb, opts: opts, log: opts.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s
}

// Publish appends row to stream in the format StreamSource reads. A zero
// EventTime is published as the time of the call; one outside the range
// of features.CheckEventTime is an error wrapping features.ErrEventTime
// and nothing is published.
func Publish(ctx context.Context, rdb redis.UniversalClient, stream string, v features.View, row features.Row) (string, error) {
	at := row.EventTime
	if at.IsZero() {
		at = time.Now()
	}
	if err := features.CheckEventTime(at); err != nil {
		return "", fmt.Errorf("redisstore: publish entity %q: %w", row.Entity, err)
	}
	vals := []any{FieldEntity, row.Entity, FieldEventTime, strconv.FormatInt(at.UnixNano(), 10)}
	for _, f := range v.Features {
		x, ok := row.Values[f.Name]
		if !ok || x.IsNull() {
			continue
		}
		if x.Kind() != f.Kind {
			return "", fmt.Errorf("%w: view %q feature %q: got %s, want %s", features.ErrType, v.Name, f.Name, x.Kind(), f.Kind)
		}
		vals = append(vals, f.Name, formatValue(x))
	}
	id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: vals}).Result()
	if err != nil {
		return "", fmt.Errorf("%w: xadd: %w", ErrRedis, err)
	}
	return id, nil
}

func formatValue(x features.Value) string {
	switch x.Kind() {
	case features.KindFloat32:
		return strconv.FormatFloat(float64(x.Float32()), 'g', -1, 32)
	case features.KindInt64:
		return strconv.FormatInt(x.Int64(), 10)
	case features.KindString:
		return x.Str()
	default:
		var b strings.Builder
		for i, f := range x.Embedding() {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatFloat(float64(f), 'g', -1, 32))
		}
		return b.String()
	}
}

// ParseMessage turns stream entry fields into a row of v. An event time
// beyond the int64 range of Unix nanoseconds (about 1678 to 2262) is an
// error wrapping both ErrMessage and features.ErrEventTime.
func ParseMessage(v features.View, fields map[string]any) (features.Row, error) {
	str := func(k string) (string, bool) {
		x, ok := fields[k]
		if !ok {
			return "", false
		}
		s, ok := x.(string)
		return s, ok
	}
	var r features.Row
	ent, ok := str(FieldEntity)
	if !ok || ent == "" {
		return r, fmt.Errorf("%w: no %q field", ErrMessage, FieldEntity)
	}
	tsText, ok := str(FieldEventTime)
	if !ok {
		return r, fmt.Errorf("%w: entity %q: no %q field", ErrMessage, ent, FieldEventTime)
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if errors.Is(err, strconv.ErrRange) {
		return r, fmt.Errorf("%w: entity %q: %s %q: %w", ErrMessage, ent, FieldEventTime, tsText, features.ErrEventTime)
	}
	if err != nil {
		return r, fmt.Errorf("%w: entity %q: %s %q is not Unix nanoseconds", ErrMessage, ent, FieldEventTime, tsText)
	}
	r = features.Row{Entity: ent, EventTime: time.Unix(0, ts), Values: make(map[string]features.Value, len(v.Features))}
	known := 2
	for _, f := range v.Features {
		text, ok := str(f.Name)
		if !ok {
			continue
		}
		known++
		bad := func(err error) (features.Row, error) {
			return features.Row{}, fmt.Errorf("%w: entity %q feature %q: %q is not a %s: %w", ErrMessage, ent, f.Name, text, f.Kind, err)
		}
		switch f.Kind {
		case features.KindFloat32:
			x, err := strconv.ParseFloat(text, 32)
			if err != nil {
				return bad(err)
			}
			r.Values[f.Name] = features.Float32(float32(x))
		case features.KindInt64:
			x, err := strconv.ParseInt(text, 10, 64)
			if err != nil {
				return bad(err)
			}
			r.Values[f.Name] = features.Int64(x)
		case features.KindString:
			r.Values[f.Name] = features.String(text)
		case features.KindEmbedding:
			parts := strings.Split(text, ",")
			vec := make([]float32, len(parts))
			for i, p := range parts {
				x, err := strconv.ParseFloat(strings.TrimSpace(p), 32)
				if err != nil {
					return bad(err)
				}
				if math.Abs(x) > math.MaxFloat32 && !math.IsInf(x, 0) {
					return bad(errors.New("out of float32 range"))
				}
				vec[i] = float32(x)
			}
			r.Values[f.Name] = features.Embedding(vec)
		}
	}
	if known != len(fields) {
		for k := range fields {
			if _, isFeature := r.Values[k]; !isFeature && k != FieldEntity && k != FieldEventTime {
				return features.Row{}, fmt.Errorf("%w: entity %q: view %q has no feature %q", features.ErrUnknownFeature, ent, v.Name, k)
			}
		}
	}
	return r, nil
}

func (s *StreamSource) ensureGroup(ctx context.Context) error {
	err := s.rdb.XGroupCreateMkStream(ctx, s.opts.Stream, s.opts.Group, s.opts.StartID).Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return fmt.Errorf("%w: create group %q on %q: %w", ErrRedis, s.opts.Group, s.opts.Stream, err)
	}
	return nil
}

// Run reads the stream until ctx ends and writes its rows to w as view v,
// one Put per read. It first re-reads this consumer's pending
// (delivered, unacknowledged) entries, so nothing is lost across a crash
// or restart, then new ones. Entries are acknowledged after their batch
// is stored; malformed or invalid entries are counted, logged and
// acknowledged. A failing write ends Run with its error and leaves the
// batch pending for the next Run. Run returns ctx's error when ctx ends.
func (s *StreamSource) Run(ctx context.Context, w features.Writer, v features.View) (StreamStats, error) {
	st, err := s.run(ctx, w, v)
	if err != nil && ctx.Err() == nil {
		// Run usually runs on a goroutine of its own, where a returned
		// error is easily dropped; ingestion stopping must not be silent.
		s.log.Error("redisstore: stream ingestion stopped", "stream", s.opts.Stream, "view", v.Name, "error", err)
	}
	return st, err
}

func (s *StreamSource) run(ctx context.Context, w features.Writer, v features.View) (StreamStats, error) {
	var st StreamStats
	if s.opts.Stream == "" || s.opts.Group == "" || s.opts.Consumer == "" {
		return st, fmt.Errorf("%w: StreamOptions needs Stream, Group and Consumer", ErrMessage)
	}
	if err := s.ensureGroup(ctx); err != nil {
		return st, err
	}
	next := "0" // own pending entries first
	for {
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("redisstore: stream %q: %w", s.opts.Stream, err)
		}
		res, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: s.opts.Group, Consumer: s.opts.Consumer, Streams: []string{s.opts.Stream, next},
			Count: s.opts.Count, Block: s.opts.Block,
		}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return st, fmt.Errorf("redisstore: stream %q: %w", s.opts.Stream, cerr)
			}
			return st, fmt.Errorf("%w: xreadgroup %q: %w", ErrRedis, s.opts.Stream, err)
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
		if err := s.handle(ctx, w, v, msgs, &st); err != nil {
			return st, err
		}
	}
}

func (s *StreamSource) handle(ctx context.Context, w features.Writer, v features.View, msgs []redis.XMessage, st *StreamStats) error {
	if len(msgs) == 0 {
		return nil
	}
	ids := make([]string, 0, len(msgs))
	rows := make([]features.Row, 0, len(msgs))
	for _, m := range msgs {
		st.Read++
		ids = append(ids, m.ID)
		r, err := ParseMessage(v, m.Values)
		if err != nil {
			st.Rejected++
			s.log.Warn("redisstore: rejected stream entry", "stream", s.opts.Stream, "id", m.ID, "view", v.Name, "error", err)
			continue
		}
		rows = append(rows, r)
	}
	if len(rows) > 0 {
		err := w.Put(ctx, v.Name, rows...)
		rejected := features.RowErrors(err)
		if err != nil && rejected == 0 {
			return fmt.Errorf("redisstore: stream %q: write: %w", s.opts.Stream, err)
		}
		if rejected > 0 {
			s.log.Warn("redisstore: rejected stream rows", "stream", s.opts.Stream, "view", v.Name, "rows", rejected, "error", err)
		}
		st.Rejected += uint64(rejected)
		st.Stored += uint64(len(rows) - rejected)
	}
	n, err := s.rdb.XAck(ctx, s.opts.Stream, s.opts.Group, ids...).Result()
	if err != nil {
		return fmt.Errorf("%w: xack %q: %w", ErrRedis, s.opts.Stream, err)
	}
	st.Acked += uint64(n)
	return nil
}
