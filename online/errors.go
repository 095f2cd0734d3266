package online

import (
	"errors"

	"github.com/quiverml/quiver/serving"
)

// Sentinel errors, checked with errors.Is. Returned errors wrap one of them
// with a message naming what was wrong and what was expected.
var (
	// ErrConfig reports invalid Options or StreamOptions.
	ErrConfig = errors.New("online: bad configuration")
	// ErrRequest reports a prediction request the loop cannot serve: an
	// empty or overlong request id, a wrong number of entity keys, an empty
	// key.
	ErrRequest = errors.New("online: bad prediction request")
	// ErrDuplicateRequest reports a prediction whose request id is already
	// waiting for its outcome.
	ErrDuplicateRequest = errors.New("online: duplicate request id")
	// ErrOutcome reports an outcome the loop refuses: an empty request id,
	// a label other than 0 or 1, or an outcome time before the prediction.
	// The prediction it names, if any, keeps waiting for a valid outcome.
	ErrOutcome = errors.New("online: bad outcome")
	// ErrUnknownRequest reports an outcome whose request id has no pending
	// prediction: it was never made, its outcome already arrived, or it
	// expired (Options.TTL) or was evicted (Options.MaxPending).
	ErrUnknownRequest = errors.New("online: no pending prediction for request id")
	// ErrOutput reports a model answer the loop cannot read as one
	// probability per row (a missing output, another element type, another
	// number of values).
	ErrOutput = errors.New("online: unusable model output")
	// ErrOneClass reports an AUC asked of labels that are all 0 or all 1:
	// the ranking of positives above negatives is undefined there.
	ErrOneClass = errors.New("online: AUC needs both classes")
	// ErrMetric reports scores or labels that AUC and LogLoss refuse:
	// lengths that differ, a label other than 0 or 1, a score that is not
	// finite (or, for LogLoss, outside [0, 1]).
	ErrMetric = errors.New("online: bad metric input")
	// ErrEntry reports a Redis stream entry that is not a valid outcome.
	ErrEntry = errors.New("online: bad stream entry")
	// ErrRedis wraps failures talking to Redis.
	ErrRedis = errors.New("online: redis")
	// ErrDeploy wraps a failure to export, publish, move an alias or change
	// the experiment while deploying a candidate.
	ErrDeploy = errors.New("online: deploy failed")
	// ErrClosed is returned by calls made after Close. It is
	// serving.ErrClosed, so callers that also hold models see one closed
	// error.
	ErrClosed = serving.ErrClosed
)
