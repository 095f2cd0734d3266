// Package metrics holds the Prometheus plumbing every Quiver collector
// shares, so that collectors of different packages label their series the
// same way.
package metrics

import "github.com/prometheus/client_golang/prometheus"

// ConstLabels returns the constant labels of one collector: the instance's
// defaults (its model, store or index name), extended and overridden by
// the labels the caller gave. The defaults are always present, even with
// an empty value, so that every instance of a type exports the same label
// names and instances can share one registry.
func ConstLabels(defaults, given prometheus.Labels) prometheus.Labels {
	out := make(prometheus.Labels, len(defaults)+len(given))
	for k, v := range defaults {
		out[k] = v
	}
	for k, v := range given {
		out[k] = v
	}
	return out
}
