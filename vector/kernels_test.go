package vector

import (
	"math/rand/v2"
	"testing"

	"github.com/quiverml/quiver/internal/simd"
	"github.com/stretchr/testify/require"
	"github.com/viterin/vek/vek32"
)

// The kernels are internal/simd's and tested there against pure-Go
// references on every length; this checks the names the search uses and
// measures them beside viterin/vek's AVX2 kernels (a peer).
func TestKernelsAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 3, 7, 8, 9, 16, 31, 32, 33, 40, 63, 128, 384} {
		a := make([]float32, n)
		b := make([]float32, n)
		for i := range a {
			a[i] = r.Float32()*2 - 1
			b[i] = r.Float32()*2 - 1
		}
		var wantL2, wantDot float64
		for i := range a {
			d := float64(a[i] - b[i])
			wantL2 += d * d
			wantDot += float64(a[i]) * float64(b[i])
		}
		require.InDelta(t, wantL2, simd.L2SqGo(a, b), 1e-3*float64(n), "l2 go n=%d", n)
		require.InDelta(t, wantL2, l2sqVek(a, b), 1e-3*float64(n), "l2 vek n=%d", n)
		require.InDelta(t, wantDot, dotGo(a, b), 1e-3*float64(n), "dot go n=%d", n)
		require.InDelta(t, wantDot, vek32.Dot(a, b), 1e-3*float64(n), "dot vek n=%d", n)
		require.InDelta(t, wantL2, distFunc(L2)(a, b), 1e-3*float64(n), "l2 n=%d", n)
		require.InDelta(t, 1-wantDot, distFunc(Cosine)(a, b), 1e-3*float64(n), "cosine n=%d", n)
		require.InDelta(t, -wantDot, distFunc(InnerProduct)(a, b), 1e-3*float64(n), "ip n=%d", n)
		if hasAsm {
			require.InDelta(t, wantL2, l2sqAsm(a, b), 1e-3*float64(n), "l2 asm n=%d", n)
			require.InDelta(t, wantDot, dotAsm(a, b), 1e-3*float64(n), "dot asm n=%d", n)
		}
	}
}

// l2sqVek is the squared Euclidean distance through vek's AVX2 kernel.
func l2sqVek(a, b []float32) float32 {
	d := vek32.Distance(a, b)
	return d * d
}

func BenchmarkKernels(b *testing.B) {
	for _, n := range []int{128, 384} {
		r := rand.New(rand.NewPCG(1, 2))
		x := make([]float32, n)
		y := make([]float32, n)
		for i := range x {
			x[i], y[i] = r.Float32(), r.Float32()
		}
		for _, k := range []struct {
			name string
			f    func(a, b []float32) float32
		}{{"l2=go", simd.L2SqGo}, {"l2=vek", l2sqVek}, {"l2=asm", l2sqAsm}, {"dot=go", dotGo}, {"dot=vek", vek32.Dot}, {"dot=asm", dotAsm}} {
			b.Run(k.name+"/dim="+itoa(n), func(b *testing.B) {
				if !hasAsm && k.name[len(k.name)-3:] == "asm" {
					b.Skip("no assembly kernels on this CPU")
				}
				b.ReportAllocs()
				var s float32
				for b.Loop() {
					s += k.f(x, y)
				}
				sink = s
			})
		}
	}
}

var sink float32

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
