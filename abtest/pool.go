package abtest

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/quiverml/quiver/internal/latency"
)

// Moments summarise a set of values: their count N, their Mean and M2, the
// sum of their squared deviations from the mean (the unbiased variance is
// M2/(N-1)). The moments of disjoint sets merge exactly (Chan, Golub and
// LeVeque's pairwise update), which is how the statistics of several
// replicas pool without any replica seeing the others' values.
type Moments struct {
	N    uint64
	Mean float64
	M2   float64
}

// Merge returns the moments of the union of m's values and o's values.
func (m Moments) Merge(o Moments) Moments {
	return momentsOf(welford{n: m.N, mean: m.Mean, m2: m.M2}.merge(welford{n: o.N, mean: o.Mean, m2: o.M2}))
}

// Remove returns the moments of m's values without o's, where o summarises
// a subset of them (an earlier state of the same accumulator). When o has
// as many values as m or more, the result is empty.
func (m Moments) Remove(o Moments) Moments {
	return momentsOf(welford{n: m.N, mean: m.Mean, m2: m.M2}.remove(welford{n: o.N, mean: o.Mean, m2: o.M2}))
}

// Sample returns the count, mean and unbiased variance.
func (m Moments) Sample() Sample { return welford{n: m.N, mean: m.Mean, m2: m.M2}.sample() }

// Check returns nil when m could summarise real values: Mean and M2 finite,
// |Mean| <= MaxReward, M2 >= 0, and Mean and M2 zero when N is zero.
// Otherwise it returns an error wrapping ErrTotals.
func (m Moments) Check() error {
	if !finite(m.Mean) || !finite(m.M2) || m.M2 < 0 || math.Abs(m.Mean) > MaxReward {
		return fmt.Errorf("%w: moments n=%d mean=%v m2=%v, want a finite mean within ±%g and a finite m2 >= 0", ErrTotals, m.N, m.Mean, m.M2, MaxReward)
	}
	if m.N == 0 && (m.Mean != 0 || m.M2 != 0) {
		return fmt.Errorf("%w: moments of no values have mean %v, m2 %v, want 0", ErrTotals, m.Mean, m.M2)
	}
	return nil
}

func momentsOf(w welford) Moments { return Moments{N: w.n, Mean: w.mean, M2: w.m2} }

func (m Moments) welford() welford { return welford{n: m.N, mean: m.Mean, m2: m.M2} }

// merge is the pairwise update of Chan, Golub and LeVeque (1979).
func (w welford) merge(o welford) welford {
	n := w.n + o.n
	if n == 0 {
		return welford{}
	}
	if w.n == 0 {
		return o
	}
	if o.n == 0 {
		return w
	}
	nf, wn, on := float64(n), float64(w.n), float64(o.n)
	d := o.mean - w.mean
	return welford{n: n, mean: w.mean + d*on/nf, m2: w.m2 + o.m2 + d*d*wn*on/nf}
}

// remove inverts merge: it returns r such that r.merge(o) == w.
func (w welford) remove(o welford) welford {
	if o.n >= w.n {
		return welford{}
	}
	if o.n == 0 {
		return w
	}
	n := w.n - o.n
	nf, wn, on := float64(n), float64(w.n), float64(o.n)
	mean := (wn*w.mean - on*o.mean) / nf
	d := o.mean - mean
	m2 := w.m2 - o.m2 - d*d*nf*on/wn
	if !(m2 > 0) { // rounding, or a NaN from values that were never a superset
		m2 = 0
	}
	if !finite(mean) {
		return welford{}
	}
	return welford{n: n, mean: mean, m2: m2}
}

// Totals are statistics in a form that adds up across replicas: named
// counters, which add, and named Moments, which merge. A holder (a Tracker,
// one of the package's bandits) reports its own numbers as Totals and can
// be given the totals of every replica pooled (see Poolable); a state
// backend such as abtest/redisstate moves them between replicas. The names
// are documented by each holder and are stable across releases.
type Totals struct {
	Counters map[string]uint64
	Moments  map[string]Moments
}

