package features

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/quiverml/quiver/internal/atomicfile"
	"github.com/quiverml/quiver/internal/checkfile"
)

// Snapshot format (little endian; "str" is a uvarint length and bytes):
//
//	magic "QVFSNAP\x00", version uint32
//	uvarint view count; per view:
//	  name str, entity str, ttl int64, version uvarint, capacity uvarint,
//	  nan policy byte, uvarint feature count; per feature:
//	    name str, kind byte, dim uvarint, default (byte flag, then value)
//	  rows: byte 1, key str, event time int64, null mask uint64,
//	    one uint32 per value word, one str per string feature;
//	  byte 0 ends the view's rows
//	xxhash64 of every byte above, uint64
const (
	snapshotMagic   = "QVFSNAP\x00"
	snapshotVersion = 1
	maxSnapshotStr  = MaxStringLen
	maxSnapshotView = MaxViews
)

// Save writes a snapshot of every view and row to path atomically: it
// writes a temporary file in the same directory, fsyncs it, renames it over
// path and fsyncs the directory. Writes may continue meanwhile; each row is
// captured whole, and each shard at one instant.
func (m *Memory) Save(ctx context.Context, path string) error {
	// WriteSnapshot's errors carry their own prefix; only the file's are
	// wrapped here.
	var werr error
	err := atomicfile.Write(path, 0o600, func(w io.Writer) error {
		werr = m.WriteSnapshot(ctx, w)
		return werr
	})
	if err != nil && err != werr {
		return fmt.Errorf("features: save snapshot: %w", err)
	}
	return err
}

// Load reads a snapshot file written by Save into a new store with opts.
// A truncated, corrupted or unknown-version file is an error wrapping
// ErrSnapshot, ErrChecksum or ErrVersion, and no store is returned. Load
// first removes the temporary files that Saves of path interrupted by a
// crash left in its folder; call it before any Save of path starts.
func Load(ctx context.Context, path string, opts Options) (*Memory, error) {
	// A Save interrupted by a crash leaves its temporary file beside path;
	// loading is the moment the process owns path and no Save of it can be
	// in flight yet. A failed sweep costs disk space, not correctness, so it
	// is logged and loading goes on.
	if _, err := atomicfile.Sweep(path); err != nil {
		log := opts.Logger
		if log == nil {
			log = slog.Default()
		}
		if opts.Name != "" {
			log = log.With("store", opts.Name)
		}
		log.Warn("features: removing temporary files of interrupted saves failed", "path", path, "error", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("features: load snapshot: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("features: load snapshot: %w", err)
	}
	if st.Size() < checkfile.TrailerSize {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrSnapshot, st.Size())
	}
	// With the body's size known, no string or row can claim more bytes
	// than the file holds.
	cr := checkfile.NewReader(bufio.NewReaderSize(f, 1<<20), st.Size()-checkfile.TrailerSize)
	return readSnapshot(ctx, cr, opts)
}

type snapWriter struct {
	w   *checkfile.Writer
	buf []byte
	err error
}

func (s *snapWriter) flush() {
	if s.err == nil && len(s.buf) > 0 {
		_, s.err = s.w.Write(s.buf)
	}
	s.buf = s.buf[:0]
}

func (s *snapWriter) uvarint(x uint64) { s.buf = binary.AppendUvarint(s.buf, x) }
func (s *snapWriter) u64(x uint64)     { s.buf = binary.LittleEndian.AppendUint64(s.buf, x) }
func (s *snapWriter) str(x string)     { s.uvarint(uint64(len(x))); s.buf = append(s.buf, x...) }

func (s *snapWriter) value(v Value) {
	if v.IsNull() {
		s.buf = append(s.buf, 0)
		return
	}
	s.buf = append(s.buf, 1)
	switch v.kind {
	case KindFloat32:
		s.buf = binary.LittleEndian.AppendUint32(s.buf, math.Float32bits(v.f))
	case KindInt64:
		s.u64(uint64(v.i))
	case KindString:
		s.str(v.s)
	case KindEmbedding:
		for _, x := range v.v {
			s.buf = binary.LittleEndian.AppendUint32(s.buf, math.Float32bits(x))
		}
	}
}

// WriteSnapshot writes the snapshot format to w (see Save).
func (m *Memory) WriteSnapshot(ctx context.Context, w io.Writer) error {
	if m.closed.Load() {
		return ErrClosed
	}
	sw := &snapWriter{w: checkfile.NewWriter(w)}
	sw.buf = append(sw.buf, snapshotMagic...)
	sw.buf = binary.LittleEndian.AppendUint32(sw.buf, snapshotVersion)
	views := slices.SortedFunc(maps.Values(m.viewMap()), func(a, b *viewStore) int {
		return strings.Compare(a.s.view.Name, b.s.view.Name)
	})
	sw.uvarint(uint64(len(views)))
	for _, vs := range views {
		v := vs.s.view
		sw.str(v.Name)
		sw.str(v.Entity)
		sw.u64(uint64(v.TTL))
		sw.uvarint(uint64(v.Version))
		sw.uvarint(uint64(v.Capacity))
		sw.buf = append(sw.buf, byte(v.NaN))
		sw.uvarint(uint64(len(v.Features)))
		for _, f := range v.Features {
			sw.str(f.Name)
			sw.buf = append(sw.buf, byte(f.Kind))
			sw.uvarint(uint64(f.Dim))
			sw.value(f.Default)
		}
		for i := range vs.shards {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("features: write snapshot: %w", err)
			}
			vs.snapshotShard(&vs.shards[i], sw)
			sw.flush()
			if sw.err != nil {
				return fmt.Errorf("features: write snapshot: %w", sw.err)
			}
		}
		sw.buf = append(sw.buf, 0)
	}
	sw.flush()
	if sw.err == nil {
		sw.err = sw.w.WriteTrailer()
	}
	if sw.err != nil {
		return fmt.Errorf("features: write snapshot: %w", sw.err)
	}
	return nil
}

