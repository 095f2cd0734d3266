package serving

import (
	"math/bits"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector returns a prometheus.Collector exposing the batcher's counters,
// with latencies in seconds. Register it where the application wants it;
// Quiver never registers metrics globally. Every series carries a "model"
// label with Info().Name.
func (b *Batcher) Collector() prometheus.Collector {
	return &collector{b: b, model: b.info.Name}
}

var (
	descRequests   = prometheus.NewDesc("quiver_serving_requests_total", "Requests accepted into the batcher queue.", []string{"model"}, nil)
	descRows       = prometheus.NewDesc("quiver_serving_rows_total", "Rows run, padding excluded.", []string{"model"}, nil)
	descBatches    = prometheus.NewDesc("quiver_serving_batches_total", "Model runs.", []string{"model"}, nil)
	descPadding    = prometheus.NewDesc("quiver_serving_padding_rows_total", "Rows added to reach an allowed batch size.", []string{"model"}, nil)
	descErrors     = prometheus.NewDesc("quiver_serving_errors_total", "Failed requests by kind.", []string{"model", "kind"}, nil)
	descBatchSize  = prometheus.NewDesc("quiver_serving_batch_size_rows", "Rows per model run, padding excluded.", []string{"model"}, nil)
	descQueueWait  = prometheus.NewDesc("quiver_serving_queue_wait_seconds", "Time from enqueue to the start of the run.", []string{"model"}, nil)
	descRun        = prometheus.NewDesc("quiver_serving_run_seconds", "Model run time per batch.", []string{"model"}, nil)
	descLatency    = prometheus.NewDesc("quiver_serving_request_seconds", "Time a successful request spent in Predict.", []string{"model"}, nil)
	descQueueLen   = prometheus.NewDesc("quiver_serving_queue_length", "Requests waiting in the queue.", []string{"model"}, nil)
	descInFlight   = prometheus.NewDesc("quiver_serving_batches_in_flight", "Batches running now.", []string{"model"}, nil)
	batchSizeEdges = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}
)

type collector struct {
	b     *Batcher
	model string
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descRows, descBatches, descPadding, descErrors,
		descBatchSize, descQueueWait, descRun, descLatency, descQueueLen, descInFlight} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.b.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{c.model}, labels...)...)
	}
	counter(descRequests, s.Requests)
	counter(descRows, s.Rows)
	counter(descBatches, s.Batches)
	counter(descPadding, s.Padding)
	for _, k := range errKinds {
		counter(descErrors, s.Errors[k], k)
	}
	ch <- prometheus.MustNewConstMetric(descQueueLen, prometheus.GaugeValue, float64(s.QueueLength), c.model)
	ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(s.InFlight), c.model)

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
	ch <- prometheus.MustNewConstHistogram(descBatchSize, total, float64(sum), buckets, c.model)

	for _, h := range []struct {
		d *prometheus.Desc
		h *latencyHist
	}{{descQueueWait, &c.b.stats.queueWait}, {descRun, &c.b.stats.run}, {descLatency, &c.b.stats.latency}} {
		ch <- latencyMetric(h.d, h.h, c.model)
	}
}

// latencyMetric exports a latency histogram in seconds with one bucket per
// power of two of nanoseconds, from 1µs to about 69s.
func latencyMetric(d *prometheus.Desc, h *latencyHist, model string) prometheus.Metric {
	counts, n, sum := h.snapshot()
	buckets := map[float64]uint64{}
	var cum uint64
	for i, x := range counts {
		cum += x
		ub := upperBound(i)
		if i%(1<<histSubBits) == 1<<histSubBits-1 && ub >= time.Microsecond && ub <= 70*time.Second {
			buckets[ub.Seconds()] = cum
		}
	}
	return prometheus.MustNewConstHistogram(d, n, sum.Seconds(), buckets, model)
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
