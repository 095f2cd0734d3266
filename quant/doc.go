// Package quant makes models and embeddings smaller and faster with
// quantization, in pure Go.
//
// Tensors: Quantize and Dequantize (per tensor) and QuantizeAxis and
// DequantizeAxis (per channel along any axis) implement ONNX QuantizeLinear
// and DequantizeLinear for int8 and uint8 bit for bit as ONNX Runtime does
// (division in float32, round half to even, saturation). Params,
// TensorParams and ChannelParams derive symmetric or asymmetric scales and
// zero points from ranges; QuantizeInt4 packs 4-bit blocks like llama.cpp
// Q4_0 and ONNX Runtime MatMulNBits; ToFloat16 and ToBFloat16 convert with
// round-to-nearest-even.
//
// Calibration: MinMaxCalibrator, PercentileCalibrator and EntropyCalibrator
// (KL divergence, as TensorRT and ONNX Runtime) observe float batches and
// propose ranges; CalibratedParams turns a range into a scale and zero
// point. Compare reports max abs error, MSE, SQNR and cosine similarity.
//
// Embeddings: ScalarQuantizer encodes float32 vectors as int8 codes (one
// global or per-dimension ranges) compared with DotInt8 and L2SqInt8;
// BinaryCodes and Hamming give 1-bit sign codes. A fitted ScalarQuantizer
// persists with MarshalBinary and UnmarshalBinary (versioned, checksummed).
//
// Models: QuantizeModel rewrites an ONNX model so that MatMul, Gemm (and
// optionally Conv) weights are stored as int8 per output channel behind
// DequantizeLinear nodes, which ONNX Runtime runs unchanged.
//
// Usage sketch:
//
//	x := []float32{-1.5, 0, 0.25, 3}
//	scale, zp, _ := quant.TensorParams[int8](x, true)
//	q := make([]int8, len(x))
//	_ = quant.Quantize(q, x, scale, zp)
//	back := make([]float32, len(x))
//	_ = quant.Dequantize(back, q, scale, zp)
//	rep, _ := quant.Compare(x, back) // rep.SQNR, rep.MaxAbs, ...
//
//	out, report, err := quant.QuantizeModel(ctx, onnxBytes, quant.ModelOptions{})
//
// Functions are safe for concurrent use as long as calls do not share a
// destination slice; the calibrators and ScalarQuantizer guard their own
// state. Bad input (NaN, ±Inf, empty or
// mismatched slices, inverted ranges, a bad axis, bytes that are not ONNX)
// gives an error wrapping one of the exported sentinel errors, never a
// panic.
package quant
