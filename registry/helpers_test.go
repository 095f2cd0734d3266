package registry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/serving"
)

// fakeModel answers every request with its version number in output "y".
type fakeModel struct {
	version int64
	closed  atomic.Bool
	gate    chan struct{} // when set, Predict waits on it
	inside  chan struct{} // when set, Predict signals it entered
	fl      *fakeLoader
}

func (m *fakeModel) Info() serving.Info {
	return serving.Info{Name: "fake", Inputs: []serving.IOInfo{{Name: "x", ElementType: serving.Float32, Shape: []int64{-1, 1}}}}
}

func (m *fakeModel) Predict(ctx context.Context, _ map[string]serving.Tensor) (map[string]serving.Value, error) {
	if m.closed.Load() {
		m.fl.useAfterClose.Add(1)
		return nil, errors.New("fake: predict on a closed model")
	}
	if m.inside != nil {
		m.inside <- struct{}{}
	}
	if m.gate != nil {
		select {
		case <-m.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if m.closed.Load() {
		m.fl.useAfterClose.Add(1)
		return nil, errors.New("fake: closed while predicting")
	}
	return map[string]serving.Value{"y": serving.TensorValue(serving.NewTensor([]int64{1}, []float32{float32(m.version)}))}, nil
}

func (m *fakeModel) Close() error {
	if m.closed.Swap(true) {
		m.fl.doubleClose.Add(1)
		return serving.ErrClosed
	}
	m.fl.closed.Add(1)
	return nil
}

// fakeLoader builds fakeModels from an entry file holding "v<N>"; "fail"
// makes the load fail and "panic" makes it panic.
type fakeLoader struct {
	loaded, closed, useAfterClose, doubleClose atomic.Int64
	mu                                         sync.Mutex
	gate                                       chan struct{}
	inside                                     chan struct{}
	models                                     []*fakeModel
}

func (fl *fakeLoader) load(ctx context.Context, v Version, dir string) (serving.Model, error) {
	data, err := os.ReadFile(filepath.Join(dir, v.Entry))
	if err != nil {
		return nil, err
	}
	s := strings.TrimSpace(string(data))
	switch {
	case s == "fail":
		return nil, errors.New("fake: cannot load")
	case s == "panic":
		panic("fake: loader bug")
	case strings.HasPrefix(s, "v"):
		n, err := strconv.ParseInt(s[1:], 10, 64)
		if err != nil {
			return nil, err
		}
		fl.mu.Lock()
		m := &fakeModel{version: n, fl: fl, gate: fl.gate, inside: fl.inside}
		fl.models = append(fl.models, m)
		fl.mu.Unlock()
		fl.loaded.Add(1)
		return m, nil
	}
	return nil, fmt.Errorf("fake: unknown content %q", s)
}

// live returns loaded minus closed.
func (fl *fakeLoader) live() int64 { return fl.loaded.Load() - fl.closed.Load() }

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), Options{})
	require.NoError(t, err)
	return s
}

// publishText publishes one version whose entry file holds content.
func publishText(t *testing.T, s *Store, model, content string) Version {
	t.Helper()
	v, err := s.Publish(context.Background(), model, []File{{Name: "model.bin", Data: []byte(content)}}, Meta{})
	require.NoError(t, err)
	return v
}

// publishN publishes version n (number and content "v<n>").
func publishN(t *testing.T, s *Store, model string, n int64) Version {
	t.Helper()
	v, err := s.Publish(context.Background(), model,
		[]File{{Name: "model.bin", Data: []byte("v" + strconv.FormatInt(n, 10))}}, Meta{Number: n})
	require.NoError(t, err)
	return v
}

func newServer(t *testing.T, s Registry, fl *fakeLoader, opts ServerOptions) *Server {
	t.Helper()
	if opts.PollInterval == 0 {
		opts.PollInterval = time.Hour // tests drive Sync themselves
	}
	srv, err := NewServer(s, fl.load, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// predictVersion returns the version that answers through h.
func predictVersion(t *testing.T, h *Handle) int64 {
	t.Helper()
	out, sv, err := h.PredictVersion(context.Background(), nil)
	require.NoError(t, err)
	y, err := out["y"].Tensor.Float32s()
	require.NoError(t, err)
	require.Equal(t, sv.Version, int64(y[0]), "Served must name the version that computed the output")
	return sv.Version
}

// drainEvents returns the events buffered so far.
func drainEvents(srv *Server) []Event {
	var out []Event
	for {
		select {
		case e, ok := <-srv.Events():
			if !ok {
				return out
			}
			out = append(out, e)
		default:
			return out
		}
	}
}

func kinds(evs []Event) []EventKind {
	out := make([]EventKind, len(evs))
	for i, e := range evs {
		out[i] = e.Kind
	}
	return out
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
