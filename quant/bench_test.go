package quant

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/quiverml/quiver/internal/onnxpb"
	"github.com/viterin/vek/vek32"
	ort "github.com/yalue/onnxruntime_go"
)

// Throughput benchmarks count the float32 side (4 bytes per value), so the
// MB/s column of quantize and dequantize compare directly.
const benchN = 1 << 16

func benchData() []float32 {
	r := rand.New(rand.NewPCG(99, 1))
	return randn(r, benchN, 1)
}

func BenchmarkQuantizeInt8(b *testing.B) {
	x := benchData()
	q := make([]int8, len(x))
	b.SetBytes(4 * benchN)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		_ = Quantize(q, x, 0.03, 0)
	}
	cpu.report(b, 4*benchN)
}

func BenchmarkQuantizeUint8(b *testing.B) {
	x := benchData()
	q := make([]uint8, len(x))
	b.SetBytes(4 * benchN)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		_ = Quantize(q, x, 0.03, 128)
	}
	cpu.report(b, 4*benchN)
}

func BenchmarkQuantizeAxisInt8(b *testing.B) {
	x := benchData()
	q := make([]int8, len(x))
	shape := []int{256, 256}
	// axis 0: each channel is a contiguous row; axis 1: channels
	// alternate element by element (MatMul weights [K, N]).
	for _, axis := range []int{0, 1} {
		scales, zps, err := ChannelParams[int8](x, shape, axis, true)
		if err != nil {
			b.Fatal(err)
		}
		b.Run([]string{"rows", "columns"}[axis], func(b *testing.B) {
			b.SetBytes(4 * benchN)
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				_ = QuantizeAxis(q, x, shape, axis, scales, zps)
			}
			cpu.report(b, 4*benchN)
		})
	}
}

// BenchmarkQuantizeORT runs ONNX Runtime's QuantizeLinear (MLAS, SIMD) on
// the same data through onnxruntime_go, cgo call included: the peer.
func BenchmarkQuantizeORT(b *testing.B) {
	x := benchData()
	m := qdqModel(b, true, onnxpb.TensorProto_INT8, []int64{benchN}, 0, []float32{0.03}, int8Tensor("", nil, []int8{0}))
	initORT(b)
	xt, err := ort.NewTensor(ort.NewShape(benchN), x)
	if err != nil {
		b.Fatal(err)
	}
	defer xt.Destroy()
	yt, err := ort.NewEmptyTensor[int8](ort.NewShape(benchN))
	if err != nil {
		b.Fatal(err)
	}
	defer yt.Destroy()
	opts, err := ort.NewSessionOptions()
	if err != nil {
		b.Fatal(err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		b.Fatal(err)
	}
	sess, err := ort.NewAdvancedSessionWithONNXData(m, []string{"x"}, []string{"y"}, []ort.Value{xt}, []ort.Value{yt}, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Destroy()
	b.SetBytes(4 * benchN)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if err := sess.Run(); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b, 4*benchN)
}

func BenchmarkDequantizeInt8(b *testing.B) {
	x := benchData()
	q := make([]int8, len(x))
	_ = Quantize(q, x, 0.03, 0)
	out := make([]float32, len(x))
	b.SetBytes(4 * benchN)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		_ = Dequantize(out, q, 0.03, 0)
	}
	cpu.report(b, 4*benchN)
}

func BenchmarkDequantizeAxisUint8(b *testing.B) {
	x := benchData()
	shape := []int{256, 256}
	for _, axis := range []int{0, 1} {
		scales, zps, err := ChannelParams[uint8](x, shape, axis, false)
		if err != nil {
			b.Fatal(err)
		}
		q := make([]uint8, len(x))
		_ = QuantizeAxis(q, x, shape, axis, scales, zps)
		out := make([]float32, len(x))
		b.Run([]string{"rows", "columns"}[axis], func(b *testing.B) {
			b.SetBytes(4 * benchN)
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				_ = DequantizeAxis(out, q, shape, axis, scales, zps)
			}
			cpu.report(b, 4*benchN)
		})
	}
}

func BenchmarkQuantizeInt4(b *testing.B) {
	x := benchData()
	b.SetBytes(4 * benchN)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		_, _ = QuantizeInt4(x, 32)
	}
	cpu.report(b, 4*benchN)
}

func BenchmarkDequantizeInt4(b *testing.B) {
	x := benchData()
	blocks, _ := QuantizeInt4(x, 32)
	out := make([]float32, len(x))
	b.SetBytes(4 * benchN)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		_ = blocks.Dequantize(out)
	}
	cpu.report(b, 4*benchN)
}

func BenchmarkQuantizeFloat16(b *testing.B) {
	x := benchData()
	h := make([]Float16, len(x))
	b.SetBytes(4 * benchN)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		_ = ToFloat16Slice(h, x)
	}
	cpu.report(b, 4*benchN)
}

