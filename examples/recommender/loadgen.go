package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quiverml/quiver/internal/latency"
)

// The load generator plays the service's users over real HTTP: each client
// asks for recommendations, looks down the list and clicks according to
// the world's true click model, and reports the outcome. Meanwhile an
// operator moves the production alias back and forth between v1 and v2.

// loadOptions configure a load run. It ends when both Duration has passed
// and Requests recommendations were answered (a zero value drops that
// condition), and every alias move was made and seen.
type loadOptions struct {
	Clients  int
	Duration time.Duration
	Requests int
	// Moves is how many times production moves, spread evenly over the
	// run (by time, or by requests when Duration is zero).
	Moves int
	// K is the length of each recommendation list. Zero means 10.
	K    int
	Seed uint64
	// MoveTimeout bounds how long a move may take to show in answers.
	// Zero means 30s.
	MoveTimeout time.Duration
}

// loadResult is what the clients saw.
type loadResult struct {
	Start   time.Time
	Elapsed time.Duration
	// Recommendations and Feedback answered with 200.
	Recommendations, Feedback uint64
	// Failed counts recommendations that did not get a 200, by the variant
	// named in the error ("" when the failure came before assignment).
	Failed         map[string]uint64
	FeedbackFailed uint64
	// Errors holds the first few failures, for the report.
	Errors []string
	// Latency is the client-side time of a recommendation.
	Latency latency.Snapshot
	// Variants counts answers per variant, Versions per variant and
	// version, Clicks the clicks the clients made per variant.
	Variants map[string]uint64
	Versions map[string]map[int64]uint64
	Clicks   map[string]uint64
	Moves    []moveResult
}

// moveResult is one alias move and when clients first saw it.
type moveResult struct {
	At       time.Time
	From, To int64
	// Seen is the time from the move until the first answer served by
	// the new version; Observed is false when none came in MoveTimeout.
	Seen     time.Duration
	Observed bool
	Err      string
}

// FailedExcept counts failed recommendations, except those of variant
// excluded ("" excludes none).
func (r loadResult) FailedExcept(excluded string) uint64 {
	var n uint64
	for v, c := range r.Failed {
		if v != excluded || excluded == "" {
			n += c
		}
	}
	return n
}

// tally is one client's counts, merged at the end.
type tally struct {
	recs, feedback, feedbackFailed uint64
	failed                         map[string]uint64
	variants, clicks               map[string]uint64
	versions                       map[string]map[int64]uint64
	errors                         []string
}

func newTally() *tally {
	return &tally{failed: map[string]uint64{}, variants: map[string]uint64{}, clicks: map[string]uint64{},
		versions: map[string]map[int64]uint64{}}
}

func (t *tally) fail(variant string, msg string) {
	t.failed[variant]++
	if len(t.errors) < 3 {
		t.errors = append(t.errors, msg)
	}
}

// versionWatch tells the mover when a client first sees an answer from
// the version production was moved to.
type versionWatch struct {
	want atomic.Int64 // 0: nobody waits
	mu   sync.Mutex
	ch   chan struct{}
}

func (w *versionWatch) expect(v int64) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ch = make(chan struct{})
	w.want.Store(v)
	return w.ch
}

