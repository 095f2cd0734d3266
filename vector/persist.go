package vector

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"time"
	"unsafe"

	"github.com/quiverml/quiver/internal/atomicfile"
	"github.com/quiverml/quiver/internal/checkfile"
)

// File layout (little endian), version 1:
//
//	magic "QVIX" | u16 version | u8 kind | u8 key type | u8 metric | u8 0
//	u32 dim | u32 M | u32 efConstruction | u32 efSearch | u64 seed
//	u32 slots (high-water mark) | u64 entry point (0: empty)
//	per slot: u8 flags | u8 level
//	per used slot: dim x f32 vector, layer-0 links (count u32 + count ids),
//	  then for each upper level the same, key, metadata
//	u64 xxhash64 of everything before it
//
// Free slots are written as flags 0 with nothing else. Deleted slots that
// are not compacted yet are written with their links (search walks them).
const (
	fileMagic     = "QVIX"
	fileVersion   = 1
	kindHNSW      = 1
	kindFlat      = 2
	keyTypeString = 1
	keyUint64     = 2
)

func keyTypeOf[K Key]() uint8 {
	var zero K
	if _, ok := any(zero).(string); ok {
		return keyTypeString
	}
	return keyUint64
}

// littleEndian is true on the machines where float32 slices can be copied
// to and from the file's little-endian bytes as they are.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// writeAtomic writes through fn into a temporary file next to path, fsyncs
// it, renames it over path and fsyncs the directory. The checksum of all
// bytes is appended.
func writeAtomic(ctx context.Context, path string, fn func(w *encoder) error) error {
	err := atomicfile.Write(path, 0o600, func(w io.Writer) error {
		e := &encoder{w: checkfile.NewWriter(w), ctx: ctx}
		if err := fn(e); err != nil {
			return err
		}
		if e.err != nil {
			return e.err
		}
		return e.w.WriteTrailer()
	})
	if err != nil {
		return fmt.Errorf("vector: save: %w", err)
	}
	return nil
}

// encoder writes little-endian values and hashes them; the first error sticks.
type encoder struct {
	w   *checkfile.Writer
	ctx context.Context
	err error
	buf [8]byte
	n   int
}

func (e *encoder) write(p []byte) {
	if e.err != nil {
		return
	}
	if _, err := e.w.Write(p); err != nil {
		e.err = err
		return
	}
	e.n += len(p)
	if e.n > 1<<24 {
		e.n = 0
		if err := e.ctx.Err(); err != nil {
			e.err = err
		}
	}
}
func (e *encoder) u8(v uint8) { e.buf[0] = v; e.write(e.buf[:1]) }
func (e *encoder) u16(v uint16) {
	binary.LittleEndian.PutUint16(e.buf[:2], v)
	e.write(e.buf[:2])
}
func (e *encoder) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.buf[:4], v)
	e.write(e.buf[:4])
}
func (e *encoder) u64(v uint64) {
	binary.LittleEndian.PutUint64(e.buf[:8], v)
	e.write(e.buf[:8])
}
func (e *encoder) f32s(v []float32) {
	if littleEndian && len(v) > 0 {
		e.write(unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v)))
		return
	}
	var b [512]byte
	for len(v) > 0 {
		n := min(len(v), len(b)/4)
		for i := 0; i < n; i++ {
			binary.LittleEndian.PutUint32(b[i*4:], math.Float32bits(v[i]))
		}
		e.write(b[:n*4])
		v = v[n:]
	}
}
func (e *encoder) str(s string) { e.u32(uint32(len(s))); e.write([]byte(s)) }

func encodeKey[K Key](e *encoder, k K) {
	switch v := any(k).(type) {
	case string:
		e.str(v)
	case uint64:
		e.u64(v)
	}
}

