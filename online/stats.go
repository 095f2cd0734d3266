package online

import (
	"math"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/quiverml/quiver/internal/metrics"
)

// Stats is a snapshot of a loop's counters.
type Stats struct {
	// Predictions served and logged; PredictErrors refused or failed.
	Predictions, PredictErrors uint64
	// Outcomes received; Joined to their prediction; Unmatched with no
	// pending prediction (ErrUnknownRequest); Rejected as invalid
	// (ErrOutcome).
	Outcomes, Joined, Unmatched, Rejected uint64
	// Expired predictions waited longer than Options.TTL; Evicted ones
	// made room under Options.MaxPending; Pending wait now.
	Expired, Evicted uint64
	Pending          int
	// InvalidRows are joined rows with a value that is not finite,
	// neither trained on nor scored.
	InvalidRows uint64
	// HeldOut events scored; Trained rows learned from in Updates
	// mini-batches; UpdateErrors mini-batches the learner refused;
	// ScoreErrors failed scorings of held-out events.
	HeldOut, Trained, Updates, UpdateErrors, ScoreErrors uint64
	// Exports are candidates published; ExportErrors failed attempts;
	// Promotions and Stops the decisions taken.
	Exports, ExportErrors, Promotions, Stops uint64
	// Canary is the version being judged, 0 when none.
	Canary int64
	// Window is the latest complete window report (zero before the first).
	Window Window
}

// Stats returns a snapshot of the loop's counters.
func (l *Loop) Stats() Stats {
	c := &l.stats
	s := Stats{
		Predictions: c.predictions.Load(), PredictErrors: c.predictErrors.Load(),
		Outcomes: c.outcomes.Load(), Joined: c.joined.Load(), Unmatched: c.unmatched.Load(), Rejected: c.rejected.Load(),
		InvalidRows: c.invalidRows.Load(),
		HeldOut:     c.heldOut.Load(), Trained: c.trained.Load(), Updates: c.updates.Load(), UpdateErrors: c.updateErrs.Load(),
		ScoreErrors: c.scoreErrors.Load(),
		Exports:     c.exports.Load(), ExportErrors: c.exportErrors.Load(), Promotions: c.promotions.Load(), Stops: c.stops.Load(),
	}
	l.mu.Lock()
	s.Expired, s.Evicted, s.Pending = l.plog.expired, l.plog.evicted, l.plog.len()
	l.mu.Unlock()
	l.tmu.Lock()
	if l.dep != nil {
		s.Canary = l.dep.canary
	}
	if l.haveLast {
		s.Window = l.lastWin
		s.Window.Metrics = make(map[string]Metrics, len(l.lastWin.Metrics))
		for k, v := range l.lastWin.Metrics {
			s.Window.Metrics[k] = v
		}
	}
	l.tmu.Unlock()
	return s
}

