// Command quantize rewrites an ONNX model with int8 weights (per output
// channel, QDQ weight-only) and reports the size saved and the error on
// random inputs, measured by running both models in ONNX Runtime.
//
//	go run ./examples/quantize -in quant/testdata/classifier.onnx
//	go run ./examples/quantize -in model.onnx -out model.int8.onnx -conv -samples 1000
//	go run ./examples/quantize -in model.onnx -int4 -int4-block 32
//
// Float32 inputs are filled with standard normal values (fixed seed) and
// int64 inputs with zeros; a dynamic first dimension becomes -samples,
// other dynamic dimensions 1.
// For every float32 output the report gives max abs error, MSE, SQNR and
// cosine similarity, plus top-1 (argmax over the last axis) agreement for
// rank-2 outputs; integer outputs report exact agreement.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/quiverml/quiver/quant"
	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/onnx"
)

func main() {
	log.SetFlags(0)
	if err := run(os.Args[1:], os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(args []string, w io.Writer) error {
	flag := flag.NewFlagSet("quantize", flag.ContinueOnError)
	in := flag.String("in", "quant/testdata/classifier.onnx", "ONNX model to quantize")
	out := flag.String("out", "", "where to write the quantized model (default: <temp dir>/<name>.int8.onnx)")
	conv := flag.Bool("conv", false, "also quantize Conv weights")
	perTensor := flag.Bool("per-tensor", false, "one scale per weight instead of per output channel")
	minElems := flag.Int("min-elements", 0, "leave weights with fewer values in float32")
	int4 := flag.Bool("int4", false, "store MatMul weights as 4-bit blocks behind com.microsoft MatMulNBits (ONNX Runtime only)")
	int4Block := flag.Int("int4-block", 0, "weights per int4 scale (power of two >= 16; default 32)")
	bump := flag.Bool("allow-opset-bump", false, "raise a default-domain opset below 13 to 13 for per-channel scales")
	samples := flag.Int("samples", 256, "random input rows for the error report (0 skips it)")
	seed := flag.Uint64("seed", 1, "seed of the random inputs")
	if err := flag.Parse(args); err != nil {
		return err
	}

	dst := *out
	if dst == "" {
		dst = filepath.Join(os.TempDir(), strings.TrimSuffix(filepath.Base(*in), ".onnx")+".int8.onnx")
	}
	rep, err := quant.QuantizeModelFile(context.Background(), *in, dst, quant.ModelOptions{
		IncludeConv: *conv, PerTensor: *perTensor, MinElements: *minElems, AllowOpsetBump: *bump,
		Int4MatMul: *int4, Int4BlockSize: *int4Block,
	})
	if err != nil {
		return err
	}
	printReport(w, *in, dst, rep)
	if *samples <= 0 {
		return nil
	}
	if err := compareOutputs(w, *in, dst, *samples, *seed); err != nil {
		return fmt.Errorf("error report: %w", err)
	}
	return nil
}

func printReport(w io.Writer, src, dst string, rep *quant.ModelReport) {
	fmt.Fprintf(w, "%s -> %s\n", src, dst)
	fmt.Fprintf(w, "file:    %d -> %d bytes (%.2fx smaller)\n", rep.BytesBefore, rep.BytesAfter, float64(rep.BytesBefore)/float64(rep.BytesAfter))
	fmt.Fprintf(w, "weights: %d -> %d bytes (%.2fx smaller), %d quantized, %d skipped\n",
		rep.WeightBytesBefore, rep.WeightBytesAfter, rep.WeightRatio(), len(rep.Weights), len(rep.Skipped))
	if rep.OpsetAfter != rep.OpsetBefore {
		fmt.Fprintf(w, "opset:   raised from %d to %d\n", rep.OpsetBefore, rep.OpsetAfter)
	}
	if rep.PerTensorFallback {
		fmt.Fprintf(w, "note:    opset %d has no per-axis DequantizeLinear; used one scale per weight\n", rep.OpsetBefore)
	}
	for _, wr := range rep.Weights {
		fmt.Fprintf(w, "  %-24s %-8s %-14s int%d axis %2d  %v\n", wr.Name, strings.Join(wr.Ops, ","), fmt.Sprint(wr.Shape), wr.Bits, wr.Axis, wr.Error)
	}
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "  skipped %-16s %s\n", s.Name, s.Reason)
	}
}

