package abtest

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// SRMAlpha is the p-value below which SRMCheck reports a sample ratio
// mismatch.
const SRMAlpha = 0.001

// z975 is the 0.975 quantile of the standard normal distribution, used for
// two-sided 95% intervals.
var z975 = distuv.UnitNormal.Quantile(0.975)

// ProportionTest is the result of a two-sided two-proportion z-test of
// treatment (x2 of n2) against control (x1 of n1).
type ProportionTest struct {
	P1, P2 float64 // observed rates x1/n1 and x2/n2
	Diff   float64 // P2 - P1
	// Z is the statistic with the pooled standard error
	// sqrt(p(1-p)(1/n1+1/n2)), p = (x1+x2)/(n1+n2).
	Z float64
	// PValue is two-sided: 2*(1-Phi(|Z|)).
	PValue float64
	// Low and High bound a 95% confidence interval for Diff, using the
	// unpooled standard error sqrt(P1(1-P1)/n1 + P2(1-P2)/n2).
	Low, High float64
}

// TwoProportionZTest compares conversion rates x1/n1 (control) and x2/n2
// (treatment). It needs n1, n2 > 0, x <= n, and at least one conversion and
// one non-conversion overall.
func TwoProportionZTest(x1, n1, x2, n2 uint64) (ProportionTest, error) {
	if n1 == 0 || n2 == 0 {
		return ProportionTest{}, fmt.Errorf("%w: z-test needs exposures in both groups, got n1=%d n2=%d", ErrInsufficientData, n1, n2)
	}
	if x1 > n1 || x2 > n2 {
		return ProportionTest{}, fmt.Errorf("%w: z-test: conversions exceed exposures (x1=%d n1=%d, x2=%d n2=%d), want x <= n", ErrInsufficientData, x1, n1, x2, n2)
	}
	p1, p2 := float64(x1)/float64(n1), float64(x2)/float64(n2)
	p := float64(x1+x2) / float64(n1+n2)
	se := math.Sqrt(p * (1 - p) * (1/float64(n1) + 1/float64(n2)))
	if se == 0 {
		return ProportionTest{}, fmt.Errorf("%w: z-test: pooled rate is %v, want strictly between 0 and 1", ErrInsufficientData, p)
	}
	r := ProportionTest{P1: p1, P2: p2, Diff: p2 - p1}
	r.Z = r.Diff / se
	r.PValue = 2 * distuv.UnitNormal.Survival(math.Abs(r.Z))
	seU := math.Sqrt(p1*(1-p1)/float64(n1) + p2*(1-p2)/float64(n2))
	r.Low, r.High = r.Diff-z975*seU, r.Diff+z975*seU
	return r, nil
}

// Sample summarises a continuous metric: its count, mean and unbiased
// sample variance (divided by N-1).
type Sample struct {
	N        uint64
	Mean     float64
	Variance float64
}

// SampleOf summarises xs.
func SampleOf(xs []float64) Sample {
	var w welford
	for _, x := range xs {
		w.add(x)
	}
	return w.sample()
}

// TTest is the result of a two-sided Welch's t-test of treatment (B) against
// control (A).
type TTest struct {
	Diff float64 // B.Mean - A.Mean
	T    float64 // Diff / sqrt(A.Variance/A.N + B.Variance/B.N)
	// DF are the Welch–Satterthwaite degrees of freedom.
	DF     float64
	PValue float64 // two-sided, from Student's t with DF degrees of freedom
	// Low and High bound a 95% confidence interval for Diff.
	Low, High float64
}

// WelchTTest compares the means of a (control) and b (treatment) without
// assuming equal variances. Each sample needs N >= 2, and the variances must
// not both be zero.
func WelchTTest(a, b Sample) (TTest, error) {
	if a.N < 2 || b.N < 2 {
		return TTest{}, fmt.Errorf("%w: Welch's t-test needs at least 2 observations per group, got %d and %d", ErrInsufficientData, a.N, b.N)
	}
	if !finite(a.Mean) || !finite(b.Mean) || !finite(a.Variance) || !finite(b.Variance) || a.Variance < 0 || b.Variance < 0 {
		return TTest{}, fmt.Errorf("%w: Welch's t-test: means and variances must be finite and variances >= 0", ErrInsufficientData)
	}
	va, vb := a.Variance/float64(a.N), b.Variance/float64(b.N)
	se2 := va + vb
	if se2 == 0 {
		return TTest{}, fmt.Errorf("%w: Welch's t-test: both variances are zero", ErrInsufficientData)
	}
	r := TTest{Diff: b.Mean - a.Mean}
	r.T = r.Diff / math.Sqrt(se2)
	r.DF = se2 * se2 / (va*va/float64(a.N-1) + vb*vb/float64(b.N-1))
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: r.DF}
	r.PValue = 2 * t.Survival(math.Abs(r.T))
	h := t.Quantile(0.975) * math.Sqrt(se2)
	r.Low, r.High = r.Diff-h, r.Diff+h
	return r, nil
}

