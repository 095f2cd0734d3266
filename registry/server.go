package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/quiverml/quiver/internal/latency"
	"github.com/quiverml/quiver/serving"
)

// Loader turns a fetched, verified version into a live model. dir holds the
// version's files; v.Entry names the one to open. FileLoader with
// serving/onnx's Opener loads on ONNX Runtime; any backend fits.
type Loader func(ctx context.Context, v Version, dir string) (serving.Model, error)

// Policy says which versions of a model a Server keeps loaded, besides the
// ones its aliases point at (always loaded).
type Policy struct {
	// Latest keeps the newest N non-archived versions loaded; the newest
	// one is what the pseudo alias "latest" serves. Zero means 1; a
	// negative value loads none and leaves "latest" unserved.
	Latest int
	// Versions are also kept loaded (when they exist and are not archived).
	Versions []int64
	// DropPrevious unloads the version an alias pointed at before its last
	// move once it is drained. By default it stays loaded, so a Rollback is
	// instant.
	DropPrevious bool
}

// ServerOptions configures a Server. The zero value serves every model and
// alias of the registry, polling every 2 seconds.
type ServerOptions struct {
	// Models limits the models served; empty means every model.
	Models []string
	// Aliases limits the aliases served; empty means every alias.
	// "latest" is governed by Policy.Latest.
	Aliases []string
	// Policy selects the versions kept loaded.
	Policy Policy
	// MaxLoaded caps the versions loaded per model. Versions that aliases
	// (and "latest") point at always load; the rest of the policy fills
	// what the cap leaves. During a swap the outgoing version stays until
	// its in-flight requests finish. Zero means no cap.
	MaxLoaded int
	// PollInterval is how often the registry is read. Zero means 2s.
	PollInterval time.Duration
	// LoadTimeout bounds fetching, loading and warming one version. Zero
	// means 2 minutes.
	LoadTimeout time.Duration
	// RetryAfter is how long a version that failed to load is left alone
	// before it is tried again. Zero means 1 minute.
	RetryAfter time.Duration
	// WarmUp, when set, runs on a freshly loaded version before it is
	// swapped in; an error keeps it out (ErrWarmUp) and closes it.
	WarmUp func(ctx context.Context, v Version, m serving.Model) error
	// Name identifies the server in its metrics (the "registry" label) and
	// logs (the "registry" attribute), so that several servers in one
	// service tell their series apart. Empty by default.
	Name string
	// Logger receives loads, swaps, unloads and failures. Nil means
	// slog.Default(), so a version that fails to load is never silent;
	// pass slog.New(slog.DiscardHandler) to silence it.
	Logger *slog.Logger
	// Parallel is how many models are synced (and loaded) at once. Zero
	// means 1: on a small machine, loads in parallel compete with serving.
	Parallel int
	// EventBuffer is the capacity of the Events channel; events that do not
	// fit are dropped and counted. Zero means 256.
	EventBuffer int
}

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	// EventLoaded: a version was fetched, verified, loaded and warmed up.
	EventLoaded EventKind = iota + 1
	// EventLoadFailed: a version failed its checksum, its load or its
	// warm-up; it is not swapped in and the current version keeps serving.
	EventLoadFailed
	// EventSwapped: an alias now serves Version instead of From.
	EventSwapped
	// EventUnloaded: a version left the loaded set; it closes once drained.
	EventUnloaded
	// EventClosed: a version's model was closed after its last request.
	EventClosed
	// EventPollFailed: the registry or one model could not be read; nothing
	// was unloaded.
	EventPollFailed
	// EventBroken: a version directory has an unreadable manifest, or the
	// model's alias table cannot be read (Snapshot.AliasesErr).
	EventBroken
)

