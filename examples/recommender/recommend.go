package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quiverml/quiver/abtest"
	"github.com/quiverml/quiver/features"
	"github.com/quiverml/quiver/features/redisstore"
	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/vector"
)

// Errors of the request path, checked with errors.Is. The HTTP layer turns
// each into a status and a JSON error code (see http.go).
var (
	// ErrBadUser reports a user id that is not of the form u<number>.
	ErrBadUser = errors.New("recommender: bad user id")
	// ErrUnknownUser reports a well-formed user id with no feature row.
	ErrUnknownUser = errors.New("recommender: unknown user")
	// ErrBadK reports a k outside 1..Config.Candidates.
	ErrBadK = errors.New("recommender: bad k")
	// ErrBadPrice reports a max_price that is not a finite number >= 0.
	ErrBadPrice = errors.New("recommender: bad max_price")
	// ErrBadRequest reports a request body that cannot be decoded.
	ErrBadRequest = errors.New("recommender: bad request body")
	// ErrBadFeedback reports feedback that does not match the
	// recommendation it refers to.
	ErrBadFeedback = errors.New("recommender: bad feedback")
	// ErrUnknownRequest reports feedback for a request id the service
	// never answered, or answered too long ago to remember.
	ErrUnknownRequest = errors.New("recommender: unknown request id")
	// ErrDuplicateFeedback reports a second feedback for one
	// recommendation: each counts once in the experiment.
	ErrDuplicateFeedback = errors.New("recommender: feedback already recorded")
)

// recommendation is the answer to GET /recommend.
type recommendation struct {
	RequestID string       `json:"request_id"`
	User      string       `json:"user"`
	Variant   string       `json:"variant"`
	Model     servedModel  `json:"model"`
	Items     []scoredItem `json:"items"`
}

// servedModel says which registry version answered.
type servedModel struct {
	Name    string `json:"name"`
	Alias   string `json:"alias"`
	Version int64  `json:"version"`
}

type scoredItem struct {
	Item  string  `json:"item"`
	Score float32 `json:"score"`
}

// candidateSet is what retrieval found for one user: the item ids and the
// model's input rows, the user's feature row followed by the item's.
type candidateSet struct {
	ids  []string
	rows []float32
}

// predictError is a model failure after the router assigned a variant.
type predictError struct {
	variant string
	err     error
}

func (e *predictError) Error() string { return "variant " + e.variant + ": " + e.err.Error() }
func (e *predictError) Unwrap() error { return e.err }

// candidates reads the user's features at request time, retrieves the
// nearest items to the user's taste (priced at most maxPrice, unless it is
// negative) and reads their features.
func (a *App) candidates(ctx context.Context, userID string, maxPrice float64) (candidateSet, error) {
	if _, ok := parseID(userID, 'u'); !ok {
		return candidateSet{}, fmt.Errorf("%w: %q, want an id like u42", ErrBadUser, userID)
	}
	urow := make([]float32, a.userSel.Width())
	ustatus := make([]features.Status, a.userSel.Len())
	if err := a.readFeatures(ctx, a.userSel, []string{userID}, urow, ustatus); err != nil {
		return candidateSet{}, err
	}
	if ustatus[0] == features.StatusNotFound {
		return candidateSet{}, fmt.Errorf("%w: %q has no row in the %q feature view", ErrUnknownUser, userID, userView.Name)
	}

	// Retrieval: the user's taste (columns 2..) is the query.
	var opts vector.SearchOptions
	if maxPrice >= 0 {
		opts.Filter = vector.Range("price", 0, maxPrice)
	}
	hits, err := a.index.Search(ctx, urow[2:], a.cfg.Candidates, opts)
	if err != nil {
		return candidateSet{}, fmt.Errorf("retrieve candidates: %w", err)
	}
	c := candidateSet{ids: make([]string, len(hits))}
	for i, h := range hits {
		c.ids[i] = h.ID
	}
	irows := make([]float32, len(c.ids)*a.itemSel.Width())
	istatus := make([]features.Status, len(c.ids)*a.itemSel.Len())
	if err := a.readFeatures(ctx, a.itemSel, c.ids, irows, istatus); err != nil {
		return candidateSet{}, err
	}

	// The model's input: one row per candidate, user columns then item
	// columns, the layout the models were trained on.
	c.rows = make([]float32, len(c.ids)*rowWidth)
	for i := range c.ids {
		row := c.rows[i*rowWidth : (i+1)*rowWidth]
		copy(row, urow)
		copy(row[userWidth:], irows[i*itemWidth:(i+1)*itemWidth])
	}
	return c, nil
}

