package redistest

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func TestKillAndRestart(t *testing.T) {
	ctx := context.Background()
	for _, durable := range []bool{false, true} {
		s := Start(t, Options{Durable: durable})
		c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
		require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
		s.Kill()
		require.Error(t, c.Ping(ctx).Err(), "a killed server does not answer")
		s.Restart()
		got, err := c.Get(ctx, "k").Result()
		if durable {
			require.NoError(t, err)
			require.Equal(t, "v", got, "an acknowledged write survives the crash")
		} else {
			require.ErrorIs(t, err, redis.Nil, "without persistence a restarted server is empty")
		}
		require.NoError(t, c.Close())
	}
}

func TestPauseAndResume(t *testing.T) {
	ctx := context.Background()
	s := Start(t, Options{})
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	s.Pause()
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	err := c.Get(short, "k").Err()
	cancel()
	require.Error(t, err, "a paused server does not answer")
	require.NotErrorIs(t, err, redis.Nil)
	s.Resume()
	got, err := c.Get(ctx, "k").Result()
	require.NoError(t, err)
	require.Equal(t, "v", got, "a resumed server kept its data")
}
