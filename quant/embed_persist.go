package quant

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/quiverml/quiver/internal/checkfile"
)

// scalarQuantizerMagic starts a serialized ScalarQuantizer.
const scalarQuantizerMagic = "QSQ1"

const (
	sqHeaderSize = 12 // magic, version, flags, reserved, dim
	sqMaxDim     = 1 << 24
)

// MarshalBinary encodes the fitted ranges (little-endian): a 12-byte header
// ("QSQ1", version 1, flags, 2 reserved bytes, uint32 dimension), the
// float32 scales (one, or one per dimension), the float32 offsets in
// per-dimension mode, and an xxhash64 checksum of everything before it.
// It returns ErrNotFitted before Fit.
func (q *ScalarQuantizer) MarshalBinary() ([]byte, error) {
	f := q.fit.Load()
	if f == nil {
		return nil, ErrNotFitted
	}
	b := make([]byte, sqHeaderSize, sqHeaderSize+4*(len(f.scale)+len(f.offset))+8)
	copy(b, scalarQuantizerMagic)
	b[4] = 1
	if f.perDim {
		b[5] = 1
	}
	binary.LittleEndian.PutUint32(b[8:], uint32(f.dim))
	for _, s := range f.scale {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(s))
	}
	for _, o := range f.offset {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(o))
	}
	return checkfile.Append(b), nil
}

// UnmarshalBinary replaces the fit with one encoded by MarshalBinary,
// including its mode (PerDimension is set to match). Truncated, corrupted
// or otherwise invalid data gives an error wrapping ErrFormat and leaves q
// unchanged.
func (q *ScalarQuantizer) UnmarshalBinary(data []byte) error {
	if len(data) < sqHeaderSize+checkfile.TrailerSize || string(data[:4]) != scalarQuantizerMagic {
		return fmt.Errorf("%w: not a serialized ScalarQuantizer (want %q header and checksum, got %d bytes)", ErrFormat, scalarQuantizerMagic, len(data))
	}
	// The checksum covers the header, so nothing in it is trusted before
	// the checksum is.
	body, err := checkfile.Verify(data)
	if err != nil {
		return fmt.Errorf("%w: ScalarQuantizer: %v", ErrFormat, err)
	}
	if body[4] != 1 {
		return fmt.Errorf("%w: ScalarQuantizer format version %d, want 1", ErrFormat, body[4])
	}
	if body[5] > 1 || body[6] != 0 || body[7] != 0 {
		return fmt.Errorf("%w: ScalarQuantizer flags %#x %#x %#x, want 0 or 1 and zero reserved bytes", ErrFormat, body[5], body[6], body[7])
	}
	perDim := body[5] == 1
	dim := int(binary.LittleEndian.Uint32(body[8:]))
	if dim <= 0 || dim > sqMaxDim {
		return fmt.Errorf("%w: ScalarQuantizer dimension %d, want 1..%d", ErrFormat, dim, sqMaxDim)
	}
	nScale, nOff := 1, 0
	if perDim {
		nScale, nOff = dim, dim
	}
	if want := sqHeaderSize + 4*(nScale+nOff); len(body) != want {
		return fmt.Errorf("%w: ScalarQuantizer of dimension %d takes %d bytes, got %d", ErrFormat, dim, want+checkfile.TrailerSize, len(data))
	}
	f := &sqFit{dim: dim, perDim: perDim, scale: make([]float32, nScale), inv: make([]float32, nScale)}
	p := body[sqHeaderSize:]
	for i := range f.scale {
		s := math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
		if isNonFinite(s) || s < 0 {
			return fmt.Errorf("%w: ScalarQuantizer scale %d is %v, want finite and >= 0", ErrFormat, i, s)
		}
		f.scale[i], f.inv[i] = s, safeInv(s)
	}
	if perDim {
		p = p[4*nScale:]
		f.offset = make([]float32, dim)
		for i := range f.offset {
			o := math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
			if isNonFinite(o) {
				return fmt.Errorf("%w: ScalarQuantizer offset %d is %v, want finite", ErrFormat, i, o)
			}
			f.offset[i] = o
			f.offsetSq += o * o
		}
	} else {
		f.scaleSq = f.scale[0] * f.scale[0]
	}
	q.PerDimension = perDim
	q.fit.Store(f)
	return nil
}
