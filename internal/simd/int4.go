package simd

// Block-wise int4 kernels: the encoding of package quant's Int4Blocks
// (QuantizeInt4 defines it element by element), over whole blocks whose
// size is a multiple of 16. Each returns how many blocks it did: 0 when
// the CPU lacks the instructions or the block size does not suit them, so
// the caller's Go loop does the rest.

// int4Blocks is how many whole blocks of blockSize fit n values, nb
// scales and nbytes packed bytes, or 0 for a block size the kernels do
// not take.
func int4Blocks(n, nb, nbytes, blockSize int) int {
	if !Convert || blockSize <= 0 || blockSize%16 != 0 {
		return 0
	}
	return min(nb, n/blockSize, nbytes/(blockSize/2))
}

// QuantizeInt4Blocks encodes x block by block into scales and data
// (block k's codes start at data[k·blockSize/2]) and returns how many
// blocks it encoded. It stops before the first block holding a NaN or
// ±Inf.
func QuantizeInt4Blocks(data []byte, scales, x []float32, blockSize int) int {
	nb := int4Blocks(len(x), len(scales), len(data), blockSize)
	if nb == 0 {
		return 0
	}
	return quantizeInt4(&data[0], &scales[0], &x[0], nb, blockSize)
}

// DequantizeInt4Blocks decodes whole blocks of data and scales into dst
// and returns how many blocks it decoded.
func DequantizeInt4Blocks(dst []float32, data []byte, scales []float32, blockSize int) int {
	nb := int4Blocks(len(dst), len(scales), len(data), blockSize)
	if nb == 0 {
		return 0
	}
	dequantizeInt4(&dst[0], &data[0], &scales[0], nb, blockSize)
	return nb
}