// readFeatures reads dense rows. A Redis tier that fails still fills what
// the local store holds, so the request goes on with that, logged.
func (a *App) readFeatures(ctx context.Context, sel *features.Selection, ids []string, dst []float32, status []features.Status) error {
	err := a.feats.GetMany(ctx, sel, ids, dst, status)
	if err != nil && errors.Is(err, redisstore.ErrRedis) {
		loggerFrom(ctx, a.log).Warn("feature read served from the local store only", "view", sel.View(), "error", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s features: %w", sel.View(), err)
	}
	return nil
}

// recommend ranks the candidates of userID with the model of the user's
// variant and returns the best k. requestID names the recommendation for
// feedback.
func (a *App) recommend(ctx context.Context, requestID, userID string, k int, maxPrice float64) (recommendation, error) {
	if k < 1 || k > a.cfg.Candidates {
		return recommendation{}, fmt.Errorf("%w: %d, want 1..%d", ErrBadK, k, a.cfg.Candidates)
	}
	c, err := a.candidates(ctx, userID, maxPrice)
	if err != nil {
		return recommendation{}, err
	}
	rec := recommendation{RequestID: requestID, User: userID, Items: []scoredItem{}}
	if len(c.ids) == 0 { // the price filter matched nothing
		if as, err := a.exp.Assign(userID, nil); err == nil {
			rec.Variant = as.Variant
		}
		return rec, nil
	}

	// The registry reports the version that answered through a hook in
	// the request's context: it reaches through the router and the
	// batcher, merged batches included.
	var served atomic.Pointer[registry.Served]
	ctx = registry.WithServedHook(ctx, func(s registry.Served) { served.Store(&s) })
	res, err := a.router.Predict(ctx, abtest.Request{
		Unit:   userID,
		Inputs: map[string]serving.Tensor{"x": serving.NewTensor([]int64{int64(len(c.ids)), rowWidth}, c.rows)},
	})
	if err != nil {
		if res.Variant != "" {
			return rec, &predictError{variant: res.Variant, err: err}
		}
		return rec, err
	}
	s, err := scores(res.Outputs, nil)
	if err != nil || len(s) != len(c.ids) {
		return rec, &predictError{variant: res.Variant, err: fmt.Errorf("%w: got %d scores for %d candidates (%v)", serving.ErrModel, len(s), len(c.ids), err)}
	}
	rec.Variant = res.Variant
	if sv := served.Load(); sv != nil {
		rec.Model = servedModel{Name: sv.Model, Alias: sv.Alias, Version: sv.Version}
	}
	top := topK(s, k)
	rec.Items = make([]scoredItem, len(top))
	ids := make([]string, len(top))
	for i, j := range top {
		rec.Items[i] = scoredItem{Item: c.ids[j], Score: s[j]}
		ids[i] = c.ids[j]
	}
	a.impressions.add(requestID, &impression{
		user: userID, variant: res.Variant, version: rec.Model.Version,
		enrolled: res.Assignment.Enrolled, items: ids, at: time.Now(),
	})
	return rec, nil
}

// feedbackRequest is the body of POST /feedback.
type feedbackRequest struct {
	User      string `json:"user"`
	Item      string `json:"item"`
	RequestID string `json:"request_id"`
	Clicked   *bool  `json:"clicked"`
}

// feedbackResult is the answer to POST /feedback.
type feedbackResult struct {
	RequestID string `json:"request_id"`
	Variant   string `json:"variant"`
	Version   int64  `json:"version"`
	Recorded  string `json:"recorded"` // "click" or "no_click"
	// Counted is false for users outside the experiment's randomised
	// population, whose outcomes do not enter its statistics.
	Counted bool `json:"counted"`
}

// feedback records the outcome of one recommendation: a click on one of
// its items, or none. The first feedback of a recommendation counts;
// others are refused with ErrDuplicateFeedback.
func (a *App) feedback(fb feedbackRequest) (feedbackResult, error) {
	switch {
	case fb.RequestID == "":
		return feedbackResult{}, fmt.Errorf("%w: request_id is missing, want the request_id of a recommendation", ErrBadFeedback)
	case fb.Clicked == nil:
		return feedbackResult{}, fmt.Errorf("%w: clicked is missing, want true or false", ErrBadFeedback)
	case fb.User == "":
		return feedbackResult{}, fmt.Errorf("%w: user is missing, want the user the recommendation was for", ErrBadFeedback)
	case *fb.Clicked && fb.Item == "":
		return feedbackResult{}, fmt.Errorf("%w: a click needs the item clicked", ErrBadFeedback)
	}
	imp, err := a.impressions.answer(fb.RequestID, fb.User, fb.Item)
	if err != nil {
		return feedbackResult{}, err
	}
	out := feedbackResult{RequestID: fb.RequestID, Variant: imp.variant, Version: imp.version, Recorded: "no_click", Counted: imp.enrolled}
	if *fb.Clicked {
		out.Recorded = "click"
	}
	if !imp.enrolled {
		return out, nil
	}
	if *fb.Clicked {
		if err := a.router.Tracker().Convert(imp.variant); err != nil {
			return out, err
		}
	}
	// One outcome per recommendation; its "latency" is the time the user
	// took to answer.
	if err := a.clicks.ObserveRequest(imp.variant, time.Since(imp.at), !*fb.Clicked); err != nil {
		return out, err
	}
	return out, nil
}

// impression is a recommendation waiting for its feedback.
type impression struct {
	user, variant string
	version       int64
	enrolled      bool
	items         []string
	at            time.Time
	answered      bool
}

// impressionLog remembers the last capacity recommendations by request id,
// forgetting the oldest first.
type impressionLog struct {
	mu   sync.Mutex
	byID map[string]*impression
	ring []string
	next int
}

func newImpressionLog(capacity int) *impressionLog {
	return &impressionLog{byID: make(map[string]*impression, capacity), ring: make([]string, capacity)}
}

func (l *impressionLog) add(id string, imp *impression) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.byID[id]; ok { // ids are unique; a reused one replaces
		l.byID[id] = imp
		return
	}
	if old := l.ring[l.next]; old != "" {
		delete(l.byID, old)
	}
	l.ring[l.next] = id
	l.next = (l.next + 1) % len(l.ring)
	l.byID[id] = imp
}

// answer checks feedback against the recommendation it names and marks it
// answered, in one step, so concurrent duplicates count once.
func (l *impressionLog) answer(id, userID, itemID string) (impression, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	imp, ok := l.byID[id]
	switch {
	case !ok:
		return impression{}, fmt.Errorf("%w: %q (the service remembers its last %d recommendations)", ErrUnknownRequest, id, len(l.ring))
	case imp.user != userID:
		return impression{}, fmt.Errorf("%w: user %q, but recommendation %q was for %q", ErrBadFeedback, userID, id, imp.user)
	case itemID != "" && !slices.Contains(imp.items, itemID):
		return impression{}, fmt.Errorf("%w: item %q was not among the %d items of recommendation %q", ErrBadFeedback, itemID, len(imp.items), id)
	case imp.answered:
		return impression{}, fmt.Errorf("%w: recommendation %q", ErrDuplicateFeedback, id)
	}
	imp.answered = true
	return *imp, nil
}

// requestIDs makes unique request ids: a random per-process prefix and a
// counter.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func (r *requestIDs) next() string {
	return r.prefix + "-" + strconv.FormatUint(r.n.Add(1), 36)
}
