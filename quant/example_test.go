package quant_test

import (
	"context"
	"fmt"
	"os"

	"github.com/quiverml/quiver/quant"
)

func ExampleQuantize() {
	x := []float32{-1, -0.5, 0, 0.25, 1.27, 5}
	// Symmetric int8 from the data's range: scale = max|x| / 127.
	scale, zp, err := quant.TensorParams[int8](x[:5], true)
	if err != nil {
		panic(err)
	}
	q := make([]int8, len(x))
	if err := quant.Quantize(q, x, scale, zp); err != nil {
		panic(err)
	}
	back := make([]float32, len(x))
	_ = quant.Dequantize(back, q, scale, zp)
	fmt.Println(scale, zp)
	fmt.Println(q) // 5 is beyond the range and saturates
	fmt.Println(back)
	// Output:
	// 0.01 0
	// [-100 -50 0 25 127 127]
	// [-1 -0.5 0 0.25 1.27 1.27]
}

func ExampleQuantizeAxis() {
	// A [2, 3] weight with one scale per column (axis 1), as for MatMul's B.
	w := []float32{
		0.5, -20, 0.01,
		-1, 10, 0.02,
	}
	scales, zps, _ := quant.ChannelParams[int8](w, []int{2, 3}, 1, true)
	q := make([]int8, len(w))
	_ = quant.QuantizeAxis(q, w, []int{2, 3}, 1, scales, zps)
	fmt.Println(q)
	// Output:
	// [64 -127 63 -127 64 127]
}

func ExampleScalarQuantizer() {
	docs := [][]float32{{0.1, -0.4, 0.8}, {0.5, 0.2, -0.1}, {-0.3, 0.9, 0.0}}
	var sq quant.ScalarQuantizer
	if err := sq.Fit(docs); err != nil {
		panic(err)
	}
	codes := make([][]int8, len(docs))
	for i, d := range docs {
		codes[i] = make([]int8, sq.Dim())
		_ = sq.Encode(codes[i], d)
	}
	dot, _ := sq.Dot(codes[0], codes[1])
	fmt.Println(codes[0], quant.DotInt8(codes[0], codes[1]))
	fmt.Printf("%.3f (float32: %.3f)\n", dot, 0.1*0.5+-0.4*0.2+0.8*-0.1)
	// Output:
	// [14 -56 113] -2156
	// -0.108 (float32: -0.110)
}

func ExampleEntropyCalibrator() {
	c, _ := quant.NewEntropyCalibrator(quant.HistogramOptions{})
	batch := make([]float32, 10000)
	for i := range batch {
		batch[i] = float32(i%200-100) / 100 // uniform in [-1, 1)
	}
	batch[0] = 8 // one outlier
	_ = c.Observe(batch)
	scale, zp, _ := quant.CalibratedParams[int8](c, true)
	fmt.Printf("scale %.4f (min-max would give %.4f), zero point %d\n", scale, 8.0/127, zp)
	// Output:
	// scale 0.0079 (min-max would give 0.0630), zero point 0
}

func ExampleQuantizeModel() {
	model, err := os.ReadFile("testdata/classifier.onnx")
	if err != nil {
		panic(err)
	}
	out, rep, err := quant.QuantizeModel(context.Background(), model, quant.ModelOptions{})
	if err != nil {
		panic(err)
	}
	for _, w := range rep.Weights {
		fmt.Printf("%s %v %v axis %d\n", w.Name, w.Ops, w.Shape, w.Axis)
	}
	fmt.Printf("weights %d -> %d bytes (%.2fx), file %d -> %d bytes\n",
		rep.WeightBytesBefore, rep.WeightBytesAfter, rep.WeightRatio(), rep.BytesBefore, len(out))
	// Output:
	// W1 [MatMul] [16 64] axis 1
	// W2 [Gemm] [32 64] axis 0
	// W3 [Gemm] [32 10] axis 1
	// weights 13568 -> 3816 bytes (3.56x), file 14633 -> 5215 bytes
}

func ExampleQuantizeInt4() {
	w := []float32{0.1, -0.8, 0.35, 0.7, 0, 0.05, 0.2, -0.4}
	blocks, err := quant.QuantizeInt4(w, 4) // two blocks of four
	if err != nil {
		panic(err)
	}
	back := make([]float32, len(w))
	_ = blocks.Dequantize(back)
	fmt.Println(blocks.Scales, blocks.Bytes(), "bytes")
	fmt.Printf("%.2f\n", back)
	// Output:
	// [0.1 0.05] 12 bytes
	// [0.10 -0.80 0.40 0.70 0.00 0.05 0.20 -0.40]
}

func ExampleToFloat16() {
	for _, f := range []float32{1, 0.1, 65504, 1e6, 1e-8} {
		h := quant.ToFloat16(f)
		fmt.Printf("%g -> %#04x -> %g\n", f, uint16(h), h.Float32())
	}
	// Output:
	// 1 -> 0x3c00 -> 1
	// 0.1 -> 0x2e66 -> 0.099975586
	// 65504 -> 0x7bff -> 65504
	// 1e+06 -> 0x7c00 -> +Inf
	// 1e-08 -> 0x0000 -> 0
}

func ExampleHamming() {
	a := quant.BinaryCodes([]float32{0.3, -0.1, 0.8, -0.5})
	b := quant.BinaryCodes([]float32{0.2, 0.4, 0.9, -0.7})
	fmt.Printf("%04b %04b distance %d\n", a[0], b[0], quant.Hamming(a, b))
	// Output:
	// 0101 0111 distance 1
}
