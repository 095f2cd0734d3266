package serving

import (
	"math/bits"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quiverml/quiver/internal/metrics"
)

// Collector returns a prometheus.Collector exposing the batcher's counters,
// with latencies as histograms in seconds. Register it where the
// application wants it; Quiver never registers metrics globally.
//
// Every series carries constLabels as constant labels, added to the
// default {"model": name} (the name of the model the batcher was created
// over); a key of constLabels overrides the default. Batchers whose labels
// differ register side by side in one registry; two with identical labels
// are refused by the registry as a duplicate. Every collector registered in
// one registry must use the same label names.
func (b *Batcher) Collector(constLabels prometheus.Labels) prometheus.Collector {
	l := metrics.ConstLabels(prometheus.Labels{"model": b.name}, constLabels)
	d := func(name, help string, variable ...string) *prometheus.Desc {
		return prometheus.NewDesc("quiver_serving_"+name, help, variable, l)
	}
	return &collector{b: b,
		requests:  d("requests_total", "Requests accepted into the batcher queue."),
		rows:      d("rows_total", "Rows run, padding excluded."),
		batches:   d("batches_total", "Model runs."),
		padding:   d("padding_rows_total", "Rows added to reach an allowed batch size."),
		errors:    d("errors_total", "Failed requests by kind.", "kind"),
		batchSize: d("batch_size_rows", "Rows per model run, padding excluded."),
		queueWait: d("queue_wait_seconds", "Time from enqueue to the start of the run."),
		run:       d("run_seconds", "Model run time per batch."),
		latency:   d("request_seconds", "Time a successful request spent in Predict."),
		queueLen:  d("queue_length", "Requests waiting in the queue."),
		inFlight:  d("batches_in_flight", "Batches running now."),
		adaptSize: d("adaptive_batch_size", "Most rows per batch that adaptive batching chose for a shape group.", "shape"),
		adaptRate: d("adaptive_rows_per_second", "Rows per second of worker time measured for a shape group's batches under a size cap.", "shape", "size"),
	}
}

var batchSizeEdges = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

type collector struct {
	b                                            *Batcher
	requests, rows, batches, padding, errors     *prometheus.Desc
	batchSize, queueWait, run, latency, queueLen *prometheus.Desc
	inFlight, adaptSize, adaptRate               *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.requests, c.rows, c.batches, c.padding, c.errors,
		c.batchSize, c.queueWait, c.run, c.latency, c.queueLen, c.inFlight, c.adaptSize, c.adaptRate} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.b.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(c.requests, s.Requests)
	counter(c.rows, s.Rows)
	counter(c.batches, s.Batches)
	counter(c.padding, s.Padding)
	for _, k := range errKinds {
		counter(c.errors, s.Errors[k], k)
	}
	ch <- prometheus.MustNewConstMetric(c.queueLen, prometheus.GaugeValue, float64(s.QueueLength))
	ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(s.InFlight))
	for _, g := range s.Adaptive {
		ch <- prometheus.MustNewConstMetric(c.adaptSize, prometheus.GaugeValue, float64(g.Size), g.Shape)
		for _, z := range g.Sizes {
			if z.RowsPerSecond > 0 {
				ch <- prometheus.MustNewConstMetric(c.adaptRate, prometheus.GaugeValue, z.RowsPerSecond, g.Shape, strconv.Itoa(z.Size))
			}
		}
	}

	// Batch sizes.
	buckets := make(map[float64]uint64, len(batchSizeEdges))
	var total, sum uint64
	for _, size := range s.sortedSizes() {
		n := s.BatchSizes[size]
		total += n
		sum += n * uint64(size)
		for _, e := range batchSizeEdges {
			if float64(size) <= e {
				buckets[e] += n
			}
		}
	}
	ch <- prometheus.MustNewConstHistogram(c.batchSize, total, float64(sum), buckets)

	st := c.b.stats
	ch <- st.queueWait.snapshot().Metric(c.queueWait)
	ch <- st.run.snapshot().Metric(c.run)
	ch <- st.latency.snapshot().Metric(c.latency)
}

// String renders the stats on a few lines, for logs and examples.
func (s Stats) String() string {
	out := "requests=" + strconv.FormatUint(s.Requests, 10) +
		" rows=" + strconv.FormatUint(s.Rows, 10) +
		" batches=" + strconv.FormatUint(s.Batches, 10)
	if s.Batches > 0 {
		out += " mean_batch=" + strconv.FormatFloat(float64(s.Rows)/float64(s.Batches), 'f', 1, 64)
	}
	lat := func(name string, l Latency) string {
		return "\n" + name + ": p50=" + round(l.P50) + " p95=" + round(l.P95) + " p99=" + round(l.P99)
	}
	out += lat("latency", s.Latency) + lat("queue wait", s.QueueWait) + lat("run", s.Run)
	out += "\nbatches by rows:"
	// Powers of two: 1, 2-3, 4-7, ... keep the line short for any batch size.
	var lo, n uint64
	flush := func(hi int) {
		if n > 0 {
			r := strconv.FormatUint(lo, 10)
			if uint64(hi) > lo {
				r += "-" + strconv.Itoa(hi)
			}
			out += " " + r + ":" + strconv.FormatUint(n, 10)
		}
	}
	for _, size := range s.sortedSizes() {
		p := uint64(1) << (bits.Len(uint(size)) - 1)
		if p != lo {
			flush(int(2*lo - 1))
			lo, n = p, 0
		}
		n += s.BatchSizes[size]
	}
	flush(int(2*lo - 1))
	for _, g := range s.Adaptive {
		out += "\nadaptive " + g.Shape + ": size " + strconv.Itoa(g.Size) + ", rows/s by size:"
		for _, z := range g.Sizes {
			if z.RowsPerSecond > 0 {
				out += " " + strconv.Itoa(z.Size) + ":" + strconv.FormatFloat(z.RowsPerSecond, 'f', 0, 64)
			}
		}
	}
	var errs uint64
	for _, v := range s.Errors {
		errs += v
	}
	if errs > 0 {
		out += "\nerrors:"
		for _, k := range errKinds {
			if s.Errors[k] > 0 {
				out += " " + k + "=" + strconv.FormatUint(s.Errors[k], 10)
			}
		}
	}
	return out
}

func round(d time.Duration) string {
	switch {
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	case d >= time.Microsecond:
		return d.Round(100 * time.Nanosecond).String()
	}
	return d.String()
}
