package redisstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"

	"github.com/quiverml/quiver/abtest"
	"github.com/quiverml/quiver/internal/latency"
)

// Errors, checked with errors.Is. They are reported by Flush, Err and
// Stats, never by the hot path (Expose, ObserveRequest, Update, Select),
// which does not wait for Redis.
var (
	// ErrRedis wraps a failure talking to Redis: unreachable, timed out,
	// or an error reply.
	ErrRedis = errors.New("redisstate: redis")
	// ErrCorrupt reports data in Redis that this package did not write
	// (an undecodable counter, moments or decision). The scripts rebuild
	// an aggregate that holds such data from the live replicas.
	ErrCorrupt = errors.New("redisstate: corrupt shared state")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("redisstate: sync is closed")
)

// Defaults of Options.
const (
	// DefaultPrefix is Options.Prefix when empty.
	DefaultPrefix = "quiver:abtest"
	// DefaultFlushInterval is Options.FlushInterval when zero.
	DefaultFlushInterval = 250 * time.Millisecond
	// DefaultTimeout is Options.Timeout when zero.
	DefaultTimeout = time.Second
	// DefaultRecordTTL is Options.RecordTTL when zero.
	DefaultRecordTTL = 7 * 24 * time.Hour
)

// Options configure a Sync. The zero value is ready to use.
type Options struct {
	// Prefix starts every Redis key. Empty means DefaultPrefix. Services
	// that must not pool with each other use different prefixes.
	Prefix string
	// ReplicaID names this replica in stop decisions and logs. Empty
	// means the host name and process id. At most 256 bytes, no "|" and
	// no control characters. Each Sync also draws a random incarnation
	// id, so two processes given the same ReplicaID never count as one.
	ReplicaID string
	// FlushInterval is how often Run sends this replica's numbers and
	// reads everyone's: the pooled numbers a replica reads are at most
	// FlushInterval plus one round trip old. Zero means
	// DefaultFlushInterval (250ms).
	FlushInterval time.Duration
	// Timeout bounds each flush's round trips, so a hung Redis cannot
	// stall the loop. Zero means DefaultTimeout (1s).
	Timeout time.Duration
	// RecordTTL is how long Redis keeps the record of what one replica
	// contributed after that replica's last flush; records of replicas
	// gone for longer expire (their numbers stay in the aggregate). A
	// replica cut off from Redis for longer re-sends its totals against
	// what it knows it contributed (if its last flush before the cut-off
	// ran but its reply was lost, that flush's increment then counts
	// twice: the one case the record cannot cover). Zero means
	// DefaultRecordTTL (7 days); negative keeps records forever.
	RecordTTL time.Duration
	// Logger receives a warning when Redis becomes unreachable (once per
	// outage, not per flush), an info line when it is back, and warnings
	// for corrupt shared state and remote decisions that could not be
	// applied. Nil means slog.Default(); pass slog.New(slog.DiscardHandler)
	// to silence it.
	Logger *slog.Logger
}

// Sync shares the statistics and the stop decisions of this replica's
// experiments with every other replica through Redis. Attach trackers,
// bandits and experiments, then call Run (or Flush). It is safe for
// concurrent use.
type Sync struct {
	rdb         redis.UniversalClient
	opts        Options
	log         *slog.Logger
	incarnation string
	created     time.Time
	kick        chan struct{}
	sem         chan struct{} // held while flushing
	wire        chan struct{} // held while an exchange with Redis runs (see exchange)

	mu       sync.Mutex
	holders  []*holder
	exps     []*expSync
	closed   bool
	running  bool
	done     chan struct{} // closed by Close
	runEnded chan struct{} // closed when Run returns; nil when not running

	flushes, failures, resyncs, corrupt, published, applied atomic.Uint64
	lastSync                                                atomic.Int64 // Unix ns of the last successful flush's start
	flushTime, staleTime                                    latency.Histogram

	errMu    sync.Mutex
	lastErr  error
	down     bool
	downFrom time.Time
}

