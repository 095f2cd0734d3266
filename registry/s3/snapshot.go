package s3

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/minio/minio-go/v7"

	"github.com/quiverml/quiver/internal/atomicfile"
	"github.com/quiverml/quiver/registry"
)

// SnapshotFormat is the format version of the snapshot records this package
// writes; a newer one is refused with registry.ErrCorrupt rather than
// misread.
const SnapshotFormat = 1

// maxSnapshotInfoSize bounds a snapshot record read before decoding.
const maxSnapshotInfoSize = 64 << 10

// SnapshotInfo describes one stored snapshot of a file, such as a vector
// index written by vector.HNSW.Save.
type SnapshotInfo struct {
	// FormatVersion is the record's format (SnapshotFormat).
	FormatVersion int `json:"format_version"`
	// Name is the snapshot series ("docs-index"); it follows
	// registry.ValidName.
	Name string `json:"name"`
	// Number is the snapshot's number in its series: 1, 2, ... in the
	// order they were committed; a later snapshot has a larger number.
	Number int64 `json:"number"`
	// Object is the key of the snapshot's bytes, relative to the series:
	// "data/" and 32 lowercase hex digits.
	Object string `json:"object"`
	// Size is the length in bytes.
	Size int64 `json:"size"`
	// XXHash64 is the xxhash64 of the bytes, 16 lowercase hex digits.
	XXHash64 string `json:"xxhash64"`
	// Created is when the snapshot was committed.
	Created time.Time `json:"created"`
}

