package quant

import (
	"fmt"
	"math"
)

// ErrorReport compares original values with their quantized-then-
// dequantized reconstruction. Sums are accumulated in float64.
type ErrorReport struct {
	N      int     // number of values compared
	MaxAbs float64 // largest |ref - got|
	MSE    float64 // mean of (ref - got)^2
	// SQNR is the signal-to-quantization-noise ratio in dB:
	// 10·log10(Σ ref² / Σ (ref-got)²). It is +Inf when the reconstruction is
	// exact and -Inf when ref is all zero but got is not.
	SQNR float64
	// Cosine is the cosine similarity of ref and got: 1 when both are all
	// zero, 0 when exactly one is.
	Cosine float64
}

// String formats the report on one line.
func (r ErrorReport) String() string {
	return fmt.Sprintf("n=%d max_abs=%.6g mse=%.6g sqnr=%.2fdB cosine=%.6f", r.N, r.MaxAbs, r.MSE, r.SQNR, r.Cosine)
}

// Compare measures the error of got against ref. The slices must have the
// same, non-zero length (ErrShape, ErrEmpty) and hold no NaN or ±Inf
// (ErrNonFinite).
func Compare(ref, got []float32) (ErrorReport, error) {
	if len(ref) != len(got) {
		return ErrorReport{}, fmt.Errorf("%w: ref has %d values, got has %d; want equal", ErrShape, len(ref), len(got))
	}
	if len(ref) == 0 {
		return ErrorReport{}, fmt.Errorf("%w: nothing to compare", ErrEmpty)
	}
	var maxAbs, se, sig, dot, gg float64
	got = got[:len(ref)]
	for i, r := range ref {
		a, b := float64(r), float64(got[i])
		d := a - b
		maxAbs = math.Max(maxAbs, math.Abs(d))
		se += d * d
		sig += a * a
		dot += a * b
		gg += b * b
	}
	if math.IsNaN(maxAbs) || math.IsInf(se, 0) || math.IsNaN(se) || math.IsInf(sig, 0) || math.IsInf(gg, 0) {
		if i := firstNonFinite(ref); i >= 0 {
			return ErrorReport{}, fmt.Errorf("%w: ref[%d] is %v", ErrNonFinite, i, ref[i])
		}
		if i := firstNonFinite(got); i >= 0 {
			return ErrorReport{}, fmt.Errorf("%w: got[%d] is %v", ErrNonFinite, i, got[i])
		}
		return ErrorReport{}, fmt.Errorf("%w: squared error overflows float64", ErrNonFinite)
	}
	rep := ErrorReport{N: len(ref), MaxAbs: maxAbs, MSE: se / float64(len(ref))}
	switch {
	case se == 0:
		rep.SQNR = math.Inf(1)
	case sig == 0:
		rep.SQNR = math.Inf(-1)
	default:
		rep.SQNR = 10 * math.Log10(sig/se)
	}
	switch {
	case sig == 0 && gg == 0:
		rep.Cosine = 1
	case sig == 0 || gg == 0:
		rep.Cosine = 0
	default:
		rep.Cosine = dot / (math.Sqrt(sig) * math.Sqrt(gg))
	}
	return rep, nil
}