// holder is a tracker or bandit whose totals are pooled. Its flush state
// is guarded by Sync.sem.
type holder struct {
	kind, name  string
	p           abtest.Poolable
	agg, record string

	epoch   string        // the aggregate's epoch this replica last saw
	acked   abtest.Totals // what this incarnation knows the aggregate holds of it
	seq     uint64
	rebuild bool // the aggregate held data this package did not write
}

// holderCmds are one holder's commands in a flush pipeline.
type holderCmds struct {
	script *redis.Cmd
	agg    *redis.MapStringStringCmd
}

// expSync shares one experiment's stop decisions.
type expSync struct {
	e      *abtest.Experiment
	key    string
	cancel func()
	// pending holds local changes not yet written, by variant (Sync.mu).
	pending map[string]abtest.Change
	// epoch and applied: the stops hash's epoch and the latest decision
	// version applied per variant (Sync.sem).
	epoch   string
	applied map[string]uint64
}

// New returns a Sync over rdb (a *redis.Client, *redis.ClusterClient or
// *redis.Ring). It does not contact Redis; Run or Flush do.
func New(rdb redis.UniversalClient, opts Options) (*Sync, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: redisstate: nil redis client", abtest.ErrConfig)
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.ReplicaID == "" {
		host, _ := os.Hostname()
		opts.ReplicaID = host + "-" + strconv.Itoa(os.Getpid())
	}
	if err := checkReplicaID(opts.ReplicaID); err != nil {
		return nil, err
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.RecordTTL == 0 {
		opts.RecordTTL = DefaultRecordTTL
	}
	if opts.FlushInterval < 0 || opts.Timeout < 0 {
		return nil, fmt.Errorf("%w: redisstate: flush interval %v, timeout %v, want values > 0 (or 0 for the defaults)", abtest.ErrConfig, opts.FlushInterval, opts.Timeout)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Sync{
		rdb: rdb, opts: opts, incarnation: randomID(),
		created: time.Now(), kick: make(chan struct{}, 1), sem: make(chan struct{}, 1), wire: make(chan struct{}, 1), done: make(chan struct{}),
	}
	s.log = opts.Logger.With("replica", opts.ReplicaID)
	return s, nil
}

func checkReplicaID(id string) error {
	if len(id) > maxReplicaID || strings.Contains(id, "|") || strings.IndexFunc(id, unicode.IsControl) >= 0 {
		return fmt.Errorf("%w: redisstate: replica id %.40q, want at most %d bytes without \"|\" or control characters", abtest.ErrConfig, id, maxReplicaID)
	}
	return nil
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// ReplicaID returns the replica's name as given in Options (or defaulted).
func (s *Sync) ReplicaID() string { return s.opts.ReplicaID }

// Tracker pools t with the trackers of the same experiment name on every
// replica: after the next flush, t.Stats, Variant, the Compare methods, SRM
// and a Guardrail over t report everyone's numbers (see abtest.Poolable).
func (s *Sync) Tracker(t *abtest.Tracker) error {
	if t == nil {
		return fmt.Errorf("%w: redisstate: nil tracker", abtest.ErrConfig)
	}
	return s.attach("tracker", t.Experiment(), t)
}

// Bandit pools b with the bandits registered under name on every replica:
// after the next flush, b selects from everyone's rewards. b must be one of
// abtest's bandits (or implement abtest.Poolable).
func (s *Sync) Bandit(name string, b abtest.Bandit) error {
	p, ok := b.(abtest.Poolable)
	if name == "" || !ok {
		return fmt.Errorf("%w: redisstate: bandit %q: want a non-empty name and a bandit that implements abtest.Poolable, got %T", abtest.ErrConfig, name, b)
	}
	return s.attach("bandit", name, p)
}

func (s *Sync) attach(kind, name string, p abtest.Poolable) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	for _, h := range s.holders {
		if h.kind == kind && h.name == name {
			return fmt.Errorf("%w: redisstate: %s %q is attached already", abtest.ErrConfig, kind, name)
		}
	}
	base := tag(s.opts.Prefix, name) + ":" + kind
	s.holders = append(s.holders, &holder{
		kind: kind, name: name, p: p,
		agg: base, record: base + ":r:" + s.opts.ReplicaID + ":" + s.incarnation,
	})
	return nil
}

// Experiment shares e's stop and resume decisions: a Stop, Resume or
// guardrail stop taken here is written to Redis at once (with its reason,
// time and this replica's id), and decisions taken on other replicas are
// applied to e at the next flush (see Change.Remote). A replica that
// attaches an experiment applies the decisions already recorded.
func (s *Sync) Experiment(e *abtest.Experiment) error {
	if e == nil {
		return fmt.Errorf("%w: redisstate: nil experiment", abtest.ErrConfig)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	for _, x := range s.exps {
		if x.e.Name() == e.Name() {
			return fmt.Errorf("%w: redisstate: experiment %q is attached already", abtest.ErrConfig, e.Name())
		}
	}
	x := &expSync{e: e, key: tag(s.opts.Prefix, e.Name()) + ":stops", pending: map[string]abtest.Change{}, applied: map[string]uint64{}}
	x.cancel = e.Watch(func(c abtest.Change) { s.local(x, c) })
	s.exps = append(s.exps, x)
	return nil
}

// local queues a change taken in this process and wakes the loop.
func (s *Sync) local(x *expSync, c abtest.Change) {
	if c.Remote {
		return
	}
	s.mu.Lock()
	if old, ok := x.pending[c.Variant]; !ok || c.Seq > old.Seq {
		x.pending[c.Variant] = c
	}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run flushes every FlushInterval, and at once after a local stop or
// resume, until ctx is done or Close is called; then it flushes once more
// (bounded by Options.Timeout), so a replica shutting down shares its last
// numbers, and returns ctx's error wrapped (or ErrClosed). Failed flushes
// are retried at the next interval; they do not end Run.
func (s *Sync) Run(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return ErrClosed
	case s.running:
		s.mu.Unlock()
		return fmt.Errorf("%w: redisstate: Run is already running", abtest.ErrConfig)
	}
	s.running = true
	ended := make(chan struct{})
	s.runEnded = ended
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
		close(ended)
	}()

	t := time.NewTicker(s.opts.FlushInterval)
	defer t.Stop()
	for {
		var end error
		select {
		case <-ctx.Done():
			end = fmt.Errorf("redisstate: run ended: %w", ctx.Err())
		case <-s.done:
			end = ErrClosed
		case <-t.C:
		case <-s.kick:
		}
		// The flush's deadline is this Sync's Timeout, not the caller's:
		// a flush that runs out of it met a Redis too slow to answer (hung,
		// partitioned), an outage to record and log like a refused one.
		bg := context.WithoutCancel(ctx)
		fctx, cancel := context.WithTimeout(bg, s.opts.Timeout)
		_ = s.flushOnce(bg, fctx) // recorded in Stats and logged once per outage
		cancel()
		if end != nil {
			return end
		}
	}
}

// Close stops Run (after its last flush), stops watching the attached
// experiments and makes later calls return ErrClosed. Trackers and bandits
// keep the pooled numbers of the last flush. It is safe to call more than
// once.
func (s *Sync) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	ended := s.runEnded
	running := s.running
	for _, x := range s.exps {
		x.cancel()
	}
	s.mu.Unlock()
	if running {
		<-ended
	}
	return nil
}

// Flush sends this replica's numbers and pending decisions to Redis and
// reads everyone's, in one pipelined round trip (a second one for any
// holder that must resend in full after Redis lost or rebuilt its data).
// It waits for a flush already running. Errors wrap ErrRedis (Redis
// unreachable: the holders keep the last pooled numbers plus their own,
// and nothing is lost: the next flush sends everything since the last
// acknowledged one), ErrCorrupt, or ctx's error.
func (s *Sync) Flush(ctx context.Context) error {
	return s.flushOnce(ctx, ctx)
}

// flushOnce runs one flush under ctx. caller is the context whose end
// means the caller gave up, which says nothing about Redis: a flush that
// fails once caller is done is not recorded. Run passes a caller that
// never ends, so that its own deadline (Options.Timeout) counts as Redis
// failing to answer.
func (s *Sync) flushOnce(caller, ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("redisstate: flush: %w", ctx.Err())
	}
	defer func() { <-s.sem }()
	s.mu.Lock()
	if s.closed && !s.running {
		s.mu.Unlock()
		return ErrClosed
	}
	holders := append([]*holder(nil), s.holders...)
	exps := append([]*expSync(nil), s.exps...)
	s.mu.Unlock()

	start := time.Now()
	err := s.flush(ctx, holders, exps)
	if err != nil && caller.Err() == nil && ctx.Err() != nil && !errors.Is(err, ErrRedis) {
		// Ran out of time in a step that does not wrap ErrRedis (loading
		// the scripts): still Redis not answering in time.
		err = fmt.Errorf("%w: flush: %w", ErrRedis, err)
	}
	s.record(caller, err, start)
	return err
}