// Poolable is implemented by the statistics that replicas of a service can
// pool: *Tracker and the package's bandits. A state backend reads each
// replica's own numbers with Totals and hands back the pooled numbers of
// all replicas with SetPooled; nothing on the request path waits for it.
type Poolable interface {
	// Totals returns this replica's own cumulative numbers: everything
	// recorded here since creation, never anything pooled.
	Totals() Totals
	// SetPooled makes reads (Stats, Select, the guardrail's checks) report
	// pooled plus whatever this replica recorded after base was taken,
	// where base is a Totals of this replica whose numbers pooled already
	// includes. Names the holder does not know are ignored, so replicas
	// with different variant lists can pool. Invalid moments return
	// ErrTotals and leave the holder as it was. SetPooled(Totals{},
	// Totals{}) returns to purely local numbers.
	SetPooled(pooled, base Totals) error
}

var (
	_ Poolable = (*Tracker)(nil)
	_ Poolable = (*EpsilonGreedy)(nil)
	_ Poolable = (*UCB1)(nil)
	_ Poolable = (*ThompsonBeta)(nil)
	_ Poolable = (*ThompsonGaussian)(nil)
)

func checkTotals(ts ...Totals) error {
	for _, t := range ts {
		for name, m := range t.Moments {
			if err := m.Check(); err != nil {
				return fmt.Errorf("%w (%q)", err, name)
			}
		}
	}
	return nil
}

// pooledOffset returns pooled - base as a signed offset.
func pooledOffset(pooled, base uint64) int64 { return int64(pooled - base) }

// addOffset adds a signed offset to a local count, clamping at zero.
func addOffset(local uint64, off int64) uint64 {
	if off >= 0 {
		return local + uint64(off)
	}
	if d := uint64(-off); d < local {
		return local - d
	}
	return 0
}

// poolMoments returns pooled ⊕ (local ⊖ base): what every replica recorded
// until the pool was read, plus what this replica recorded since.
func poolMoments(pooled, base, local welford) welford {
	return pooled.merge(local.remove(base))
}

// Names of a Tracker's Totals; each is followed by "/" and the variant's
// name (the latency bucket's index comes before the variant).
const (
	totalRequests    = "requests/"
	totalErrors      = "errors/"
	totalExposures   = "exposures/"
	totalConversions = "conversions/"
	totalLatencySum  = "latency_ns/"
	totalLatency     = "latency/"
	totalMetric      = "metric/"
)

// Totals returns this replica's own cumulative numbers of every variant
// (never the pooled ones), named by the variant v:
//
//   - counters "requests/v", "errors/v", "exposures/v", "conversions/v";
//   - counter "latency_ns/v", the sum of request latencies in nanoseconds;
//   - counter "latency/i/v" for each non-empty bucket i (decimal) of the
//     request latency histogram: log-linear over nanoseconds, a bucket per
//     value below 16ns, above that 16 equal buckets per power of two;
//   - moments "metric/v", the values given to Observe.
//
// Zero counters and empty moments are left out.
func (t *Tracker) Totals() Totals {
	tot := Totals{Counters: make(map[string]uint64, len(t.names)*8), Moments: make(map[string]Moments, len(t.names))}
	put := func(name string, n uint64) {
		if n != 0 {
			tot.Counters[name] = n
		}
	}
	t.totalNamesMu.Lock()
	defer t.totalNamesMu.Unlock()
	if t.totalNames == nil {
		t.totalNames = make([]variantTotalNames, len(t.names))
		for i, name := range t.names {
			t.totalNames[i] = variantTotalNames{
				requests: totalRequests + name, errors: totalErrors + name, exposures: totalExposures + name,
				conversions: totalConversions + name, latencySum: totalLatencySum + name, metric: totalMetric + name,
				latency: make([]string, latency.NumBuckets),
			}
		}
	}
	for i, name := range t.names {
		v, n := t.vs[i], &t.totalNames[i]
		put(n.requests, v.requests.Load())
		put(n.errors, v.errors.Load())
		put(n.exposures, v.exposures.Load())
		put(n.conversions, v.conversions.Load())
		lat := v.latency.Snapshot()
		put(n.latencySum, uint64(max(lat.Sum, 0)))
		for b, c := range lat.Counts {
			if c != 0 {
				if n.latency[b] == "" {
					n.latency[b] = totalLatency + strconv.Itoa(b) + "/" + name
				}
				tot.Counters[n.latency[b]] = c
			}
		}
		v.mu.Lock()
		m := v.metric
		v.mu.Unlock()
		if m.n != 0 {
			tot.Moments[n.metric] = momentsOf(m)
		}
	}
	return tot
}

