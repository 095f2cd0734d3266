package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/quiverml/quiver/abtest"
	"github.com/quiverml/quiver/abtest/redisstate"
	"github.com/quiverml/quiver/features"
	"github.com/quiverml/quiver/features/redisstore"
	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/oip"
	"github.com/quiverml/quiver/serving/onnx"
	"github.com/quiverml/quiver/vector"
)

// Config configures an App. The zero value runs the demo on generated data
// in a temporary registry, without Redis and without tracing.
type Config struct {
	// DataDir is the registry's root folder. Empty means a temporary
	// folder that Close removes.
	DataDir string
	// Redis, when set, is the address of a Redis server that becomes the
	// feature store's shared tier (features/redisstore, keys under
	// "quiver:recommender:features") and pools the
	// experiment's numbers and guardrail stops with every replica using
	// the same Redis (abtest/redisstate, keys under
	// "quiver:recommender:abtest"). Empty means the in-process store and
	// per-process experiment numbers.
	Redis string
	// Users and Items size the generated world. Zero means 2,000 users and
	// 10,000 items.
	Users, Items int
	// Seed seeds the generated world. Zero means 1.
	Seed uint64
	// Candidates is how many items the vector index retrieves per request
	// for the model to score; it is also the largest k. Zero means 50.
	Candidates int
	// CanaryPercent is the canary's share of users, in percent (0..100).
	// Zero means 10; a negative value sends the canary no traffic.
	CanaryPercent float64
	// PollInterval is how often the registry Server reads the registry.
	// Zero means 1s. MoveAlias pokes it, so moves apply at once anyway.
	PollInterval time.Duration
	// GuardrailInterval is how often the guardrails judge the canary. Zero
	// means 500ms.
	GuardrailInterval time.Duration
	// MinOutcomes is how many requests (for the serving guardrail) and how
	// many feedback outcomes (for the click guardrail) both the canary and
	// production need before the canary is judged. Zero means 200.
	MinOutcomes uint64
	// MaxNoClickIncrease is how much higher the canary's share of
	// recommendations without a click may be than production's before the
	// click guardrail stops it (absolute: 0.05 is five points). Zero means
	// 0.05.
	MaxNoClickIncrease float64
	// MaxP99Ratio is how many times production's model latency p99 the
	// canary's may reach before the serving guardrail stops it. Zero means
	// 3: generous, because both variants share two busy cores; a negative
	// value turns the latency check off.
	MaxP99Ratio float64
	// Logger receives the service's logs and those of every package it
	// wires. Nil means slog.Default().
	Logger *slog.Logger
	// TracerProvider, when set, traces every HTTP request and the batches
	// that serve it. Nil means no tracing.
	TracerProvider trace.TracerProvider
}

// ErrConfig reports a Config value out of range.
var ErrConfig = errors.New("recommender: bad configuration")