// flush runs one exchange with Redis; see Flush.
func (s *Sync) flush(ctx context.Context, holders []*holder, exps []*expSync) error {
	// Pending decisions are taken out now and put back unless their
	// experiment's script ran.
	changes := make([][]abtest.Change, len(exps))
	s.mu.Lock()
	for i, x := range exps {
		for _, c := range x.pending {
			changes[i] = append(changes[i], c)
		}
		x.pending = map[string]abtest.Change{}
	}
	s.mu.Unlock()
	written := make([]bool, len(exps))
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, x := range exps {
			if written[i] {
				s.published.Add(uint64(len(changes[i])))
				continue
			}
			for _, c := range changes[i] {
				if old, ok := x.pending[c.Variant]; !ok || c.Seq > old.Seq {
					x.pending[c.Variant] = c
				}
			}
		}
	}()

	totals := make([]abtest.Totals, len(holders))
	for i, h := range holders {
		totals[i] = h.p.Totals()
	}
	full := make([]bool, len(holders))
	// send runs the flush script of the holders listed in which (and the
	// stops script of every experiment when withStops) in one pipeline.
	// A transport failure fails the whole exchange; an error reply fails
	// only its own command.
	send := func(which []int, withStops bool) ([]holderCmds, []*redis.Cmd, error) {
		var hc []holderCmds
		var sc []*redis.Cmd
		run := func() error {
			pipe := s.rdb.Pipeline()
			hc, sc = hc[:0], sc[:0]
			for _, i := range which {
				h := holders[i]
				h.seq++
				hc = append(hc, holderCmds{
					script: flushScript.EvalSha(ctx, pipe, []string{h.agg, h.record}, s.flushArgs(h, totals[i], full[i])...),
					// Read back on the same connection, right after: it
					// sees what the script wrote.
					agg: pipe.HGetAll(ctx, h.agg),
				})
			}
			if withStops {
				for i, x := range exps {
					sc = append(sc, stopsScript.EvalSha(ctx, pipe, []string{x.key}, s.stopsArgs(changes[i])...))
				}
			}
			if pipe.Len() == 0 {
				return nil
			}
			_, err := pipe.Exec(ctx)
			return err
		}
		err := s.exchange(ctx, func() error {
			err := run()
			if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
				if lerr := s.loadScripts(ctx); lerr != nil {
					return lerr
				}
				err = run()
			}
			return err
		})
		var reply redis.Error
		switch {
		case err == nil || errors.As(err, &reply):
			return hc, sc, nil
		case errors.Is(err, ErrRedis):
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("%w: flush: %w", ErrRedis, err)
	}

	all := make([]int, len(holders))
	for i := range all {
		all[i] = i
	}
	hc, sc, err := send(all, true)
	if err != nil {
		return err
	}
	var errs []error
	for i, x := range exps {
		if sc[i].Err() == nil {
			written[i] = true
		}
		if err := s.applyStops(x, sc[i]); err != nil {
			errs = append(errs, err)
		}
	}
	var again []int
	for j, i := range all {
		resend, err := s.reply(holders[i], totals[i], hc[j])
		if err != nil {
			errs = append(errs, err)
		}
		if resend {
			full[i] = true
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		s.resyncs.Add(uint64(len(again)))
		hc, _, err := send(again, false)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		for j, i := range again {
			if resend, err := s.reply(holders[i], totals[i], hc[j]); err != nil {
				errs = append(errs, err)
			} else if resend {
				errs = append(errs, fmt.Errorf("%w: %s %q: asked to resend twice in one flush", ErrRedis, holders[i].kind, holders[i].name))
			}
		}
	}
	return errors.Join(errs...)
}