// variantTotalNames caches the names of one variant's Totals, so a state
// backend reading them every flush does not build them every time.
type variantTotalNames struct {
	requests, errors, exposures, conversions, latencySum, metric string
	latency                                                      []string // by bucket, built when first used
}

// SetPooled makes the tracker's reads report pooled plus what this replica
// recorded after base was taken (see Poolable). Counters and moments not
// named as Totals documents, or naming variants the tracker does not have,
// are ignored.
func (t *Tracker) SetPooled(pooled, base Totals) error {
	if err := checkTotals(pooled, base); err != nil {
		return err
	}
	p := &trackerPool{vs: make([]variantPool, len(t.names))}
	var lat [][]int64 // per variant, per bucket: pooled - base
	add := func(name string, n uint64, sign int64) {
		kind, rest, ok := strings.Cut(name, "/")
		if !ok {
			return
		}
		if kind+"/" == totalLatency {
			idx, variant, ok := strings.Cut(rest, "/")
			b, err := strconv.Atoi(idx)
			i, known := t.index[variant]
			if !ok || err != nil || b < 0 || b >= latency.NumBuckets || !known {
				return
			}
			if lat == nil {
				lat = make([][]int64, len(t.names))
			}
			if lat[i] == nil {
				lat[i] = make([]int64, latency.NumBuckets)
			}
			lat[i][b] += sign * int64(n)
			return
		}
		i, known := t.index[rest]
		if !known {
			return
		}
		v := &p.vs[i]
		switch kind + "/" {
		case totalRequests:
			v.requests += sign * int64(n)
		case totalErrors:
			v.errors += sign * int64(n)
		case totalExposures:
			v.exposures += sign * int64(n)
		case totalConversions:
			v.conversions += sign * int64(n)
		case totalLatencySum:
			v.latencySum += sign * int64(n)
		}
	}
	for name, n := range pooled.Counters {
		add(name, n, 1)
	}
	for name, n := range base.Counters {
		add(name, n, -1)
	}
	for i, offs := range lat {
		v := &p.vs[i]
		for b, d := range offs {
			if d != 0 {
				v.latency = append(v.latency, bucketOffset{bucket: b, offset: d})
			}
		}
	}
	metric := func(ms map[string]Moments, dst func(*variantPool) *welford) {
		for name, m := range ms {
			variant, ok := strings.CutPrefix(name, totalMetric)
			if i, known := t.index[variant]; ok && known {
				*dst(&p.vs[i]) = m.welford()
			}
		}
	}
	metric(pooled.Moments, func(v *variantPool) *welford { return &v.metric })
	metric(base.Moments, func(v *variantPool) *welford { return &v.metricBase })
	t.pool.Store(p)
	return nil
}

// trackerPool turns a tracker's local counts into pooled counts: it holds
// pooled - base for each counter (applied to the live local counts, so
// what this replica records shows at once) and both moments.
type trackerPool struct {
	vs []variantPool
}

type variantPool struct {
	requests, errors, exposures, conversions, latencySum int64
	latency                                              []bucketOffset
	metric, metricBase                                   welford
}

type bucketOffset struct {
	bucket int
	offset int64
}

// apply turns a local latency snapshot into a pooled one.
func (v *variantPool) apply(s *latency.Snapshot) {
	for _, o := range v.latency {
		s.Counts[o.bucket] = addOffset(s.Counts[o.bucket], o.offset)
	}
	s.Count = 0
	for _, c := range s.Counts {
		s.Count += c
	}
	s.Sum = time.Duration(addOffset(uint64(max(s.Sum, 0)), v.latencySum))
}

// Merge returns the totals of both t's and o's values: counters of the same
// name add, moments of the same name merge. Neither input is modified.
func (t Totals) Merge(o Totals) Totals {
	out := Totals{Counters: make(map[string]uint64, len(t.Counters)+len(o.Counters)), Moments: make(map[string]Moments, len(t.Moments)+len(o.Moments))}
	for _, x := range []Totals{t, o} {
		for k, v := range x.Counters {
			out.Counters[k] += v
		}
		for k, v := range x.Moments {
			out.Moments[k] = out.Moments[k].Merge(v)
		}
	}
	return out
}