func encodeMeta(e *encoder, m Metadata) {
	e.u32(uint32(len(m)))
	for _, k := range sortedKeys(m) {
		e.str(k)
		switch v := m[k].(type) {
		case string:
			e.u8(1)
			e.str(v)
		case bool:
			e.u8(2)
			if v {
				e.u8(1)
			} else {
				e.u8(0)
			}
		case float64:
			e.u8(3)
			e.u64(math.Float64bits(v))
		}
	}
}

// decoder reads either from a byte slice (b) whose checksum was verified
// already, or from a stream (r) of a known size that hashes what is read;
// the first error sticks. A slice returned by take is valid until the next
// call.
type decoder struct {
	b    []byte
	r    *checkfile.Reader
	buf  []byte
	size int // body bytes
	off  int
	err  error
}

func newSliceDecoder(b []byte) *decoder { return &decoder{b: b, size: len(b)} }

// newStreamDecoder reads a body of size bytes from r; finish checks the
// xxhash64 trailer that follows it.
func newStreamDecoder(r io.Reader, size int) *decoder {
	return &decoder{r: checkfile.NewReader(r, int64(size)), size: size}
}

func (d *decoder) remaining() int { return d.size - d.off }

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s (at byte %d)", ErrCorrupt, fmt.Sprintf(format, args...), d.off)
	}
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > d.remaining() {
		d.fail("truncated: need %d bytes, have %d", n, d.remaining())
		return nil
	}
	if d.r == nil {
		p := d.b[d.off : d.off+n]
		d.off += n
		return p
	}
	if cap(d.buf) < n {
		d.buf = make([]byte, n)
	}
	p := d.buf[:n]
	d.readFull(p)
	return p
}

// readFull fills p from the stream (stream mode only).
func (d *decoder) readFull(p []byte) {
	if _, err := io.ReadFull(d.r, p); err != nil {
		d.fail("read: %v", err)
		return
	}
	d.off += len(p)
}

// finish checks, in stream mode, that the body was consumed exactly and
// that the trailer holds its checksum.
func (d *decoder) finish() error {
	if d.err != nil {
		return d.err
	}
	if d.remaining() != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, d.remaining())
	}
	if d.r == nil {
		return nil
	}
	if err := d.r.Verify(); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return nil
}

func (d *decoder) u8() uint8 {
	if p := d.take(1); p != nil {
		return p[0]
	}
	return 0
}
func (d *decoder) u16() uint16 {
	if p := d.take(2); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}
func (d *decoder) u32() uint32 {
	if p := d.take(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}
func (d *decoder) u64() uint64 {
	if p := d.take(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}
func (d *decoder) f32s(dst []float32) {
	if d.r != nil && littleEndian && len(dst) > 0 {
		if d.err != nil {
			return
		}
		if 4*len(dst) > d.remaining() {
			d.fail("truncated: need %d bytes, have %d", 4*len(dst), d.remaining())
			return
		}
		d.readFull(unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), 4*len(dst)))
		return
	}
	p := d.take(4 * len(dst))
	if p == nil {
		return
	}
	if littleEndian && len(dst) > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), 4*len(dst)), p)
		return
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[i*4:]))
	}
}
func (d *decoder) str() string {
	n := d.u32()
	return string(d.take(int(n)))
}

func decodeKey[K Key](d *decoder) K {
	var k K
	switch p := any(&k).(type) {
	case *string:
		*p = d.str()
	case *uint64:
		*p = d.u64()
	}
	return k
}

func decodeMeta(d *decoder) Metadata {
	n := d.u32()
	if n == 0 || d.err != nil {
		return nil
	}
	if int(n) > d.remaining()/6 {
		d.fail("metadata count %d exceeds file", n)
		return nil
	}
	m := make(Metadata, n)
	for range n {
		k := d.str()
		switch t := d.u8(); t {
		case 1:
			m[k] = d.str()
		case 2:
			m[k] = d.u8() != 0
		case 3:
			m[k] = math.Float64frombits(d.u64())
		default:
			d.fail("metadata field %q has unknown type %d", k, t)
			return nil
		}
	}
	return m
}