func BenchmarkQuantizeBFloat16(b *testing.B) {
	x := benchData()
	h := make([]BFloat16, len(x))
	b.SetBytes(4 * benchN)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		_ = ToBFloat16Slice(h, x)
	}
	cpu.report(b, 4*benchN)
}

func BenchmarkDequantizeFloat16(b *testing.B) {
	x := benchData()
	h := make([]Float16, len(x))
	_ = ToFloat16Slice(h, x)
	b.SetBytes(4 * benchN)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		_ = FromFloat16Slice(x, h)
	}
	cpu.report(b, 4*benchN)
}

func BenchmarkDequantizeBFloat16(b *testing.B) {
	x := benchData()
	h := make([]BFloat16, len(x))
	_ = ToBFloat16Slice(h, x)
	b.SetBytes(4 * benchN)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		_ = FromBFloat16Slice(x, h)
	}
	cpu.report(b, 4*benchN)
}

var (
	sinkI int32
	sinkF float32
	sinkN int
)

// dotFloat32 is the plain-Go float32 baseline, unrolled like DotInt8.
func dotFloat32(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	for len(a) >= 4 {
		s0 += a[0] * b[0]
		s1 += a[1] * b[1]
		s2 += a[2] * b[2]
		s3 += a[3] * b[3]
		a, b = a[4:], b[4:]
	}
	for i := range a {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}

// BenchmarkDot384 compares one 384-d similarity: int8 codes in pure Go,
// float32 in pure Go, float32 with viterin/vek's AVX2 kernel, binary codes.
func BenchmarkDot384(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	fa, fb := randn(r, 384, 1), randn(r, 384, 1)
	var sq ScalarQuantizer
	if err := sq.Fit([][]float32{fa, fb}); err != nil {
		b.Fatal(err)
	}
	qa, qb := make([]int8, 384), make([]int8, 384)
	_ = sq.Encode(qa, fa)
	_ = sq.Encode(qb, fb)
	ca, cb := BinaryCodes(fa), BinaryCodes(fb)
	b.Run("int8", func(b *testing.B) {
		b.ReportAllocs()
		cpu := startCPU()
		for b.Loop() {
			sinkI += DotInt8(qa, qb)
		}
		cpu.report(b, 0)
	})
	b.Run("int8-L2", func(b *testing.B) {
		b.ReportAllocs()
		cpu := startCPU()
		for b.Loop() {
			sinkI += L2SqInt8(qa, qb)
		}
		cpu.report(b, 0)
	})
	b.Run("float32", func(b *testing.B) {
		b.ReportAllocs()
		cpu := startCPU()
		for b.Loop() {
			sinkF += dotFloat32(fa, fb)
		}
		cpu.report(b, 0)
	})
	b.Run("float32-vek-simd", func(b *testing.B) {
		b.ReportAllocs()
		cpu := startCPU()
		for b.Loop() {
			sinkF += vek32.Dot(fa, fb)
		}
		cpu.report(b, 0)
	})
	b.Run("binary-hamming", func(b *testing.B) {
		b.ReportAllocs()
		cpu := startCPU()
		for b.Loop() {
			sinkN += Hamming(ca, cb)
		}
		cpu.report(b, 0)
	})
}

func BenchmarkScalarQuantizerEncode384(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	v := randn(r, 384, 1)
	var sq ScalarQuantizer
	if err := sq.Fit([][]float32{v}); err != nil {
		b.Fatal(err)
	}
	code := make([]int8, 384)
	b.SetBytes(4 * 384)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		_ = sq.Encode(code, v)
	}
	cpu.report(b, 4*384)
}

func BenchmarkEntropyCalibratorRange(b *testing.B) {
	c, _ := NewEntropyCalibrator(HistogramOptions{})
	_ = c.Observe(heavyTailed(1, 100000))
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		_, _, _ = c.Range()
	}
	cpu.report(b, 0)
}

func BenchmarkQuantizeModel(b *testing.B) {
	model := readModel(b, "classifier.onnx")
	b.SetBytes(int64(len(model)))
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if _, _, err := QuantizeModel(context.Background(), model, ModelOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b, int64(len(model)))
}

// ortSession runs model (input x float32 or T, output y) on fixed tensors
// with one intra-op thread; the caller destroys it with the returned func.
func ortSession[I, O ort.TensorData](b *testing.B, model []byte, shape []int64, in []I) (*ort.AdvancedSession, func()) {
	b.Helper()
	initORT(b)
	xt, err := ort.NewTensor(ort.NewShape(shape...), in)
	if err != nil {
		b.Fatal(err)
	}
	yt, err := ort.NewEmptyTensor[O](ort.NewShape(shape...))
	if err != nil {
		b.Fatal(err)
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		b.Fatal(err)
	}
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		b.Fatal(err)
	}
	sess, err := ort.NewAdvancedSessionWithONNXData(model, []string{"x"}, []string{"y"}, []ort.Value{xt}, []ort.Value{yt}, opts)
	if err != nil {
		b.Fatal(err)
	}
	return sess, func() {
		sess.Destroy()
		opts.Destroy()
		yt.Destroy()
		xt.Destroy()
	}
}

