package simd

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// lengths covers every tail of the 32-, 16- and 8-wide loops (0..70) and
// odd lengths around the common embedding sizes.
func lengths() []int {
	var ns []int
	for n := 0; n <= 70; n++ {
		ns = append(ns, n)
	}
	return append(ns, 95, 97, 127, 129, 255, 257, 383, 384, 385, 767, 769, 1023, 1537)
}

type floatKernel struct {
	name string
	f    func(a, b []float32) float32
}

// floatKernels lists every float32 path this machine runs.
func floatKernels(l2 bool) []floatKernel {
	if l2 {
		ks := []floatKernel{{"go", L2SqGo}, {"dispatch", L2Sq}}
		if Accelerated {
			ks = append(ks, floatKernel{"asm", L2SqAsm})
		}
		return append(ks, pathFloatKernels(true)...)
	}
	ks := []floatKernel{{"go", DotGo}, {"dispatch", Dot}}
	if Accelerated {
		ks = append(ks, floatKernel{"asm", DotAsm})
	}
	return append(ks, pathFloatKernels(false)...)
}

func TestFloatKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range lengths() {
		// Operands start at every offset modulo 4 floats, so the
		// assembly's unaligned loads are exercised, and b is longer than a.
		for off := range 4 {
			a := make([]float32, n+off)[off:]
			b := make([]float32, n+off+3)[off:]
			for i := range a {
				a[i] = r.Float32()*2 - 1
				b[i] = r.Float32()*2 - 1
			}
			b[n] = 1e30 // past len(a): must not be read
			var wantL2, wantDot float64
			for i := range a {
				d := float64(a[i]) - float64(b[i])
				wantL2 += d * d
				wantDot += float64(a[i]) * float64(b[i])
			}
			// float32 sums of n terms of magnitude <= 4 differ from the
			// exact sum by far less than this.
			tol := 1e-5 * float64(n+1)
			for _, k := range floatKernels(true) {
				require.InDelta(t, wantL2, k.f(a, b), tol, "l2 %s n=%d off=%d", k.name, n, off)
			}
			for _, k := range floatKernels(false) {
				require.InDelta(t, wantDot, k.f(a, b), tol, "dot %s n=%d off=%d", k.name, n, off)
			}
		}
	}
}

// TestFloatKernelsExactSmall uses small integers, whose float32 sums are
// exact in any order: every path must give the same bits.
func TestFloatKernelsExactSmall(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range lengths() {
		a := make([]float32, n)
		b := make([]float32, n)
		var l2, dot float32
		for i := range a {
			a[i] = float32(r.IntN(17) - 8)
			b[i] = float32(r.IntN(17) - 8)
			l2 += (a[i] - b[i]) * (a[i] - b[i])
			dot += a[i] * b[i]
		}
		for _, k := range floatKernels(true) {
			require.Equal(t, l2, k.f(a, b), "l2 %s n=%d", k.name, n)
		}
		for _, k := range floatKernels(false) {
			require.Equal(t, dot, k.f(a, b), "dot %s n=%d", k.name, n)
		}
	}
}

func TestFloatKernelsSpecial(t *testing.T) {
	inf := float32(math.Inf(1))
	negZero := float32(math.Copysign(0, -1))
	for _, n := range []int{1, 8, 9, 15, 16, 17, 33, 63, 64, 65, 67, 130} {
		// A special value in the first lane, the middle, and the tail.
		for _, at := range []int{0, n / 2, n - 1} {
			a := make([]float32, n)
			b := make([]float32, n)
			a[at] = inf
			for _, k := range floatKernels(true) {
				require.True(t, math.IsInf(float64(k.f(a, b)), 1), "l2 %s n=%d at=%d", k.name, n, at)
			}
			a[at] = float32(math.NaN())
			for _, k := range floatKernels(false) {
				require.True(t, math.IsNaN(float64(k.f(a, b))), "dot %s n=%d at=%d", k.name, n, at)
			}
			// Inf·0 is NaN; -0 operands give +0.
			a[at], b[at] = inf, 0
			for _, k := range floatKernels(false) {
				require.True(t, math.IsNaN(float64(k.f(a, b))), "dot inf·0 %s n=%d at=%d", k.name, n, at)
			}
			a[at], b[at] = negZero, negZero
			for _, k := range floatKernels(true) {
				require.Equal(t, uint32(0), math.Float32bits(k.f(a, b)), "l2 -0 %s n=%d", k.name, n)
			}
			// Overflow of one term is +Inf in every summation order.
			a[at], b[at] = 3e38, -3e38
			for _, k := range floatKernels(true) {
				require.True(t, math.IsInf(float64(k.f(a, b)), 1), "l2 overflow %s n=%d", k.name, n)
			}
		}
	}
}

