package vector

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"unsafe"
)

// codesOnly is the state of a QuantInt8Only index beyond its codes: the
// float vectors of the items being inserted (until they are linked) and
// the optional vectors file.
type codesOnly struct {
	// pend maps the slots of items being inserted to their float vectors,
	// which link reads for the asymmetric distances of graph
	// construction. Entries live from place to the end of the Add.
	pendMu sync.Mutex
	pend   map[uint32][]float32
	// vf holds the full-precision vectors (Options.VectorsFile); nil
	// without one.
	vf *vectorsFile
	// buf is LoadHNSW's scratch vector (a load is single-threaded).
	buf []float32
}

// openStorage prepares a new index's storage before its first allocate.
func (h *HNSW[K]) openStorage() error {
	if h.opts.Quantization != QuantInt8Only {
		return nil
	}
	h.only = &codesOnly{pend: make(map[uint32][]float32)}
	if h.opts.VectorsFile != "" {
		vf, err := openVectorsFile(h.opts.VectorsFile, h.dim)
		if err != nil {
			return err
		}
		h.only.vf = vf
	}
	return nil
}

// allocateStorage sizes the codes (and the vectors file's mapping) for c
// slots; allocate's part for the quantized modes.
func (h *HNSW[K]) allocateStorage(c int) {
	if h.opts.Quantization == QuantNone {
		return
	}
	h.codes = growSlice(h.codes, c*h.dim)
	h.cscale = growSlice(h.cscale, c)
	if h.opts.Metric == L2 {
		h.norm2 = growSlice(h.norm2, c)
	}
	if h.only != nil && h.only.vf != nil {
		if err := h.only.vf.grow(c); err != nil {
			// Reads beyond the old mapping fall back to pread.
			h.opts.Logger.Warn("vector: vectors file not remapped; reading it with pread", "path", h.opts.VectorsFile, "err", err)
		}
	}
}

// closeStorage releases the codes and the vectors file (Close holds mu).
func (h *HNSW[K]) closeStorage() error {
	h.codes, h.cscale, h.norm2 = nil, nil, nil
	if h.only == nil || h.only.vf == nil {
		return nil
	}
	return h.only.vf.close()
}

// writeVectorsFile writes the vectors of ps to the slots place will give
// them (the free list from its end, then next on), before place changes
// anything, so that a failed write leaves the index as it was. The caller
// holds idMu and mu for reading.
func (h *HNSW[K]) writeVectorsFile(ps []prepared[K]) error {
	if h.only == nil || h.only.vf == nil {
		return nil
	}
	free, next := len(h.free), h.next
	for _, p := range ps {
		var s uint32
		if free > 0 {
			free--
			s = h.free[free]
		} else {
			s = next
			next++
		}
		if err := h.only.vf.write(s, p.vec); err != nil {
			return err
		}
	}
	return nil
}

// store writes v as slot s's vector (place; the caller holds idMu and mu
// for reading and owns s). Under QuantInt8Only v is kept for link until
// the insert ends (dropPending).
func (h *HNSW[K]) store(s uint32, v []float32) {
	if h.only == nil {
		copy(h.vec(s), v)
		if h.codes != nil {
			h.setCode(s)
		}
		return
	}
	h.setCodeFrom(s, v)
	h.only.pendMu.Lock()
	h.only.pend[s] = v
	h.only.pendMu.Unlock()
}

// dropPending forgets the float vectors of an insert's slots.
func (h *HNSW[K]) dropPending(slots []uint32) {
	if h.only == nil {
		return
	}
	h.only.pendMu.Lock()
	for _, s := range slots {
		delete(h.only.pend, s)
	}
	if len(h.only.pend) == 0 && len(slots) > 64 {
		// A Go map keeps its buckets after deletes: drop them, or a bulk
		// Add would leave ~40 bytes per item behind.
		h.only.pend = make(map[uint32][]float32)
	}
	h.only.pendMu.Unlock()
}