func (w *versionWatch) saw(v int64) {
	if v == 0 || w.want.Load() != v {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.want.Load() == v {
		w.want.Store(0)
		close(w.ch)
	}
}

// runLoad drives the service at baseURL. app is the same service, for
// the operator's alias moves and for the world's true click model.
func runLoad(ctx context.Context, app *App, baseURL string, opts loadOptions) (loadResult, error) {
	if opts.Clients <= 0 {
		return loadResult{}, fmt.Errorf("load: %d clients, want at least 1", opts.Clients)
	}
	if opts.Duration <= 0 && opts.Requests <= 0 {
		return loadResult{}, fmt.Errorf("load: want a duration or a number of requests")
	}
	if opts.K <= 0 {
		opts.K = 10
	}
	if opts.MoveTimeout <= 0 {
		opts.MoveTimeout = 30 * time.Second
	}
	tr := &http.Transport{MaxIdleConns: 2 * opts.Clients, MaxIdleConnsPerHost: 2 * opts.Clients, IdleConnTimeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	start := time.Now()
	var (
		done  atomic.Int64 // recommendations answered or failed
		lat   latency.Histogram
		watch versionWatch
		stop  = make(chan struct{})
	)
	// Moves fire at even fractions of the run: by requests when the run
	// is sized by requests only, else by time.
	marks := make([]chan struct{}, opts.Moves)
	markAt := make([]int64, opts.Moves)
	for i := range marks {
		marks[i] = make(chan struct{})
		if opts.Duration > 0 {
			time.AfterFunc(opts.Duration*time.Duration(i+1)/time.Duration(opts.Moves+1), func() { close(marks[i]) })
		} else {
			markAt[i] = max(1, int64(opts.Requests)*int64(i+1)/int64(opts.Moves+1))
		}
	}
	progress := func() int64 {
		n := done.Add(1)
		if opts.Duration <= 0 {
			for i, m := range markAt {
				if n == m {
					close(marks[i])
				}
			}
		}
		return n
	}
	enough := make(chan struct{}) // Requests answered
	var enoughOnce sync.Once
	if opts.Requests <= 0 {
		close(enough)
	}

	// The operator: move production between v1 and v2 at each mark, and
	// wait until a client sees the new version answer.
	moves := make([]moveResult, 0, opts.Moves)
	moverDone := make(chan struct{})
	go func() {
		defer close(moverDone)
		for i := range opts.Moves {
			select {
			case <-marks[i]:
			case <-ctx.Done():
				return
			}
			from := app.servedVersions()[aliasProduction]
			to := versionV2
			if from == versionV2 {
				to = versionV1
			}
			m := moveResult{At: time.Now(), From: from, To: to}
			seen := watch.expect(to)
			if err := app.MoveAlias(ctx, aliasProduction, to); err != nil {
				m.Err = err.Error()
				moves = append(moves, m)
				continue
			}
			select {
			case <-seen:
				m.Seen, m.Observed = time.Since(m.At), true
			case <-time.After(opts.MoveTimeout):
				m.Err = fmt.Sprintf("no answer from v%d within %v", to, opts.MoveTimeout)
			case <-ctx.Done():
				m.Err = ctx.Err().Error()
			}
			moves = append(moves, m)
		}
	}()
	// The end: enough requests, the duration, and the mover finished.
	go func() {
		if opts.Duration > 0 {
			select {
			case <-time.After(opts.Duration):
			case <-ctx.Done():
			}
		}
		select {
		case <-enough:
		case <-ctx.Done():
		}
		select {
		case <-moverDone:
		case <-ctx.Done():
		}
		close(stop)
	}()

	tallies := make([]*tally, opts.Clients)
	var wg sync.WaitGroup
	for c := range opts.Clients {
		t := newTally()
		tallies[c] = t
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(opts.Seed, uint64(c)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				u := app.world.users[rng.IntN(len(app.world.users))]
				t0 := time.Now()
				rec, status, err := getRecommendation(ctx, client, baseURL, u.ID, opts.K)
				if status == http.StatusOK {
					lat.Observe(time.Since(t0))
				}
				if n := progress(); opts.Requests > 0 && n >= int64(opts.Requests) {
					enoughOnce.Do(func() { close(enough) })
				}
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					t.fail(rec.errorVariant, err.Error())
					continue
				}
				t.recs++
				t.variants[rec.Variant]++
				if t.versions[rec.Variant] == nil {
					t.versions[rec.Variant] = map[int64]uint64{}
				}
				t.versions[rec.Variant][rec.Model.Version]++
				if rec.Variant == aliasProduction {
					watch.saw(rec.Model.Version)
				}
				if len(rec.Items) == 0 {
					continue
				}
				itemID, clicked := simulateClick(rng, app.world, u, rec.Items)
				if clicked {
					t.clicks[rec.Variant]++
				}
				if err := postFeedback(ctx, client, baseURL, feedbackRequest{User: u.ID, Item: itemID, RequestID: rec.RequestID, Clicked: &clicked}); err != nil {
					if ctx.Err() != nil {
						return
					}
					t.feedbackFailed++
					if len(t.errors) < 3 {
						t.errors = append(t.errors, err.Error())
					}
					continue
				}
				t.feedback++
			}
		}()
	}
	wg.Wait()
	<-moverDone

	res := loadResult{Start: start, Elapsed: time.Since(start), Failed: map[string]uint64{}, Variants: map[string]uint64{},
		Versions: map[string]map[int64]uint64{}, Clicks: map[string]uint64{}, Latency: lat.Snapshot(), Moves: moves}
	for _, t := range tallies {
		res.Recommendations += t.recs
		res.Feedback += t.feedback
		res.FeedbackFailed += t.feedbackFailed
		for k, v := range t.failed {
			res.Failed[k] += v
		}
		for k, v := range t.variants {
			res.Variants[k] += v
		}
		for k, v := range t.clicks {
			res.Clicks[k] += v
		}
		for k, m := range t.versions {
			if res.Versions[k] == nil {
				res.Versions[k] = map[int64]uint64{}
			}
			for v, n := range m {
				res.Versions[k][v] += n
			}
		}
		if len(res.Errors) < 5 {
			res.Errors = append(res.Errors, t.errors...)
		}
	}
	return res, ctx.Err()
}

// answer is a decoded /recommend response: a recommendation, or the
// variant named by an error.
type answer struct {
	recommendation
	errorVariant string
}

func getRecommendation(ctx context.Context, client *http.Client, baseURL, userID string, k int) (answer, int, error) {
	u := baseURL + "/recommend?user=" + url.QueryEscape(userID) + "&k=" + strconv.Itoa(k)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return answer{}, 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, resp.StatusCode, err
	}
	var a answer
	if resp.StatusCode != http.StatusOK {
		var eb errorBody
		_ = json.Unmarshal(body, &eb)
		a.errorVariant = eb.Error.Variant
		return a, resp.StatusCode, fmt.Errorf("GET /recommend: %d %s: %s", resp.StatusCode, eb.Error.Code, eb.Error.Message)
	}
	if err := json.Unmarshal(body, &a.recommendation); err != nil {
		return a, resp.StatusCode, fmt.Errorf("GET /recommend: %w", err)
	}
	return a, resp.StatusCode, nil
}

func postFeedback(ctx context.Context, client *http.Client, baseURL string, fb feedbackRequest) error {
	body, err := json.Marshal(fb)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/feedback", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /feedback: %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return nil
}

// simulateClick plays a user glancing down a list: the first item gets
// firstLook attention, each next one half the attention of the one above,
// and the user clicks an item with the world's true probability times the
// attention it gets. The first click ends the visit; without one, the
// feedback names the top item.
func simulateClick(rng *rand.Rand, w *world, u user, items []scoredItem) (string, bool) {
	const firstLook = 0.4
	attention := firstLook
	for _, si := range items {
		if it, ok := w.itemByID(si.Item); ok && rng.Float64() < attention*clickProb(u, it) {
			return si.Item, true
		}
		attention /= 2
	}
	if len(items) == 0 {
		return "", false
	}
	return items[0].Item, false
}