// String returns the kind's snake_case name ("swapped").
func (k EventKind) String() string {
	switch k {
	case EventLoaded:
		return "loaded"
	case EventLoadFailed:
		return "load_failed"
	case EventSwapped:
		return "swapped"
	case EventUnloaded:
		return "unloaded"
	case EventClosed:
		return "closed"
	case EventPollFailed:
		return "poll_failed"
	case EventBroken:
		return "broken"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one change or failure seen by a Server.
type Event struct {
	Time  time.Time
	Kind  EventKind
	Model string
	// Alias is set for EventSwapped.
	Alias string
	// Version is the version concerned; for EventSwapped, the new one.
	Version int64
	// From is the version an alias served before (EventSwapped; 0 when
	// none).
	From int64
	// Took is how long the load took (EventLoaded).
	Took time.Duration
	// Err is the failure (EventLoadFailed, EventPollFailed, EventBroken).
	Err error
}

// Server loads versions from a Registry and serves them by alias, polling
// for new versions and alias moves. A new version loads in the background,
// warms up, then replaces the old one atomically; requests in flight finish
// on the old one, which closes once drained. A version that fails to load
// never replaces a serving one, and a registry that cannot be read, or
// looks empty, never unloads anything.
//
// A Server is safe for concurrent use. It starts no goroutine until Start.
type Server struct {
	reg  Registry
	load Loader
	opts ServerOptions
	log  *slog.Logger

	syncMu sync.Mutex // one Sync at a time; one goroutine per model touches its failed/broken maps

	mu      sync.RWMutex // guards targets, models[*].lives and swapped
	targets map[targetKey]*target
	models  map[string]*modelState
	swapped chan struct{} // closed and replaced at every swap, closed at Close

	evMu     sync.RWMutex
	events   chan Event
	evClosed bool

	closed  atomic.Bool
	startMu sync.Mutex
	started bool
	stop    context.CancelFunc
	done    chan struct{}
	poke    chan struct{}
	lives   sync.WaitGroup

	polls, pollErrors, loads, loadFailures atomic.Uint64
	swaps, unloads, closes, dropped        atomic.Uint64
	notServing                             atomic.Uint64
	lastErr                                atomic.Pointer[errorAt]
	loadTime                               latency.Histogram // versions that loaded

	now func() time.Time // the clock of RetryAfter; tests replace it
}

type errorAt struct {
	err error
	at  time.Time
}

type targetKey struct{ model, alias string }

// target is one (model, alias) pair; cur is the version it serves.
// Targets are never removed, so handles may keep a pointer.
type target struct {
	model, alias string
	cur          atomic.Pointer[live]
	since        atomic.Int64 // unix nanos of the last swap
	// pinned is the Pin result for cur, built once per swap so that
	// pinning allocates nothing.
	pinned atomic.Pointer[pinned]
}

type modelState struct {
	lives  []*live // the loaded set; each holds one reference
	failed map[int64]failure
	broken map[string]bool // errors already logged: Broken and AliasesErr
}

type failure struct {
	at      time.Time
	created time.Time
}

// live is a loaded version. refs counts the loaded set's reference plus one
// per request in flight. The release that brings it to zero marks it dead
// (a large negative value) with a CAS and closes the model; an acquire that
// finds it dead leaves it alone. An acquire that slips in between the zero
// and the CAS keeps it alive, and the last release closes it instead.
type live struct {
	srv      *Server
	v        Version
	m        serving.Model
	refs     atomic.Int64
	loadedAt time.Time
}

// deadRefs marks a live whose model is closed or closing; acquires add to
// it without ever bringing it back above zero.
const deadRefs = math.MinInt64 / 2

func (l *live) release() {
	if l.refs.Add(-1) == 0 && l.refs.CompareAndSwap(0, deadRefs) {
		// Closing native sessions can take a while; keep it off the
		// request path.
		go l.srv.finish(l)
	}
}

// acquire returns the version t serves with a reference held, or nil.
func (t *target) acquire() *live {
	for {
		l := t.cur.Load()
		if l == nil {
			return nil
		}
		if l.refs.Add(1) > 0 {
			return l
		}
		// Dead: the target was moved off it before its last reference
		// went, so reloading sees the successor (or nil).
		if t.cur.Load() == l {
			return nil
		}
	}
}

// NewServer returns a Server over reg that loads versions with load. It does
// nothing until Sync or Start.
func NewServer(reg Registry, load Loader, opts ServerOptions) (*Server, error) {
	if reg == nil || load == nil {
		return nil, fmt.Errorf("%w: NewServer needs a registry and a loader", ErrBadInput)
	}
	for _, m := range opts.Models {
		if err := checkName("model", m); err != nil {
			return nil, err
		}
	}
	for _, a := range opts.Aliases {
		if err := checkAlias(a); err != nil {
			return nil, err
		}
	}
	if opts.MaxLoaded < 0 {
		return nil, fmt.Errorf("%w: MaxLoaded %d; want >= 0", ErrBadInput, opts.MaxLoaded)
	}
	if opts.Policy.Latest == 0 {
		opts.Policy.Latest = 1
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 2 * time.Second
	}
	if opts.LoadTimeout <= 0 {
		opts.LoadTimeout = 2 * time.Minute
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = time.Minute
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 1
	}
	if opts.EventBuffer <= 0 {
		opts.EventBuffer = 256
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.Name != "" {
		log = log.With("registry", opts.Name)
	}
	return &Server{
		reg: reg, load: load, opts: opts, log: log,
		targets: map[targetKey]*target{},
		models:  map[string]*modelState{},
		events:  make(chan Event, opts.EventBuffer),
		poke:    make(chan struct{}, 1),
		swapped: make(chan struct{}),
		now:     time.Now,
	}, nil
}

// Events returns the channel of loads, swaps and failures. It is closed by
// Close. Events that find it full are dropped (Stats.EventsDropped).
func (s *Server) Events() <-chan Event { return s.events }

func (s *Server) emit(e Event) {
	e.Time = time.Now()
	if e.Err != nil {
		s.lastErr.Store(&errorAt{err: e.Err, at: e.Time})
	}
	s.evMu.RLock()
	defer s.evMu.RUnlock()
	if s.evClosed {
		return
	}
	select {
	case s.events <- e:
	default:
		s.dropped.Add(1)
	}
}

// Start runs one Sync, so that whatever can load is serving when it returns,
// then polls in the background every PollInterval until Close. ctx bounds
// the first Sync only. The error reports what the first Sync could not do;
// polling goes on regardless.
func (s *Server) Start(ctx context.Context) error {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	if s.started {
		return fmt.Errorf("%w: Server already started", ErrBadInput)
	}
	s.started = true
	err := s.Sync(ctx)
	pollCtx, cancel := context.WithCancel(context.Background())
	s.stop, s.done = cancel, make(chan struct{})
	go s.poll(pollCtx)
	return err
}

// Poke asks the polling loop to read the registry now instead of at the
// next tick; a publisher in the same process calls it after a change.
func (s *Server) Poke() {
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

func (s *Server) poll(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.poke:
		}
		if err := s.Sync(ctx); err != nil && ctx.Err() == nil {
			s.log.Debug("registry: sync finished with errors", "error", err)
		}
	}
}

// Sync reads the registry once: loads what the policy wants, swaps aliases
// whose new version loaded, and unloads versions no longer wanted once no
// alias serves them. It returns the failures it met (they are also sent as
// events); whatever failed keeps its current version.
func (s *Server) Sync(ctx context.Context) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	s.polls.Add(1)
	models := s.opts.Models
	if len(models) == 0 {
		var err error
		models, err = s.reg.Models(ctx)
		if err != nil {
			s.pollFailed("", err)
			return err
		}
	}
	// Models are independent: each syncModel touches only its own state
	// and takes s.mu for what is shared.
	errs := make([]error, len(models))
	var g errgroup.Group
	g.SetLimit(s.opts.Parallel)
	for i, m := range models {
		if err := ctx.Err(); err != nil {
			errs[i] = err
			break
		}
		g.Go(func() error {
			errs[i] = s.syncModel(ctx, m)
			return nil
		})
	}
	_ = g.Wait()
	return errors.Join(errs...)
}

func (s *Server) pollFailed(model string, err error) {
	s.pollErrors.Add(1)
	s.log.Warn("registry: read failed; keeping what is loaded", "model", model, "error", err)
	s.emit(Event{Kind: EventPollFailed, Model: model, Err: err})
}

func (s *Server) servesAlias(name string) bool {
	return len(s.opts.Aliases) == 0 || slices.Contains(s.opts.Aliases, name)
}

// syncModel brings one model in line with the registry. It runs under
// syncMu.
func (s *Server) syncModel(ctx context.Context, model string) error {
	snap, err := s.reg.Scan(ctx, model)
	if err != nil {
		s.pollFailed(model, err)
		return err
	}
	s.mu.Lock()
	ms := s.models[model]
	if ms == nil {
		ms = &modelState{failed: map[int64]failure{}, broken: map[string]bool{}}
		s.models[model] = ms
	}
	s.mu.Unlock()
	var errs []error
	for _, b := range snap.Broken {
		if !ms.broken[b.Error()] {
			ms.broken[b.Error()] = true
			s.log.Error("registry: unreadable version", "model", model, "error", b)
			s.emit(Event{Kind: EventBroken, Model: model, Err: b})
		}
		errs = append(errs, b)
	}
	if ae := snap.AliasesErr; ae != nil {
		// Without the alias table, "latest" still serves and every alias
		// keeps the version it serves; nothing is unloaded until the table
		// reads again.
		if !ms.broken[ae.Error()] {
			ms.broken[ae.Error()] = true
			s.log.Error("registry: unreadable alias table; serving latest, aliases stay where they are", "model", model, "error", ae)
			s.emit(Event{Kind: EventBroken, Model: model, Err: ae})
		}
		errs = append(errs, ae)
	}
	if len(snap.Versions) == 0 {
		// Empty for a moment (a copy in progress, a remount) or for good:
		// either way, what serves keeps serving.
		if len(ms.lives) > 0 {
			s.log.Warn("registry: model has no readable versions; keeping what is loaded", "model", model)
		}
		return errors.Join(errs...)
	}
	byNum := make(map[int64]Version, len(snap.Versions))
	for _, v := range snap.Versions {
		byNum[v.Number] = v
	}
	now := s.now()
	failedRecently := func(v Version) bool {
		f, ok := ms.failed[v.Number]
		return ok && f.created.Equal(v.Created) && now.Sub(f.at) < s.opts.RetryAfter
	}

	ensure := func(v Version) bool {
		if s.findLive(ms, v) != nil {
			return true
		}
		if failedRecently(v) || ctx.Err() != nil {
			return false
		}
		l, err := s.loadVersion(ctx, v)
		if err != nil {
			ms.failed[v.Number] = failure{at: s.now(), created: v.Created}
			errs = append(errs, err)
			return false
		}
		delete(ms.failed, v.Number)
		s.mu.Lock()
		ms.lives = append(ms.lives, l)
		s.mu.Unlock()
		return true
	}

	// What each alias should serve.
	want := map[string]int64{}
	var previous []int64
	for _, a := range snap.Aliases {
		if !s.servesAlias(a.Name) {
			continue
		}
		if _, ok := byNum[a.Version]; !ok {
			errs = append(errs, fmt.Errorf("%w: %s alias %q points at missing version %d", ErrNotFound, model, a.Name, a.Version))
			continue
		}
		want[a.Name] = a.Version
		if !s.opts.Policy.DropPrevious && len(a.Previous) > 0 {
			previous = append(previous, a.Previous[len(a.Previous)-1])
		}
	}

	// An alias moved to a version already loaded (a rollback to the kept
	// previous version) swaps now, before anything loads: a rollback must
	// not wait for loads it does not need.
	s.mu.Lock()
	for _, a := range sortedKeys(want) {
		if l := s.findLive(ms, byNum[want[a]]); l != nil {
			s.swapLocked(model, a, l)
		}
	}
	s.mu.Unlock()

	// "latest" is the newest version that loads: when the newest fails,
	// the one before it serves.
	var latestN []int64
	if s.opts.Policy.Latest > 0 {
		for i := len(snap.Versions) - 1; i >= 0; i-- {
			if v := snap.Versions[i]; !v.Archived && ensure(v) {
				want[Latest] = v.Number
				break
			}
		}
		for i := len(snap.Versions) - 1; i >= 0 && len(latestN) < s.opts.Policy.Latest; i-- {
			if v := snap.Versions[i]; !v.Archived && !failedRecently(v) {
				latestN = append(latestN, v.Number)
			}
		}
	}

	// Required versions first, then the rest of the policy within the cap.
	var order []int64
	add := func(n int64) {
		if v, ok := byNum[n]; ok && !slices.Contains(order, n) {
			if !v.Archived || slices.ContainsFunc(snap.Aliases, func(a Alias) bool { return a.Version == n }) {
				order = append(order, n)
			}
		}
	}
	for _, n := range want {
		add(n)
	}
	slices.Sort(order)
	required := len(order)
	for _, n := range latestN {
		add(n)
	}
	for _, n := range s.opts.Policy.Versions {
		add(n)
	}
	for _, n := range previous {
		add(n)
	}
	if s.opts.MaxLoaded > 0 && len(order) > max(required, s.opts.MaxLoaded) {
		order = order[:max(required, s.opts.MaxLoaded)]
	}

	// Load what is missing.
	for _, n := range order {
		ensure(byNum[n])
	}
	if err := ctx.Err(); err != nil {
		return errors.Join(append(errs, err)...)
	}

	// Swap, then unload what nothing wants or serves.
	s.mu.Lock()
	keep := map[*live]bool{}
	for _, n := range order {
		if l := s.findLive(ms, byNum[n]); l != nil {
			keep[l] = true
		}
	}
	for _, a := range sortedKeys(want) {
		// A version that failed to load is not found: the current one
		// keeps serving.
		if l := s.findLive(ms, byNum[want[a]]); l != nil {
			s.swapLocked(model, a, l)
		}
	}
	for k, t := range s.targets {
		if k.model == model {
			if l := t.cur.Load(); l != nil {
				keep[l] = true
			}
		}
	}
	var drop []*live
	ms.lives = slices.DeleteFunc(ms.lives, func(l *live) bool {
		if keep[l] || snap.AliasesErr != nil {
			return false
		}
		drop = append(drop, l)
		return true
	})
	s.mu.Unlock()
	for _, l := range drop {
		s.unloads.Add(1)
		s.log.Info("registry: unloading", "model", model, "version", l.v.Number)
		s.emit(Event{Kind: EventUnloaded, Model: model, Version: l.v.Number})
		l.release()
	}
	return errors.Join(errs...)
}

// swapLocked makes alias of model serve l; s.mu must be held for writing.
func (s *Server) swapLocked(model, alias string, l *live) {
	t := s.targetLocked(model, alias)
	old := t.cur.Load()
	if old == l {
		return
	}
	t.cur.Store(l)
	t.since.Store(time.Now().UnixNano())
	s.swaps.Add(1)
	close(s.swapped)
	s.swapped = make(chan struct{})
	var from int64
	if old != nil {
		from = old.v.Number
	}
	s.log.Info("registry: swapped", "model", model, "alias", alias, "version", l.v.Number, "from", from)
	s.emit(Event{Kind: EventSwapped, Model: model, Alias: alias, Version: l.v.Number, From: from})
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// findLive returns the loaded instance of v (same number and publish time:
// a deleted and republished number is another version).
func (s *Server) findLive(ms *modelState, v Version) *live {
	for _, l := range ms.lives {
		if l.v.Number == v.Number && l.v.Created.Equal(v.Created) {
			return l
		}
	}
	return nil
}

// loadVersion fetches (verifying checksums), loads and warms up one version.
func (s *Server) loadVersion(ctx context.Context, v Version) (l *live, err error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, s.opts.LoadTimeout)
	defer cancel()
	defer func() {
		if err != nil {
			s.loadFailures.Add(1)
			s.log.Error("registry: version not loaded; the current version keeps serving", "model", v.Model, "version", v.Number, "error", err)
			s.emit(Event{Kind: EventLoadFailed, Model: v.Model, Version: v.Number, Err: err})
		}
	}()
	fv, dir, err := s.reg.Fetch(ctx, v.Model, v.Number)
	if err != nil {
		return nil, err
	}
	m, err := s.callLoader(ctx, fv, dir)
	if err != nil {
		return nil, fmt.Errorf("registry: load %s/%d: %w", v.Model, v.Number, err)
	}
	if m == nil {
		return nil, fmt.Errorf("registry: load %s/%d: loader returned no model", v.Model, v.Number)
	}
	if s.opts.WarmUp != nil {
		if werr := s.callWarmUp(ctx, fv, m); werr != nil {
			_ = m.Close()
			return nil, fmt.Errorf("%w: %s/%d: %w", ErrWarmUp, v.Model, v.Number, werr)
		}
	}
	l = &live{srv: s, v: fv, m: m, loadedAt: time.Now()}
	l.refs.Store(1)
	s.lives.Add(1)
	s.loads.Add(1)
	took := time.Since(start)
	s.loadTime.Observe(took)
	s.log.Info("registry: loaded", "model", v.Model, "version", v.Number, "took", took)
	s.emit(Event{Kind: EventLoaded, Model: v.Model, Version: v.Number, Took: took})
	return l, nil
}

// callLoader turns a loader panic into an error: a bad artifact must not
// take the server down.
func (s *Server) callLoader(ctx context.Context, v Version, dir string) (m serving.Model, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("loader panicked: %v", r)
		}
	}()
	return s.load(ctx, v.clone(), dir)
}

