//go:build amd64 && !purego

package simd

import "testing"

// widths lists the settings of Wide this CPU can run: the AVX2 kernels
// alone, and the AVX-512 ones first where the CPU has them.
func widths() []bool {
	if hasAVX512 {
		return []bool{false, true}
	}
	return []bool{false}
}

// setWide sets Wide for the rest of the test.
func setWide(t *testing.T, wide bool) {
	t.Helper()
	saved := Wide
	t.Cleanup(func() { Wide = saved })
	Wide = wide
}

// kernelPath is one setting of the dispatch: the Go kernels, AVX2, or
// AVX-512 (with VNNI for int8 where the CPU has it).
type kernelPath struct {
	name        string
	accel, wide bool
}

// kernelPaths lists the paths this CPU can run.
func kernelPaths() []kernelPath {
	ps := []kernelPath{{name: "go"}}
	if hasAVX2FMA {
		ps = append(ps, kernelPath{"avx2", true, false})
		if hasAVX512 {
			ps = append(ps, kernelPath{"avx512", true, true})
		}
	}
	return ps
}

// usePath sets the dispatch to p for the rest of the benchmark.
func usePath(b testing.TB, p kernelPath) {
	savedA, savedW := Accelerated, Wide
	b.Cleanup(func() { Accelerated, Wide = savedA, savedW })
	Accelerated, Wide = p.accel, p.wide
}