// nodeVec returns slot s's float vector for graph construction and
// repair: the stored vector, or under QuantInt8Only the vector being
// inserted, else the one in the vectors file, else the dequantized code.
// The result may be shared: do not modify it.
func (h *HNSW[K]) nodeVec(s uint32) []float32 {
	if h.only == nil {
		return h.vec(s)
	}
	h.only.pendMu.Lock()
	v, ok := h.only.pend[s]
	h.only.pendMu.Unlock()
	if ok {
		return v
	}
	return h.fullVec(s, nil)
}

// fullVec returns slot s's vector under QuantInt8Only: from the vectors
// file when there is one (a slice of the mapping, or read into buf, or a
// new slice when buf is too short), else the dequantized code written to
// buf. A vectors file that cannot be read yields the dequantized code.
func (h *HNSW[K]) fullVec(s uint32, buf []float32) []float32 {
	if len(buf) < h.dim {
		buf = make([]float32, h.dim)
	}
	buf = buf[:h.dim]
	if vf := h.only.vf; vf != nil {
		if v, err := vf.read(s, buf); err == nil {
			return v
		}
	}
	decodeInt8(buf, h.code(s), h.cscale[s])
	return buf
}

// exactDistance is the distance from q to slot s on the most precise
// vector the index has: the float vector, or under QuantInt8Only the
// vectors file's vector, or the asymmetric code distance without one.
func (h *HNSW[K]) exactDistance(q []float32, s uint32) float32 {
	if h.only == nil {
		return h.distance(q, s)
	}
	vf := h.only.vf
	if vf == nil {
		return h.adistance(q, s)
	}
	if v := vf.mapped(s); v != nil {
		return h.dist(q, v)
	}
	bp := vf.bufs.Get().(*[]float32)
	d := h.dist(q, h.fullVec(s, *bp))
	vf.bufs.Put(bp)
	return d
}

// pairDistance is the distance between slots a and b (neighbour
// selection): on float vectors, or on codes under QuantInt8Only.
func (h *HNSW[K]) pairDistance(a, b uint32) float32 {
	if h.only != nil {
		return h.cdistance(a, b)
	}
	return h.dist(h.vec(a), h.vec(b))
}

// prefetchSlot asks for the cache lines of the vector or code a search is
// about to read.
func (h *HNSW[K]) prefetchSlot(s uint32, codes bool) {
	if codes || h.only != nil {
		prefetchCode(h.code(s))
	} else {
		prefetch(h.vec(s))
	}
}

// getVec returns a copy of slot s's vector for Get (the caller holds mu).
func (h *HNSW[K]) getVec(s uint32) []float32 {
	if h.only == nil {
		return append([]float32(nil), h.vec(s)...)
	}
	buf := make([]float32, h.dim)
	if v := h.fullVec(s, buf); &v[0] != &buf[0] { // a slice of the mapping
		copy(buf, v)
	}
	return buf
}

// loadVec returns where LoadHNSW reads slot s's vector to.
func (h *HNSW[K]) loadVec(s uint32) []float32 {
	if h.only == nil {
		return h.vec(s)
	}
	if len(h.only.buf) < h.dim {
		h.only.buf = make([]float32, h.dim)
	}
	return h.only.buf[:h.dim]
}

// loaded finishes slot s's vector v read by LoadHNSW: codes are computed
// and, under QuantInt8Only, the vector written to the vectors file.
func (h *HNSW[K]) loaded(s uint32, v []float32) error {
	if h.codes == nil {
		return nil
	}
	h.setCodeFrom(s, v)
	if h.only != nil && h.only.vf != nil {
		return h.only.vf.write(s, v)
	}
	return nil
}

// mmapVectors enables the vectors file's mapping; tests clear it to run
// the pread path that platforms without mmap take.
var mmapVectors = true

// vectorsFileError reports a vectors file that cannot be opened.
type vectorsFileError struct{ err error }