// DecodeSnapshotInfo parses and validates a snapshot record. Unknown fields,
// a newer format, an invalid name, a number outside 1..registry.MaxVersion,
// an object key of another shape, a negative size and a malformed hash
// fail with registry.ErrCorrupt.
func DecodeSnapshotInfo(data []byte) (SnapshotInfo, error) {
	var si SnapshotInfo
	if len(data) > maxSnapshotInfoSize {
		return si, fmt.Errorf("%w: snapshot record is %d bytes; want at most %d", registry.ErrCorrupt, len(data), maxSnapshotInfoSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&si); err != nil {
		return SnapshotInfo{}, fmt.Errorf("%w: snapshot record: %v", registry.ErrCorrupt, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return SnapshotInfo{}, fmt.Errorf("%w: snapshot record: trailing data after the JSON object", registry.ErrCorrupt)
	}
	if err := si.validate(); err != nil {
		return SnapshotInfo{}, err
	}
	return si, nil
}

func (si SnapshotInfo) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: snapshot record: "+format, append([]any{registry.ErrCorrupt}, args...)...)
	}
	switch {
	case si.FormatVersion < 1:
		return bad("format_version %d; want %d", si.FormatVersion, SnapshotFormat)
	case si.FormatVersion > SnapshotFormat:
		return bad("format_version %d is newer than this reader (%d); upgrade quiver", si.FormatVersion, SnapshotFormat)
	}
	if err := registry.ValidName(si.Name); err != nil {
		return bad("name: %v", err)
	}
	if si.Number <= 0 || si.Number > registry.MaxVersion {
		return bad("number %d; want 1..%d", si.Number, registry.MaxVersion)
	}
	if id, ok := strings.CutPrefix(si.Object, "data/"); !ok || len(id) != 32 || !lowerHex(id) {
		return bad("object %q; want \"data/\" and 32 lowercase hex digits", si.Object)
	}
	if si.Size < 0 {
		return bad("size %d; want >= 0", si.Size)
	}
	if len(si.XXHash64) != 16 || !lowerHex(si.XXHash64) {
		return bad("xxhash64 %q; want 16 lowercase hex digits", si.XXHash64)
	}
	return nil
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Snapshot keys: <prefix>.snapshots/<name>/data/<id> holds the bytes,
// <name>/<n>.json the record that commits snapshot n, <name>/latest.json a
// copy of the newest record.
func (s *Store) snapshotPrefix(name string) string { return s.prefix + snapshotsDir + name + "/" }
func (s *Store) snapshotKey(name string, n int64) string {
	return fmt.Sprintf("%s%d.json", s.snapshotPrefix(name), n)
}
func (s *Store) latestKey(name string) string { return s.snapshotPrefix(name) + "latest.json" }

// PutSnapshot stores the bytes of r as the next snapshot of the series name
// and returns its record. The bytes are uploaded first, under a key of
// their own, hashed on the way; then the record is created with a
// conditional write (If-None-Match: *) under the next free number, which
// commits the snapshot, so concurrent writers get distinct numbers and a
// reader never sees a partial snapshot; then the series' latest pointer
// moves forward to it (compare-and-swap; it never moves back). A failure
// before the commit removes the uploaded bytes.
//
// r is first copied into a temporary file in the cache folder, so that
// its size is known and a failed request can be retried; PutSnapshotFile
// uploads a file as it is.
func (s *Store) PutSnapshot(ctx context.Context, name string, r io.Reader) (SnapshotInfo, error) {
	if r == nil {
		return SnapshotInfo{}, fmt.Errorf("%w: s3: put snapshot %s: nil reader", registry.ErrBadInput, name)
	}
	if err := checkName("snapshot", name); err != nil {
		return SnapshotInfo{}, err
	}
	dir := filepath.Join(s.cache, stagingDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return SnapshotInfo{}, fmt.Errorf("s3: put snapshot %s: %w", name, err)
	}
	f, err := os.CreateTemp(dir, ".snapshot-")
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("s3: put snapshot %s: %w", name, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	n, err := io.CopyBuffer(f, ctxReader{ctx, r}, make([]byte, 1<<20))
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("s3: put snapshot %s: %w", name, err)
	}
	return s.putSnapshot(ctx, name, f, n)
}

// ctxReader ends a copy with the context's error once it is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// PutSnapshotFile stores the file at path as the next snapshot of the
// series name; see PutSnapshot. Give it the file vector.HNSW.Save wrote.
func (s *Store) PutSnapshotFile(ctx context.Context, name, path string) (SnapshotInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("s3: put snapshot %s: %w", name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("s3: put snapshot %s: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		return SnapshotInfo{}, fmt.Errorf("%w: s3: put snapshot %s: %s is not a regular file", registry.ErrBadInput, name, path)
	}
	return s.putSnapshot(ctx, name, f, st.Size())
}

// hashingReader hashes and counts what is read through it.
type hashingReader struct {
	r io.Reader
	h *xxhash.Digest
	n int64
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// putSnapshot uploads size bytes of r; r is read once from its start, as
// a section reader, so that the upload never runs past size.
func (s *Store) putSnapshot(ctx context.Context, name string, r io.ReaderAt, size int64) (SnapshotInfo, error) {
	if err := checkName("snapshot", name); err != nil {
		return SnapshotInfo{}, err
	}
	done, err := s.begin()
	if err != nil {
		return SnapshotInfo{}, err
	}
	defer done()
	si := SnapshotInfo{FormatVersion: SnapshotFormat, Name: name, Object: "data/" + randomHex(16)}
	dataKey := s.snapshotPrefix(name) + si.Object
	hr := &hashingReader{r: io.NewSectionReader(r, 0, size), h: xxhash.New()}
	s.st.requests.Add(1)
	_, err = s.client.PutObject(ctx, s.opts.Bucket, dataKey, hr, size, minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("s3: put snapshot %s: %w", name, s.note(classify("put "+dataKey, err)))
	}
	s.note(nil)
	s.st.uploaded.Add(uint64(hr.n))
	si.Size, si.XXHash64 = hr.n, fmt.Sprintf("%016x", hr.h.Sum64())
	if hr.n != size {
		err = fmt.Errorf("%w: read %d bytes; the file had %d (changed while uploading)", registry.ErrBadInput, hr.n, size)
	}
	if err == nil {
		err = s.commitSnapshot(ctx, &si)
	}
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if rerr := s.removeObject(cctx, dataKey); rerr != nil {
			s.log.Warn("s3: bytes of a failed snapshot left behind", "snapshot", name, "key", dataKey, "error", rerr)
		}
		return SnapshotInfo{}, fmt.Errorf("s3: put snapshot %s: %w", name, err)
	}
	s.log.Info("s3: snapshot stored", "snapshot", name, "number", si.Number, "bytes", si.Size)
	if err := s.advanceLatest(ctx, si); err != nil {
		return si, fmt.Errorf("s3: snapshot %s %d is stored but the latest pointer did not move: %w", name, si.Number, err)
	}
	return si, nil
}

// commitSnapshot creates the record under the first free number after the
// latest pointer's.
func (s *Store) commitSnapshot(ctx context.Context, si *SnapshotInfo) error {
	latest, _, err := s.readLatest(ctx, si.Name)
	n := latest.Number
	if errors.Is(err, registry.ErrNotFound) || errors.Is(err, registry.ErrCorrupt) {
		// No pointer to start from: start after the highest record.
		numbers, lerr := s.snapshotNumbers(ctx, si.Name)
		if lerr != nil {
			return lerr
		}
		if len(numbers) > 0 {
			n = numbers[len(numbers)-1]
		}
	} else if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		n++
		if n > registry.MaxVersion {
			return fmt.Errorf("%w: snapshot number %d is above %d", registry.ErrBadInput, n, registry.MaxVersion)
		}
		si.Number, si.Created = n, s.opts.Now().UTC()
		data, err := json.MarshalIndent(si, "", "  ")
		if err != nil {
			return err
		}
		err = s.putIdempotent(ctx, s.snapshotKey(si.Name, n), append(data, '\n'))
		if !errors.Is(err, errPrecondition) {
			return err
		}
		if attempt+1 >= maxCASAttempts*4 {
			return fmt.Errorf("s3: snapshot %s: no free number after %d attempts", si.Name, attempt+1)
		}
	}
}

// readLatest reads the series' latest pointer and its ETag.
func (s *Store) readLatest(ctx context.Context, name string) (SnapshotInfo, string, error) {
	data, etag, err := s.getObject(ctx, s.latestKey(name), maxSnapshotInfoSize, "")
	if errors.Is(err, registry.ErrNotFound) {
		return SnapshotInfo{}, "", fmt.Errorf("%w: snapshot %q has no snapshot", registry.ErrNotFound, name)
	}
	if err != nil {
		return SnapshotInfo{}, "", err
	}
	si, err := DecodeSnapshotInfo(data)
	if err == nil && si.Name != name {
		err = fmt.Errorf("%w: latest pointer of %q names %q", registry.ErrCorrupt, name, si.Name)
	}
	if err != nil {
		return SnapshotInfo{}, "", fmt.Errorf("s3: %s: %w", s.latestKey(name), err)
	}
	return si, etag, nil
}

// advanceLatest moves the latest pointer to si unless it already points at
// si or a later snapshot.
func (s *Store) advanceLatest(ctx context.Context, si SnapshotInfo) error {
	data, err := json.MarshalIndent(si, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	for attempt := 0; ; attempt++ {
		cur, etag, err := s.readLatest(ctx, si.Name)
		switch {
		case errors.Is(err, registry.ErrNotFound):
		case errors.Is(err, registry.ErrCorrupt):
			// A damaged pointer is replaced, not trusted.
			_, etag, err = s.getObject(ctx, s.latestKey(si.Name), maxSnapshotInfoSize*16, "")
			if err != nil {
				return err
			}
		case err != nil:
			return err
		case cur.Number >= si.Number:
			return nil
		}
		_, err = s.putObject(ctx, s.latestKey(si.Name), data, putCond{create: etag == "", ifMatch: etag})
		if !errors.Is(err, errPrecondition) {
			return err
		}
		if attempt+1 >= maxCASAttempts {
			return err
		}
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
	}
}

// LatestSnapshot returns the record of the series' newest snapshot, as its
// latest pointer names it (registry.ErrNotFound when there is none). A
// writer that died between its commit and the pointer leaves the pointer
// on the snapshot before; Snapshots lists every committed one.
func (s *Store) LatestSnapshot(ctx context.Context, name string) (SnapshotInfo, error) {
	if err := checkName("snapshot", name); err != nil {
		return SnapshotInfo{}, err
	}
	done, err := s.begin()
	if err != nil {
		return SnapshotInfo{}, err
	}
	defer done()
	si, _, err := s.readLatest(ctx, name)
	return si, err
}

// Snapshot returns the record of snapshot number of the series name.
func (s *Store) Snapshot(ctx context.Context, name string, number int64) (SnapshotInfo, error) {
	if err := checkName("snapshot", name); err != nil {
		return SnapshotInfo{}, err
	}
	if number <= 0 || number > registry.MaxVersion {
		return SnapshotInfo{}, fmt.Errorf("%w: snapshot number %d; want 1..%d", registry.ErrBadInput, number, registry.MaxVersion)
	}
	done, err := s.begin()
	if err != nil {
		return SnapshotInfo{}, err
	}
	defer done()
	return s.readSnapshot(ctx, name, number)
}

func (s *Store) readSnapshot(ctx context.Context, name string, number int64) (SnapshotInfo, error) {
	data, _, err := s.getObject(ctx, s.snapshotKey(name, number), maxSnapshotInfoSize, "")
	if errors.Is(err, registry.ErrNotFound) {
		return SnapshotInfo{}, fmt.Errorf("%w: snapshot %s %d", registry.ErrNotFound, name, number)
	}
	if err != nil {
		return SnapshotInfo{}, err
	}
	si, err := DecodeSnapshotInfo(data)
	if err == nil && (si.Name != name || si.Number != number) {
		err = fmt.Errorf("%w: record of snapshot %s %d names %s %d", registry.ErrCorrupt, name, number, si.Name, si.Number)
	}
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("s3: %s: %w", s.snapshotKey(name, number), err)
	}
	return si, nil
}

// Snapshots lists the committed snapshots of the series name, oldest
// first. Records that cannot be decoded are left out and reported in the
// error (registry.ErrCorrupt).
func (s *Store) Snapshots(ctx context.Context, name string) ([]SnapshotInfo, error) {
	if err := checkName("snapshot", name); err != nil {
		return nil, err
	}
	done, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer done()
	numbers, err := s.snapshotNumbers(ctx, name)
	if err != nil {
		return nil, err
	}
	var out []SnapshotInfo
	var errs []error
	for _, n := range numbers {
		si, err := s.readSnapshot(ctx, name, n)
		switch {
		case errors.Is(err, registry.ErrNotFound):
		case errors.Is(err, registry.ErrCorrupt):
			errs = append(errs, err)
		case err != nil:
			return nil, err
		default:
			out = append(out, si)
		}
	}
	return out, errors.Join(errs...)
}

func (s *Store) snapshotNumbers(ctx context.Context, name string) ([]int64, error) {
	prefix := s.snapshotPrefix(name)
	objs, err := s.list(ctx, prefix, false, "")
	if err != nil {
		return nil, err
	}
	var numbers []int64
	for _, o := range objs {
		if base, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, prefix), ".json"); ok {
			if n, ok := parseNumber(base); ok {
				numbers = append(numbers, n)
			}
		}
	}
	slices.Sort(numbers)
	return numbers, nil
}

