package main

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// httpMetrics are the service's own series, beside those of the packages.
type httpMetrics struct {
	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

func (m *httpMetrics) observe(route string, code int, took time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.seconds.WithLabelValues(route).Observe(took.Seconds())
}

// newMetrics builds the registry /metrics serves. Quiver's packages never
// register anything themselves: each part offers a Collector and the
// application registers it here. Every collector labels its series by
// instance (registry="models", model="ranker@production", experiment=...,
// store="online", index="items"), so the three batchers and the three
// trackers sit side by side without a duplicate registration.
func (a *App) newMetrics() (*prometheus.Registry, *httpMetrics, error) {
	hm := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quiver_recommender_http_requests_total",
			Help: "HTTP requests answered by the recommender, by route and status code.",
		}, []string{"route", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "quiver_recommender_http_request_seconds",
			Help:    "Time to answer an HTTP request, by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"route"}),
	}
	cs := []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		hm.requests, hm.seconds,
		a.mem.Collector(nil),                    // quiver_features_*, store="online"
		a.index.Collector(nil),                  // quiver_vector_*, index="items"
		a.srv.Collector(nil),                    // quiver_registry_*, registry="models"
		a.router.Collector(nil),                 // quiver_abtest_router_*, experiment="ranker-canary"
		a.router.Tracker().Collector(nil),       // quiver_abtest_*, experiment="ranker-canary"
		a.router.ShadowTracker().Collector(nil), // experiment="ranker-canary/shadow"
		a.clicks.Collector(nil),                 // experiment="ranker-canary/clicks"
		a.oip.Collector(nil),                    // quiver_oip_*, protocol="rest"
	}
	if a.tier != nil {
		cs = append(cs, a.tier.Collector(nil)) // quiver_features_redis_*, store="online"
	}
	if a.share != nil {
		cs = append(cs, a.share.Collector(nil)) // quiver_abtest_sync_*, replica=<host and pid>
	}
	for _, alias := range servedAliases {
		cs = append(cs, a.batchers[alias].Collector(nil)) // quiver_serving_*, model="ranker@<alias>"
	}
	reg := prometheus.NewRegistry()
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, nil, err
		}
	}
	return reg, hm, nil
}
