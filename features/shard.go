package features

import (
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

// A shard holds part of a view's rows in flat arrays: one slot per row,
// its values in a float32-bit slab, and an open-addressing index from key
// hash to slot.
//
// Readers take no lock and write nothing shared: they follow a sequence
// lock. A writer (holding mu) makes seq odd, changes the arrays, and makes
// seq even again; a reader loads seq, reads, and retries if seq changed or
// was odd. Every shared word is read and written with sync/atomic, so the
// scheme is race-free under the Go memory model, and on amd64 and arm64 an
// atomic load is a plain load.
type shard struct {
	seq  atomic.Uint64
	data atomic.Pointer[shardData]
	_    [48]byte // keep writer state off the readers' cache line

	mu    sync.Mutex
	count int      // slots in use or freed (high-water mark)
	free  []uint32 // freed slots
	hand  int      // CLOCK hand
	limit int      // most slots this shard may hold
	_     [64]byte
}

// shardData is one generation of a shard's arrays. Growth builds a new
// generation; readers holding the old one still read consistent (older)
// data and notice the change through seq.
type shardData struct {
	idx    []uint32 // tag<<24 | slot+1 (see entry); 0 = empty
	mask   uint64
	meta   []slotMeta
	words  []uint32 // len(meta) * stride: per row ts (2 words), null mask (2), values
	stride int
	strs   []atomic.Pointer[[]string]
}

// Row header words in the slab.
const (
	hdrTS      = 0 // event time, Unix nanoseconds (lo, hi)
	hdrPresent = 2 // bit i: feature i is non-null (lo, hi)
	hdrWords   = 4
)

// slotMeta identifies a slot's key: 32 bytes, two per cache line. Keys of
// up to 16 bytes live inline (k0, k1) and are compared without a pointer
// dereference; longer ones also keep their bytes behind key.
type slotMeta struct {
	k0, k1 atomic.Uint64        // first 16 key bytes, zero-padded
	key    atomic.Pointer[byte] // all key bytes when klen > 16
	klen   atomic.Uint32        // key length + 1; 0 = free slot
	ref    atomic.Uint32        // CLOCK reference bit, set by readers
}

// inlineKey is how many key bytes slotMeta holds inline.
const inlineKey = 16

func hashKey(key string) uint64 { return xxhash.Sum64String(key) }

// An index entry packs an 8-bit hash tag (so most probes that hit another
// key are rejected without touching its slot) and slot+1 in 24 bits: a
// shard holds at most maxShardSlots rows.
const maxShardSlots = 1<<24 - 1

// tagOf takes hash bits 40..47: the index position uses the low bits and
// the shard number the top ones (at most 16 with 1<<16 shards).
func tagOf(h uint64) uint32 { return uint32(h>>40&0xff) << 24 }

func entry(tag uint32, slot int) uint32 { return tag | uint32(slot+1) }

func entryTag(e uint32) uint32 { return e &^ (1<<24 - 1) }

func entrySlot(e uint32) int { return int(e&(1<<24-1)) - 1 }

// keyWords returns the first 16 bytes of key, zero-padded, as two words.
func keyWords(key string) (uint64, uint64) {
	var b [inlineKey]byte
	copy(b[:], key)
	return binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])
}

func rowStride(words int) int { return (hdrWords + words + 1) &^ 1 }

func newShardData(slots, words int, strings bool) *shardData {
	n := 8
	for n*3 < slots*4 {
		n *= 2
	}
	stride := rowStride(words)
	d := &shardData{
		idx:    make([]uint32, n),
		mask:   uint64(n - 1),
		meta:   make([]slotMeta, slots),
		words:  make([]uint32, slots*stride),
		stride: stride,
	}
	if strings {
		d.strs = make([]atomic.Pointer[[]string], slots)
	}
	return d
}

// keyString returns the slot's key (writer side, under the shard lock).
func (m *slotMeta) keyString() string {
	n := int(m.klen.Load())
	if n == 0 {
		return ""
	}
	n--
	if n > inlineKey {
		return unsafe.String(m.key.Load(), n)
	}
	var b [inlineKey]byte
	binary.LittleEndian.PutUint64(b[:8], m.k0.Load())
	binary.LittleEndian.PutUint64(b[8:], m.k1.Load())
	return string(b[:n])
}

// setKey stores key into the slot (inside a write section).
func (m *slotMeta) setKey(key string) {
	a, b := keyWords(key)
	m.k0.Store(a)
	m.k1.Store(b)
	if len(key) > inlineKey {
		kb := []byte(key)
		m.key.Store(unsafe.SliceData(kb))
	} else {
		m.key.Store(nil)
	}
	m.klen.Store(uint32(len(key)) + 1)
}

