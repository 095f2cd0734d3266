package online_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/quiverml/quiver/online"
	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/gorgonia/train"
	"github.com/stretchr/testify/require"
)

// The numbers of the drift-recovery test, quoted in the package
// documentation and the README.
const (
	recoveryEvents   = 40000 // stream events
	recoveryDrift    = 20000 // the user features' weights change sign here
	recoveryWithin   = 5000  // events after the drift by which the learner is back
	recoveryTol      = 0.02  // "back": AUC within this of its pre-drift AUC
	recoveryStaticBy = 0.30  // the static model stays at least this far below its pre-drift AUC
)

// After the drift the online learner's held-out AUC comes back to within
// recoveryTol of its pre-drift AUC within recoveryWithin events, and
// stays there, while a copy of the same model that stopped learning
// before the drift stays recoveryStaticBy below its own.
//
// The stream (fixed seed) is sim's: 8 features, a logistic click model,
// outcomes 16 events after their prediction, 1% never. The learner is a
// logistic regression (Adam, learning rate 0.03, batches of 32),
// pretrained on 8,000 rows of the pre-drift distribution; the static
// model is a copy of it taken then. Every 4th joined event is held out,
// and windows hold 500 held-out events (about 2,000 stream events).
func TestOnlineRecoversFromDrift(t *testing.T) {
	clock := newSimClock()
	s := newSim(t, 1, recoveryDrift, clock)
	tr := newTrainer(t, 0.03)
	pretrain(t, s, tr, 8000, 32)
	var state bytes.Buffer
	require.NoError(t, tr.Save(context.Background(), &state))
	static, err := train.Load(&state, train.LoadOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { static.Close() })

	l := newLoop(t, s, clock, tr, func(o *online.Options) {
		o.HoldoutEvery, o.WindowSize = 4, 500
		o.Baselines = map[string]serving.Model{"static": static}
	})
	r := &streamRun{s: s, loop: l, clock: clock}
	r.play(t, 0, recoveryEvents)
	r.drain(t)

	var preLearner, preStatic []float64
	var post []online.Window
	for _, w := range l.Windows() {
		first, last := simEvent(w.First), simEvent(w.Last)
		t.Logf("window %2d events %5d-%5d: learner %s  static %s", w.Index, first, last,
			w.Metrics[online.LearnerName], w.Metrics["static"])
		switch {
		case last < recoveryDrift:
			preLearner = append(preLearner, w.Metrics[online.LearnerName].AUC)
			preStatic = append(preStatic, w.Metrics["static"].AUC)
		case first >= recoveryDrift:
			post = append(post, w)
		}
	}
	require.GreaterOrEqual(t, len(preLearner), 8)
	require.GreaterOrEqual(t, len(post), 8)
	pre, preS := mean(preLearner), mean(preStatic)
	require.Greater(t, pre, 0.85, "the stream is learnable")

	recovered := -1
	for i, w := range post {
		if w.Metrics[online.LearnerName].AUC >= pre-recoveryTol {
			recovered = i
			break
		}
	}
	require.GreaterOrEqual(t, recovered, 0, "the learner never came back to within %v of its pre-drift AUC %.4f", recoveryTol, pre)
	after := simEvent(post[recovered].Last) - recoveryDrift
	t.Logf("pre-drift AUC: learner %.4f, static %.4f; learner back within %.2f after %d events (window %d)",
		pre, preS, recoveryTol, after, post[recovered].Index)
	require.LessOrEqual(t, after, recoveryWithin)

	var later, staticPost []float64
	for _, w := range post[recovered:] {
		later = append(later, w.Metrics[online.LearnerName].AUC)
	}
	for _, w := range post {
		staticPost = append(staticPost, w.Metrics["static"].AUC)
		require.Less(t, w.Metrics["static"].AUC, preS-recoveryStaticBy, "window %d: the static model stays down", w.Index)
	}
	require.GreaterOrEqual(t, mean(later), pre-recoveryTol, "the learner stays back after recovering")
	t.Logf("after recovery: learner mean AUC %.4f; static mean AUC after the drift %.4f", mean(later), mean(staticPost))
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
