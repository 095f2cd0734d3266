package vector

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

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
		require.InDelta(t, wantL2, l2sqGo(a, b), 1e-3*float64(n), "l2 go n=%d", n)
		require.InDelta(t, wantL2, l2sqVek(a, b), 1e-3*float64(n), "l2 vek n=%d", n)
		require.InDelta(t, wantDot, dotGo(a, b), 1e-3*float64(n), "dot go n=%d", n)
		require.InDelta(t, wantDot, dotVek(a, b), 1e-3*float64(n), "dot vek n=%d", n)
		require.InDelta(t, wantL2, l2sqAsm(a, b), 1e-3*float64(n), "l2 asm n=%d", n)
		require.InDelta(t, wantDot, dotAsm(a, b), 1e-3*float64(n), "dot asm n=%d", n)
	}
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
		}{{"l2=go", l2sqGo}, {"l2=vek", l2sqVek}, {"l2=asm", l2sqAsm}, {"dot=go", dotGo}, {"dot=vek", dotVek}, {"dot=asm", dotAsm}} {
			b.Run(k.name+"/dim="+itoa(n), func(b *testing.B) {
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