// exchange runs fn, one exchange with Redis, and returns its error, or
// ctx's as soon as ctx ends. go-redis honours a context's deadline only on
// clients built with ContextTimeoutEnabled; elsewhere a hung server holds
// a call until the client's ReadTimeout (5s by default), and
// Options.Timeout must bound a flush whatever the client. An exchange
// given up on runs on in the background until the client's own timeouts
// end it (its reply is ignored; the per-process sequence numbers make a
// late delivery harmless), and until it has, the next exchange fails at
// once instead of piling connections onto a hung server.
func (s *Sync) exchange(ctx context.Context, fn func() error) error {
	select {
	case s.wire <- struct{}{}:
	default:
		return fmt.Errorf("%w: the previous exchange is still waiting for an answer", ErrRedis)
	}
	done := make(chan error, 1)
	go func() {
		err := fn()
		<-s.wire // before done: the caller may start the next exchange at once
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: no answer: %w", ErrRedis, ctx.Err())
	}
}

func (s *Sync) loadScripts(ctx context.Context) error {
	for _, sc := range []*redis.Script{flushScript, stopsScript} {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("%w: load script: %w", ErrRedis, err)
		}
	}
	return nil
}

// flushArgs lists what changed since the last acknowledged flush (every
// number for a full resend), each with its acknowledged value as base.
func (s *Sync) flushArgs(h *holder, cur abtest.Totals, full bool) []any {
	fullFlag := "0"
	if full {
		fullFlag = "1"
	}
	ttl := int64(0)
	if s.opts.RecordTTL > 0 {
		ttl = max(s.opts.RecordTTL.Milliseconds(), 1)
	}
	rebuild := "0"
	if h.rebuild {
		rebuild = "1"
	}
	args := []any{h.epoch, randomID(), strconv.FormatUint(h.seq, 10), strconv.FormatInt(ttl, 10), fullFlag, rebuild, 0, 0}
	var nc, nm int
	for name, v := range cur.Counters {
		if b, ok := h.acked.Counters[name]; full || !ok || b != v {
			args = append(args, name, strconv.FormatUint(v, 10), strconv.FormatUint(b, 10))
			nc++
		}
	}
	for name, b := range h.acked.Counters {
		if _, ok := cur.Counters[name]; !ok && b != 0 {
			args = append(args, name, "0", strconv.FormatUint(b, 10))
			nc++
		}
	}
	for name, v := range cur.Moments {
		if b, ok := h.acked.Moments[name]; full || !ok || b != v {
			args = append(args, name, encodeMoments(v), encodeMoments(b))
			nm++
		}
	}
	for name, b := range h.acked.Moments {
		if _, ok := cur.Moments[name]; !ok && b.N != 0 {
			args = append(args, name, encodeMoments(abtest.Moments{}), encodeMoments(b))
			nm++
		}
	}
	// Counters were appended before moments, as the script reads them.
	args[6], args[7] = nc, nm
	return args
}