// BenchmarkQuantizeAxisVsORT quantizes 65536 values per channel with
// QuantizeAxis and with ONNX Runtime's QuantizeLinear with axis (the peer,
// cgo call included), in three layouts: rows ([256, 256] along axis 0,
// contiguous runs of 256), columns ([256, 256] along axis 1, the last
// axis: MatMul weights [K, N]) and runs8 ([64, 128, 8] along axis 1,
// runs of 8). For columns it also runs the Go loop alone. Sub-benchmarks
// alternate under -count.
func BenchmarkQuantizeAxisVsORT(b *testing.B) {
	x := benchData()
	for _, l := range []struct {
		name  string
		shape []int
		axis  int
	}{{"columns", []int{256, 256}, 1}, {"rows", []int{256, 256}, 0}, {"runs8", []int{64, 128, 8}, 1}} {
		scales, zps, err := ChannelParams[int8](x, l.shape, l.axis, false)
		if err != nil {
			b.Fatal(err)
		}
		q := make([]int8, len(x))
		b.Run(l.name+"/quiver", func(b *testing.B) {
			b.SetBytes(4 * benchN)
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				_ = QuantizeAxis(q, x, l.shape, l.axis, scales, zps)
			}
			cpu.report(b, 4*benchN)
		})
		b.Run(l.name+"/ort", func(b *testing.B) {
			shape64 := make([]int64, len(l.shape))
			for i, d := range l.shape {
				shape64[i] = int64(d)
			}
			m := qdqModel(b, true, onnxpb.TensorProto_INT8, shape64, l.axis, scales, int8Tensor("", nil, zps))
			sess, done := ortSession[float32, int8](b, m, shape64, x)
			defer done()
			b.SetBytes(4 * benchN)
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				if err := sess.Run(); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b, 4*benchN)
		})
		if l.name == "columns" {
			b.Run(l.name+"/go", func(b *testing.B) {
				b.SetBytes(4 * benchN)
				b.ReportAllocs()
				cpu := startCPU()
				for b.Loop() {
					_ = quantizeStrided(q, x, scales, zps, 1)
				}
				cpu.report(b, 4*benchN)
			})
		}
	}
}

// BenchmarkDequantizeAxisVsORT is BenchmarkQuantizeAxisVsORT for
// DequantizeLinear along the last axis.
func BenchmarkDequantizeAxisVsORT(b *testing.B) {
	x := benchData()
	shape := []int{256, 256}
	scales, zps, err := ChannelParams[int8](x, shape, 1, false)
	if err != nil {
		b.Fatal(err)
	}
	q := make([]int8, len(x))
	_ = QuantizeAxis(q, x, shape, 1, scales, zps)
	out := make([]float32, len(x))
	b.Run("columns/quiver", func(b *testing.B) {
		b.SetBytes(4 * benchN)
		b.ReportAllocs()
		cpu := startCPU()
		for b.Loop() {
			_ = DequantizeAxis(out, q, shape, 1, scales, zps)
		}
		cpu.report(b, 4*benchN)
	})
	b.Run("columns/ort", func(b *testing.B) {
		m := qdqModel(b, false, onnxpb.TensorProto_INT8, []int64{256, 256}, 1, scales, int8Tensor("", nil, zps))
		sess, done := ortSession[int8, float32](b, m, []int64{256, 256}, q)
		defer done()
		b.SetBytes(4 * benchN)
		b.ReportAllocs()
		cpu := startCPU()
		for b.Loop() {
			if err := sess.Run(); err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b, 4*benchN)
	})
}

// BenchmarkInt4Paths measures int4 encoding and decoding (block 32) with
// the SIMD kernels and with the Go loop alone, alternating under -count.
func BenchmarkInt4Paths(b *testing.B) {
	x := benchData()
	blocks, _ := QuantizeInt4(x, 32)
	out := make([]float32, len(x))
	for _, vector := range []bool{true, false} {
		name := "go"
		if vector {
			name = "simd"
		}
		b.Run("quantize/"+name, func(b *testing.B) {
			b.SetBytes(4 * benchN)
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				_, _ = quantizeInt4(x, 32, vector)
			}
			cpu.report(b, 4*benchN)
		})
		b.Run("dequantize/"+name, func(b *testing.B) {
			b.SetBytes(4 * benchN)
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				if vector {
					_ = blocks.Dequantize(out)
				} else {
					blocks.decode(out, 0)
				}
			}
			cpu.report(b, 4*benchN)
		})
	}
}
