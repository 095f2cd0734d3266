package s3

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/quiverml/quiver/registry"
)

// audit records one change as its own object, .audit/<time>-<random>.json:
// keys sort by time (to the nanosecond, by the writer's clock), and
// concurrent writers never contend on a shared log. The record is
// registry.AuditEvent as one JSON line, as registry.Store appends it. Then
// it calls Options.OnChange.
func (s *Store) audit(ctx context.Context, e registry.AuditEvent) error {
	e.Time = s.opts.Now().UTC()
	e.Actor = registry.ActorFrom(ctx, s.opts.Actor)
	if s.opts.OnChange != nil {
		defer s.opts.OnChange(e) // after the record: the change is made either way
	}
	line, err := json.Marshal(e)
	if err == nil {
		key := fmt.Sprintf("%s%020d-%016x.json", s.auditPrefix(), e.Time.UnixNano(), rand.Uint64())
		err = s.putIdempotent(ctx, key, append(line, '\n'))
	}
	if err != nil {
		s.log.Error("s3: audit record not written", "action", e.Action, "model", e.Model, "error", err)
		return fmt.Errorf("s3: %s %s: the change is made but its audit record was not written: %w", e.Action, e.Model, err)
	}
	return nil
}

// Audit reads the whole audit log, oldest first.
func (s *Store) Audit(ctx context.Context) ([]registry.AuditEvent, error) {
	return s.AuditSince(ctx, time.Time{})
}

// AuditSince reads the audit records written at or after since (by their
// writers' clocks), oldest first: one LIST, then the records, eight at a
// time. A record that cannot be decoded is left out and reported in the
// error (registry.ErrCorrupt, naming its key), after the others.
func (s *Store) AuditSince(ctx context.Context, since time.Time) ([]registry.AuditEvent, error) {
	done, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer done()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start := ""
	if !since.IsZero() {
		// Every key of a record at since or later sorts after this one
		// ('.' follows the '-' that ends the time), every earlier one
		// before it.
		start = fmt.Sprintf("%s%020d.", s.auditPrefix(), since.UnixNano()-1)
		if since.UnixNano() <= 0 {
			start = ""
		}
	}
	objs, err := s.list(ctx, s.auditPrefix(), true, start)
	if err != nil {
		return nil, fmt.Errorf("s3: audit log: %w", err)
	}
	events := make([]registry.AuditEvent, len(objs))
	errs := make([]error, len(objs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, o := range objs {
		g.Go(func() error {
			data, _, err := s.getObject(gctx, o.Key, maxAuditSize, "")
			if errors.Is(err, registry.ErrNotFound) {
				return nil
			}
			if err != nil && !errors.Is(err, registry.ErrCorrupt) {
				return err
			}
			if err == nil {
				events[i], err = decodeAuditRecord(data)
			}
			if err != nil {
				errs[i] = fmt.Errorf("s3: audit record %s: %w", o.Key, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("s3: audit log: %w", err)
	}
	out := events[:0]
	for i, e := range events {
		if errs[i] == nil && e.Action != "" {
			out = append(out, e)
		}
	}
	return out, errors.Join(errs...)
}

// decodeAuditRecord decodes one audit object: exactly one record.
func decodeAuditRecord(data []byte) (registry.AuditEvent, error) {
	events, err := registry.DecodeAudit(bytes.NewReader(data))
	if err != nil {
		return registry.AuditEvent{}, err
	}
	if len(events) != 1 {
		return registry.AuditEvent{}, fmt.Errorf("%w: %d records; want 1", registry.ErrCorrupt, len(events))
	}
	return events[0], nil
}
