package features

import (
	"math"
	"time"
)

// DriftScores compares a current distribution with a reference one.
type DriftScores struct {
	// PSI is the population stability index over ten bins cut at the
	// reference deciles (0 = identical; 0.1 is the usual alarm level,
	// 0.25 a major shift).
	PSI float64
	// KS is the Kolmogorov-Smirnov statistic: the largest gap between the
	// two cumulative distributions (0..1).
	KS float64
	// JS is the Jensen-Shannon divergence in bits (0..1) between the two
	// bucketed distributions.
	JS float64
}

// psiBins is the number of bins PSI uses; psiFloor stands in for empty
// bins so the logarithm stays finite.
const (
	psiBins  = 10
	psiFloor = 1e-4
)

// Compare returns the drift scores of cur against ref. Both sketches share
// one bucket layout, so the scores are computed on aligned buckets. With
// either sketch empty the scores are zero.
func Compare(ref, cur *Sketch) DriftScores {
	if ref == nil || cur == nil || ref.count == 0 || cur.count == 0 {
		return DriftScores{}
	}
	rk, rc := ref.bins()
	ck, cc := cur.bins()
	rn, cn := float64(ref.count), float64(cur.count)
	var (
		out        DriftScores
		rCum, cCum float64
		rBin, cBin [psiBins]float64
		i, j       int
		kl, klr    float64
	)
	for i < len(rk) || j < len(ck) {
		var p, q float64 // reference and current mass of this bucket
		switch {
		case j >= len(ck) || (i < len(rk) && rk[i] < ck[j]):
			p = float64(rc[i]) / rn
			i++
		case i >= len(rk) || ck[j] < rk[i]:
			q = float64(cc[j]) / cn
			j++
		default:
			p, q = float64(rc[i])/rn, float64(cc[j])/cn
			i++
			j++
		}
		b := int(rCum * psiBins)
		if b >= psiBins {
			b = psiBins - 1
		}
		rBin[b] += p
		cBin[b] += q
		rCum += p
		cCum += q
		out.KS = math.Max(out.KS, math.Abs(rCum-cCum))
		m := (p + q) / 2
		if p > 0 {
			kl += p * math.Log2(p/m)
		}
		if q > 0 {
			klr += q * math.Log2(q/m)
		}
	}
	out.JS = math.Max(0, math.Min(1, (kl+klr)/2))
	for b := range psiBins {
		if rBin[b] == 0 && cBin[b] == 0 {
			continue
		}
		r, c := math.Max(rBin[b], psiFloor), math.Max(cBin[b], psiFloor)
		out.PSI += (c - r) * math.Log(c/r)
	}
	return out
}

// DriftThresholds are the levels above which a feature counts as drifted.
// Zero fields take the defaults noted.
type DriftThresholds struct {
	// PSI alarm level; zero means 0.1.
	PSI float64
	// KS alarm level; zero means 0.1.
	KS float64
	// JS alarm level (bits); zero means 0.1.
	JS float64
	// MinSamples is the fewest values either window needs before a feature
	// is scored; zero means 100.
	MinSamples uint64
}

func (t DriftThresholds) withDefaults() DriftThresholds {
	if t.PSI == 0 {
		t.PSI = 0.1
	}
	if t.KS == 0 {
		t.KS = 0.1
	}
	if t.JS == 0 {
		t.JS = 0.1
	}
	if t.MinSamples == 0 {
		t.MinSamples = 100
	}
	return t
}

// FeatureDrift is one feature's line in a DriftReport.
type FeatureDrift struct {
	// Feature is the feature name; embeddings are scored on their L2 norm.
	Feature string
	DriftScores
	// Reference and Current are the value counts of the two windows.
	Reference, Current uint64
	// Scored is false when a window has fewer than MinSamples values (the
	// scores are then zero) or the feature is a string.
	Scored bool
	// Drifted is true when any score exceeds its threshold.
	Drifted bool
}

// DriftReport compares a view's current statistics window with the
// reference captured by CaptureReference.
type DriftReport struct {
	View       string
	Version    int
	At         time.Time
	Thresholds DriftThresholds
	Features   []FeatureDrift
	// Drifted lists the features over a threshold.
	Drifted []string
}

// driftReport scores every numeric feature of cur against ref.
func driftReport(s *schema, ref, cur []FeatureStats, th DriftThresholds, now time.Time) DriftReport {
	th = th.withDefaults()
	rep := DriftReport{View: s.view.Name, Version: s.view.Version, At: now, Thresholds: th}
	for i, f := range s.view.Features {
		fd := FeatureDrift{Feature: f.Name}
		if i < len(ref) && i < len(cur) {
			fd.Reference, fd.Current = ref[i].Count, cur[i].Count
			if f.Kind != KindString && fd.Reference >= th.MinSamples && fd.Current >= th.MinSamples {
				fd.Scored = true
				fd.DriftScores = Compare(ref[i].Sketch, cur[i].Sketch)
				fd.Drifted = fd.PSI > th.PSI || fd.KS > th.KS || fd.JS > th.JS
			}
		}
		if fd.Drifted {
			rep.Drifted = append(rep.Drifted, f.Name)
		}
		rep.Features = append(rep.Features, fd)
	}
	return rep
}
