package quant

import (
	"fmt"
	"math"
	"sync"
)

// Calibrator observes batches of float values (typically one activation
// tensor over a calibration set) and proposes the range to quantize them
// with. Implementations in this package are safe for concurrent use.
type Calibrator interface {
	// Observe adds a batch. A batch holding NaN or ±Inf is rejected with
	// ErrNonFinite and leaves the calibrator unchanged. An empty batch is a
	// no-op.
	Observe(x []float32) error
	// Range returns the chosen [min, max]; ErrEmpty before any value was
	// observed.
	Range() (min, max float32, err error)
}

// CalibratedParams turns a calibrator's range into a scale and zero point
// for T (see Params).
func CalibratedParams[T Integer](c Calibrator, symmetric bool) (scale float32, zeroPoint T, err error) {
	lo, hi, err := c.Range()
	if err != nil {
		return 0, 0, err
	}
	return Params[T](lo, hi, symmetric)
}

// MinMaxCalibrator keeps the smallest and largest value seen. Its zero value
// is ready to use.
type MinMaxCalibrator struct {
	mu       sync.Mutex
	min, max float32
	n        int64
}

// Observe implements Calibrator.
func (c *MinMaxCalibrator) Observe(x []float32) error {
	if len(x) == 0 {
		return nil
	}
	lo, hi, err := MinMax(x)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 || lo < c.min {
		c.min = lo
	}
	if c.n == 0 || hi > c.max {
		c.max = hi
	}
	c.n += int64(len(x))
	return nil
}

// Range implements Calibrator: the exact min and max observed.
func (c *MinMaxCalibrator) Range() (min, max float32, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		return 0, 0, fmt.Errorf("%w: min-max calibrator has observed nothing", ErrEmpty)
	}
	return c.min, c.max, nil
}

// HistogramOptions configures the histogram calibrators. The zero value
// gives the defaults.
type HistogramOptions struct {
	// Bins is the number of histogram bins over [0, max|x|]; default 2048
	// (as in TensorRT), at most 65536 (EntropyCalibrator.Range costs
	// O(Bins²)). Values below 2·QuantizedBins are raised to it.
	Bins int
	// Percentile, for NewPercentileCalibrator, is the share of |x| (in
	// percent, (0, 100]) that the range must cover; default 99.999 (as in
	// ONNX Runtime).
	Percentile float64
	// QuantizedBins, for NewEntropyCalibrator, is the number of levels the
	// clipped distribution is quantized to when measuring KL divergence;
	// default 128 (the positive half of int8, as in TensorRT), at most 32768.
	QuantizedBins int
}

// maxBins bounds HistogramOptions.Bins.
const maxBins = 1 << 16

// histogram holds counts of |x| in bins of equal width. When a batch
// exceeds the covered range the width doubles, merging neighbouring bins,
// so earlier counts are never redistributed approximately.
type histogram struct {
	mu       sync.Mutex
	counts   []float64
	width    float64 // 0 until a non-zero |x| arrives
	zeros    float64 // exact zeros seen while width is 0
	min, max float32
	n        int64
}

func newHistogram(bins int) *histogram { return &histogram{counts: make([]float64, bins)} }

func (h *histogram) observe(x []float32) error {
	if len(x) == 0 {
		return nil
	}
	lo, hi, err := MinMax(x)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	absMax := math.Max(math.Abs(float64(lo)), math.Abs(float64(hi)))
	bins := len(h.counts)
	if absMax > 0 {
		if h.width == 0 {
			h.width = absMax / float64(bins)
			h.counts[0] += h.zeros
			h.zeros = 0
		}
		for absMax > h.width*float64(bins) {
			for i := 0; i < bins/2; i++ {
				h.counts[i] = h.counts[2*i] + h.counts[2*i+1]
			}
			clear(h.counts[bins/2:])
			h.width *= 2
		}
	}
	if h.width == 0 {
		h.zeros += float64(len(x))
	} else {
		inv := 1 / h.width
		for _, v := range x {
			i := int(math.Abs(float64(v)) * inv)
			if i >= bins {
				i = bins - 1
			}
			h.counts[i]++
		}
	}
	if h.n == 0 || lo < h.min {
		h.min = lo
	}
	if h.n == 0 || hi > h.max {
		h.max = hi
	}
	h.n += int64(len(x))
	return nil
}

// rangeFor turns a threshold on |x| into a range: [0, t] when no negative
// value was seen, else [-t, t], each side clipped to what was observed.
func (h *histogram) rangeFor(t float64) (float32, float32) {
	hi := float32(math.Min(t, float64(h.max)))
	if h.min >= 0 {
		return 0, hi
	}
	return float32(math.Max(-t, float64(h.min))), float32(t)
}

// PercentileCalibrator chooses the smallest symmetric threshold that covers
// a given percentile of |x|, clipping rare outliers.
type PercentileCalibrator struct {
	h *histogram
	p float64
}

// NewPercentileCalibrator returns a percentile calibrator (see
// HistogramOptions for defaults). A percentile outside (0, 100] gives
// ErrRange.
func NewPercentileCalibrator(opts HistogramOptions) (*PercentileCalibrator, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &PercentileCalibrator{h: newHistogram(opts.Bins), p: opts.Percentile}, nil
}