// WilsonInterval returns the 95% Wilson score interval for a rate of x
// successes in n trials.
func WilsonInterval(x, n uint64) (low, high float64, err error) {
	if n == 0 || x > n {
		return 0, 0, fmt.Errorf("%w: Wilson interval needs 0 <= x <= n and n > 0, got x=%d n=%d", ErrInsufficientData, x, n)
	}
	nf := float64(n)
	p := float64(x) / nf
	z2 := z975 * z975
	den := 1 + z2/nf
	c := (p + z2/(2*nf)) / den
	h := z975 * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf)) / den
	return math.Max(0, c-h), math.Min(1, c+h), nil
}

// MeanInterval returns the 95% Student's t confidence interval for s.Mean.
func MeanInterval(s Sample) (low, high float64, err error) {
	if s.N < 2 {
		return 0, 0, fmt.Errorf("%w: mean interval needs at least 2 observations, got %d", ErrInsufficientData, s.N)
	}
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(s.N - 1)}
	h := t.Quantile(0.975) * math.Sqrt(s.Variance/float64(s.N))
	return s.Mean - h, s.Mean + h, nil
}

// SRMResult is the result of a sample ratio mismatch check.
type SRMResult struct {
	Observed []uint64
	Expected []float64 // expected counts under the configured weights
	// ChiSquare is sum((observed-expected)^2/expected) over variants with
	// positive weight; DF is their number minus one.
	ChiSquare float64
	DF        int
	PValue    float64
	// Mismatch is true when PValue < SRMAlpha: the observed split is very
	// unlikely under the configured weights, so assignment or logging is
	// broken and the experiment's results should not be trusted.
	Mismatch bool
}

// SRMCheck runs a chi-square goodness-of-fit test of observed counts per
// variant against the split that weights configure. A variant with weight 0
// must have no observations.
func SRMCheck(observed []uint64, weights []float64) (SRMResult, error) {
	if len(observed) != len(weights) {
		return SRMResult{}, fmt.Errorf("%w: SRM check: %d counts for %d weights, want equal lengths", ErrConfig, len(observed), len(weights))
	}
	total, wsum := uint64(0), 0.0
	active := 0
	for i, w := range weights {
		if !finite(w) || w < 0 {
			return SRMResult{}, fmt.Errorf("%w: SRM check: weight %d is %v, want a finite weight >= 0", ErrWeights, i, w)
		}
		if w > 0 {
			active++
		}
		wsum += w
		total += observed[i]
	}
	if active < 2 {
		return SRMResult{}, fmt.Errorf("%w: SRM check needs at least 2 variants with positive weight, got %d", ErrWeights, active)
	}
	if total == 0 {
		return SRMResult{}, fmt.Errorf("%w: SRM check: no observations", ErrInsufficientData)
	}
	r := SRMResult{Observed: append([]uint64(nil), observed...), Expected: make([]float64, len(weights)), DF: active - 1}
	for i, w := range weights {
		if w == 0 {
			if observed[i] > 0 {
				// Traffic to a variant that should get none is a mismatch
				// by definition; the statistic is infinite.
				r.ChiSquare = math.Inf(1)
			}
			continue
		}
		e := float64(total) * w / wsum
		r.Expected[i] = e
		d := float64(observed[i]) - e
		r.ChiSquare += d * d / e
	}
	r.PValue = distuv.ChiSquared{K: float64(r.DF)}.Survival(r.ChiSquare)
	if math.IsInf(r.ChiSquare, 1) {
		r.PValue = 0
	}
	r.Mismatch = r.PValue < SRMAlpha
	return r, nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// welford accumulates a running mean and sum of squared deviations.
type welford struct {
	n    uint64
	mean float64
	m2   float64
}

func (w *welford) add(x float64) {
	w.n++
	d := x - w.mean
	w.mean += d / float64(w.n)
	w.m2 += d * (x - w.mean)
}

func (w welford) variance() float64 {
	if w.n < 2 {
		return 0
	}
	return w.m2 / float64(w.n-1)
}

func (w welford) sample() Sample { return Sample{N: w.n, Mean: w.mean, Variance: w.variance()} }