// reply handles one holder's flush reply: on success the holder reads the
// pooled totals; "resync" and "corrupt" ask for a full resend.
func (s *Sync) reply(h *holder, cur abtest.Totals, cmds holderCmds) (resend bool, err error) {
	v, err := cmds.script.Slice()
	if err != nil {
		return false, fmt.Errorf("%w: %s %q: %w", ErrRedis, h.kind, h.name, err)
	}
	if len(v) < 2 {
		return false, fmt.Errorf("%w: %s %q: flush reply of %d elements, want at least 2", ErrCorrupt, h.kind, h.name, len(v))
	}
	status, _ := v[0].(string)
	epoch, _ := v[1].(string)
	switch status {
	case "ok":
		h.epoch, h.acked = epoch, cur
		hash, err := cmds.agg.Result()
		if err != nil {
			return false, fmt.Errorf("%w: %s %q: read back: %w", ErrRedis, h.kind, h.name, err)
		}
		pooled, err := decodeTotals(hash)
		if err == nil {
			err = h.p.SetPooled(pooled, cur)
			if err != nil {
				err = fmt.Errorf("%w: %w", ErrCorrupt, err)
			}
		}
		if err != nil {
			// The next flush asks the script to rebuild the aggregate.
			h.rebuild = true
			s.corrupt.Add(1)
			s.log.Warn("redisstate: shared statistics hold data this package did not write; rebuilding them from the live replicas",
				"kind", h.kind, "name", h.name, "key", h.agg, "error", err)
			return false, fmt.Errorf("%s %q: %w", h.kind, h.name, err)
		}
		return false, nil
	case "resync":
		return true, nil
	case "corrupt":
		if !h.rebuild {
			s.corrupt.Add(1)
			s.log.Warn("redisstate: shared statistics hold data this package did not write; rebuilding them from the live replicas",
				"kind", h.kind, "name", h.name, "key", h.agg)
		}
		h.rebuild = false
		return true, nil
	case "stale":
		return false, nil
	default:
		return false, fmt.Errorf("%w: %s %q: flush reply %q", ErrCorrupt, h.kind, h.name, status)
	}
}

