package online

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/quiverml/quiver/abtest"
	"github.com/quiverml/quiver/features"
	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/serving"
)

// Defaults of Options and Deploy.
const (
	DefaultInput         = "x"
	DefaultBatchSize     = 32
	DefaultHoldoutEvery  = 10
	DefaultWindowSize    = 1000
	DefaultMaxWindows    = 1000
	DefaultMaxDecisions  = 1000
	DefaultTTL           = time.Hour
	DefaultMaxPending    = 1 << 20
	DefaultExportEvery   = 10000
	DefaultEvalEvents    = 1000
	DefaultCanaryWeight  = 10
	DefaultArtifact      = "model.onnx"
	DefaultProduction    = "production"
	DefaultCanary        = "canary"
	DefaultCanaryVariant = "canary"
	// MaxRequestIDLen is the longest request id the loop accepts, so that
	// the prediction log's memory is bounded by MaxPending.
	MaxRequestIDLen = 1024
	// LearnerName is the name of the learner's metrics in window reports.
	LearnerName = "learner"
)

// Options configure a Loop. Store, Features and one of Model or Router are
// required; every other zero value selects the default documented on its
// field.
type Options struct {
	// Name identifies the loop in its metrics (the "loop" label) and logs
	// (the "loop" attribute). Empty by default.
	Name string

	// Store is where a prediction's features are read, at prediction time.
	Store features.Store
	// Features are the selections whose dense rows, concatenated in this
	// order, form the model's input row; Request.Entities holds one entity
	// key per selection.
	Features []*features.Selection

	// Model serves predictions when Router is nil: a registry Handle
	// (production alias), a Batcher, or the learner itself.
	Model serving.Model
	// Router, when set, serves predictions instead of Model: Request.Unit
	// picks the experiment's variant (production or canary).
	Router abtest.Router

	// Input is the model input that receives the row as a float32 tensor
	// of shape [1, width] (and the learner's mini-batches as [rows,
	// width]). Default DefaultInput ("x").
	Input string
	// Output is the output holding the probability of the positive class,
	// one float32 (or float64) per row. Empty means the model's only
	// output.
	Output string

	// BatchSize is the number of training rows per Learner.Update.
	// Default DefaultBatchSize (32).
	BatchSize int
	// HoldoutEvery holds out every k-th joined event (the k-th, 2k-th...):
	// it is scored, never trained on. It must be at least 2. Default
	// DefaultHoldoutEvery (10).
	HoldoutEvery int
	// WindowSize is the number of held-out events in one window report.
	// Default DefaultWindowSize (1000).
	WindowSize int
	// MaxWindows is the number of window reports kept (the oldest go
	// first). Default DefaultMaxWindows (1000).
	MaxWindows int
	// Baselines are scored on every held-out event beside the learner, so
	// that window reports compare the learner with them (a static model
	// that never learns, say). Names must not be LearnerName or the
	// production alias.
	Baselines map[string]serving.Model

	// TTL is how long a prediction waits for its outcome; then it expires
	// (Stats.Expired). Default DefaultTTL (1h).
	TTL time.Duration
	// MaxPending bounds the predictions waiting for an outcome; when it is
	// reached the oldest is evicted (Stats.Evicted). Default
	// DefaultMaxPending (2^20).
	MaxPending int

	// Deploy, when set, turns the learner into candidates: exported,
	// published to the registry, served as a canary, and promoted or
	// stopped on held-out metrics. Nil: the loop only learns.
	Deploy *Deploy

	// OnEvent, when set, is called with every joined event, held out or
	// trained on, in join order, before the learner sees it: the row of
	// the moment of prediction with its label, ready to log for offline
	// training. It runs while the loop's training lock is held, so it
	// must not block or call the Loop; it must not modify Event.Row.
	OnEvent func(Event)

	// MaxDecisions bounds the canary decisions kept (the oldest go first).
	// Default DefaultMaxDecisions (1000).
	MaxDecisions int
	// Clock returns the current time, which stamps predictions without a
	// time and outcomes without one, and ages predictions for TTL. Nil
	// means time.Now.
	Clock func() time.Time
	// Logger receives updates that failed, candidates, decisions and
	// scoring failures. Nil means slog.Default(); pass
	// slog.New(slog.DiscardHandler) to silence it.
	Logger *slog.Logger
}

// Registry is what the loop needs of a model registry to deploy
// candidates; *registry.Store implements it.
type Registry interface {
	Publish(ctx context.Context, model string, files []registry.File, meta registry.Meta) (registry.Version, error)
	SetAlias(ctx context.Context, model, alias string, number int64, opts ...registry.MoveOptions) error
	Resolve(ctx context.Context, model, alias string) (registry.Version, error)
}