// check refuses values that no default can mend.
func (c Config) check() error {
	switch {
	case c.Users < 0 || c.Items < 0 || c.Candidates < 0:
		return fmt.Errorf("%w: Users %d, Items %d, Candidates %d; want >= 0 (0 for the default)", ErrConfig, c.Users, c.Items, c.Candidates)
	case math.IsNaN(c.CanaryPercent) || c.CanaryPercent > 100:
		return fmt.Errorf("%w: CanaryPercent %v, want at most 100", ErrConfig, c.CanaryPercent)
	case math.IsNaN(c.MaxNoClickIncrease) || c.MaxNoClickIncrease < 0 || c.MaxNoClickIncrease >= 1:
		return fmt.Errorf("%w: MaxNoClickIncrease %v, want 0 (the default) up to 1", ErrConfig, c.MaxNoClickIncrease)
	case math.IsNaN(c.MaxP99Ratio):
		return fmt.Errorf("%w: MaxP99Ratio is NaN", ErrConfig)
	case c.PollInterval < 0 || c.GuardrailInterval < 0:
		return fmt.Errorf("%w: PollInterval %v, GuardrailInterval %v; want >= 0", ErrConfig, c.PollInterval, c.GuardrailInterval)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Users <= 0 {
		c.Users = 2000
	}
	if c.Items <= 0 {
		c.Items = 10000
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Candidates <= 0 {
		c.Candidates = 50
	}
	if c.CanaryPercent == 0 {
		c.CanaryPercent = 10
	}
	c.CanaryPercent = max(c.CanaryPercent, 0)
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.GuardrailInterval <= 0 {
		c.GuardrailInterval = 500 * time.Millisecond
	}
	if c.MinOutcomes == 0 {
		c.MinOutcomes = 200
	}
	if c.MaxNoClickIncrease == 0 {
		c.MaxNoClickIncrease = 0.05
	}
	if c.MaxP99Ratio == 0 {
		c.MaxP99Ratio = 3
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// App is the recommender service: every Quiver package wired into one
// request path.
//
//	GET /recommend?user=u42&k=10
//	  features.Store   user row (taste, activity, budget) at request time
//	  vector.HNSW      top Candidates items by inner product with the taste
//	  features.Store   the candidates' item rows
//	  abtest router    picks the variant for the user (production or canary)
//	  serving.Batcher  merges concurrent requests' rows into one model run
//	  registry.Handle  runs them on the version the variant's alias serves
//	  -> items ranked by score, with the variant and version that served
//	POST /feedback     a click or no click, credited to the variant
//
// An App is safe for concurrent use. Close releases everything it holds.
type App struct {
	cfg   Config
	log   *slog.Logger
	world *world

	// Features: the in-process store, optionally behind a Redis tier.
	mem     *features.Memory
	rdb     *redis.Client
	tier    *redisstore.Tier // nil without Redis
	share   *redisstate.Sync // the experiment's numbers pooled through Redis; nil without
	feats   features.Store
	userSel *features.Selection
	itemSel *features.Selection

	// Retrieval.
	index *vector.HNSW[string]

	// Models: the registry on disk and the Server that keeps the aliases
	// loaded, with one Batcher per alias.
	dataDir  string
	ownDir   bool
	store    *registry.Store
	srv      *registry.Server
	batchers map[string]*serving.Batcher

	// Experiment: who gets which variant, what happened, who stops whom.
	exp         *abtest.Experiment
	router      *abtest.ModelRouter
	clicks      *abtest.Tracker
	guards      []guard
	impressions *impressionLog

	oip      *oip.Handler
	ids      requestIDs
	metrics  *prometheus.Registry
	httpm    *httpMetrics
	tracer   trace.Tracer
	handler  http.Handler
	startup  startupReport
	swapsMu  sync.Mutex
	swaps    []registry.Event
	stop     context.CancelFunc
	bg       sync.WaitGroup
	events   sync.WaitGroup
	closing  atomic.Bool
	closeMu  sync.Mutex
	closed   bool
	closeErr error
}

// guard is a guardrail with a name for reports: "serving" judges the
// router's error rate and model latency, "clicks" the share of
// recommendations that got no click.
type guard struct {
	name string
	g    *abtest.Guardrail
}

// startupReport is what New did, for the demo to print.
type startupReport struct {
	Users, Items   int
	FeaturesTook   time.Duration
	IndexTook      time.Duration
	Agreement      agreement
	QuantTook      time.Duration
	Training       trainingMetrics
	Releases       []release
	RegistryDir    string
	RegistryTook   time.Duration
	RedisTier      string
	ServedVersions map[string]int64
}

// New builds the service: data, feature store, vector index, registry with
// four model versions, registry Server, batchers, experiment, router,
// guardrails, metrics and HTTP handler. ctx bounds the start only. On error
// everything built so far is closed.
func New(ctx context.Context, cfg Config) (_ *App, err error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	a := &App{cfg: cfg, log: cfg.Logger, impressions: newImpressionLog(1 << 16)}
	a.ids.prefix = fmt.Sprintf("%08x", rand.Uint32())
	defer func() {
		if err != nil {
			_ = a.Close()
		}
	}()
	tp := cfg.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	a.tracer = tp.Tracer("github.com/quiverml/quiver/examples/recommender")
	bg, stop := context.WithCancel(context.Background())
	a.stop = stop

	// 1. Data: users and items, their feature rows and item embeddings.
	a.world = newWorld(cfg.Seed, cfg.Users, cfg.Items)
	a.startup.Users, a.startup.Items = cfg.Users, cfg.Items
	if err := a.openFeatures(ctx); err != nil {
		return nil, err
	}
	start := time.Now()
	a.index, err = buildIndex(ctx, a.world, vector.Options{Name: "items", M: 8, EfConstruction: 64, Logger: a.log})
	if err != nil {
		return nil, err
	}
	a.startup.IndexTook = time.Since(start)

	// 2. Models: quantize v2 and check the int8 copy on real candidate
	// lists, then publish every version with its lineage.
	start = time.Now()
	lists, err := a.evaluationLists(ctx, 200)
	if err != nil {
		return nil, err
	}
	int8Model, agree, err := quantize(ctx, lists)
	if err != nil {
		return nil, err
	}
	a.startup.Agreement, a.startup.QuantTook = agree, time.Since(start)
	rels, tm, err := releases(int8Model, agree)
	if err != nil {
		return nil, err
	}
	a.startup.Releases, a.startup.Training = rels, tm
	start = time.Now()
	if err := a.openRegistry(ctx, rels, tm); err != nil {
		return nil, err
	}
	a.startup.RegistryTook = time.Since(start)

	// 3. Serving: a Batcher in front of each alias's Handle. A Handle is a
	// serving.Pinner, so the Batcher pins the version serving at each
	// request and follows every alias move from the next request on.
	a.batchers = make(map[string]*serving.Batcher, len(servedAliases))
	for _, alias := range servedAliases {
		h, err := a.srv.Model(modelName, alias)
		if err != nil {
			return nil, err
		}
		b, err := serving.NewBatcher(h, serving.BatcherOptions{
			MaxBatchSize:   16 * cfg.Candidates, // rows: about 16 requests
			Logger:         a.log,
			TracerProvider: cfg.TracerProvider,
		})
		if err != nil {
			_ = h.Close()
			return nil, err
		}
		a.batchers[alias] = b
	}

	// 4. Experiment: canary against production, split by hashing the user
	// id (sticky), the int8 copy in shadow (it sees a copy of every request
	// and never answers), and two guardrails.
	if err := a.openExperiment(); err != nil {
		return nil, err
	}

	// 5. Observability and HTTP.
	a.oip = a.newOIP()
	if a.metrics, a.httpm, err = a.newMetrics(); err != nil {
		return nil, err
	}
	a.handler = a.routes()

	// 6. Background work: the guardrails' loop, the registry's events and,
	// with Redis, the experiment's pooling.
	a.bg.Add(1)
	go a.watchGuardrails(bg)
	if a.share != nil {
		a.bg.Add(1)
		go func() {
			defer a.bg.Done()
			_ = a.share.Run(bg) // flushes once more when bg ends; outages are logged by the Sync
		}()
	}
	a.events.Add(1)
	go a.watchRegistry()
	return a, nil
}

// openFeatures registers the views and writes every row, through Redis
// when Config.Redis is set.
func (a *App) openFeatures(ctx context.Context) error {
	start := time.Now()
	a.mem = features.New(features.Options{Name: "online", Logger: a.log})
	a.feats = a.mem
	if a.cfg.Redis != "" {
		a.rdb = redis.NewClient(&redis.Options{Addr: a.cfg.Redis})
		if err := a.rdb.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("redis at %s: %w", a.cfg.Redis, err)
		}
		a.tier = redisstore.New(a.mem, a.rdb, redisstore.Options{Prefix: "quiver:recommender:features", Logger: a.log})
		a.feats = a.tier
		a.startup.RedisTier = a.cfg.Redis
	}
	if err := loadFeatures(ctx, a.feats, a.world); err != nil {
		return err
	}
	var err error
	if a.userSel, err = a.feats.Select(userView.Name); err != nil {
		return err
	}
	if a.itemSel, err = a.feats.Select(itemView.Name); err != nil {
		return err
	}
	// The models read columns by position: the views must keep the layout
	// they were trained on.
	if a.userSel.Width() != userWidth || a.itemSel.Width() != itemWidth {
		return fmt.Errorf("feature views read %d and %d columns, the models want %d and %d",
			a.userSel.Width(), a.itemSel.Width(), userWidth, itemWidth)
	}
	a.startup.FeaturesTook = time.Since(start)
	return nil
}

// evaluationLists builds the candidate rows of the first n users, as the
// request path would: the release check for the int8 model scores what
// production scores.
func (a *App) evaluationLists(ctx context.Context, n int) ([][]float32, error) {
	lists := make([][]float32, 0, n)
	for i := range min(n, len(a.world.users)) {
		c, err := a.candidates(ctx, a.world.users[i].ID, -1)
		if err != nil {
			return nil, err
		}
		lists = append(lists, c.rows)
	}
	return lists, nil
}

// openRegistry opens the registry (a temporary folder unless DataDir is
// set), publishes the releases and starts a Server that keeps the three
// aliases loaded on ONNX Runtime.
func (a *App) openRegistry(ctx context.Context, rels []release, tm trainingMetrics) error {
	a.dataDir = a.cfg.DataDir
	if a.dataDir == "" {
		dir, err := os.MkdirTemp("", "quiver-recommender-")
		if err != nil {
			return err
		}
		a.dataDir, a.ownDir = dir, true
	}
	a.startup.RegistryDir = a.dataDir
	var err error
	if a.store, err = registry.Open(a.dataDir, registry.Options{Logger: a.log, Actor: "recommender"}); err != nil {
		return err
	}
	if err := publish(ctx, a.store, rels, tm); err != nil {
		return err
	}
	a.srv, err = registry.NewServer(a.store, registry.FileLoader("onnx", onnx.Opener(onnx.Options{WarmUp: true, Logger: a.log})),
		registry.ServerOptions{
			Name:         "models",
			Models:       []string{modelName},
			Aliases:      servedAliases,
			Policy:       registry.Policy{Latest: -1}, // aliases only; the previous version stays loaded for rollbacks
			PollInterval: a.cfg.PollInterval,
			Logger:       a.log,
		})
	if err != nil {
		return err
	}
	if err := a.srv.Start(ctx); err != nil {
		return fmt.Errorf("registry: first load: %w", err)
	}
	a.startup.ServedVersions = a.servedVersions()
	return nil
}

// openExperiment builds the experiment, the router over the batchers, the
// click tracker and the guardrails.
func (a *App) openExperiment() error {
	var err error
	a.exp, err = abtest.NewExperiment(abtest.Config{
		Name: "ranker-canary",
		// The canary first, so ramping it moves only its own boundary.
		Variants: []abtest.Variant{{Name: aliasCanary, Weight: a.cfg.CanaryPercent}, {Name: aliasProduction, Weight: 100 - a.cfg.CanaryPercent}},
		Control:  aliasProduction,
	})
	if err != nil {
		return err
	}
	a.router, err = abtest.NewRouter(a.exp,
		map[string]serving.Model{aliasProduction: a.batchers[aliasProduction], aliasCanary: a.batchers[aliasCanary]},
		abtest.RouterOptions{
			Shadows:       map[string]serving.Model{aliasShadow: a.batchers[aliasShadow]},
			ShadowWorkers: 2,
			ShadowQueue:   256,
			Logger:        a.log,
		})
	if err != nil {
		return err
	}
	// The router's tracker counts requests, errors, latency and exposures;
	// feedback adds conversions to it. A Guardrail's
	// MaxConversionRateDecrease would judge clicks per exposure, but an
	// exposure counts when the recommendation is answered and its feedback
	// comes later, if at all, so the click outcome gets a tracker of its
	// own in which every recommendation with feedback is one "request"
	// that "failed" when it got no click: the Guardrail's error-rate test
	// then stops a canary whose no-click rate is significantly worse than
	// production's, judging only recommendations whose outcome is known.
	a.clicks, err = abtest.NewTracker("ranker-canary/clicks", a.exp.Variants())
	if err != nil {
		return err
	}
	servingGuard, err := abtest.NewGuardrail(a.exp, a.router.Tracker(), abtest.GuardrailOptions{
		MaxP99Ratio: a.cfg.MaxP99Ratio, MinRequests: a.cfg.MinOutcomes, Logger: a.log,
	})
	if err != nil {
		return err
	}
	clickGuard, err := abtest.NewGuardrail(a.exp, a.clicks, abtest.GuardrailOptions{
		MaxErrorRateIncrease: a.cfg.MaxNoClickIncrease, MaxP99Ratio: -1, MinRequests: a.cfg.MinOutcomes, Logger: a.log,
	})
	if err != nil {
		return err
	}
	a.guards = []guard{{"clicks", clickGuard}, {"serving", servingGuard}}
	if a.rdb == nil {
		return nil
	}
	// With Redis, every replica's trackers and guardrails judge the
	// numbers of all of them, and a stop decided on one reaches the rest.
	a.share, err = redisstate.New(a.rdb, redisstate.Options{Prefix: "quiver:recommender:abtest", Logger: a.log})
	if err != nil {
		return err
	}
	return errors.Join(a.share.Tracker(a.router.Tracker()), a.share.Tracker(a.clicks), a.share.Experiment(a.exp))
}

// watchGuardrails judges the canary every GuardrailInterval until ctx ends.
// One loop runs both guardrails in turn, so they never race to stop the
// same variant.
func (a *App) watchGuardrails(ctx context.Context) {
	defer a.bg.Done()
	t := time.NewTicker(a.cfg.GuardrailInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.checkGuardrails()
		}
	}
}

// checkGuardrails runs every guardrail once and returns the decisions.
func (a *App) checkGuardrails() []abtest.Decision {
	var out []abtest.Decision
	for _, g := range a.guards {
		out = append(out, g.g.Check()...)
	}
	return out
}

// watchRegistry logs the registry Server's events and keeps its swaps
// until the Server closes the channel.
func (a *App) watchRegistry() {
	defer a.events.Done()
	for e := range a.srv.Events() {
		switch e.Kind {
		case registry.EventSwapped:
			a.swapsMu.Lock()
			if len(a.swaps) < 1024 {
				a.swaps = append(a.swaps, e)
			}
			a.swapsMu.Unlock()
		case registry.EventLoadFailed, registry.EventPollFailed, registry.EventBroken:
			a.log.Warn("registry event", "kind", e.Kind.String(), "model", e.Model, "version", e.Version, "error", e.Err)
		}
	}
}

// Handler returns the service's HTTP handler.
func (a *App) Handler() http.Handler { return a.handler }

// MoveAlias points alias at version in the registry and pokes the Server,
// which loads the version if needed and swaps it in; requests in flight
// finish on the version they started on. After Close it returns
// registry.ErrClosed.
func (a *App) MoveAlias(ctx context.Context, alias string, version int64) error {
	if a.closing.Load() {
		return fmt.Errorf("move %s to v%d: %w", alias, version, registry.ErrClosed)
	}
	ctx = registry.WithActor(ctx, "recommender-operator")
	if err := a.store.SetAlias(ctx, modelName, alias, version); err != nil {
		return err
	}
	a.srv.Poke()
	return nil
}

// servedVersions returns the version each alias serves now (absent when
// none).
func (a *App) servedVersions() map[string]int64 {
	out := make(map[string]int64, len(servedAliases))
	for _, alias := range servedAliases {
		if v, ok := a.srv.Current(modelName, alias); ok {
			out[alias] = v.Number
		}
	}
	return out
}

// Ready reports whether the registry serves every alias, and which are
// missing.
func (a *App) Ready() (bool, []string) {
	if a.closing.Load() {
		return false, slices.Clone(servedAliases)
	}
	var missing []string
	served := a.servedVersions()
	for _, alias := range servedAliases {
		if _, ok := served[alias]; !ok {
			missing = append(missing, alias)
		}
	}
	return len(missing) == 0, missing
}

// Close shuts the service down in dependency order: the guardrail loop,
// the experiment's pooling through Redis (after a last flush), the router
// (it waits for requests in flight and for the shadow copies
// already queued), the batchers (each runs what it queued), the registry
// Server (it closes every loaded version once its last request returns),
// the feature store, Redis, the vector index, and a temporary registry
// folder. Stop the HTTP server first (http.Server.Shutdown) so that no
// request arrives meanwhile; any that does gets 503. Close is idempotent.
func (a *App) Close() error {
	a.closeMu.Lock()
	defer a.closeMu.Unlock()
	if a.closed {
		return a.closeErr
	}
	a.closed = true
	a.closing.Store(true)
	var errs []error
	if a.stop != nil {
		a.stop()
	}
	a.bg.Wait()
	if a.share != nil {
		errs = append(errs, a.share.Close())
	}
	if a.router != nil {
		errs = append(errs, a.router.Close())
	}
	for _, alias := range servedAliases {
		if b := a.batchers[alias]; b != nil {
			errs = append(errs, b.Close())
		}
	}
	if a.srv != nil {
		errs = append(errs, a.srv.Close())
		a.events.Wait()
	}
	if a.mem != nil {
		errs = append(errs, a.mem.Close())
	}
	if a.rdb != nil {
		errs = append(errs, a.rdb.Close())
	}
	if a.index != nil {
		errs = append(errs, a.index.Close())
	}
	if a.ownDir {
		errs = append(errs, os.RemoveAll(a.dataDir))
	}
	a.closeErr = errors.Join(errs...)
	return a.closeErr
}
