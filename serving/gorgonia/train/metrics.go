package train

import (
	"math"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quiverml/quiver/internal/latency"
	"github.com/quiverml/quiver/internal/metrics"
	"github.com/quiverml/quiver/serving"
)

type counters struct {
	steps, rows                     atomic.Int64
	inputErrors, diverged, canceled atomic.Int64
	predictions, predictRows        atomic.Int64
	predictErrors                   atomic.Int64
	updateLatency, predictLatency   latency.Histogram
}

// Stats is a snapshot of a trainer's counters.
type Stats struct {
	// Step is the number of steps applied since the trainer was created
	// (a loaded trainer counts the steps of its saved state too), Rows the
	// rows they trained on.
	Step, Rows int64
	// Loss is the loss of the last step (see UpdateStats.Loss), NaN before
	// the first.
	Loss float64
	// Updates counts the steps applied by this process, UpdateRows their
	// rows.
	Updates, UpdateRows int64
	// InputErrors counts updates refused for bad inputs or targets,
	// Diverged those refused for a non-finite loss, gradient or step, and
	// Canceled those whose context ended first.
	InputErrors, Diverged, Canceled int64
	// Predictions counts the Predict calls answered, PredictRows their
	// rows, PredictErrors the calls refused for bad inputs.
	Predictions, PredictRows, PredictErrors int64
	// UpdateLatency and PredictLatency summarise the time the calls took
	// (an update's includes its wait for the update in progress).
	UpdateLatency, PredictLatency serving.Latency
}

// Stats returns a snapshot of the trainer's counters.
func (t *Trainer) Stats() Stats {
	s := t.snap.Load()
	return Stats{
		Step: s.step, Rows: s.rows, Loss: s.loss,
		Updates: t.st.steps.Load(), UpdateRows: t.st.rows.Load(),
		InputErrors: t.st.inputErrors.Load(), Diverged: t.st.diverged.Load(), Canceled: t.st.canceled.Load(),
		Predictions: t.st.predictions.Load(), PredictRows: t.st.predictRows.Load(), PredictErrors: t.st.predictErrors.Load(),
		UpdateLatency:  summary(t.st.updateLatency.Snapshot()),
		PredictLatency: summary(t.st.predictLatency.Snapshot()),
	}
}

func summary(s latency.Snapshot) serving.Latency {
	return serving.Latency{Count: s.Count, Mean: s.Mean(), P50: s.Quantile(0.5), P95: s.Quantile(0.95),
		P99: s.Quantile(0.99), Max: s.Max()}
}

// Collector returns a prometheus.Collector exporting the trainer's Stats:
// quiver_train_steps (gauge, the step count of the served parameters),
// quiver_train_loss (gauge, NaN before the first step),
// quiver_train_{updates,update_rows,predictions,predict_rows}_total,
// quiver_train_update_errors_total{kind="input"|"diverged"|"canceled"},
// quiver_train_predict_errors_total, and the histograms
// quiver_train_{update,predict}_seconds. The caller registers it where it
// wants; the package registers nothing.
//
// Every series carries constLabels as constant labels, added to the default
// {"model": Options.Name}; a key of constLabels overrides the default.
// Trainers whose labels differ register side by side in one registry.
func (t *Trainer) Collector(constLabels prometheus.Labels) prometheus.Collector {
	l := metrics.ConstLabels(prometheus.Labels{"model": t.opts.Name}, constLabels)
	d := func(name, help string, vars ...string) *prometheus.Desc {
		return prometheus.NewDesc("quiver_train_"+name, help, vars, l)
	}
	return &collector{t: t,
		steps:         d("steps", "Steps applied to the parameters being served."),
		loss:          d("loss", "Loss of the last step (mean over its batch), NaN before the first."),
		updates:       d("updates_total", "Steps applied by this process."),
		updateRows:    d("update_rows_total", "Rows trained on by this process."),
		updateErrors:  d("update_errors_total", "Updates refused, by kind.", "kind"),
		predictions:   d("predictions_total", "Predict calls answered."),
		predictRows:   d("predict_rows_total", "Rows predicted."),
		predictErrors: d("predict_errors_total", "Predict calls refused for bad inputs."),
		updateSeconds: d("update_seconds", "Time an Update took, its wait included."),
		predSeconds:   d("predict_seconds", "Time a Predict took."),
	}
}

type collector struct {
	t                                              *Trainer
	steps, loss, updates, updateRows, updateErrors *prometheus.Desc
	predictions, predictRows, predictErrors        *prometheus.Desc
	updateSeconds, predSeconds                     *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.steps, c.loss, c.updates, c.updateRows, c.updateErrors,
		c.predictions, c.predictRows, c.predictErrors, c.updateSeconds, c.predSeconds} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	t := c.t
	s := t.snap.Load()
	g, ct := prometheus.GaugeValue, prometheus.CounterValue
	loss := s.loss
	if s.step == 0 {
		loss = math.NaN()
	}
	ch <- prometheus.MustNewConstMetric(c.steps, g, float64(s.step))
	ch <- prometheus.MustNewConstMetric(c.loss, g, loss)
	ch <- prometheus.MustNewConstMetric(c.updates, ct, float64(t.st.steps.Load()))
	ch <- prometheus.MustNewConstMetric(c.updateRows, ct, float64(t.st.rows.Load()))
	ch <- prometheus.MustNewConstMetric(c.updateErrors, ct, float64(t.st.inputErrors.Load()), "input")
	ch <- prometheus.MustNewConstMetric(c.updateErrors, ct, float64(t.st.diverged.Load()), "diverged")
	ch <- prometheus.MustNewConstMetric(c.updateErrors, ct, float64(t.st.canceled.Load()), "canceled")
	ch <- prometheus.MustNewConstMetric(c.predictions, ct, float64(t.st.predictions.Load()))
	ch <- prometheus.MustNewConstMetric(c.predictRows, ct, float64(t.st.predictRows.Load()))
	ch <- prometheus.MustNewConstMetric(c.predictErrors, ct, float64(t.st.predictErrors.Load()))
	ch <- t.st.updateLatency.Snapshot().Metric(c.updateSeconds)
	ch <- t.st.predictLatency.Snapshot().Metric(c.predSeconds)
}
