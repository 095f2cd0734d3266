package features

import (
	"math"
)

// FeatureStats are the running statistics of one feature's written values
// over the current window (since the view's registration, ResetStats or
// CaptureReference). Embeddings are summarised by their L2 norm; strings
// by counts only.
type FeatureStats struct {
	Feature string
	Kind    Kind
	// Count is the number of non-null, finite values written.
	Count uint64
	// Nulls is the number of rows written without this feature (or with
	// it nulled by the NaN policy).
	Nulls uint64
	// NaNs is the number of NaN or infinite values seen, whatever the
	// view's NaN policy did with them.
	NaNs uint64
	// Mean, Variance (population), Min and Max of the finite values.
	Mean, Variance, Min, Max float64
	// Sketch holds the value distribution (nil for strings).
	Sketch *Sketch
}

// Quantile returns the q-quantile estimate (NaN when there are no values).
func (s FeatureStats) Quantile(q float64) float64 {
	if s.Sketch == nil {
		return math.NaN()
	}
	return s.Sketch.Quantile(q)
}

// runStats accumulates one feature (Welford's algorithm + sketch).
type runStats struct {
	count, nulls, nans uint64
	mean, m2           float64
	sketch             Sketch
}

func (r *runStats) add(x float64) {
	r.count++
	d := x - r.mean
	r.mean += d / float64(r.count)
	r.m2 += d * (x - r.mean)
	r.sketch.Add(x)
}

// merge folds o into r (Chan et al. parallel variance).
func (r *runStats) merge(o *runStats) {
	r.nulls += o.nulls
	r.nans += o.nans
	if o.count == 0 {
		return
	}
	n := r.count + o.count
	d := o.mean - r.mean
	r.mean += d * float64(o.count) / float64(n)
	r.m2 += o.m2 + d*d*float64(r.count)*float64(o.count)/float64(n)
	r.count = n
	r.sketch.Merge(&o.sketch)
}

func (r *runStats) export(f Feature) FeatureStats {
	fs := FeatureStats{Feature: f.Name, Kind: f.Kind, Count: r.count, Nulls: r.nulls, NaNs: r.nans, Mean: r.mean}
	if r.count > 0 {
		fs.Variance = r.m2 / float64(r.count)
		fs.Min, fs.Max = r.sketch.min, r.sketch.max
	}
	if f.Kind != KindString {
		fs.Sketch = r.sketch.Clone()
	}
	return fs
}

// observe records one encoded row into per-feature stats.
func (s *schema) observe(st []runStats, e *encoded) {
	for i := range s.view.Features {
		r := &st[i]
		r.nans += uint64(e.nans[i])
		if e.present&(1<<uint(i)) == 0 {
			r.nulls++
			continue
		}
		w := e.words[s.off[i]:]
		switch s.view.Features[i].Kind {
		case KindFloat32:
			x := float64(math.Float32frombits(w[0]))
			if math.IsNaN(x) || math.IsInf(x, 0) {
				continue
			}
			r.add(x)
		case KindInt64:
			r.add(float64(int64(uint64(w[0]) | uint64(w[1])<<32)))
		case KindString:
			r.count++
		case KindEmbedding:
			var ss float64
			for _, b := range w[:s.width[i]] {
				x := float64(math.Float32frombits(b))
				ss += x * x
			}
			if !math.IsNaN(ss) && !math.IsInf(ss, 0) {
				r.add(math.Sqrt(ss))
			}
		}
	}
}