func (s *Sync) stopsArgs(changes []abtest.Change) []any {
	args := []any{randomID()}
	for _, c := range changes {
		info := c.Info
		if info.Replica == "" {
			info.Replica = s.opts.ReplicaID
		}
		args = append(args, c.Variant)
		args = append(args, encodeDecision(c.Stopped, info)...)
	}
	return args
}

// applyStops applies the decisions other replicas took since the last
// flush. A variant with a local decision not yet written keeps it (it will
// be written next, and win).
func (s *Sync) applyStops(x *expSync, cmd *redis.Cmd) error {
	flat, err := cmd.Slice()
	if err != nil {
		return fmt.Errorf("%w: experiment %q stops: %w", ErrRedis, x.e.Name(), err)
	}
	epoch, ds, err := decodeStops(flat)
	if err != nil {
		s.corrupt.Add(1)
		return fmt.Errorf("experiment %q stops: %w", x.e.Name(), err)
	}
	if epoch != x.epoch {
		if x.epoch != "" {
			// Redis lost the decisions: write this replica's stops again.
			s.republish(x)
		}
		x.epoch = epoch
		x.applied = map[string]uint64{}
	}
	for variant, d := range ds {
		if d.ver <= x.applied[variant] {
			continue
		}
		s.mu.Lock()
		_, pending := x.pending[variant]
		s.mu.Unlock()
		if pending {
			continue
		}
		x.applied[variant] = d.ver
		if _, stopped := x.e.StopInfo(variant); stopped == d.stopped || !contains(x.e.Variants(), variant) {
			continue
		}
		if err := x.e.ApplyChange(abtest.Change{Variant: variant, Stopped: d.stopped, Info: d.info}); err != nil {
			s.log.Warn("redisstate: could not apply another replica's decision", "experiment", x.e.Name(), "variant", variant,
				"stopped", d.stopped, "by", d.info.Replica, "reason", d.info.Reason, "error", err)
			continue
		}
		s.applied.Add(1)
		s.log.Info("redisstate: applied another replica's decision", "experiment", x.e.Name(), "variant", variant,
			"stopped", d.stopped, "by", d.info.Replica, "reason", d.info.Reason, "at", d.info.Time)
	}
	return nil
}