// FuzzFloatKernels compares every float32 path with the exact sum on
// arbitrary bit patterns: NaN whenever an operand is NaN, and, where no
// partial sum can overflow, a result within a relative bound of the sum
// of the terms' magnitudes.
func FuzzFloatKernels(f *testing.F) {
	f.Add([]byte{0, 0, 128, 63, 0, 0, 0, 64}, uint8(0))
	f.Add(make([]byte, 8*67), uint8(3))
	f.Fuzz(func(t *testing.T, raw []byte, off uint8) {
		n := len(raw) / 8
		buf := make([]float32, 2*n+int(off%8))
		a, b := buf[off%8:][:n], buf[int(off%8)+n:]
		for i := range n {
			a[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[8*i:]))
			b[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[8*i+4:]))
		}
		nan := false
		for i := range a {
			nan = nan || a[i] != a[i] || b[i] != b[i]
		}
		for _, l2 := range []bool{true, false} {
			var want, mag float64
			for i := range a {
				term := float64(a[i]) * float64(b[i])
				if l2 {
					d := float64(a[i]) - float64(b[i])
					term = d * d
				}
				want += term
				mag += math.Abs(term)
			}
			for _, k := range floatKernels(l2) {
				got := k.f(a, b)
				switch {
				case nan:
					require.True(t, got != got, "%s l2=%v: a NaN operand, got %v", k.name, l2, got)
				case mag <= math.MaxFloat32/4:
					// No partial sum can overflow (Inf operands make mag
					// infinite): the sums differ only by rounding.
					require.InDelta(t, want, float64(got), 1e-6*float64(n+1)*mag+1e-30, "%s l2=%v n=%d", k.name, l2, n)
				}
				// Otherwise which of ±Inf or NaN comes out depends on the
				// summation order.
			}
		}
	})
}

// FuzzDotInt8 compares every int8 path with the Go reference: exact.
func FuzzDotInt8(f *testing.F) {
	f.Add([]byte{0x80, 0x80, 0x7f, 0x80}, uint8(1))
	f.Add(make([]byte, 2*131), uint8(5))
	f.Fuzz(func(t *testing.T, raw []byte, off uint8) {
		n := len(raw) / 2
		buf := make([]int8, 2*n+int(off%8))
		a, b := buf[off%8:][:n], buf[int(off%8)+n:]
		for i := range n {
			a[i], b[i] = int8(raw[2*i]), int8(raw[2*i+1])
		}
		want := DotInt8Go(a, b)
		if n <= 131071 { // past that the int32 sum may wrap
			require.Equal(t, int64(want), refDotInt8(a, b))
		}
		for _, k := range int8Kernels() {
			require.Equal(t, want, k.f(a, b), "%s n=%d", k.name, n)
		}
	})
}

type int8Kernel struct {
	name string
	f    func(a, b []int8) int32
}

func int8Kernels() []int8Kernel {
	ks := []int8Kernel{{"go", DotInt8Go}, {"by4", dotInt8By4}, {"dispatch", DotInt8}}
	if Accelerated {
		ks = append(ks, int8Kernel{"asm", DotInt8Asm})
	}
	return append(ks, pathInt8Kernels()...)
}

// refDotInt8 is the plain loop the kernels must equal, in int64.
func refDotInt8(a, b []int8) int64 {
	var s int64
	for i := range a {
		s += int64(a[i]) * int64(b[i])
	}
	return s
}

func TestDotInt8(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range lengths() {
		for off := range 3 {
			a := make([]int8, n+off)[off:]
			b := make([]int8, n+off+2)[off:]
			for i := range a {
				a[i] = int8(r.IntN(256) - 128)
				b[i] = int8(r.IntN(256) - 128)
			}
			b[n] = 127 // past len(a): must not be read
			want := refDotInt8(a, b)
			for _, k := range int8Kernels() {
				require.Equal(t, want, int64(k.f(a, b)), "%s n=%d off=%d", k.name, n, off)
			}
		}
	}
}

func TestDotInt8Extremes(t *testing.T) {
	for _, n := range []int{1, 15, 16, 17, 31, 32, 33, 384, 131071} {
		lo := make([]int8, n)
		hi := make([]int8, n)
		for i := range lo {
			lo[i], hi[i] = -128, 127
		}
		for _, k := range int8Kernels() {
			require.Equal(t, refDotInt8(lo, lo), int64(k.f(lo, lo)), "%s -128·-128 n=%d", k.name, n)
			require.Equal(t, refDotInt8(lo, hi), int64(k.f(lo, hi)), "%s -128·127 n=%d", k.name, n)
		}
	}
	// Past 131071 the int32 sum wraps; every path wraps alike.
	n := 1 << 18
	lo := make([]int8, n)
	for i := range lo {
		lo[i] = -128
	}
	want := int32(refDotInt8(lo, lo))
	for _, k := range int8Kernels() {
		require.Equal(t, want, k.f(lo, lo), k.name)
	}
}