// snapshotShard appends a shard's rows under its writer lock (readers
// are not blocked).
func (vs *viewStore) snapshotShard(sh *shard, sw *snapWriter) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	d := sh.data.Load()
	for s := range d.meta[:sh.count] {
		mt := &d.meta[s]
		if mt.klen.Load() == 0 {
			continue
		}
		sw.buf = append(sw.buf, 1)
		sw.str(mt.keyString())
		sw.u64(uint64(d.ts(s)))
		sw.u64(d.present(s))
		// The shard lock excludes the only writer, so plain loads are safe.
		for _, w := range d.values(s, vs.s.words) {
			sw.buf = binary.LittleEndian.AppendUint32(sw.buf, w)
		}
		if d.strs != nil {
			var strs []string
			if p := d.strs[s].Load(); p != nil {
				strs = *p
			}
			for j := range vs.s.nstr {
				if j < len(strs) {
					sw.str(strs[j])
				} else {
					sw.str("")
				}
			}
		}
	}
}

// snapReader decodes the snapshot body; r hashes it on the way.
type snapReader struct {
	r   *checkfile.Reader
	buf []byte
}

func (s *snapReader) bad(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated while reading %s", ErrSnapshot, what)
	}
	if err != nil {
		return fmt.Errorf("%w: reading %s: %w", ErrSnapshot, what, err)
	}
	return fmt.Errorf("%w: %s", ErrSnapshot, what)
}

func (s *snapReader) bytes(n int, what string) ([]byte, error) {
	if int64(n) > s.r.Remaining() {
		return nil, s.bad(what, io.ErrUnexpectedEOF)
	}
	if cap(s.buf) < n {
		s.buf = make([]byte, n)
	}
	b := s.buf[:n]
	if _, err := io.ReadFull(s.r, b); err != nil {
		return nil, s.bad(what, err)
	}
	return b, nil
}

