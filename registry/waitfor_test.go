package registry

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type waitResult struct {
	v   Version
	err error
}

func waitAsync(srv *Server, ctx context.Context, model, alias string, version int64) <-chan waitResult {
	ch := make(chan waitResult, 1)
	go func() {
		v, err := srv.WaitFor(ctx, model, alias, version)
		ch <- waitResult{v, err}
	}()
	return ch
}

// TestWaitFor waits for an alias move made through the store: the wait
// ends at the swap that serves the version, not at an earlier swap of
// another alias or version; it ends at once when the version already
// serves, with the context's error, and with ErrClosed at Close.
func TestWaitFor(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	fl := &fakeLoader{}
	for i := int64(1); i <= 3; i++ {
		publishN(t, s, "m", i)
	}
	require.NoError(t, s.SetAlias(ctx, "m", "production", 1))
	srv := newServer(t, s, fl, ServerOptions{})
	_, err := srv.Model("m", "production")
	require.NoError(t, err)
	require.NoError(t, srv.Sync(ctx))

	v, err := srv.WaitFor(ctx, "m", "production", 1)
	require.NoError(t, err, "already serving")
	require.Equal(t, int64(1), v.Number)

	got := waitAsync(srv, ctx, "m", "production", 3)
	require.NoError(t, s.SetAlias(ctx, "m", "production", 2))
	require.NoError(t, srv.Sync(ctx))
	select {
	case r := <-got:
		t.Fatalf("returned before the alias served version 3: %+v", r)
	default:
	}
	require.NoError(t, s.SetAlias(ctx, "m", "production", 3))
	require.NoError(t, srv.Sync(ctx))
	r := <-got
	require.NoError(t, r.err)
	require.Equal(t, int64(3), r.v.Number)
	cur, ok := srv.Current("m", "production")
	require.True(t, ok)
	require.Equal(t, int64(3), cur.Number)

	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	_, err = srv.WaitFor(short, "m", "production", 1)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "m@production to serve version 1 (it serves 3)")

	only, err := NewServer(s, fl.load, ServerOptions{Aliases: []string{"production"}})
	require.NoError(t, err)
	defer only.Close()
	_, err = only.WaitFor(ctx, "m", "canary", 1)
	require.ErrorIs(t, err, ErrBadInput, "an alias the server does not serve would never come")

	got = waitAsync(srv, ctx, "m", "canary", 1)
	require.NoError(t, srv.Close())
	require.ErrorIs(t, (<-got).err, ErrClosed)
	_, err = srv.WaitFor(ctx, "m", "production", 3)
	require.ErrorIs(t, err, ErrClosed)
}