// readVerified reads path and checks its trailing checksum.
func readVerified(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("vector: load: %w", err)
	}
	return verify(b)
}

func verify(b []byte) ([]byte, error) {
	if len(b) < len(fileMagic)+checkfile.TrailerSize {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrCorrupt, len(b))
	}
	if string(b[:4]) != fileMagic {
		return nil, fmt.Errorf("%w: bad magic %q, want %q", ErrCorrupt, b[:4], fileMagic)
	}
	body, err := checkfile.Verify(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return body, nil
}

// header is the fixed part of a saved index.
type header struct {
	kind, keyType, metric uint8
	dim, m, efC, efS      uint32
	seed                  uint64
}

func (hd header) write(e *encoder) {
	e.write([]byte(fileMagic))
	e.u16(fileVersion)
	e.u8(hd.kind)
	e.u8(hd.keyType)
	e.u8(hd.metric)
	e.u8(0)
	e.u32(hd.dim)
	e.u32(hd.m)
	e.u32(hd.efC)
	e.u32(hd.efS)
	e.u64(hd.seed)
}

func readHeader(d *decoder, kind, keyType uint8) (header, error) {
	var hd header
	if string(d.take(4)) != fileMagic {
		return hd, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	if v := d.u16(); d.err == nil && v != fileVersion {
		return hd, fmt.Errorf("%w: file version %d, this build reads %d", ErrVersion, v, fileVersion)
	}
	hd.kind, hd.keyType, hd.metric = d.u8(), d.u8(), d.u8()
	d.u8()
	hd.dim, hd.m, hd.efC, hd.efS = d.u32(), d.u32(), d.u32(), d.u32()
	hd.seed = d.u64()
	if d.err != nil {
		return hd, d.err
	}
	if hd.kind != kind {
		return hd, fmt.Errorf("%w: file holds index kind %d, want %d (1 hnsw, 2 flat)", ErrCorrupt, hd.kind, kind)
	}
	if hd.keyType != keyType {
		return hd, fmt.Errorf("%w: file ids are %s, want %s", ErrKeyType, keyName(hd.keyType), keyName(keyType))
	}
	if !Metric(hd.metric).valid() {
		return hd, fmt.Errorf("%w: unknown metric %d", ErrCorrupt, hd.metric)
	}
	if hd.dim == 0 || hd.dim > 1<<16 {
		return hd, fmt.Errorf("%w: dimension %d out of range", ErrCorrupt, hd.dim)
	}
	return hd, nil
}

func keyName(t uint8) string {
	switch t {
	case keyTypeString:
		return "string"
	case keyUint64:
		return "uint64"
	}
	return fmt.Sprintf("key type %d", t)
}

// Save writes the index to path atomically. Searches continue while it
// runs; Add, Upsert, Delete and Compact wait for it.
func (h *HNSW[K]) Save(ctx context.Context, path string) error {
	if h.closed.Load() {
		return ErrClosed
	}
	h.mutMu.Lock()
	defer h.mutMu.Unlock()
	if h.closed.Load() {
		return ErrClosed
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	start := time.Now()
	err := writeAtomic(ctx, path, func(e *encoder) error {
		header{kindHNSW, keyTypeOf[K](), uint8(h.opts.Metric), uint32(h.dim), uint32(h.m),
			uint32(h.opts.EfConstruction), uint32(h.opts.EfSearch), h.opts.Seed}.write(e)
		n := int(h.next)
		e.u32(uint32(n))
		e.u64(h.ep.Load())
		for s := 0; s < n; s++ {
			e.u8(uint8(h.flags[s]))
			e.u8(h.levels[s])
		}
		for s := 0; s < n; s++ {
			if h.flags[s]&flagUsed == 0 {
				continue
			}
			e.f32s(h.vec(uint32(s)))
			for l := 0; l <= int(h.levels[s]); l++ {
				list := h.list(uint32(s), l)
				cnt := list[0]
				e.u32(cnt)
				for i := uint32(1); i <= cnt; i++ {
					e.u32(list[i])
				}
			}
			encodeKey(e, h.keys[s])
			encodeMeta(e, h.meta[s])
		}
		return nil
	})
	if err != nil {
		return err
	}
	h.opts.Logger.Info("vector: saved", "path", path, "slots", int(h.next), "took", time.Since(start))
	return nil
}

// LoadHNSW reads an index written by HNSW.Save. The file's parameters
// (dimension, metric, M, efConstruction, efSearch) override those in opts;
// the other options (Workers, ExactFilterBelow, CompactRatio, Quantization,
// RescoreFactor, Logger) apply, so a saved index can be loaded with or
// without int8 codes. The file is streamed into the index (no copy of the
// whole file in memory) and its checksum verified at the end: a truncated
// or damaged file returns an error matching ErrCorrupt and no index. A
// cancelled ctx stops the load between slots and returns ctx.Err() wrapped.
func LoadHNSW[K Key](ctx context.Context, path string, opts Options) (*HNSW[K], error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("vector: load: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("vector: load: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("vector: load: %w", err)
	}
	if st.Size() < int64(len(fileMagic)+checkfile.TrailerSize) {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrCorrupt, st.Size())
	}
	// Vectors are read straight into the index's slab and the checksum is
	// computed on the way; the index is returned only if it matches.
	start := time.Now()
	d := newStreamDecoder(bufio.NewReaderSize(f, 1<<20), int(st.Size()-checkfile.TrailerSize))
	h, err := decodeHNSWFrom[K](ctx, d, opts)
	if err != nil {
		return nil, err
	}
	h.opts.Logger.Info("vector: loaded", "path", path, "items", h.Len(), "took", time.Since(start))
	return h, nil
}

func decodeHNSW[K Key](b []byte, opts Options) (*HNSW[K], error) {
	return decodeHNSWFrom[K](context.Background(), newSliceDecoder(b), opts)
}

func decodeHNSWFrom[K Key](ctx context.Context, d *decoder, opts Options) (*HNSW[K], error) {
	hd, err := readHeader(d, kindHNSW, keyTypeOf[K]())
	if err != nil {
		return nil, err
	}
	opts.Dim, opts.Metric, opts.M = int(hd.dim), Metric(hd.metric), int(hd.m)
	opts.EfConstruction, opts.EfSearch, opts.Seed = int(hd.efC), int(hd.efS), hd.seed
	if opts.M < 2 || opts.M > 128 || opts.EfConstruction < 1 || opts.EfSearch < 1 ||
		opts.EfConstruction > 1<<16 || opts.EfSearch > 1<<16 {
		return nil, fmt.Errorf("%w: parameters M=%d efConstruction=%d efSearch=%d out of range", ErrCorrupt, opts.M, opts.EfConstruction, opts.EfSearch)
	}
	n := int(d.u32())
	epv := d.u64()
	if d.err != nil {
		return nil, d.err
	}
	if n > d.remaining()/2 {
		return nil, fmt.Errorf("%w: %d slots do not fit in %d bytes", ErrCorrupt, n, d.size)
	}
	fl := d.take(2 * n)
	if d.err != nil {
		return nil, d.err
	}
	used := 0
	for s := 0; s < n; s++ {
		if fl[2*s] != 0 {
			used++
		}
	}
	// Every used slot stores its vector and a link count: refuse sizes the
	// file cannot hold before allocating for them.
	if int64(used)*int64(4*hd.dim+4) > int64(d.remaining()) {
		return nil, fmt.Errorf("%w: %d vectors of dimension %d do not fit in %d bytes", ErrCorrupt, used, hd.dim, d.size)
	}
	opts.Capacity = max(n, 1)
	h, err := NewHNSW[K](opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	h.ids = make(map[K]uint32, used)
	for s := 0; s < n; s++ {
		f, lv := fl[2*s], fl[2*s+1]
		if f&^(flagUsed|flagDeleted) != 0 || f == flagDeleted || lv > maxLevel || (f == 0 && lv != 0) {
			return nil, fmt.Errorf("%w: slot %d has flags %d level %d", ErrCorrupt, s, f, lv)
		}
		h.flags[s], h.levels[s] = uint32(f), lv
	}
	var live, dead int64
	for s := 0; s < n; s++ {
		if s&0xffff == 0xffff && ctx.Err() != nil {
			return nil, fmt.Errorf("vector: load: %w", ctx.Err())
		}
		if h.flags[s] == 0 {
			h.free = append(h.free, uint32(s))
			continue
		}
		v := h.vec(uint32(s))
		d.f32s(v)

		for l := 0; l <= int(h.levels[s]); l++ {
			if l == 1 {
				h.upper[s] = make([]uint32, int(h.levels[s])*(h.m+1))
			}
			list := h.list(uint32(s), l)
			cnt := d.u32()
			if d.err != nil {
				return nil, d.err
			}
			if int(cnt) > len(list)-1 {
				return nil, fmt.Errorf("%w: slot %d level %d has %d links, max %d", ErrCorrupt, s, l, cnt, len(list)-1)
			}
			list[0] = cnt
			p := d.take(4 * int(cnt))
			if d.err != nil {
				return nil, d.err
			}
			for i := 1; i <= int(cnt); i++ {
				id := binary.LittleEndian.Uint32(p[4*(i-1):])
				if int(id) >= n || id == uint32(s) {
					return nil, fmt.Errorf("%w: slot %d links to %d (slots: %d)", ErrCorrupt, s, id, n)
				}
				list[i] = id
			}
		}
		h.keys[s] = decodeKey[K](d)
		h.meta[s] = decodeMeta(d)
		if d.err != nil {
			return nil, d.err
		}
		for _, x := range v {
			if x-x != 0 { // NaN or ±Inf
				return nil, fmt.Errorf("%w: slot %d vector holds %v", ErrCorrupt, s, x)
			}
		}
		if h.flags[s]&flagDeleted != 0 {
			dead++
			continue
		}
		if _, dup := h.ids[h.keys[s]]; dup {
			return nil, fmt.Errorf("%w: id %s stored twice", ErrCorrupt, keyString(h.keys[s]))
		}
		h.ids[h.keys[s]] = uint32(s)
		live++
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	// Links must point at slots that exist and hold the level linked on.
	for s := 0; s < n; s++ {
		if h.flags[s] == 0 {
			continue
		}
		for l := 0; l <= int(h.levels[s]); l++ {
			list := h.list(uint32(s), l)
			for i := uint32(1); i <= list[0]; i++ {
				if t := list[i]; h.flags[t] == 0 || int(h.levels[t]) < l {
					return nil, fmt.Errorf("%w: slot %d level %d links to slot %d, which is free or lower", ErrCorrupt, s, l, t)
				}
			}
		}
	}
	if h.codes != nil {
		for s := 0; s < n; s++ {
			if h.flags[s] != 0 {
				h.setCode(uint32(s))
			}
		}
	}
	if epv != 0 {
		s, l := unpackEP(epv)
		if int(s) >= n || h.flags[s] == 0 || int(h.levels[s]) != l {
			return nil, fmt.Errorf("%w: entry point slot %d level %d invalid", ErrCorrupt, s, l)
		}
	} else if live+dead > 0 {
		return nil, fmt.Errorf("%w: no entry point in a non-empty index", ErrCorrupt)
	}
	slices.Reverse(h.free)
	h.next = uint32(n)
	h.ep.Store(epv)
	h.live.Store(live)
	h.deleted.Store(dead)
	h.seq.Store(uint64(n))
	return h, nil
}