func (s *snapReader) byte1(what string) (byte, error) {
	b, err := s.bytes(1, what)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (s *snapReader) uvarint(what string, limit uint64) (uint64, error) {
	x, err := binary.ReadUvarint(s.r)
	if err != nil {
		return 0, s.bad(what, err)
	}
	if x > limit {
		return 0, s.bad(fmt.Sprintf("%s: %d exceeds the limit %d", what, x, limit), nil)
	}
	return x, nil
}

func (s *snapReader) u64(what string) (uint64, error) {
	b, err := s.bytes(8, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (s *snapReader) str(what string, limit uint64) (string, error) {
	n, err := s.uvarint(what+" length", limit)
	if err != nil {
		return "", err
	}
	b, err := s.bytes(int(n), what)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func (s *snapReader) value(kind Kind, dim int, what string) (Value, error) {
	flag, err := s.byte1(what)
	if err != nil {
		return Value{}, err
	}
	switch flag {
	case 0:
		return Value{}, nil
	case 1:
	default:
		return Value{}, s.bad(fmt.Sprintf("%s: null flag %d, want 0 or 1", what, flag), nil)
	}
	switch kind {
	case KindFloat32:
		b, err := s.bytes(4, what)
		if err != nil {
			return Value{}, err
		}
		return Float32(math.Float32frombits(binary.LittleEndian.Uint32(b))), nil
	case KindInt64:
		x, err := s.u64(what)
		return Int64(int64(x)), err
	case KindString:
		x, err := s.str(what, maxSnapshotStr)
		return String(x), err
	case KindEmbedding:
		if dim < 1 || dim > MaxEmbeddingDim {
			return Value{}, s.bad(fmt.Sprintf("%s: embedding dim %d", what, dim), nil)
		}
		b, err := s.bytes(4*dim, what)
		if err != nil {
			return Value{}, err
		}
		v := make([]float32, dim)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return Embedding(v), nil
	}
	return Value{}, s.bad(fmt.Sprintf("%s: unknown kind %d", what, kind), nil)
}

// ReadSnapshot decodes a snapshot from r into a new store with opts. The
// checksum is verified before the store is returned; on any error the
// partly built store is discarded.
func ReadSnapshot(ctx context.Context, r io.Reader, opts Options) (*Memory, error) {
	return readSnapshot(ctx, checkfile.NewReader(r, -1), opts)
}

func readSnapshot(ctx context.Context, cr *checkfile.Reader, opts Options) (*Memory, error) {
	sr := &snapReader{r: cr}
	m := New(opts)
	fail := func(err error) (*Memory, error) {
		_ = m.Close()
		return nil, err
	}
	head, err := sr.bytes(len(snapshotMagic)+4, "header")
	if err != nil {
		return fail(err)
	}
	if string(head[:len(snapshotMagic)]) != snapshotMagic {
		return fail(fmt.Errorf("%w: not a feature snapshot (bad magic)", ErrSnapshot))
	}
	if v := binary.LittleEndian.Uint32(head[len(snapshotMagic):]); v != snapshotVersion {
		return fail(fmt.Errorf("%w: file has version %d, this build reads version %d", ErrVersion, v, snapshotVersion))
	}
	nviews, err := sr.uvarint("view count", maxSnapshotView)
	if err != nil {
		return fail(err)
	}
	e := &encoded{}
	for range nviews {
		if err := ctx.Err(); err != nil {
			return fail(fmt.Errorf("features: read snapshot: %w", err))
		}
		var v View
		if v.Name, err = sr.str("view name", maxNameLen); err != nil {
			return fail(err)
		}
		if v.Entity, err = sr.str("entity name", maxNameLen); err != nil {
			return fail(err)
		}
		ttl, err := sr.u64("ttl")
		if err != nil {
			return fail(err)
		}
		v.TTL = timeDuration(ttl)
		ver, err := sr.uvarint("version", MaxVersion)
		if err != nil {
			return fail(err)
		}
		capacity, err := sr.uvarint("capacity", MaxCapacity)
		if err != nil {
			return fail(err)
		}
		v.Version, v.Capacity = int(ver), int(capacity)
		nan, err := sr.byte1("nan policy")
		if err != nil {
			return fail(err)
		}
		v.NaN = NaNPolicy(nan)
		nf, err := sr.uvarint("feature count", MaxFeatures)
		if err != nil {
			return fail(err)
		}
		for range nf {
			var f Feature
			if f.Name, err = sr.str("feature name", maxNameLen); err != nil {
				return fail(err)
			}
			k, err := sr.byte1("feature kind")
			if err != nil {
				return fail(err)
			}
			f.Kind = Kind(k)
			dim, err := sr.uvarint("feature dim", MaxEmbeddingDim)
			if err != nil {
				return fail(err)
			}
			f.Dim = int(dim)
			if f.Default, err = sr.value(f.Kind, f.Dim, "feature default"); err != nil {
				return fail(err)
			}
			v.Features = append(v.Features, f)
		}
		if err := m.Register(v); err != nil {
			return fail(fmt.Errorf("%w: view %q: %w", ErrSnapshot, v.Name, err))
		}
		vs := m.viewMap()[v.Name]
		s := vs.s
		allBits := uint64(1)<<uint(len(s.view.Features)) - 1
		if len(s.view.Features) == 64 {
			allBits = math.MaxUint64
		}
		for {
			flag, err := sr.byte1("row flag")
			if err != nil {
				return fail(err)
			}
			if flag == 0 {
				break
			}
			if flag != 1 {
				return fail(fmt.Errorf("%w: view %q: row flag %d, want 0 or 1", ErrSnapshot, v.Name, flag))
			}
			key, err := sr.str("entity key", MaxEntityLen)
			if err != nil {
				return fail(err)
			}
			if key == "" {
				return fail(fmt.Errorf("%w: view %q: empty entity key", ErrSnapshot, v.Name))
			}
			ts, err := sr.u64("event time")
			if err != nil {
				return fail(err)
			}
			present, err := sr.u64("null mask")
			if err != nil {
				return fail(err)
			}
			if present&^allBits != 0 {
				return fail(fmt.Errorf("%w: view %q: null mask %#x names features beyond the %d declared", ErrSnapshot, v.Name, present, len(s.view.Features)))
			}
			b, err := sr.bytes(4*s.words, "row values")
			if err != nil {
				return fail(err)
			}
			e.words = e.words[:0]
			for j := range s.words {
				e.words = append(e.words, binary.LittleEndian.Uint32(b[4*j:]))
			}
			e.strs = e.strs[:0]
			for range s.nstr {
				x, err := sr.str("string value", maxSnapshotStr)
				if err != nil {
					return fail(err)
				}
				e.strs = append(e.strs, x)
			}
			e.present = present
			e.nans = append(e.nans[:0], make([]uint32, len(s.view.Features))...)
			vs.write(key, int64(ts), e)
		}
	}
	if err := cr.Verify(); err != nil {
		var ce *checkfile.ChecksumError
		switch {
		case errors.As(err, &ce):
			return fail(fmt.Errorf("%w: %v", ErrChecksum, err))
		case errors.Is(err, checkfile.ErrTruncated), errors.Is(err, checkfile.ErrTrailing):
			return fail(fmt.Errorf("%w: %v", ErrSnapshot, err))
		}
		return fail(sr.bad("checksum", err))
	}
	return m, nil
}
