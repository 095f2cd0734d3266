package vector

import "math"

// Quantization selects how the HNSW index stores the vectors its search
// walks over.
type Quantization uint8

// Quantizations.
const (
	// QuantNone walks float32 vectors (4 bytes per dimension).
	QuantNone Quantization = iota
	// QuantInt8 also keeps an int8 code per vector (1 byte per dimension
	// plus its scale and squared norm): the base-layer beam search computes
	// distances on the codes, a quarter of the memory traffic, and the
	// best candidates (at least Options.RescoreFactor*k) are re-scored on
	// the float vectors before the k results are chosen. The float vectors
	// stay in memory for re-scoring, Get and graph construction, so this
	// adds about dim+8 bytes per vector; its gain is search speed on large
	// sets whose float vectors do not fit the CPU caches.
	QuantInt8
)

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

// qdistance approximates the distance from a quantized query to slot s.
func (h *HNSW[K]) qdistance(q *qquery, s uint32) float32 {
	dp := float32(dotInt8(q.code, h.code(s))) * q.scale * h.cscale[s]
	switch h.opts.Metric {
	case L2:
		return q.norm2 + h.norm2[s] - 2*dp
	case Cosine:
		return 1 - dp
	}
	return -dp
}

// setCode quantizes slot s's vector (the caller holds mu and owns s).
func (h *HNSW[K]) setCode(s uint32) {
	v := h.vec(s)
	h.cscale[s] = encodeInt8(h.code(s), v)
	h.norm2[s] = dotGo(v, v)
}
