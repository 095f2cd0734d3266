package online

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// LogLossEpsilon is how far LogLoss keeps probabilities from 0 and 1
// (the probability given to the true label is clipped to
// [LogLossEpsilon, 1-LogLossEpsilon]), so that one confident mistake
// costs -ln(1e-15), about 34.5 nats, instead of infinity.
const LogLossEpsilon = 1e-15

// Metrics are the scores of one model over one set of held-out events.
type Metrics struct {
	// N is the number of events scored; Positives how many had label 1.
	N, Positives int
	// AUC is the area under the ROC curve (ties count one half); NaN when
	// the events hold only one class (see AUC).
	AUC float64
	// LogLoss is the mean binary cross-entropy in nats; NaN when N is 0.
	LogLoss float64
}

// String formats the metrics as "auc=0.8123 logloss=0.4410 n=500".
func (m Metrics) String() string {
	return fmt.Sprintf("auc=%.4f logloss=%.4f n=%d", m.AUC, m.LogLoss, m.N)
}

// Evaluate returns the AUC and log-loss of scores (probabilities of the
// positive class) against labels (0 or 1). A set with one class only has
// AUC NaN and no error; other invalid input is an error wrapping ErrMetric.
func Evaluate(scores, labels []float64) (Metrics, error) {
	m := Metrics{N: len(scores), AUC: math.NaN(), LogLoss: math.NaN()}
	if err := checkMetricInput(scores, labels, true); err != nil {
		return m, err
	}
	for _, y := range labels {
		if y == 1 {
			m.Positives++
		}
	}
	if len(scores) > 0 {
		ll, err := LogLoss(scores, labels)
		if err != nil {
			return m, err
		}
		m.LogLoss = ll
	}
	if m.Positives > 0 && m.Positives < m.N {
		auc, err := AUC(scores, labels)
		if err != nil {
			return m, err
		}
		m.AUC = auc
	}
	return m, nil
}

// AUC returns the area under the ROC curve of scores against labels (0 or
// 1): the probability that a random positive scores above a random
// negative, a tie counting one half. It equals the Mann-Whitney U statistic
// with mid-ranks divided by positives*negatives, computed in O(n log n)
// by sorting; scores may be any finite numbers (probabilities, logits).
//
// Labels of one class only give NaN and an error wrapping ErrOneClass;
// lengths that differ, a label other than 0 or 1, or a score that is not
// finite give NaN and an error wrapping ErrMetric.
func AUC(scores, labels []float64) (float64, error) {
	if err := checkMetricInput(scores, labels, false); err != nil {
		return math.NaN(), err
	}
	type pair struct{ s, y float64 }
	ps := make([]pair, len(scores))
	var pos, neg float64
	for i, s := range scores {
		ps[i] = pair{s, labels[i]}
		if labels[i] == 1 {
			pos++
		} else {
			neg++
		}
	}
	if pos == 0 || neg == 0 {
		return math.NaN(), fmt.Errorf("%w: %v positives and %v negatives in %d events", ErrOneClass, pos, neg, len(scores))
	}
	slices.SortFunc(ps, func(a, b pair) int { return cmp.Compare(a.s, b.s) })
	// Walk groups of equal scores from the lowest up: each positive of a
	// group beats every negative below the group and ties with the
	// negatives inside it.
	var wins, negBelow float64
	for i := 0; i < len(ps); {
		j := i
		var p, n float64
		for ; j < len(ps) && ps[j].s == ps[i].s; j++ {
			if ps[j].y == 1 {
				p++
			} else {
				n++
			}
		}
		wins += p*negBelow + 0.5*p*n
		negBelow += n
		i = j
	}
	return wins / (pos * neg), nil
}

// LogLoss returns the mean binary cross-entropy, in nats, of probabilities
// p against labels (0 or 1), the probability of each true label clipped
// to [LogLossEpsilon, 1-LogLossEpsilon]. An empty input, lengths that differ, a label other
// than 0 or 1, or a probability outside [0, 1] (NaN included) give NaN and
// an error wrapping ErrMetric.
func LogLoss(p, labels []float64) (float64, error) {
	if err := checkMetricInput(p, labels, true); err != nil {
		return math.NaN(), err
	}
	if len(p) == 0 {
		return math.NaN(), fmt.Errorf("%w: log-loss of no events", ErrMetric)
	}
	var sum float64
	clip := func(x float64) float64 { return min(max(x, LogLossEpsilon), 1-LogLossEpsilon) }
	for i, x := range p {
		if labels[i] == 1 {
			sum -= math.Log(clip(x))
		} else {
			sum -= math.Log(clip(1 - x)) // the probability given to 0
		}
	}
	return sum / float64(len(p)), nil
}

func checkMetricInput(scores, labels []float64, probabilities bool) error {
	if len(scores) != len(labels) {
		return fmt.Errorf("%w: %d scores and %d labels, want equal lengths", ErrMetric, len(scores), len(labels))
	}
	for i, y := range labels {
		if y != 0 && y != 1 {
			return fmt.Errorf("%w: label %d is %v, want 0 or 1", ErrMetric, i, y)
		}
		s := scores[i]
		if probabilities && !(s >= 0 && s <= 1) {
			return fmt.Errorf("%w: probability %d is %v, want a number in [0, 1]", ErrMetric, i, s)
		}
		if math.IsNaN(s) || math.IsInf(s, 0) {
			return fmt.Errorf("%w: score %d is %v, want a finite number", ErrMetric, i, s)
		}
	}
	return nil
}
