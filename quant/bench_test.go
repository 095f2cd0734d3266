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