func (e *vectorsFileError) Error() string { return "vector: vectors file: " + e.err.Error() }
func (e *vectorsFileError) Unwrap() error { return e.err }

// storageError reports whether err is about the storage options (bad
// combination, or a vectors file that cannot be opened) rather than a
// saved file's contents.
func storageError(err error) bool {
	var oe *OptionError
	var ve *vectorsFileError
	return errors.As(err, &oe) || errors.As(err, &ve)
}

// vectorsFile holds an index's full-precision vectors on disk, slot-major
// (slot s at byte s*dim*4), in the machine's byte order: it is the index's
// scratch space, written as items are inserted and rebuilt by LoadHNSW,
// never read across processes. Reads go through a read-only shared memory
// mapping where the platform has one (Linux), else pread.
type vectorsFile struct {
	path string
	f    *os.File
	dim  int
	row  int64 // bytes per vector
	// data is the mapping of the file's first len(data) bytes (nil
	// without one); it is replaced, under the index's mu, when the index
	// grows.
	data []byte
	bufs sync.Pool // *[]float32 of dim for pread
}

func openVectorsFile(path string, dim int) (*vectorsFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, &vectorsFileError{err}
	}
	vf := &vectorsFile{path: path, f: f, dim: dim, row: int64(dim) * 4}
	vf.bufs.New = func() any {
		b := make([]float32, dim)
		return &b
	}
	return vf, nil
}

// grow extends the file to hold slots vectors and maps all of it.
func (vf *vectorsFile) grow(slots int) error {
	size := int64(slots) * vf.row
	if size <= int64(len(vf.data)) {
		return nil
	}
	fi, err := vf.f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < size {
		if err := vf.f.Truncate(size); err != nil {
			return err
		}
	}
	if !mmapVectors {
		return nil
	}
	data, err := mapFile(vf.f, size)
	if err != nil || data == nil {
		return err
	}
	old := vf.data
	vf.data = data
	return unmapFile(old)
}

// write stores v as slot s's vector.
func (vf *vectorsFile) write(s uint32, v []float32) error {
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
	if _, err := vf.f.WriteAt(b, int64(s)*vf.row); err != nil {
		return fmt.Errorf("vector: vectors file: %w", err)
	}
	return nil
}

// mapped returns slot s's vector in the mapping, or nil when it is not
// mapped.
func (vf *vectorsFile) mapped(s uint32) []float32 {
	off := int64(s) * vf.row
	if off+vf.row > int64(len(vf.data)) {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&vf.data[off])), vf.dim)
}

// read returns slot s's vector: in the mapping, or read into buf (of
// length dim).
func (vf *vectorsFile) read(s uint32, buf []float32) ([]float32, error) {
	if v := vf.mapped(s); v != nil {
		return v, nil
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(buf))), 4*len(buf))
	if _, err := vf.f.ReadAt(b, int64(s)*vf.row); err != nil {
		return nil, fmt.Errorf("vector: vectors file: %w", err)
	}
	return buf, nil
}

func (vf *vectorsFile) close() error {
	err := unmapFile(vf.data)
	vf.data = nil
	return errors.Join(err, vf.f.Close())
}

// saveVec returns slot s's vector for Save: the float vector, or under
// QuantInt8Only the vectors file's (the dequantized code without one).
func (h *HNSW[K]) saveVec(s uint32) []float32 {
	if h.only == nil {
		return h.vec(s)
	}
	return h.fullVec(s, h.loadVec(s))
}

// prefetchExact asks for the vectors that rescore is about to read, so
// that their loads (from the mapped vectors file, often a TLB miss each)
// overlap.
func (h *HNSW[K]) prefetchExact(cs []cand) {
	if h.only == nil {
		for _, c := range cs {
			prefetch(h.vec(c.id))
		}
		return
	}
	if vf := h.only.vf; vf != nil {
		for _, c := range cs {
			if v := vf.mapped(c.id); v != nil {
				prefetch(v)
			}
		}
	}
}