// GetSnapshot downloads the series' latest snapshot into dstPath and
// returns its record. The file is written atomically (a temporary file
// in dstPath's folder, fsynced and renamed) and only after its size and
// xxhash64 matched the record: a damaged object fails with
// registry.ErrChecksum and leaves dstPath as it was.
func (s *Store) GetSnapshot(ctx context.Context, name, dstPath string) (SnapshotInfo, error) {
	si, err := s.LatestSnapshot(ctx, name)
	if err != nil {
		return SnapshotInfo{}, err
	}
	return si, s.getSnapshotData(ctx, si, dstPath)
}

// GetSnapshotNumber downloads snapshot number of the series name into
// dstPath, like GetSnapshot.
func (s *Store) GetSnapshotNumber(ctx context.Context, name string, number int64, dstPath string) (SnapshotInfo, error) {
	si, err := s.Snapshot(ctx, name, number)
	if err != nil {
		return SnapshotInfo{}, err
	}
	return si, s.getSnapshotData(ctx, si, dstPath)
}

func (s *Store) getSnapshotData(ctx context.Context, si SnapshotInfo, dst string) error {
	done, err := s.begin()
	if err != nil {
		return err
	}
	defer done()
	key := s.snapshotPrefix(si.Name) + si.Object
	err = atomicfile.Write(dst, 0o644, func(w io.Writer) error {
		h := xxhash.New()
		n, err := s.streamObject(ctx, key, io.MultiWriter(w, h), si.Size)
		if err != nil {
			return err
		}
		return checkSum(registry.FileSum{Name: si.Name, Size: si.Size, XXHash64: si.XXHash64}, n, h.Sum64())
	})
	if err != nil {
		if errors.Is(err, registry.ErrChecksum) {
			s.st.checksumFailures.Add(1)
		}
		return fmt.Errorf("s3: get snapshot %s %d: %w", si.Name, si.Number, err)
	}
	return nil
}

