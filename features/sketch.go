package features

import (
	"math"
)

// Sketch parameters: every power of two is split into 2^sketchSubBits
// equal buckets (log-linear, as in HDR histograms), so a bucket's width is
// at most 1/64 of its lower bound and answering with its midpoint is
// within 0.8% relative error. The bucket index comes from the float's bits:
// no logarithm per value. Magnitudes below sketchMinValue count as zero.
const (
	sketchSubBits  = 6
	sketchMinValue = 1e-9
	sketchMaxBins  = 4096
)

// Sketch is a mergeable quantile sketch with relative error under 1%
// (log-linear buckets with separate stores for negatives, as in DDSketch). The zero Sketch is empty and
// ready to use. A Sketch is not safe for concurrent use.
type Sketch struct {
	pos, neg binStore
	zero     uint64
	count    uint64
	min, max float64
}

// binStore is a dense run of bucket counts starting at index off.
type binStore struct {
	off    int
	counts []uint64
}

func (b *binStore) add(i int, n uint64) {
	if len(b.counts) == 0 {
		b.off = i
		b.counts = append(b.counts, n)
		return
	}
	switch {
	case i < b.off:
		grow := b.off - i
		if len(b.counts)+grow > sketchMaxBins {
			// Collapse: the lowest buckets fold into the lowest kept one.
			// Small magnitudes lose precision first, as DDSketch does.
			b.counts[0] += n
			return
		}
		nc := make([]uint64, len(b.counts)+grow, (len(b.counts)+grow)*5/4)
		copy(nc[grow:], b.counts)
		nc[0] = n
		b.counts, b.off = nc, i
	case i >= b.off+len(b.counts):
		need := i - b.off + 1
		if need > sketchMaxBins {
			drop := need - sketchMaxBins
			if drop >= len(b.counts) {
				var sum uint64
				for _, c := range b.counts {
					sum += c
				}
				b.counts = b.counts[:1]
				b.counts[0] = sum
				b.off = i - sketchMaxBins + 1
			} else {
				var sum uint64
				for _, c := range b.counts[:drop+1] {
					sum += c
				}
				b.counts = append(b.counts[:0], b.counts[drop:]...)
				b.counts[0] = sum
				b.off += drop
			}
			need = i - b.off + 1
		}
		for len(b.counts) < need {
			b.counts = append(b.counts, 0)
		}
		b.counts[i-b.off] += n
	default:
		b.counts[i-b.off] += n
	}
}

func (b *binStore) clone() binStore {
	return binStore{off: b.off, counts: append([]uint64(nil), b.counts...)}
}

func sketchIndex(x float64) int {
	bits := math.Float64bits(x)
	exp := int(bits>>52&0x7ff) - 1023
	sub := int(bits >> (52 - sketchSubBits) & (1<<sketchSubBits - 1))
	return exp<<sketchSubBits | sub
}

func sketchValue(i int) float64 {
	sub := i & (1<<sketchSubBits - 1)
	return math.Ldexp(1+(float64(sub)+0.5)/(1<<sketchSubBits), i>>sketchSubBits)
}

// Add records x. NaN and infinities are ignored (the store counts them
// separately).
func (s *Sketch) Add(x float64) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return
	}
	if s.count == 0 || x < s.min {
		s.min = x
	}
	if s.count == 0 || x > s.max {
		s.max = x
	}
	s.count++
	switch {
	case x > sketchMinValue:
		s.pos.add(sketchIndex(x), 1)
	case x < -sketchMinValue:
		s.neg.add(sketchIndex(-x), 1)
	default:
		s.zero++
	}
}

// Count returns the number of values recorded.
func (s *Sketch) Count() uint64 { return s.count }

// Merge adds o's values into s.
func (s *Sketch) Merge(o *Sketch) {
	if o == nil || o.count == 0 {
		return
	}
	if s.count == 0 || o.min < s.min {
		s.min = o.min
	}
	if s.count == 0 || o.max > s.max {
		s.max = o.max
	}
	s.count += o.count
	s.zero += o.zero
	for i, c := range o.pos.counts {
		if c != 0 {
			s.pos.add(o.pos.off+i, c)
		}
	}
	for i, c := range o.neg.counts {
		if c != 0 {
			s.neg.add(o.neg.off+i, c)
		}
	}
}

// Clone returns an independent copy of s.
func (s *Sketch) Clone() *Sketch {
	c := *s
	c.pos, c.neg = s.pos.clone(), s.neg.clone()
	return &c
}

// Quantile returns an estimate of the q-quantile (0 <= q <= 1), within
// 1% relative error; NaN when the sketch is empty or q is out of
// range.
func (s *Sketch) Quantile(q float64) float64 {
	if s.count == 0 || !(q >= 0 && q <= 1) {
		return math.NaN()
	}
	if q == 0 {
		return s.min
	}
	if q == 1 {
		return s.max
	}
	rank := uint64(q * float64(s.count-1))
	var seen uint64
	var out float64
	s.walk(func(_ int64, v float64, c uint64) bool {
		seen += c
		if seen > rank {
			out = v
			return false
		}
		return true
	})
	return math.Max(s.min, math.Min(s.max, out))
}

// Bucket keys order all buckets by value: negatives (larger magnitude
// first), zero, positives.
const keyBias = int64(1) << 40

// walk visits the buckets in ascending value order with an ordering key,
// a representative value and the count, until fn returns false.
func (s *Sketch) walk(fn func(key int64, v float64, c uint64) bool) {
	for i := len(s.neg.counts) - 1; i >= 0; i-- {
		if c := s.neg.counts[i]; c != 0 {
			idx := s.neg.off + i
			if !fn(-keyBias-int64(idx), -sketchValue(idx), c) {
				return
			}
		}
	}
	if s.zero != 0 && !fn(0, 0, s.zero) {
		return
	}
	for i, c := range s.pos.counts {
		if c != 0 {
			idx := s.pos.off + i
			if !fn(keyBias+int64(idx), sketchValue(idx), c) {
				return
			}
		}
	}
}

// bins returns the sketch's non-empty buckets as ascending keys and counts.
func (s *Sketch) bins() (keys []int64, counts []uint64) {
	s.walk(func(k int64, _ float64, c uint64) bool {
		keys = append(keys, k)
		counts = append(counts, c)
		return true
	})
	return keys, counts
}