// Deploy configures how the loop turns its learner into candidates and
// judges them. Registry, Model, Production and Canary are required; other
// zero values select the defaults documented on each field.
//
// Every Every joined events, when no candidate is being judged, the
// learner is exported and published as a new version of Model (lineage:
// the production version as parent, the prediction times of the events
// it learned from as data window; metrics: the learner's AUC and log-loss
// on the latest held-out events), and the canary alias moves to it. With
// an Experiment, the canary variant gets CanaryWeight of the traffic as
// soon as the canary alias serves the candidate.
// The candidate is then judged on the next EvalEvents held-out events
// that both it (through Canary) and production (through Production)
// scored: it is promoted (the production alias moves to it) when its AUC
// beats production's by at least MinAUCGain and its log-loss exceeds
// production's by at most MaxLogLossIncrease; otherwise it is stopped
// (the canary variant gets no traffic). A candidate the canary alias has
// not served within four times EvalEvents held-out events is stopped
// (ReasonNotServed). A Guardrail that stops the
// canary variant for its error rate or latency stops the candidate at
// once. Every decision is recorded (Loop.Decisions).
type Deploy struct {
	// Registry receives candidates: *registry.Store.
	Registry Registry
	// Model is the registry model name.
	Model string
	// ProductionAlias and CanaryAlias name the aliases. Defaults
	// DefaultProduction ("production") and DefaultCanary ("canary").
	ProductionAlias, CanaryAlias string
	// Production and Canary serve the two aliases (registry.Server.Model
	// handles): held-out events are scored through them, so a candidate
	// is judged as the serving engine runs it.
	Production, Canary serving.Model
	// Sync, when set, applies alias moves to the serving side at once
	// (registry.Server.Sync); otherwise the server's next poll does, and
	// the judging waits for the canary handle to serve the candidate.
	Sync func(ctx context.Context) error

	// Experiment, when set, routes CanaryWeight of its traffic to
	// CanaryVariant while a candidate is judged, and none otherwise.
	Experiment *abtest.Experiment
	// CanaryVariant is the experiment's variant served by the canary
	// alias. Default DefaultCanaryVariant ("canary").
	CanaryVariant string
	// CanaryWeight is the canary variant's weight while a candidate is
	// judged (other variants keep theirs). Default DefaultCanaryWeight (10).
	CanaryWeight float64
	// Guardrail, when set, is checked on every held-out event while a
	// candidate is judged; stopping the canary variant stops the
	// candidate.
	Guardrail *abtest.Guardrail

	// Every is the number of joined events between candidates. Default
	// DefaultExportEvery (10000).
	Every int
	// EvalEvents is the number of held-out events a candidate is judged
	// on. Default DefaultEvalEvents (1000).
	EvalEvents int
	// MinAUCGain is the least AUC gain over production a candidate needs;
	// zero requires it to be no worse, a negative value tolerates a drop.
	MinAUCGain float64
	// MaxLogLossIncrease is the most a candidate's log-loss may exceed
	// production's; zero requires it to be no worse.
	MaxLogLossIncrease float64

	// Artifact is the file name of the exported model. Default
	// DefaultArtifact ("model.onnx").
	Artifact string
	// CodeVersion is recorded as every candidate's Lineage.CodeVersion.
	CodeVersion string
	// Tags are added to every candidate's tags.
	Tags map[string]string
}

