package quant

import (
	"fmt"
	"math"

	"github.com/quiverml/quiver/internal/simd"
)

// DefaultInt4BlockSize is the block size QuantizeInt4 uses when given 0: 32,
// as in llama.cpp Q4_0 and the usual ONNX Runtime MatMulNBits setting.
const DefaultInt4BlockSize = 32

// Int4Blocks is a block-wise symmetric 4-bit quantization of N float32
// values. Each block of BlockSize consecutive values has one float32 scale;
// a value is stored as an unsigned nibble u in [0, 15] that stands for
// (u - 8) · scale. Two values share a byte: element 2i in the low nibble of
// Data[i], element 2i+1 in the high nibble, which is the layout of ONNX
// Runtime's MatMulNBits (bits=4, default zero point 8). The last block may
// be shorter than BlockSize.
type Int4Blocks struct {
	N         int       // number of values
	BlockSize int       // values per scale
	Scales    []float32 // one per block: ceil(N / BlockSize)
	Data      []byte    // packed nibbles: ceil(N / 2)
}

// QuantizeInt4 quantizes x block by block. Like llama.cpp Q4_0, a block's
// scale is m / -8 where m is its value of largest magnitude (sign kept), so
// that value maps exactly onto -8 and the rest of the block uses [-8, 7];
// rounding is half to even. An all-zero block gets scale 0 and decodes to
// zeros. blockSize 0 means DefaultInt4BlockSize. NaN or ±Inf in x gives
// ErrNonFinite; empty x gives an empty result.
func QuantizeInt4(x []float32, blockSize int) (*Int4Blocks, error) {
	return quantizeInt4(x, blockSize, true)
}

// quantizeInt4 is QuantizeInt4; vector says whether the SIMD kernel may
// encode the whole blocks first (benchmarks clear it to measure the Go
// loop, which is otherwise left the last block and what the kernel does
// not take).
func quantizeInt4(x []float32, blockSize int, vector bool) (*Int4Blocks, error) {
	if blockSize == 0 {
		blockSize = DefaultInt4BlockSize
	}
	if blockSize < 0 {
		return nil, fmt.Errorf("%w: int4 block size %d, want > 0", ErrShape, blockSize)
	}
	nb := (len(x) + blockSize - 1) / blockSize
	b := &Int4Blocks{N: len(x), BlockSize: blockSize, Scales: make([]float32, nb), Data: make([]byte, (len(x)+1)/2)}
	k := 0
	if vector {
		// Whole blocks, stopping before one holding NaN or ±Inf, which
		// the loop below then reports.
		k = simd.QuantizeInt4Blocks(b.Data, b.Scales, x, blockSize)
	}
	for ; k < nb; k++ {
		start := k * blockSize
		blk := x[start:min(start+blockSize, len(x))]
		var m, am float32
		bad := false
		for _, v := range blk {
			bad = bad || v-v != 0 // NaN or ±Inf
			if a := abs32(v); a > am {
				m, am = v, a
			}
		}
		if bad {
			i := firstNonFinite(blk)
			return nil, fmt.Errorf("%w: x[%d] is %v", ErrNonFinite, start+i, blk[i])
		}
		d := m / -8
		inv := float32(0)
		if d != 0 && !isNonFinite(1/d) {
			inv = 1 / d
		} else {
			d = 0 // all zero, or so small that 1/d overflows: encode zeros
		}
		b.Scales[k] = d
		j := 0
		if start&1 == 0 {
			// Aligned pairs fill whole bytes.
			out := b.Data[start>>1:]
			for ; j+2 <= len(blk); j += 2 {
				out[j>>1] = nibble(blk[j]*inv) | nibble(blk[j+1]*inv)<<4
			}
		}
		for ; j < len(blk); j++ {
			i := start + j
			u := nibble(blk[j] * inv)
			if i&1 == 0 {
				b.Data[i>>1] = b.Data[i>>1]&0xf0 | u
			} else {
				b.Data[i>>1] = b.Data[i>>1]&0x0f | u<<4
			}
		}
	}
	return b, nil
}

// nibble rounds v half to even, clamps it to [-8, 7] and returns v+8.
func nibble(v float32) byte {
	v = max(-8, min(7, v))
	return byte(int32((v+roundMagic)-roundMagic) + 8)
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// Validate checks that the lengths of Scales and Data agree with N and
// BlockSize and that every scale is finite; it returns an error wrapping
// ErrFormat otherwise. Use it on blocks read from outside the program.
func (b *Int4Blocks) Validate() error {
	if b == nil {
		return fmt.Errorf("%w: nil Int4Blocks", ErrFormat)
	}
	if b.N < 0 || b.BlockSize <= 0 {
		return fmt.Errorf("%w: int4 N=%d block size=%d, want N >= 0 and block size > 0", ErrFormat, b.N, b.BlockSize)
	}
	if want := (b.N + b.BlockSize - 1) / b.BlockSize; len(b.Scales) != want {
		return fmt.Errorf("%w: %d int4 scales, want %d for %d values in blocks of %d", ErrFormat, len(b.Scales), want, b.N, b.BlockSize)
	}
	if want := (b.N + 1) / 2; len(b.Data) != want {
		return fmt.Errorf("%w: %d int4 data bytes, want %d for %d values", ErrFormat, len(b.Data), want, b.N)
	}
	for k, s := range b.Scales {
		if isNonFinite(s) {
			return fmt.Errorf("%w: int4 scale %d is %v, want finite", ErrFormat, k, s)
		}
	}
	return nil
}

// Dequantize writes the N decoded values into dst, which must have length
// N. It validates b first.
func (b *Int4Blocks) Dequantize(dst []float32) error {
	if err := b.Validate(); err != nil {
		return err
	}
	if len(dst) != b.N {
		return fmt.Errorf("%w: dst has %d elements, want %d", ErrShape, len(dst), b.N)
	}
	b.decode(dst, simd.DequantizeInt4Blocks(dst, b.Data, b.Scales, b.BlockSize))
	return nil
}

// decode is Dequantize's Go loop, from block k on.
func (b *Int4Blocks) decode(dst []float32, k int) {
	for ; k < len(b.Scales); k++ {
		d := b.Scales[k]
		start := k * b.BlockSize
		end := min(start+b.BlockSize, b.N)
		for i := start; i < end; i++ {
			u := b.Data[i>>1] >> (uint(i&1) * 4) & 0x0f
			dst[i] = float32(int32(u)-8) * d
		}
	}
}

// Bytes returns the storage size of b: packed nibbles plus float32 scales.
func (b *Int4Blocks) Bytes() int { return len(b.Data) + 4*len(b.Scales) }
