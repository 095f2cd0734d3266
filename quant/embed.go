package quant

import (
	"fmt"
	"math"
	"math/bits"
	"sync/atomic"

	"github.com/quiverml/quiver/internal/simd"
)

// ScalarQuantizer turns float32 embeddings into int8 codes, one byte per
// dimension, like FAISS's 8-bit scalar quantizer:
//
//   - global (the default): one symmetric scale s = max|x| / 127 for all
//     dimensions and no offset, so code dot products and squared distances
//     are plain integer kernels times s² (DotInt8, L2SqInt8);
//   - per dimension: dimension d maps [min_d, max_d] onto [-127, 127]
//     (offset o_d = (min_d+max_d)/2, scale s_d = (max_d-min_d)/254), which
//     is more precise when dimensions have different spreads; distances
//     then need the per-dimension weights that Dot and L2Sq apply.
//
// Values outside the fitted range saturate at ±127. The zero value is
// ready for Fit; Fit may be called again to refit. All methods are safe
// for concurrent use: Fit publishes a new immutable fit atomically.
type ScalarQuantizer struct {
	// PerDimension selects per-dimension ranges; set it before Fit.
	PerDimension bool

	fit atomic.Pointer[sqFit]
}

type sqFit struct {
	dim      int
	perDim   bool
	scale    []float32 // len 1 (global) or dim
	inv      []float32 // 1/scale, or 0 where the scale is 0 (constant dimension)
	offset   []float32 // nil (global) or dim
	scaleSq  float32   // global: scale²
	offsetSq float32   // per dimension: Σ offset²
}

// Fit computes the ranges from vectors, which must be non-empty, all of the
// same non-zero length, and hold only finite values. On error the previous
// fit (if any) stays in place. A dimension (or, globally, a data set) that
// is constant zero gets scale 0 and always encodes to 0.
func (q *ScalarQuantizer) Fit(vectors [][]float32) error {
	if len(vectors) == 0 {
		return fmt.Errorf("%w: fit on zero vectors", ErrEmpty)
	}
	dim := len(vectors[0])
	if dim == 0 {
		return fmt.Errorf("%w: fit on zero-length vectors", ErrShape)
	}
	lo := make([]float32, dim)
	hi := make([]float32, dim)
	copy(lo, vectors[0])
	copy(hi, vectors[0])
	for i, v := range vectors {
		if len(v) != dim {
			return fmt.Errorf("%w: vector %d has %d dimensions, want %d", ErrShape, i, len(v), dim)
		}
		if j := firstNonFinite(v); j >= 0 {
			return fmt.Errorf("%w: vector %d dimension %d is %v", ErrNonFinite, i, j, v[j])
		}
		for d, x := range v {
			lo[d] = min(lo[d], x)
			hi[d] = max(hi[d], x)
		}
	}
	f := &sqFit{dim: dim, perDim: q.PerDimension}
	if !q.PerDimension {
		var a float64
		for d := range lo {
			a = math.Max(a, math.Max(-float64(lo[d]), float64(hi[d])))
		}
		s := float32(a / 127)
		f.scale, f.inv = []float32{s}, []float32{safeInv(s)}
		f.scaleSq = s * s
	} else {
		f.scale = make([]float32, dim)
		f.inv = make([]float32, dim)
		f.offset = make([]float32, dim)
		for d := range lo {
			o := float32((float64(lo[d]) + float64(hi[d])) / 2)
			s := float32((float64(hi[d]) - float64(lo[d])) / 254)
			f.offset[d], f.scale[d], f.inv[d] = o, s, safeInv(s)
			f.offsetSq += o * o
		}
	}
	q.fit.Store(f)
	return nil
}

func safeInv(s float32) float32 {
	if s == 0 || isNonFinite(1/s) {
		return 0
	}
	return 1 / s
}

func (q *ScalarQuantizer) loaded(n int, what string) (*sqFit, error) {
	f := q.fit.Load()
	if f == nil {
		return nil, ErrNotFitted
	}
	if n != f.dim {
		return nil, fmt.Errorf("%w: %s has %d dimensions, want %d", ErrShape, what, n, f.dim)
	}
	return f, nil
}

// Dim returns the fitted dimension, or 0 before Fit.
func (q *ScalarQuantizer) Dim() int {
	if f := q.fit.Load(); f != nil {
		return f.dim
	}
	return 0
}

// Scale returns the global scale (dot products of codes times Scale()²
// approximate float dot products). It returns 0 before Fit or in
// per-dimension mode.
func (q *ScalarQuantizer) Scale() float32 {
	if f := q.fit.Load(); f != nil && !f.perDim {
		return f.scale[0]
	}
	return 0
}

// Encode writes the code of v into dst; both must have the fitted
// dimension. NaN encodes as 0 and ±Inf saturate; neither is an error.
func (q *ScalarQuantizer) Encode(dst []int8, v []float32) error {
	f, err := q.loaded(len(v), "vector")
	if err != nil {
		return err
	}
	if len(dst) != f.dim {
		return fmt.Errorf("%w: code buffer has %d bytes, want %d", ErrShape, len(dst), f.dim)
	}
	if !f.perDim {
		inv := f.inv[0]
		for d, x := range v {
			dst[d] = encode1(x * inv)
		}
		return nil
	}
	for d, x := range v {
		dst[d] = encode1((x - f.offset[d]) * f.inv[d])
	}
	return nil
}

func encode1(v float32) int8 {
	if !(v > -127) { // also catches NaN
		if v != v {
			return 0
		}
		return -127
	}
	if v > 127 {
		return 127
	}
	return int8((v + roundMagic) - roundMagic)
}