func (o HistogramOptions) withDefaults() (HistogramOptions, error) {
	if o.Percentile == 0 {
		o.Percentile = 99.999
	}
	if !(o.Percentile > 0 && o.Percentile <= 100) {
		return o, fmt.Errorf("%w: percentile %v, want in (0, 100]", ErrRange, o.Percentile)
	}
	if o.QuantizedBins == 0 {
		o.QuantizedBins = 128
	}
	if o.QuantizedBins < 2 || o.QuantizedBins > maxBins/2 {
		return o, fmt.Errorf("%w: %d quantized bins, want in [2, %d]", ErrRange, o.QuantizedBins, maxBins/2)
	}
	if o.Bins == 0 {
		o.Bins = 2048
	}
	if o.Bins > maxBins {
		return o, fmt.Errorf("%w: %d bins, want at most %d", ErrRange, o.Bins, maxBins)
	}
	o.Bins = max(o.Bins, 2*o.QuantizedBins)
	o.Bins += o.Bins & 1 // merging pairs needs an even count
	return o, nil
}

// Observe implements Calibrator.
func (c *PercentileCalibrator) Observe(x []float32) error { return c.h.observe(x) }

// Range implements Calibrator: [-t, t] (or [0, t] when no negative value
// was seen) where t is the upper edge of the bin at which the cumulative
// count of |x| reaches the percentile.
func (c *PercentileCalibrator) Range() (min, max float32, err error) {
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return 0, 0, fmt.Errorf("%w: percentile calibrator has observed nothing", ErrEmpty)
	}
	if h.width == 0 {
		return 0, 0, nil
	}
	target := c.p / 100 * float64(h.n)
	var cum float64
	for i, cnt := range h.counts {
		cum += cnt
		if cum >= target {
			lo, hi := h.rangeFor(float64(i+1) * h.width)
			return lo, hi, nil
		}
	}
	lo, hi := h.rangeFor(float64(len(h.counts)) * h.width)
	return lo, hi, nil
}

// EntropyCalibrator chooses the threshold on |x| that minimises the KL
// divergence between the clipped histogram and its quantized version, the
// method of TensorRT's entropy calibrator and ONNX Runtime's "Entropy"
// calibration. As there, thresholds are searched from QuantizedBins bins
// upward: when outliers stretch the histogram so far that the bulk of the
// data fits in fewer bins, the threshold cannot drop below QuantizedBins
// bin widths; raise Bins for such data.
type EntropyCalibrator struct {
	h      *histogram
	levels int
}

// NewEntropyCalibrator returns an entropy calibrator (see HistogramOptions
// for defaults).
func NewEntropyCalibrator(opts HistogramOptions) (*EntropyCalibrator, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &EntropyCalibrator{h: newHistogram(opts.Bins), levels: opts.QuantizedBins}, nil
}

// Observe implements Calibrator.
func (c *EntropyCalibrator) Observe(x []float32) error { return c.h.observe(x) }

// Range implements Calibrator: [-t, t] (or [0, t] when no negative value
// was seen) for the KL-optimal threshold t. It costs O(Bins²) and does not
// change the calibrator, so more batches may be observed afterwards.
func (c *EntropyCalibrator) Range() (min, max float32, err error) {
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return 0, 0, fmt.Errorf("%w: entropy calibrator has observed nothing", ErrEmpty)
	}
	if h.width == 0 {
		return 0, 0, nil
	}
	// Only the occupied part of the histogram matters.
	last := 0
	for i, cnt := range h.counts {
		if cnt > 0 {
			last = i
		}
	}
	bins := last + 1
	if bins <= c.levels {
		lo, hi := h.rangeFor(float64(bins) * h.width)
		return lo, hi, nil
	}
	best, bestKL := bins, math.Inf(1)
	p := make([]float64, bins)
	q := make([]float64, bins)
	for i := c.levels; i <= bins; i++ {
		kl := klForThreshold(h.counts[:bins], i, c.levels, p[:i], q[:i])
		if kl < bestKL {
			best, bestKL = i, kl
		}
	}
	lo, hi := h.rangeFor(float64(best) * h.width)
	return lo, hi, nil
}

// klForThreshold returns KL(P‖Q) where P is counts[:i] with the outliers
// counts[i:] folded into its last bin and Q is counts[:i] merged into
// `levels` groups, each group's mass spread evenly over its non-empty bins.
func klForThreshold(counts []float64, i, levels int, p, q []float64) float64 {
	copy(p, counts[:i])
	var outliers float64
	for _, v := range counts[i:] {
		outliers += v
	}
	p[i-1] += outliers
	for g := 0; g < levels; g++ {
		start, end := g*i/levels, (g+1)*i/levels
		var sum float64
		nonzero := 0
		for _, v := range counts[start:end] {
			sum += v
			if v > 0 {
				nonzero++
			}
		}
		for j := start; j < end; j++ {
			q[j] = 0
			if counts[j] > 0 {
				q[j] = sum / float64(nonzero)
			}
		}
	}
	if !smooth(p) || !smooth(q) {
		return math.Inf(1)
	}
	var kl float64
	for j := range p {
		if p[j] > 0 {
			kl += p[j] * math.Log(p[j]/q[j])
		}
	}
	return kl
}

// smooth normalises d to sum 1 and moves a little mass onto empty bins so
// the divergence stays finite. It reports false for an all-zero d.
func smooth(d []float64) bool {
	const eps = 1e-4
	var sum float64
	zeros := 0
	for _, v := range d {
		sum += v
		if v == 0 {
			zeros++
		}
	}
	nonzero := len(d) - zeros
	if sum == 0 || nonzero == 0 {
		return false
	}
	take := eps * float64(zeros) / float64(nonzero)
	for j, v := range d {
		v /= sum
		if v == 0 {
			d[j] = eps
		} else {
			d[j] = math.Max(v-take, eps*eps)
		}
	}
	return true
}