// compareOutputs runs the models at src and dst on the same random inputs
// and prints how far dst's outputs are from src's.
func compareOutputs(w io.Writer, src, dst string, samples int, seed uint64) error {
	ctx := context.Background()
	want, err := onnx.Load(ctx, src, onnx.Options{})
	if err != nil {
		return err
	}
	defer want.Close()
	got, err := onnx.Load(ctx, dst, onnx.Options{})
	if err != nil {
		return err
	}
	defer got.Close()
	inputs, err := randomInputs(want.Info().Inputs, int64(samples), seed)
	if err != nil {
		return err
	}
	wantOut, err := want.Predict(ctx, inputs)
	if err != nil {
		return fmt.Errorf("running %s: %w", src, err)
	}
	gotOut, err := got.Predict(ctx, inputs)
	if err != nil {
		return fmt.Errorf("running %s: %w", dst, err)
	}
	fmt.Fprintf(w, "outputs on %d random rows (seed %d):\n", samples, seed)
	for _, o := range want.Info().Outputs {
		name := o.Name
		wt, gt := wantOut[name].Tensor, gotOut[name].Tensor
		switch a := wt.Data.(type) {
		case []float32:
			b, ok := gt.Data.([]float32)
			if !ok {
				return fmt.Errorf("output %q: %s gives %v, %s gives %v", name, src, wt.ElementType(), dst, gt.ElementType())
			}
			er, err := quant.Compare(a, b)
			if err != nil {
				return fmt.Errorf("output %q: %w", name, err)
			}
			fmt.Fprintf(w, "  %-12s %v\n", name, er)
			if s := wt.Shape; len(s) == 2 && s[1] > 1 {
				fmt.Fprintf(w, "  %-12s top-1 agreement %.2f%%\n", "", 100*top1(a, b, int(s[1])))
			}
		case []int64:
			b, ok := gt.Data.([]int64)
			if !ok {
				return fmt.Errorf("output %q: %s gives %v, %s gives %v", name, src, wt.ElementType(), dst, gt.ElementType())
			}
			same := 0
			for j := range min(len(a), len(b)) {
				if a[j] == b[j] {
					same++
				}
			}
			fmt.Fprintf(w, "  %-12s %d/%d equal (%.2f%%)\n", name, same, len(a), 100*float64(same)/float64(max(len(a), 1)))
		default:
			fmt.Fprintf(w, "  %-12s %v not compared\n", name, o)
		}
	}
	return nil
}

// randomInputs fills float32 inputs with standard normal values and int64
// inputs with zeros; a dynamic first axis becomes batch, other dynamic axes 1.
func randomInputs(ins []serving.IOInfo, batch int64, seed uint64) (map[string]serving.Tensor, error) {
	r := rand.New(rand.NewPCG(seed, 0))
	inputs := make(map[string]serving.Tensor, len(ins))
	for _, in := range ins {
		shape := make([]int64, len(in.Shape))
		n := int64(1)
		for i, d := range in.Shape {
			if d < 0 {
				d = 1
				if i == 0 {
					d = batch
				}
			}
			shape[i] = d
			n *= d
		}
		switch {
		case in.Kind != serving.KindTensor:
			return nil, fmt.Errorf("input %q is a %v; only tensor inputs are generated", in.Name, in.Kind)
		case in.ElementType == serving.Float32:
			data := make([]float32, n)
			for i := range data {
				data[i] = float32(r.NormFloat64())
			}
			inputs[in.Name] = serving.NewTensor(shape, data)
		case in.ElementType == serving.Int64:
			// Zeros are valid for ids, indices and lengths alike.
			inputs[in.Name] = serving.NewTensor(shape, make([]int64, n))
		default:
			return nil, fmt.Errorf("input %q is %v; only float32 (random) and int64 (zero) inputs are generated", in.Name, in.ElementType)
		}
	}
	return inputs, nil
}

// top1 returns the share of rows whose argmax agrees.
func top1(a, b []float32, width int) float64 {
	rows := len(a) / width
	same := 0
	for r := range rows {
		if argmax(a[r*width:(r+1)*width]) == argmax(b[r*width:(r+1)*width]) {
			same++
		}
	}
	return float64(same) / math.Max(float64(rows), 1)
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}