// Decode writes the approximate vector of code into dst; both must have the
// fitted dimension.
func (q *ScalarQuantizer) Decode(dst []float32, code []int8) error {
	f, err := q.loaded(len(code), "code")
	if err != nil {
		return err
	}
	if len(dst) != f.dim {
		return fmt.Errorf("%w: dst has %d values, want %d", ErrShape, len(dst), f.dim)
	}
	if !f.perDim {
		return Dequantize(dst, code, max(f.scale[0], math.SmallestNonzeroFloat32), 0)
	}
	for d, c := range code {
		dst[d] = f.offset[d] + float32(c)*f.scale[d]
	}
	return nil
}

// Dot approximates the dot product of the two vectors behind codes a and b.
func (q *ScalarQuantizer) Dot(a, b []int8) (float32, error) {
	f, err := q.loaded(len(a), "code a")
	if err != nil {
		return 0, err
	}
	if len(b) != f.dim {
		return 0, fmt.Errorf("%w: code b has %d bytes, want %d", ErrShape, len(b), f.dim)
	}
	if !f.perDim {
		return float32(DotInt8(a, b)) * f.scaleSq, nil
	}
	// Σ (o + s·a)(o + s·b) = Σo² + Σ o·s·(a+b) + Σ s²·a·b
	var lin, quad float32
	b = b[:len(a)]
	for d, x := range a {
		s := f.scale[d]
		lin += f.offset[d] * s * float32(int32(x)+int32(b[d]))
		quad += s * s * float32(int32(x)*int32(b[d]))
	}
	return f.offsetSq + lin + quad, nil
}

// L2Sq approximates the squared Euclidean distance of the two vectors
// behind codes a and b.
func (q *ScalarQuantizer) L2Sq(a, b []int8) (float32, error) {
	f, err := q.loaded(len(a), "code a")
	if err != nil {
		return 0, err
	}
	if len(b) != f.dim {
		return 0, fmt.Errorf("%w: code b has %d bytes, want %d", ErrShape, len(b), f.dim)
	}
	if !f.perDim {
		return float32(L2SqInt8(a, b)) * f.scaleSq, nil
	}
	var sum float32
	b = b[:len(a)]
	for d, x := range a {
		diff := float32(int32(x)-int32(b[d])) * f.scale[d]
		sum += diff * diff
	}
	return sum, nil
}

// DotInt8 returns Σ a[i]·b[i] over the common length of a and b (extra
// elements of the longer slice are ignored). The int32 sum cannot overflow
// for lengths up to 131071. It runs the AVX2 kernel that package vector
// uses where the CPU has one.
func DotInt8(a, b []int8) int32 {
	n := min(len(a), len(b))
	return simd.DotInt8(a[:n], b[:n])
}

// L2SqInt8 returns Σ (a[i]-b[i])² over the common length of a and b. The
// int32 sum cannot overflow for lengths up to 33025.
func L2SqInt8(a, b []int8) int32 {
	n := min(len(a), len(b))
	a, b = a[:n], b[:n]
	var s0, s1, s2, s3 int32
	for len(a) >= 8 && len(b) >= 8 {
		d0 := int32(a[0]) - int32(b[0])
		d1 := int32(a[1]) - int32(b[1])
		d2 := int32(a[2]) - int32(b[2])
		d3 := int32(a[3]) - int32(b[3])
		d4 := int32(a[4]) - int32(b[4])
		d5 := int32(a[5]) - int32(b[5])
		d6 := int32(a[6]) - int32(b[6])
		d7 := int32(a[7]) - int32(b[7])
		s0 += d0*d0 + d4*d4
		s1 += d1*d1 + d5*d5
		s2 += d2*d2 + d6*d6
		s3 += d3*d3 + d7*d7
		a, b = a[8:], b[8:]
	}
	for i := range a {
		d := int32(a[i]) - int32(b[i])
		s0 += d * d
	}
	return s0 + s1 + s2 + s3
}

// BinaryCodeWords returns how many uint64 words a binary code of dim
// dimensions takes.
func BinaryCodeWords(dim int) int { return (dim + 63) / 64 }

// BinaryCodes returns the sign code of v: bit i (word i/64, bit i%64) is
// set when v[i] > 0. NaN and ±0 give 0 bits. Hamming distances between
// codes approximate angular distances between vectors.
func BinaryCodes(v []float32) []uint64 {
	return AppendBinaryCodes(make([]uint64, 0, BinaryCodeWords(len(v))), v)
}

// AppendBinaryCodes appends the sign code of v (see BinaryCodes) to dst and
// returns the extended slice; it does not allocate when dst has room.
func AppendBinaryCodes(dst []uint64, v []float32) []uint64 {
	for len(v) > 0 {
		n := min(64, len(v))
		var w uint64
		for i, x := range v[:n] {
			if x > 0 {
				w |= 1 << uint(i)
			}
		}
		dst = append(dst, w)
		v = v[n:]
	}
	return dst
}

// Hamming returns the number of differing bits between a and b over their
// common length.
func Hamming(a, b []uint64) int {
	n := min(len(a), len(b))
	a, b = a[:n], b[:n]
	var s0, s1 int
	for len(a) >= 2 && len(b) >= 2 {
		s0 += bits.OnesCount64(a[0] ^ b[0])
		s1 += bits.OnesCount64(a[1] ^ b[1])
		a, b = a[2:], b[2:]
	}
	for i := range a {
		s0 += bits.OnesCount64(a[i] ^ b[i])
	}
	return s0 + s1
}
