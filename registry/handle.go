package registry

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/quiverml/quiver/serving"
)

// Served says which version answered a request.
type Served struct {
	Model string
	// Alias is the alias the request was made through ("latest" for the
	// newest version).
	Alias   string
	Version int64
}

type servedKey struct{}

// WithServedHook returns a context that makes every Handle that serves a
// request under it call hook with the version that answered, after the
// prediction and before Predict returns. It reaches through layers that
// only see a serving.Model (a router, a batcher in front). hook may be
// called from several goroutines at once (a router fanning out to shadow
// variants) and must be safe for that.
func WithServedHook(ctx context.Context, hook func(Served)) context.Context {
	return context.WithValue(ctx, servedKey{}, hook)
}

// Handle is a serving.Model that forwards each request to whatever version
// its alias serves at that moment, holding a reference on that version for
// the duration of the call: a swap never interrupts a request, and the old
// version closes only after its last request. Handles are cheap; they do
// not own the versions, so Close only detaches the handle.
type Handle struct {
	srv    *Server
	t      *target
	closed atomic.Bool
}

var _ serving.Pinner = (*Handle)(nil)

// Model returns a Handle serving model through alias ("" or Latest for the
// newest version). The alias does not need to exist yet: until it has a
// loaded version, Predict returns ErrNotServing.
func (s *Server) Model(model, alias string) (*Handle, error) {
	if err := checkName("model", model); err != nil {
		return nil, err
	}
	if alias == "" {
		alias = Latest
	}
	if alias != Latest {
		if err := checkAlias(alias); err != nil {
			return nil, err
		}
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	s.mu.Lock()
	t := s.targetLocked(model, alias)
	s.mu.Unlock()
	return &Handle{srv: s, t: t}, nil
}

// Predict runs the request on the version the alias serves now. To learn
// which version answered, use PredictVersion or WithServedHook.
func (h *Handle) Predict(ctx context.Context, inputs map[string]serving.Tensor) (map[string]serving.Value, error) {
	l, err := h.acquire()
	if err != nil {
		return nil, err
	}
	defer l.release()
	out, err := l.m.Predict(ctx, inputs)
	h.report(ctx, l)
	return out, err
}

// PredictVersion is Predict that also says which version answered (zero
// Served when none did).
func (h *Handle) PredictVersion(ctx context.Context, inputs map[string]serving.Tensor) (map[string]serving.Value, Served, error) {
	l, err := h.acquire()
	if err != nil {
		return nil, Served{}, err
	}
	defer l.release()
	out, err := l.m.Predict(ctx, inputs)
	h.report(ctx, l)
	return out, Served{Model: h.t.model, Alias: h.t.alias, Version: l.v.Number}, err
}

func (h *Handle) acquire() (*live, error) {
	if h.closed.Load() {
		return nil, ErrClosed
	}
	l := h.t.acquire()
	if l == nil {
		if h.srv.closed.Load() {
			return nil, ErrClosed
		}
		h.srv.notServing.Add(1)
		return nil, fmt.Errorf("%w: %s alias %q has no loaded version (%w)", ErrNotServing, h.t.model, h.t.alias, serving.ErrNotReady)
	}
	return l, nil
}

// report calls the WithServedHook hook of every request the run served.
func (h *Handle) report(ctx context.Context, l *live) { h.t.report(ctx, l) }

// report calls the WithServedHook hook, if any, of every request ctx's run
// served: one, or each request of a batch merged in front of the alias.
func (t *target) report(ctx context.Context, l *live) {
	for _, rc := range serving.RequestContexts(ctx) {
		if hook, ok := rc.Value(servedKey{}).(func(Served)); ok && hook != nil {
			hook(Served{Model: t.model, Alias: t.alias, Version: l.v.Number})
		}
	}
}

// Pin returns the version the alias serves now, held until release is
// called: a Batcher in front of the Handle validates each request against
// the version it pins and runs the request on that version, so it follows
// every swap, to a version with other inputs too, from the next request on.
// The pinned model calls the WithServedHook hook of each request it serves,
// merged batches included. Pin returns an error matching ErrNotServing and
// serving.ErrNotReady while the alias has no loaded version.
func (h *Handle) Pin() (serving.Model, func(), error) {
	l, err := h.acquire()
	if err != nil {
		return nil, nil, err
	}
	p := h.t.pinned.Load()
	if p == nil || p.l != l {
		p = &pinned{t: h.t, l: l, release: l.release, name: h.Name()}
		h.t.pinned.Store(p)
	}
	return p, p.release, nil
}

// pinned is a version as seen through one alias: the model a Handle's Pin
// returns. It does not own the version; Close does nothing.
type pinned struct {
	t       *target
	l       *live
	release func()
	name    string
}

func (p *pinned) Info() serving.Info {
	info := p.l.m.Info()
	info.Name = p.name
	return info
}

func (p *pinned) Predict(ctx context.Context, inputs map[string]serving.Tensor) (map[string]serving.Value, error) {
	out, err := p.l.m.Predict(ctx, inputs)
	p.t.report(ctx, p.l)
	return out, err
}

// BorrowsInputs passes on the version's answer, so a Batcher in front of an
// alias reuses its buffers when the engine allows it.
func (p *pinned) BorrowsInputs() bool {
	ib, ok := p.l.m.(serving.InputBorrower)
	return ok && ib.BorrowsInputs()
}

func (p *pinned) Close() error { return nil }

// Info describes the version served now, with its name set to
// "<model>@<alias>"; before any version loads only the name is set.
func (h *Handle) Info() serving.Info {
	l := h.t.acquire()
	if l == nil {
		return serving.Info{Name: h.Name()}
	}
	defer l.release()
	info := l.m.Info()
	info.Name = h.Name()
	return info
}

// Name returns "<model>@<alias>".
func (h *Handle) Name() string { return h.t.model + "@" + h.t.alias }

// Version returns the version the alias serves now.
func (h *Handle) Version() (Version, bool) {
	if l := h.t.cur.Load(); l != nil {
		return l.v.clone(), true
	}
	return Version{}, false
}

// Close detaches the handle: later calls return ErrClosed. The versions
// belong to the Server and stay loaded.
func (h *Handle) Close() error {
	h.closed.Store(true)
	return nil
}
