package vector

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"time"
	"unsafe"

	"github.com/quiverml/quiver/internal/atomicfile"
	"github.com/quiverml/quiver/internal/checkfile"
)

// File layout (little endian), version 2:
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
//
// Metadata is a u32 field count, then per field (sorted by name) its name
// (u32 length + bytes), a u8 type tag and the value: 1 string (u32 length +
// bytes), 2 bool (u8), 3 float64 (u64 bits), 4 float32 (u32 bits), 5..9
// int, int8, int16, int32, int64 and 10..14 uint, uint8, uint16, uint32,
// uint64 (each a u64, two's complement for the signed ones). Version 1
// differs only in having tags 1 to 3; it is still read.
const (
	fileMagic     = "QVIX"
	fileVersion   = 2
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

// Metadata value tags. Each Go type has its own, so a value reads back with
// the type it was stored with; integers are written as 8 bytes (two's
// complement for the signed ones), float32 as 4.
const (
	tagString  = 1
	tagBool    = 2
	tagFloat64 = 3
	tagFloat32 = 4
	tagInt     = 5
	tagInt8    = 6
	tagInt16   = 7
	tagInt32   = 8
	tagInt64   = 9
	tagUint    = 10
	tagUint8   = 11
	tagUint16  = 12
	tagUint32  = 13
	tagUint64  = 14
)

func encodeMeta(e *encoder, m Metadata) {
	e.u32(uint32(len(m)))
	for _, k := range sortedKeys(m) {
		e.str(k)
		switch v := m[k].(type) {
		case string:
			e.u8(tagString)
			e.str(v)
		case bool:
			e.u8(tagBool)
			if v {
				e.u8(1)
			} else {
				e.u8(0)
			}
		case float64:
			e.u8(tagFloat64)
			e.u64(math.Float64bits(v))
		case float32:
			e.u8(tagFloat32)
			e.u32(math.Float32bits(v))
		case int:
			e.u8(tagInt)
			e.u64(uint64(v))
		case int8:
			e.u8(tagInt8)
			e.u64(uint64(v))
		case int16:
			e.u8(tagInt16)
			e.u64(uint64(v))
		case int32:
			e.u8(tagInt32)
			e.u64(uint64(v))
		case int64:
			e.u8(tagInt64)
			e.u64(uint64(v))
		case uint:
			e.u8(tagUint)
			e.u64(uint64(v))
		case uint8:
			e.u8(tagUint8)
			e.u64(uint64(v))
		case uint16:
			e.u8(tagUint16)
			e.u64(uint64(v))
		case uint32:
			e.u8(tagUint32)
			e.u64(uint64(v))
		case uint64:
			e.u8(tagUint64)
			e.u64(v)
		default:
			// checkMetadata admits only the types above.
			e.err = fmt.Errorf("%w: field %q holds %T", ErrMetadata, k, v)
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

// minKeyBytes is the fewest bytes a key of type K takes in a file: a
// string's length prefix, or a uint64.
func minKeyBytes[K Key]() int {
	if keyTypeOf[K]() == keyTypeString {
		return 4
	}
	return 8
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
		t := d.u8()
		var v any
		switch t {
		case tagString:
			v = d.str()
		case tagBool:
			v = d.u8() != 0
		case tagFloat64:
			v = math.Float64frombits(d.u64())
		case tagFloat32:
			v = math.Float32frombits(d.u32())
		case tagInt, tagInt8, tagInt16, tagInt32, tagInt64:
			x := int64(d.u64())
			v = signedOf(t, x)
			if v == nil {
				d.fail("metadata field %q holds %d, out of range for its type (tag %d)", k, x, t)
			}
		case tagUint, tagUint8, tagUint16, tagUint32, tagUint64:
			x := d.u64()
			v = unsignedOf(t, x)
			if v == nil {
				d.fail("metadata field %q holds %d, out of range for its type (tag %d)", k, x, t)
			}
		default:
			d.fail("metadata field %q has unknown type %d", k, t)
		}
		if d.err != nil {
			return nil
		}
		m[k] = v
	}
	return m
}

// signedOf returns x as the signed type tag t names, or nil when x does
// not fit in it.
func signedOf(t uint8, x int64) any {
	switch t {
	case tagInt:
		if int64(int(x)) == x {
			return int(x)
		}
	case tagInt8:
		if int64(int8(x)) == x {
			return int8(x)
		}
	case tagInt16:
		if int64(int16(x)) == x {
			return int16(x)
		}
	case tagInt32:
		if int64(int32(x)) == x {
			return int32(x)
		}
	case tagInt64:
		return x
	}
	return nil
}

// unsignedOf returns x as the unsigned type tag t names, or nil when x
// does not fit in it.
func unsignedOf(t uint8, x uint64) any {
	switch t {
	case tagUint:
		if uint64(uint(x)) == x {
			return uint(x)
		}
	case tagUint8:
		if uint64(uint8(x)) == x {
			return uint8(x)
		}
	case tagUint16:
		if uint64(uint16(x)) == x {
			return uint16(x)
		}
	case tagUint32:
		if uint64(uint32(x)) == x {
			return uint32(x)
		}
	case tagUint64:
		return x
	}
	return nil
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
	if v := d.u16(); d.err == nil && (v < 1 || v > fileVersion) {
		return hd, fmt.Errorf("%w: file version %d, this build reads 1 to %d", ErrVersion, v, fileVersion)
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
			e.f32s(h.saveVec(uint32(s)))
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

// sweep removes the temporary files that Saves to path interrupted by a
// crash left behind. A failure to sweep does not stop the load (the index
// file may still be readable); it is logged.
func sweep(path string, logger *slog.Logger) {
	n, err := atomicfile.Sweep(path)
	if err != nil {
		logger.Warn("vector: removing temporary files of interrupted saves", "path", path, "err", err)
	}
	if n > 0 {
		logger.Info("vector: removed temporary files of interrupted saves", "path", path, "files", n)
	}
}

// LoadHNSW reads an index written by HNSW.Save. The file's parameters
// (dimension, metric, M, efConstruction, efSearch) override those in opts;
// the other options (Workers, ExactFilterBelow, CompactRatio, Quantization,
// RescoreFactor, VectorsFile, Logger) apply, so a saved index can be loaded
// with or without int8 codes. Under QuantInt8Only each vector is read into
// one scratch vector, quantized and written to the VectorsFile (when set):
// the floats are never all in memory. The file is streamed into the index (no copy of the
// whole file in memory) and its checksum verified at the end: a truncated
// or damaged file returns an error matching ErrCorrupt and no index. A
// cancelled ctx stops the load between slots and returns ctx.Err() wrapped.
//
// Slots that Compact freed are not restored: the loaded index numbers its
// items densely, so it holds no memory for them. Before reading, LoadHNSW
// removes the temporary files that Saves to path interrupted by a crash
// left behind; do not load a path while a Save to it is in flight.
func LoadHNSW[K Key](ctx context.Context, path string, opts Options) (*HNSW[K], error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("vector: load: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	sweep(path, logger)
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
	fl := d.take(2 * n) // valid until the next take
	if d.err != nil {
		return nil, d.err
	}
	// Free slots cost 2 bytes in the file but a vector and link lists in
	// memory, so they are not given memory: used slots are renumbered in
	// order (which keeps the order searches break ties by) and the index is
	// sized by them alone. remap costs 4 bytes per slot, twice what the file
	// spent on it.
	const freeSlot = math.MaxUint32
	remap := make([]uint32, n)
	used := 0
	for s := 0; s < n; s++ {
		f, lv := fl[2*s], fl[2*s+1]
		if f&^(flagUsed|flagDeleted) != 0 || f == flagDeleted || lv > maxLevel || (f == 0 && lv != 0) {
			return nil, fmt.Errorf("%w: slot %d has flags %d level %d", ErrCorrupt, s, f, lv)
		}
		if f == 0 {
			remap[s] = freeSlot
			continue
		}
		remap[s] = uint32(used)
		used++
	}
	// Every used slot stores at least its vector, a link count, a key and a
	// metadata count: refuse counts the file cannot hold before allocating
	// for them.
	if need := int64(used) * (4*int64(hd.dim) + 4 + int64(minKeyBytes[K]()) + 4); need > int64(d.remaining()) {
		return nil, fmt.Errorf("%w: %d vectors of dimension %d need %d bytes, the file has %d left", ErrCorrupt, used, hd.dim, need, d.remaining())
	}
	opts.Capacity = max(used, 1)
	h, err := NewHNSW[K](opts)
	if err != nil {
		if storageError(err) { // the caller's options, not the file
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	loaded := false
	defer func() {
		if !loaded { // release the vectors file of a refused load
			h.closeStorage()
		}
	}()
	h.ids = make(map[K]uint32, used)
	p := startProgress(opts.Progress, "load", used)
	defer p.stop()
	for s := 0; s < n; s++ {
		if ns := remap[s]; ns != freeSlot {
			h.flags[ns], h.levels[ns] = uint32(fl[2*s]), fl[2*s+1]
		}
	}
	var live, dead int64
	for s := 0; s < n; s++ {
		if s&0xffff == 0xffff && ctx.Err() != nil {
			return nil, fmt.Errorf("vector: load: %w", ctx.Err())
		}
		ns := remap[s]
		if ns == freeSlot {
			continue
		}
		p.add(1)
		v := h.loadVec(ns)
		d.f32s(v)

		for l := 0; l <= int(h.levels[ns]); l++ {
			if l == 1 {
				h.upper[ns] = make([]uint32, int(h.levels[ns])*(h.m+1))
			}
			list := h.list(ns, l)
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
				if remap[id] == freeSlot {
					return nil, fmt.Errorf("%w: slot %d level %d links to slot %d, which is free", ErrCorrupt, s, l, id)
				}
				list[i] = remap[id]
			}
		}
		h.keys[ns] = decodeKey[K](d)
		h.meta[ns] = decodeMeta(d)
		if d.err != nil {
			return nil, d.err
		}
		for _, x := range v {
			if x-x != 0 { // NaN or ±Inf
				return nil, fmt.Errorf("%w: slot %d vector holds %v", ErrCorrupt, s, x)
			}
		}
		if err := h.loaded(ns, v); err != nil {
			return nil, err
		}
		if h.flags[ns]&flagDeleted != 0 {
			dead++
			continue
		}
		if _, dup := h.ids[h.keys[ns]]; dup {
			return nil, fmt.Errorf("%w: id %s stored twice", ErrCorrupt, keyString(h.keys[ns]))
		}
		h.ids[h.keys[ns]] = ns
		live++
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	// Links must point at slots that hold the level linked on.
	for s := 0; s < used; s++ {
		for l := 0; l <= int(h.levels[s]); l++ {
			list := h.list(uint32(s), l)
			for i := uint32(1); i <= list[0]; i++ {
				if t := list[i]; int(h.levels[t]) < l {
					return nil, fmt.Errorf("%w: slot %d level %d links to slot %d, which is lower", ErrCorrupt, s, l, t)
				}
			}
		}
	}
	if epv != 0 {
		s, l := unpackEP(epv)
		if int(s) >= n || remap[s] == freeSlot || int(h.levels[remap[s]]) != l {
			return nil, fmt.Errorf("%w: entry point slot %d level %d invalid", ErrCorrupt, s, l)
		}
		epv = packEP(remap[s], l)
	} else if live+dead > 0 {
		return nil, fmt.Errorf("%w: no entry point in a non-empty index", ErrCorrupt)
	}
	h.next = uint32(used)
	h.ep.Store(epv)
	h.live.Store(live)
	h.deleted.Store(dead)
	h.seq.Store(uint64(n))
	p.finish()
	loaded = true
	return h, nil
}