// TestShortBPanics: an operand b shorter than a is a bounds panic, never a
// read past b's memory.
func TestShortBPanics(t *testing.T) {
	a := make([]float32, 9)
	c := make([]int8, 9)
	for _, f := range []func(){
		func() { L2Sq(a, a[:8:8]) },
		func() { Dot(a, a[:8:8]) },
		func() { L2SqGo(a, a[:8:8]) },
		func() { DotGo(a, a[:8:8]) },
		func() { L2SqAsm(a, a[:8:8]) },
		func() { DotAsm(a, a[:8:8]) },
		func() { DotInt8(c, c[:8:8]) },
		func() { DotInt8Go(c, c[:8:8]) },
		func() { DotInt8Asm(c, c[:8:8]) },
	} {
		require.Panics(t, f)
	}
}

func TestPrefetch(t *testing.T) {
	// Prefetches only hint the cache: they must accept any slice.
	Prefetch(nil)
	Prefetch(make([]float32, 129))
	PrefetchInt8(nil)
	PrefetchInt8(make([]int8, 65))
	PrefetchUint32(nil)
	PrefetchUint32(make([]uint32, 33))
}

// BenchmarkKernels runs the dispatching kernels (L2Sq, Dot, DotInt8) on
// each path this CPU has, set through Accelerated and Wide as
// QUIVER_SIMD sets them, so every path pays the same call. Bytes count
// both operands; sub-benchmarks alternate under -count.
func BenchmarkKernels(b *testing.B) {
	for _, n := range []int{128, 384, 768, 1536, 1 << 15} {
		r := rand.New(rand.NewPCG(1, 2))
		x := make([]float32, n)
		y := make([]float32, n)
		c := make([]int8, n)
		d := make([]int8, n)
		for i := range x {
			x[i], y[i] = r.Float32(), r.Float32()
			c[i], d[i] = int8(r.IntN(256)-128), int8(r.IntN(256)-128)
		}
		for _, op := range []string{"l2", "dot", "int8"} {
			for _, p := range kernelPaths() {
				b.Run(op+"/dim="+strconv.Itoa(n)+"/path="+p.name, func(b *testing.B) {
					usePath(b, p)
					b.ReportAllocs()
					switch op {
					case "l2":
						b.SetBytes(int64(8 * n))
						var s float32
						for b.Loop() {
							s += L2Sq(x, y)
						}
						sinkF = s
					case "dot":
						b.SetBytes(int64(8 * n))
						var s float32
						for b.Loop() {
							s += Dot(x, y)
						}
						sinkF = s
					default:
						b.SetBytes(int64(2 * n))
						var s int32
						for b.Loop() {
							s += DotInt8(c, d)
						}
						sinkI = s
					}
				})
			}
		}
	}
}

func BenchmarkDotInt8(b *testing.B) {
	for _, n := range []int{128, 384} {
		r := rand.New(rand.NewPCG(1, 2))
		x := make([]int8, n)
		y := make([]int8, n)
		for i := range x {
			x[i], y[i] = int8(r.IntN(255)-127), int8(r.IntN(255)-127)
		}
		for _, k := range int8Kernels() {
			b.Run(k.name+"/dim="+strconv.Itoa(n), func(b *testing.B) {
				b.ReportAllocs()
				var s int32
				for b.Loop() {
					s += k.f(x, y)
				}
				sinkI = s
			})
		}
	}
}

var (
	sinkF float32
	sinkI int32
)

// dotInt8By4 is a 4-way unrolled int8 kernel, the other portable shape
// measured: BenchmarkDotInt8 shows DotInt8Go's 16-wide rows ahead of it.
func dotInt8By4(a, b []int8) int32 {
	n := len(a)
	b = b[:n]
	var s0, s1, s2, s3 int32
	i := 0
	for ; i+4 <= n; i += 4 {
		s0 += int32(a[i]) * int32(b[i])
		s1 += int32(a[i+1]) * int32(b[i+1])
		s2 += int32(a[i+2]) * int32(b[i+2])
		s3 += int32(a[i+3]) * int32(b[i+3])
	}
	for ; i < n; i++ {
		s0 += int32(a[i]) * int32(b[i])
	}
	return s0 + s1 + s2 + s3
}

// BenchmarkKernelsCold computes distances from one query to rows of a
// 48 MB matrix in random order, as a graph search does: every row comes
// from memory, not cache. Bytes count the row read.
func BenchmarkKernelsCold(b *testing.B) {
	const dim, rows = 768, 16384
	r := rand.New(rand.NewPCG(3, 3))
	m := make([]float32, dim*rows)
	for i := range m {
		m[i] = r.Float32()
	}
	q := m[:dim:dim]
	order := r.Perm(rows)
	for _, op := range []string{"l2", "dot"} {
		for _, p := range kernelPaths() {
			b.Run(op+"/path="+p.name, func(b *testing.B) {
				usePath(b, p)
				b.SetBytes(4 * dim)
				b.ReportAllocs()
				var s float32
				i := 0
				for b.Loop() {
					row := m[order[i]*dim : (order[i]+1)*dim]
					if op == "l2" {
						s += L2Sq(q, row)
					} else {
						s += Dot(q, row)
					}
					i = (i + 1) % rows
				}
				sinkF = s
			})
		}
	}
}