// republish queues this replica's current stops to be written again.
func (s *Sync) republish(x *expSync) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range x.e.Variants() {
		if info, stopped := x.e.StopInfo(v); stopped {
			if _, ok := x.pending[v]; !ok {
				x.pending[v] = abtest.Change{Variant: v, Stopped: true, Info: info}
			}
		}
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// record updates the statistics after a flush and logs the start and end
// of an outage, once each.
func (s *Sync) record(caller context.Context, err error, start time.Time) {
	if caller.Err() != nil && err != nil {
		// Ended by the caller's context: says nothing about Redis.
		return
	}
	s.errMu.Lock()
	defer s.errMu.Unlock()
	s.lastErr = err
	if err != nil {
		s.failures.Add(1)
		if !s.down && errors.Is(err, ErrRedis) {
			s.down, s.downFrom = true, start
			s.log.Warn("redisstate: redis unavailable; experiments decide from the last pooled numbers plus this replica's own until it returns",
				"error", err)
		}
		return
	}
	s.flushes.Add(1)
	s.flushTime.Observe(time.Since(start))
	prev := s.lastSync.Swap(start.UnixNano())
	if prev == 0 {
		prev = s.created.UnixNano()
	}
	s.staleTime.Observe(time.Duration(start.UnixNano() - prev))
	if s.down {
		s.down = false
		s.log.Info("redisstate: redis available again; this replica's numbers since the outage are shared",
			"outage", time.Since(s.downFrom).Round(time.Millisecond))
	}
}

// Err returns nil when the last flush succeeded, else its error (wrapping
// ErrRedis or ErrCorrupt): a health check.
func (s *Sync) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.lastErr
}

// Stats is a snapshot of a Sync's counters.
type Stats struct {
	// Replica is Options.ReplicaID.
	Replica string
	// Flushes and Failures count flushes that succeeded and failed.
	Flushes, Failures uint64
	// Resyncs counts full resends: after Redis lost or rebuilt an
	// aggregate, or a record expired.
	Resyncs uint64
	// Corrupt counts data found in Redis that this package did not write.
	Corrupt uint64
	// Published counts stops and resumes taken here and written to
	// Redis; Applied those taken on other replicas and applied here.
	Published, Applied uint64
	// LastSync is when the last successful flush started (zero before
	// the first), and Staleness how long ago that was (since New before
	// the first): the pooled numbers are at most that old.
	LastSync  time.Time
	Staleness time.Duration
	// Err is the last flush's error, nil when it succeeded.
	Err error
	// Holders and Experiments count what is attached.
	Holders, Experiments int
}

// Stats returns a snapshot of the Sync's counters.
func (s *Sync) Stats() Stats {
	st := Stats{
		Replica: s.opts.ReplicaID, Flushes: s.flushes.Load(), Failures: s.failures.Load(),
		Resyncs: s.resyncs.Load(), Corrupt: s.corrupt.Load(), Published: s.published.Load(), Applied: s.applied.Load(), Err: s.Err(),
	}
	since := s.created
	if ns := s.lastSync.Load(); ns != 0 {
		st.LastSync = time.Unix(0, ns)
		since = st.LastSync
	}
	st.Staleness = time.Since(since)
	s.mu.Lock()
	st.Holders, st.Experiments = len(s.holders), len(s.exps)
	s.mu.Unlock()
	return st
}