func (o *Options) validate(l Learner) error {
	if l == nil {
		return fmt.Errorf("%w: no learner", ErrConfig)
	}
	if o.Store == nil {
		return fmt.Errorf("%w: Options.Store is nil, want the feature store predictions read", ErrConfig)
	}
	if len(o.Features) == 0 {
		return fmt.Errorf("%w: Options.Features is empty, want at least one selection", ErrConfig)
	}
	for i, s := range o.Features {
		if s == nil {
			return fmt.Errorf("%w: Options.Features[%d] is nil", ErrConfig, i)
		}
	}
	if o.Model == nil && o.Router == nil {
		return fmt.Errorf("%w: want Options.Model or Options.Router to serve predictions", ErrConfig)
	}
	if o.Input == "" {
		o.Input = DefaultInput
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.HoldoutEvery == 0 {
		o.HoldoutEvery = DefaultHoldoutEvery
	}
	if o.WindowSize == 0 {
		o.WindowSize = DefaultWindowSize
	}
	if o.MaxWindows == 0 {
		o.MaxWindows = DefaultMaxWindows
	}
	if o.MaxDecisions == 0 {
		o.MaxDecisions = DefaultMaxDecisions
	}
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.MaxPending == 0 {
		o.MaxPending = DefaultMaxPending
	}
	switch {
	case o.BatchSize < 1:
		return fmt.Errorf("%w: BatchSize %d, want >= 1", ErrConfig, o.BatchSize)
	case o.HoldoutEvery < 2:
		return fmt.Errorf("%w: HoldoutEvery %d, want >= 2 (every k-th event is held out)", ErrConfig, o.HoldoutEvery)
	case o.WindowSize < 1:
		return fmt.Errorf("%w: WindowSize %d, want >= 1", ErrConfig, o.WindowSize)
	case o.MaxWindows < 1:
		return fmt.Errorf("%w: MaxWindows %d, want >= 1", ErrConfig, o.MaxWindows)
	case o.MaxDecisions < 1:
		return fmt.Errorf("%w: MaxDecisions %d, want >= 1", ErrConfig, o.MaxDecisions)
	case o.TTL < 0:
		return fmt.Errorf("%w: TTL %v, want > 0", ErrConfig, o.TTL)
	case o.MaxPending < 1:
		return fmt.Errorf("%w: MaxPending %d, want >= 1", ErrConfig, o.MaxPending)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if d := o.Deploy; d != nil {
		if err := d.validate(); err != nil {
			return err
		}
	}
	for name, m := range o.Baselines {
		if m == nil {
			return fmt.Errorf("%w: baseline %q is nil", ErrConfig, name)
		}
		if name == "" || name == LearnerName || (o.Deploy != nil && name == o.Deploy.ProductionAlias) {
			return fmt.Errorf("%w: baseline name %q, want a non-empty name other than %q and the production alias", ErrConfig, name, LearnerName)
		}
	}
	return nil
}

func (d *Deploy) validate() error {
	if d.Registry == nil || d.Model == "" {
		return fmt.Errorf("%w: Deploy needs Registry and Model", ErrConfig)
	}
	if d.Production == nil || d.Canary == nil {
		return fmt.Errorf("%w: Deploy needs the Production and Canary models that serve the aliases (registry.Server.Model)", ErrConfig)
	}
	if d.ProductionAlias == "" {
		d.ProductionAlias = DefaultProduction
	}
	if d.CanaryAlias == "" {
		d.CanaryAlias = DefaultCanary
	}
	if d.ProductionAlias == d.CanaryAlias {
		return fmt.Errorf("%w: production and canary aliases are both %q, want two aliases", ErrConfig, d.CanaryAlias)
	}
	for _, name := range []string{d.Model, d.ProductionAlias, d.CanaryAlias} {
		if err := registry.ValidName(name); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	if d.CanaryVariant == "" {
		d.CanaryVariant = DefaultCanaryVariant
	}
	if d.CanaryWeight == 0 {
		d.CanaryWeight = DefaultCanaryWeight
	}
	if d.Every == 0 {
		d.Every = DefaultExportEvery
	}
	if d.EvalEvents == 0 {
		d.EvalEvents = DefaultEvalEvents
	}
	if d.Artifact == "" {
		d.Artifact = DefaultArtifact
	}
	switch {
	case !(d.CanaryWeight > 0) || d.CanaryWeight > 1e12:
		return fmt.Errorf("%w: CanaryWeight %v, want a positive weight", ErrConfig, d.CanaryWeight)
	case d.Every < 1:
		return fmt.Errorf("%w: Deploy.Every %d, want >= 1", ErrConfig, d.Every)
	case d.EvalEvents < 2:
		return fmt.Errorf("%w: Deploy.EvalEvents %d, want >= 2", ErrConfig, d.EvalEvents)
	case d.MinAUCGain != d.MinAUCGain || d.MaxLogLossIncrease != d.MaxLogLossIncrease:
		return fmt.Errorf("%w: MinAUCGain and MaxLogLossIncrease must be numbers", ErrConfig)
	}
	if err := registry.ValidName(d.Artifact); err != nil {
		return fmt.Errorf("%w: Deploy.Artifact: %w", ErrConfig, err)
	}
	if e := d.Experiment; e != nil {
		found := false
		for _, v := range e.Variants() {
			found = found || v == d.CanaryVariant
		}
		if !found {
			return fmt.Errorf("%w: experiment %q has no variant %q, want the variant served by the canary alias", ErrConfig, e.Name(), d.CanaryVariant)
		}
		if e.Control() == d.CanaryVariant {
			return fmt.Errorf("%w: canary variant %q is the experiment's control", ErrConfig, d.CanaryVariant)
		}
	}
	return nil
}
