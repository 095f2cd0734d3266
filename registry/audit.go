package registry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// AuditFile is the name of the audit log in the registry root.
const AuditFile = "audit.log"

// maxAuditLine bounds one audit record.
const maxAuditLine = 1 << 20

// Action names one kind of change in the audit log.
type Action string

// Actions recorded in the audit log.
const (
	ActionPublish     Action = "publish"
	ActionSetAlias    Action = "set_alias"
	ActionRollback    Action = "rollback"
	ActionDeleteAlias Action = "delete_alias"
	ActionTag         Action = "tag"
	ActionUntag       Action = "untag"
	ActionArchive     Action = "archive"
	ActionUnarchive   Action = "unarchive"
	ActionDelete      Action = "delete"
)

// AuditEvent is one change to the registry. Old and New are the value before
// and after ("3" -> "4" for an alias move, the tag value for a tag, "" when
// there was none).
type AuditEvent struct {
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"`
	Action  Action    `json:"action"`
	Model   string    `json:"model"`
	Version int64     `json:"version,omitempty"`
	Alias   string    `json:"alias,omitempty"`
	Key     string    `json:"key,omitempty"`
	Old     string    `json:"old,omitempty"`
	New     string    `json:"new,omitempty"`
}

type actorKey struct{}

// WithActor returns a context whose changes are recorded in the audit log
// as made by actor (a user, a CI job...). Without it the Store's
// Options.Actor is recorded.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

func actorFrom(ctx context.Context, def string) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return def
}

// appendAudit appends one JSON line to path and fsyncs it. A record torn by
// a crash (no trailing newline) is closed first, so it stays one bad line
// that DecodeAudit skips instead of corrupting the next record.
func appendAudit(path string, e AuditEvent) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err == nil && st.Size() > 0 {
		var last [1]byte
		if _, err = f.ReadAt(last[:], st.Size()-1); err == nil && last[0] != '\n' {
			line = append([]byte{'\n'}, line...)
		}
	}
	if err == nil {
		_, err = f.Write(line)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// DecodeAudit reads an audit log: one JSON object per line, in log order.
// A record torn by a crash during an append (a line that ends before its
// JSON object does) is skipped, wherever it is: appends after a crash start
// on a new line. Any other line that is not a valid record fails with
// ErrCorrupt naming the line; the records before it are returned too.
func DecodeAudit(r io.Reader) ([]AuditEvent, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var out []AuditEvent
	for lineNo := 1; ; lineNo++ {
		line, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return out, fmt.Errorf("%w: audit log line %d: %v", ErrCorrupt, lineNo, err)
		}
		if len(bytes.TrimSpace(line)) > 0 {
			e, derr := decodeAuditLine(line)
			switch {
			case derr == nil:
				out = append(out, e)
			case errors.Is(derr, io.ErrUnexpectedEOF):
				// Torn record: the append never finished.
			default:
				return out, fmt.Errorf("%w: audit log line %d: %v", ErrCorrupt, lineNo, derr)
			}
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
	}
}

// readLine returns the next line including its '\n', refusing lines longer
// than maxAuditLine.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxAuditLine {
			return nil, fmt.Errorf("line longer than %d bytes", maxAuditLine)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return line, err
	}
}

func decodeAuditLine(line []byte) (AuditEvent, error) {
	var e AuditEvent
	line = bytes.TrimRight(line, "\r\n")
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return AuditEvent{}, errors.New("trailing data after the record")
	}
	if e.Action == "" || e.Model == "" {
		return AuditEvent{}, errors.New("record without action or model")
	}
	if e.Version < 0 {
		return AuditEvent{}, fmt.Errorf("version %d; want >= 0", e.Version)
	}
	return e, nil
}
