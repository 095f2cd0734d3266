package serving

// ZeroTensor returns a tensor of the given element type and shape filled
// with zeros (empty strings, false). The tensor's Shape is shape itself, not
// a copy. Its Data is nil for element types that have no Go slice type.
func ZeroTensor(t ElementType, shape []int64) Tensor {
	n := 1
	for _, d := range shape {
		n *= int(max(d, 0))
	}
	return Tensor{Shape: shape, Data: zeros(t, n)}
}

// zeros returns a zero-filled slice of n elements of type t, or nil.
func zeros(t ElementType, n int) any {
	switch t {
	case Float32:
		return make([]float32, n)
	case Float64:
		return make([]float64, n)
	case Int8:
		return make([]int8, n)
	case Uint8:
		return make([]uint8, n)
	case Int16:
		return make([]int16, n)
	case Uint16:
		return make([]uint16, n)
	case Int32:
		return make([]int32, n)
	case Uint32:
		return make([]uint32, n)
	case Int64:
		return make([]int64, n)
	case Uint64:
		return make([]uint64, n)
	case Bool:
		return make([]bool, n)
	case String:
		return make([]string, n)
	case Float16:
		return make([]F16, n)
	case BFloat16:
		return make([]BF16, n)
	case Complex64:
		return make([]complex64, n)
	case Complex128:
		return make([]complex128, n)
	}
	return nil
}