// matches reports whether the slot holds key (q0, q1 from keyWords). For
// long keys it dereferences the stored bytes only after checking that no
// write began since s1, so pointer and length are consistent.
func (m *slotMeta) matches(sh *shard, s1 uint64, key string, q0, q1 uint64) (ok, torn bool) {
	if int(m.klen.Load()) != len(key)+1 || m.k0.Load() != q0 || m.k1.Load() != q1 {
		return false, false
	}
	if len(key) <= inlineKey {
		return true, false
	}
	p := m.key.Load()
	if sh.seq.Load() != s1 || p == nil {
		return false, true
	}
	return unsafe.String(p, len(key)) == key, false
}

func (d *shardData) ts(slot int) int64 {
	b := slot * d.stride
	return int64(uint64(atomic.LoadUint32(&d.words[b+hdrTS])) | uint64(atomic.LoadUint32(&d.words[b+hdrTS+1]))<<32)
}

func (d *shardData) present(slot int) uint64 {
	b := slot * d.stride
	return uint64(atomic.LoadUint32(&d.words[b+hdrPresent])) | uint64(atomic.LoadUint32(&d.words[b+hdrPresent+1]))<<32
}

func (d *shardData) values(slot, words int) []uint32 {
	b := slot*d.stride + hdrWords
	return d.words[b : b+words]
}

// findLocked returns the slot and index position of key (writer side,
// under mu: no concurrent writes).
func (d *shardData) findLocked(h uint64, key string) (slot, pos int) {
	tag := tagOf(h)
	p := h & d.mask
	for range len(d.idx) {
		e := atomic.LoadUint32(&d.idx[p])
		if e == 0 {
			return -1, int(p)
		}
		if entryTag(e) == tag {
			s := entrySlot(e)
			if d.meta[s].keyString() == key {
				return s, int(p)
			}
		}
		p = (p + 1) & d.mask
	}
	return -1, -1
}

// torn is the result of find when a concurrent write was detected.
const torn = -2

// find is the reader-side lookup: it returns the slot, -1 for absent, or
// torn when seq moved away from s1.
func (d *shardData) find(sh *shard, s1 uint64, h uint64, key string, q0, q1 uint64) int {
	tag := tagOf(h)
	p := h & d.mask
	for range len(d.idx) {
		e := atomic.LoadUint32(&d.idx[p])
		if e == 0 {
			return -1
		}
		if entryTag(e) == tag {
			s := entrySlot(e)
			if s >= len(d.meta) {
				return torn
			}
			ok, bad := d.meta[s].matches(sh, s1, key, q0, q1)
			if bad {
				return torn
			}
			if ok {
				return s
			}
		}
		p = (p + 1) & d.mask
	}
	return torn
}

// spin waits for a writer to finish.
func spin(attempt int) {
	if attempt > 4 {
		runtime.Gosched()
	}
}

// removeLocked deletes the index entry at pos with backward-shift
// deletion (no tombstones). Called inside a write section.
func (d *shardData) removeLocked(pos int) {
	i := uint64(pos)
	j := i
	for {
		j = (j + 1) & d.mask
		e := atomic.LoadUint32(&d.idx[j])
		if e == 0 {
			break
		}
		home := hashKey(d.meta[entrySlot(e)].keyString()) & d.mask
		if (j-home)&d.mask >= (j-i)&d.mask {
			atomic.StoreUint32(&d.idx[i], e)
			i = j
		}
	}
	atomic.StoreUint32(&d.idx[i], 0)
}

// insertLocked adds an index entry for slot. Called inside a write
// section; the index always has free entries (load <= 3/4).
func (d *shardData) insertLocked(h uint64, slot int) {
	p := h & d.mask
	for atomic.LoadUint32(&d.idx[p]) != 0 {
		p = (p + 1) & d.mask
	}
	atomic.StoreUint32(&d.idx[p], entry(tagOf(h), slot))
}

// grownLocked returns a copy of d with room for slots rows.
func (d *shardData) grownLocked(slots, words int) *shardData {
	n := newShardData(slots, words, d.strs != nil)
	copy(n.words, d.words) // the writer is the only one writing d.words
	for i := range d.meta {
		o, m := &d.meta[i], &n.meta[i]
		m.k0.Store(o.k0.Load())
		m.k1.Store(o.k1.Load())
		m.key.Store(o.key.Load())
		m.klen.Store(o.klen.Load())
		m.ref.Store(o.ref.Load())
		if d.strs != nil {
			n.strs[i].Store(d.strs[i].Load())
		}
		if o.klen.Load() != 0 {
			n.insertLocked(hashKey(o.keyString()), i)
		}
	}
	return n
}

// clearSlotLocked marks a slot free. Called inside a write section.
func (d *shardData) clearSlotLocked(slot int) {
	m := &d.meta[slot]
	m.key.Store(nil)
	m.klen.Store(0)
	m.k0.Store(0)
	m.k1.Store(0)
	m.ref.Store(0)
	b := slot * d.stride
	for j := range hdrWords {
		atomic.StoreUint32(&d.words[b+j], 0)
	}
	if d.strs != nil {
		d.strs[slot].Store(nil)
	}
}
