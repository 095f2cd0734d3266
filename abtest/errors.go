package abtest

import "errors"

// Sentinel errors, checked with errors.Is. Returned errors wrap one of them
// with a message naming what was wrong and what was expected.
var (
	// ErrEmptyUnit is returned when a unit id (user, session) is empty.
	ErrEmptyUnit = errors.New("abtest: empty unit id, want a non-empty user or session id")
	// ErrWeights reports variant weights that are negative, not finite, or
	// that sum to zero.
	ErrWeights = errors.New("abtest: bad variant weights")
	// ErrDuplicateVariant reports two variants (or bandit arms) with the same name.
	ErrDuplicateVariant = errors.New("abtest: duplicate variant name")
	// ErrUnknownVariant reports a variant or arm name that the experiment,
	// tracker or bandit does not have.
	ErrUnknownVariant = errors.New("abtest: unknown variant")
	// ErrStopped is returned by SetWeights when it would give traffic to a
	// variant that Stop (or a Guardrail) stopped; call Resume first.
	ErrStopped = errors.New("abtest: variant is stopped")
	// ErrConfig reports any other invalid configuration value.
	ErrConfig = errors.New("abtest: bad configuration")
	// ErrInsufficientData is returned by statistical tests whose inputs are
	// too small (no samples, zero variance, more conversions than exposures).
	ErrInsufficientData = errors.New("abtest: insufficient data")
	// ErrReward reports a reward that is not finite or out of the range a
	// bandit accepts.
	ErrReward = errors.New("abtest: bad reward")
	// ErrSnapshot reports snapshot bytes that cannot be restored.
	ErrSnapshot = errors.New("abtest: bad snapshot")
	// ErrTotals reports pooled statistics (Totals) that no set of values
	// could produce: a mean or sum of squares that is not finite, or
	// negative, or nonzero for zero values.
	ErrTotals = errors.New("abtest: bad totals")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("abtest: router is closed")
)