func (s *Server) callWarmUp(ctx context.Context, v Version, m serving.Model) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("warm-up panicked: %v", r)
		}
	}()
	return s.opts.WarmUp(ctx, v.clone(), m)
}

// finish closes a drained version.
func (s *Server) finish(l *live) {
	defer s.lives.Done()
	err := l.m.Close()
	s.closes.Add(1)
	if err != nil {
		s.log.Warn("registry: closing a drained version failed", "model", l.v.Model, "version", l.v.Number, "error", err)
	}
	s.emit(Event{Kind: EventClosed, Model: l.v.Model, Version: l.v.Number, Err: err})
}

// targetLocked returns the target for (model, alias), creating it; s.mu
// must be held for writing.
func (s *Server) targetLocked(model, alias string) *target {
	k := targetKey{model, alias}
	t := s.targets[k]
	if t == nil {
		t = &target{model: model, alias: alias}
		s.targets[k] = t
	}
	return t
}

// Current returns the version (model, alias) serves now; alias "" or
// Latest means the newest version.
func (s *Server) Current(model, alias string) (Version, bool) {
	if alias == "" {
		alias = Latest
	}
	s.mu.RLock()
	t := s.targets[targetKey{model, alias}]
	s.mu.RUnlock()
	if t == nil {
		return Version{}, false
	}
	if l := t.cur.Load(); l != nil {
		return l.v.clone(), true
	}
	return Version{}, false
}

