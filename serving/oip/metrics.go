package oip

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/quiverml/quiver/internal/latency"
	"github.com/quiverml/quiver/internal/metrics"
	"github.com/quiverml/quiver/serving"
)

// Endpoints, as Stats and the metrics name them.
const (
	EndpointLive           = "health_live"
	EndpointReady          = "health_ready"
	EndpointServerMetadata = "server_metadata"
	EndpointModelMetadata  = "model_metadata"
	EndpointModelReady     = "model_ready"
	EndpointInfer          = "infer"
	// EndpointOther counts REST requests for paths the protocol does not
	// define.
	EndpointOther = "other"
)

type endpoint int

const (
	epLive endpoint = iota
	epReady
	epServerMetadata
	epModelMetadata
	epModelReady
	epInfer
	epOther
	numEndpoints
)

var endpointNames = [numEndpoints]string{EndpointLive, EndpointReady, EndpointServerMetadata,
	EndpointModelMetadata, EndpointModelReady, EndpointInfer, EndpointOther}

// The codes counted: every HTTP status the handler answers with, and every
// gRPC code.
var (
	httpCodes = []int{200, 400, 404, 405, 413, 415, statusCanceled, 500, 503, 504}
	grpcCodes = func() []string {
		out := make([]string, 17)
		for c := range out {
			out[c] = codes.Code(c).String()
		}
		return out
	}()
)

// RequestKey identifies a request counter: the endpoint and the code of the
// answer, an HTTP status ("200", "404") for the REST handler, a gRPC code
// name ("OK", "NotFound") for the gRPC server.
type RequestKey struct {
	Endpoint string
	Code     string
}

// Stats is a snapshot of a handler's or gRPC server's counters.
type Stats struct {
	// Requests counts answered requests by endpoint and code; codes never
	// seen are left out.
	Requests map[RequestKey]uint64
	// Infer is the time successful inference requests took, from their
	// arrival (the request read, for REST) to their answer encoded.
	Infer serving.Latency
}

// counters holds a handler's or server's counts.
type counters struct {
	protocol string
	codes    []string
	n        [numEndpoints][]atomic.Uint64
	infer    latency.Histogram
}

func newCounters(protocol string, codeNames []string) *counters {
	c := &counters{protocol: protocol, codes: codeNames}
	for i := range c.n {
		c.n[i] = make([]atomic.Uint64, len(codeNames))
	}
	return c
}

func newHTTPCounters() *counters {
	names := make([]string, len(httpCodes))
	for i, s := range httpCodes {
		names[i] = strconv.Itoa(s)
	}
	return newCounters("rest", names)
}

func newGRPCCounters() *counters { return newCounters("grpc", grpcCodes) }

func (c *counters) add(ep endpoint, code int) {
	if code >= 0 && code < len(c.codes) {
		c.n[ep][code].Add(1)
	}
}

// httpCodeIndex returns the counter slot of an HTTP status.
func httpCodeIndex(status int) int {
	for i, s := range httpCodes {
		if s == status {
			return i
		}
	}
	return -1
}

func (c *counters) stats() Stats {
	st := Stats{Requests: map[RequestKey]uint64{}}
	for ep := range c.n {
		for code := range c.n[ep] {
			if v := c.n[ep][code].Load(); v > 0 {
				st.Requests[RequestKey{endpointNames[ep], c.codes[code]}] = v
			}
		}
	}
	s := c.infer.Snapshot()
	st.Infer = serving.Latency{Count: s.Count, Mean: s.Mean(), P50: s.Quantile(0.5),
		P95: s.Quantile(0.95), P99: s.Quantile(0.99), Max: s.Max()}
	return st
}

func (c *counters) observe(start time.Time) { c.infer.Observe(time.Since(start)) }

// collector exports counters to Prometheus.
type collector struct {
	c        *counters
	requests *prometheus.Desc
	infer    *prometheus.Desc
}

func (c *counters) collector(constLabels prometheus.Labels) prometheus.Collector {
	l := metrics.ConstLabels(prometheus.Labels{"protocol": c.protocol}, constLabels)
	return &collector{c: c,
		requests: prometheus.NewDesc("quiver_oip_requests_total",
			"Open Inference Protocol requests answered, by endpoint and code (HTTP status or gRPC code).",
			[]string{"endpoint", "code"}, l),
		infer: prometheus.NewDesc("quiver_oip_infer_seconds",
			"Time a successful inference request took, from arrival to the answer encoded.", nil, l),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.requests
	ch <- c.infer
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for ep := range c.c.n {
		for code := range c.c.n[ep] {
			if v := c.c.n[ep][code].Load(); v > 0 {
				ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(v),
					endpointNames[ep], c.c.codes[code])
			}
		}
	}
	ch <- c.c.infer.Snapshot().Metric(c.infer)
}
