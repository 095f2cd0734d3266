package vector

import (
	"fmt"
	"math"

	"github.com/quiverml/quiver/internal/simd"
)

// Quantization selects how the HNSW index stores the vectors its search
// walks over.
type Quantization uint8

// Quantizations.
const (
	// QuantNone walks float32 vectors (4 bytes per dimension).
	QuantNone Quantization = iota
	// QuantInt8 also keeps an int8 code per vector (1 byte per dimension
	// plus its scale and, under L2, squared norm): the base-layer beam
	// search computes distances on the codes, a quarter of the memory
	// traffic, and the best candidates (at least Options.RescoreFactor*k)
	// are re-scored on the float vectors before the k results are chosen.
	// The float vectors stay in memory for re-scoring, Get and graph
	// construction, so this adds about dim+8 bytes per vector; its gain is
	// search speed on large sets whose float vectors do not fit the CPU
	// caches. QuantInt8Only is the mode that saves memory.
	QuantInt8
	// QuantInt8Only keeps only the int8 codes (1 byte per dimension plus a
	// float32 scale, and under L2 the float32 squared norm) and the graph
	// in memory: the float vectors are not held, which makes the index
	// about a third of QuantNone's size at dimension 384 and half of it at
	// dimension 128 (where the graph's links weigh as much as the codes).
	//
	// Inserts link with asymmetric distances (the float vector being
	// inserted against the stored codes), and searches walk every layer the
	// same way (the float query against the codes: only the stored side
	// carries quantization error). The best max(ef, RescoreFactor*k)
	// candidates are then re-scored: on the full-precision vectors of
	// Options.VectorsFile when it is set (a file on disk, memory-mapped
	// read-only, see VectorsFile). Without one they keep the code
	// distances of the walk: results and their distances are approximate.
	//
	// Get returns the vector read from VectorsFile, or without one the
	// dequantized code (scale times code): an approximation of the vector
	// added, within scale/2 per element. Save writes the same vectors, so a
	// file saved by an index without VectorsFile holds the dequantized
	// codes, not the original vectors.
	QuantInt8Only
)

// String returns the constant's name.
func (q Quantization) String() string {
	switch q {
	case QuantNone:
		return "QuantNone"
	case QuantInt8:
		return "QuantInt8"
	case QuantInt8Only:
		return "QuantInt8Only"
	}
	return fmt.Sprintf("Quantization(%d)", uint8(q))
}

// OptionError reports an option value, or a combination of options, that
// an index refuses: Option names the field, Value holds what was given and
// Want says what is accepted. It matches ErrOptions under errors.Is.
type OptionError struct {
	Option string
	Value  any
	Want   string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("%v: %s is %v, want %s", ErrOptions, e.Option, e.Value, e.Want)
}

// Unwrap returns ErrOptions.
func (e *OptionError) Unwrap() error { return ErrOptions }

// checkStorage validates Quantization and VectorsFile.
func (o Options) checkStorage() error {
	if o.Quantization > QuantInt8Only {
		return &OptionError{"Quantization", o.Quantization, "QuantNone, QuantInt8 or QuantInt8Only"}
	}
	if o.VectorsFile != "" && o.Quantization != QuantInt8Only {
		return &OptionError{"Quantization", o.Quantization, fmt.Sprintf("QuantInt8Only when VectorsFile is set (%q)", o.VectorsFile)}
	}
	return nil
}

// encodeInt8 writes v's symmetric per-vector code to dst and returns the
// scale (v[i] ~ scale*dst[i]). Per-vector scales need no training data, so
// streaming inserts quantize as well as bulk loads.
func encodeInt8(dst []int8, v []float32) float32 {
	var maxAbs float32
	for _, x := range v {
		if x < 0 {
			x = -x
		}
		maxAbs = max(maxAbs, x)
	}
	if maxAbs == 0 {
		clear(dst)
		return 0
	}
	scale := maxAbs / 127
	inv := 1 / scale
	for i, x := range v {
		q := math.Round(float64(x * inv))
		dst[i] = int8(max(-127, min(127, q)))
	}
	return scale
}

// decodeInt8 writes scale*code to dst.
func decodeInt8(dst []float32, code []int8, scale float32) {
	for i, c := range code {
		dst[i] = scale * float32(c)
	}
}

// qquery is a query prepared for code distances.
type qquery struct {
	code  []int8
	scale float32
	norm2 float32
}

// code returns slot s's int8 code.
func (h *HNSW[K]) code(s uint32) []int8 {
	off := int(s) * h.dim
	return h.codes[off : off+h.dim : off+h.dim]
}

// slotNorm2 returns slot s's code's squared norm (read only under L2, the
// one metric that keeps norms).
func (h *HNSW[K]) slotNorm2(s uint32) float32 { return h.norm2[s] }

// qdistance approximates the distance from a quantized query to slot s.
func (h *HNSW[K]) qdistance(q *qquery, s uint32) float32 {
	dp := float32(dotInt8(q.code, h.code(s))) * q.scale * h.cscale[s]
	switch h.opts.Metric {
	case L2:
		return q.norm2 + h.slotNorm2(s) - 2*dp
	case Cosine:
		return 1 - dp
	}
	return -dp
}

// adistance is the asymmetric distance from the float vector q to slot
// s's code: exact for the dequantized code.
func (h *HNSW[K]) adistance(q []float32, s uint32) float32 {
	c := h.code(s)
	if h.opts.Metric == L2 {
		return simd.L2F32Int8(q, c, h.cscale[s])
	}
	dp := simd.DotF32Int8(q, c) * h.cscale[s]
	if h.opts.Metric == Cosine {
		return 1 - dp
	}
	return -dp
}

// cdistance is the symmetric distance between the codes of slots a and b.
func (h *HNSW[K]) cdistance(a, b uint32) float32 {
	dp := float32(dotInt8(h.code(a), h.code(b))) * h.cscale[a] * h.cscale[b]
	switch h.opts.Metric {
	case L2:
		return h.slotNorm2(a) + h.slotNorm2(b) - 2*dp
	case Cosine:
		return 1 - dp
	}
	return -dp
}

// setCode quantizes slot s's float vector (QuantInt8; the caller holds mu
// and owns s).
func (h *HNSW[K]) setCode(s uint32) { h.setCodeFrom(s, h.vec(s)) }

// setCodeFrom quantizes v as slot s's code. The squared norm is the
// dequantized code's, so that code distances are those between
// dequantized vectors (never negative between two codes), and a code
// saved dequantized and loaded again is stored exactly as before.
func (h *HNSW[K]) setCodeFrom(s uint32, v []float32) {
	c := h.code(s)
	sc := encodeInt8(c, v)
	h.cscale[s] = sc
	if h.norm2 != nil {
		h.norm2[s] = sc * sc * float32(dotInt8(c, c))
	}
}