// WaitFor blocks until alias of model serves version (alias "" means
// Latest) and returns that version: a deploy step waits with it for the
// move it made to take effect here. It returns at once when the alias
// serves version already, ctx's error (wrapped) when ctx ends first, and
// ErrClosed when the server closes. WaitFor does not read the registry
// itself: a started server follows it every PollInterval (Poke reads it
// now); an unstarted one follows it on Sync.
func (s *Server) WaitFor(ctx context.Context, model, alias string, version int64) (Version, error) {
	if alias == "" {
		alias = Latest
	}
	if alias != Latest && !s.servesAlias(alias) {
		return Version{}, fmt.Errorf("%w: alias %q is not one this server serves (ServerOptions.Aliases %q)", ErrBadInput, alias, s.opts.Aliases)
	}
	for {
		s.mu.RLock()
		ch := s.swapped
		var cur *live
		if t := s.targets[targetKey{model, alias}]; t != nil {
			cur = t.cur.Load()
		}
		s.mu.RUnlock()
		if s.closed.Load() {
			return Version{}, ErrClosed
		}
		if cur != nil && cur.v.Number == version {
			return cur.v.clone(), nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			var now int64
			if cur != nil {
				now = cur.v.Number
			}
			return Version{}, fmt.Errorf("registry: waiting for %s@%s to serve version %d (it serves %d): %w", model, alias, version, now, ctx.Err())
		}
	}
}

// Close stops polling, stops serving, waits for requests in flight to
// finish and closes every loaded model. Calls on handles afterwards return
// ErrClosed. Close is idempotent.
func (s *Server) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.startMu.Lock()
	if s.started {
		s.stop()
		<-s.done
	}
	s.startMu.Unlock()
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	for _, t := range s.targets {
		t.cur.Store(nil)
	}
	close(s.swapped) // wakes WaitFor, which then sees the server closed
	var all []*live
	for _, ms := range s.models {
		all = append(all, ms.lives...)
		ms.lives = nil
	}
	s.mu.Unlock()
	for _, l := range all {
		l.release()
	}
	s.lives.Wait()
	s.evMu.Lock()
	s.evClosed = true
	close(s.events)
	s.evMu.Unlock()
	return nil
}