// Collector returns a prometheus.Collector exporting Stats under the
// quiver_online_ prefix:
//
//   - quiver_online_predictions_total, quiver_online_predict_errors_total
//   - quiver_online_outcomes_total{result="joined"|"unmatched"|"rejected"}
//   - quiver_online_expired_total, quiver_online_evicted_total, quiver_online_pending (gauge)
//   - quiver_online_heldout_total, quiver_online_trained_rows_total, quiver_online_invalid_rows_total
//   - quiver_online_updates_total, quiver_online_update_errors_total, quiver_online_score_errors_total
//   - quiver_online_exports_total, quiver_online_export_errors_total
//   - quiver_online_promotions_total, quiver_online_stops_total
//   - quiver_online_canary_version (gauge, 0 when none)
//   - quiver_online_window_auc, quiver_online_window_log_loss (gauges;
//     model="learner", the production alias, each baseline): the latest
//     complete window
//
// Every series carries constLabels as constant labels, added to the
// default {"loop": Options.Name}; a key of constLabels overrides the
// default. Loops whose labels differ register side by side in one
// registry. The caller registers it where it wants; the package registers
// nothing.
func (l *Loop) Collector(constLabels prometheus.Labels) prometheus.Collector {
	cl := metrics.ConstLabels(prometheus.Labels{"loop": l.opts.Name}, constLabels)
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("quiver_online_"+name, help, labels, cl)
	}
	return &collector{l: l,
		predictions:   d("predictions_total", "Predictions served and logged."),
		predictErrors: d("predict_errors_total", "Predictions refused or failed."),
		outcomes:      d("outcomes_total", "Outcomes received, by result.", "result"),
		expired:       d("expired_total", "Predictions whose outcome did not come within the TTL."),
		evicted:       d("evicted_total", "Predictions evicted to keep the log within MaxPending."),
		pending:       d("pending", "Predictions waiting for their outcome."),
		heldOut:       d("heldout_total", "Joined events held out and scored."),
		trained:       d("trained_rows_total", "Rows the learner was trained on."),
		invalid:       d("invalid_rows_total", "Joined rows with a value that is not finite."),
		updates:       d("updates_total", "Mini-batch updates applied."),
		updateErrors:  d("update_errors_total", "Mini-batches the learner refused."),
		scoreErrors:   d("score_errors_total", "Held-out scorings that failed."),
		exports:       d("exports_total", "Candidates exported and published."),
		exportErrors:  d("export_errors_total", "Candidate deployments that failed."),
		promotions:    d("promotions_total", "Candidates promoted to production."),
		stops:         d("stops_total", "Candidates stopped."),
		canary:        d("canary_version", "Registry version being judged as a canary, 0 when none."),
		auc:           d("window_auc", "AUC over the latest complete window of held-out events.", "model"),
		logLoss:       d("window_log_loss", "Log-loss over the latest complete window of held-out events.", "model"),
	}
}

type collector struct {
	l                                                *Loop
	predictions, predictErrors, outcomes             *prometheus.Desc
	expired, evicted, pending                        *prometheus.Desc
	heldOut, trained, invalid                        *prometheus.Desc
	updates, updateErrors, scoreErrors               *prometheus.Desc
	exports, exportErrors, promotions, stops, canary *prometheus.Desc
	auc, logLoss                                     *prometheus.Desc
}

func (c *collector) descs() []*prometheus.Desc {
	return []*prometheus.Desc{c.predictions, c.predictErrors, c.outcomes, c.expired, c.evicted, c.pending,
		c.heldOut, c.trained, c.invalid, c.updates, c.updateErrors, c.scoreErrors,
		c.exports, c.exportErrors, c.promotions, c.stops, c.canary, c.auc, c.logLoss}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs() {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.l.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(c.predictions, s.Predictions)
	counter(c.predictErrors, s.PredictErrors)
	counter(c.outcomes, s.Joined, "joined")
	counter(c.outcomes, s.Unmatched, "unmatched")
	counter(c.outcomes, s.Rejected, "rejected")
	counter(c.expired, s.Expired)
	counter(c.evicted, s.Evicted)
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(s.Pending))
	counter(c.heldOut, s.HeldOut)
	counter(c.trained, s.Trained)
	counter(c.invalid, s.InvalidRows)
	counter(c.updates, s.Updates)
	counter(c.updateErrors, s.UpdateErrors)
	counter(c.scoreErrors, s.ScoreErrors)
	counter(c.exports, s.Exports)
	counter(c.exportErrors, s.ExportErrors)
	counter(c.promotions, s.Promotions)
	counter(c.stops, s.Stops)
	ch <- prometheus.MustNewConstMetric(c.canary, prometheus.GaugeValue, float64(s.Canary))
	names := make([]string, 0, len(s.Window.Metrics))
	for k := range s.Window.Metrics {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		m := s.Window.Metrics[name]
		ch <- prometheus.MustNewConstMetric(c.auc, prometheus.GaugeValue, m.AUC, name)
		ll := m.LogLoss
		if math.IsNaN(ll) {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.logLoss, prometheus.GaugeValue, ll, name)
	}
}
