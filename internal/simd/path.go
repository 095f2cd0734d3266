package simd

import "os"

// requested returns the kernel path QUIVER_SIMD asks for: "purego" (the Go
// kernels only), "avx2" (no AVX-512 kernel) or "avx512" (the default, also
// for an unset or unknown value: the widest kernels the CPU has).
func requested() string {
	switch v := os.Getenv("QUIVER_SIMD"); v {
	case "purego", "avx2":
		return v
	}
	return "avx512"
}

// Active names the kernels that run in this process, for benchmark
// reports and logs: "purego", "avx2", "avx512" or "avx512-vnni" (the int8
// dot product then uses AVX512-VNNI).
func Active() string {
	switch {
	case !Accelerated:
		return "purego"
	case !Wide:
		return "avx2"
	case vnni:
		return "avx512-vnni"
	}
	return "avx512"
}