// PruneSnapshots removes the snapshots of the series name but the newest
// keep (at least 1) and the one the latest pointer names, and returns how
// many it removed. Each record is removed before its bytes, so a reader
// never finds a record without its bytes except while GetSnapshot of that
// very snapshot is in flight.
func (s *Store) PruneSnapshots(ctx context.Context, name string, keep int) (int, error) {
	if err := checkName("snapshot", name); err != nil {
		return 0, err
	}
	keep = max(keep, 1)
	done, err := s.begin()
	if err != nil {
		return 0, err
	}
	defer done()
	numbers, err := s.snapshotNumbers(ctx, name)
	if err != nil {
		return 0, err
	}
	latest, _, err := s.readLatest(ctx, name)
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		return 0, err
	}
	removed := 0
	for i, n := range numbers {
		if i >= len(numbers)-keep || n == latest.Number {
			continue
		}
		si, err := s.readSnapshot(ctx, name, n)
		if err != nil && !errors.Is(err, registry.ErrCorrupt) {
			if errors.Is(err, registry.ErrNotFound) {
				continue
			}
			return removed, err
		}
		if err := s.removeObject(ctx, s.snapshotKey(name, n)); err != nil {
			return removed, err
		}
		if si.Object != "" {
			if err := s.removeObject(ctx, s.snapshotPrefix(name)+si.Object); err != nil {
				return removed, err
			}
		}
		removed++
	}
	return removed, nil
}
