package redisnotify_test

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/internal/logtest"
	"github.com/quiverml/quiver/internal/redistest"
	"github.com/quiverml/quiver/internal/s3test"
	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/registry/redisnotify"
	regs3 "github.com/quiverml/quiver/registry/s3"
	"github.com/quiverml/quiver/serving/gorgonia"
	"github.com/quiverml/quiver/serving/servingtest"
)

// replicas is a writer and a follower of one S3 registry, the follower's
// registry.Server polling only once an hour, so that only a notification
// can make it follow a change in time.
type replicas struct {
	redis  *redistest.Server
	writer *regs3.Store
	pub    *redisnotify.Notifier
	pubLog *logtest.Recorder
	srv    *registry.Server
	sub    *redisnotify.Notifier
	pokes  chan registry.AuditEvent
}

func start(t *testing.T) *replicas {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	s3 := s3test.Start(t, s3test.Options{})
	r := &replicas{redis: redistest.Start(t, redistest.Options{}), pubLog: &logtest.Recorder{}, pokes: make(chan registry.AuditEvent, 1024)}
	client := func() redis.UniversalClient {
		c := redis.NewClient(&redis.Options{Addr: r.redis.Addr, MaxRetries: -1, DialTimeout: time.Second})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	store := func(onChange func(registry.AuditEvent)) *regs3.Store {
		s, err := regs3.Open(ctx, regs3.Options{Endpoint: s3.Endpoint, Bucket: s3.Bucket(), Prefix: "models",
			AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, CacheDir: t.TempDir(), Retries: 1, Logger: quiet, OnChange: onChange})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	var err error
	r.pub, err = redisnotify.New(client(), redisnotify.Options{Logger: r.pubLog.Logger()})
	require.NoError(t, err)
	r.writer = store(r.pub.Publish)
	model, err := os.ReadFile(servingtest.ModelPath("mlp"))
	require.NoError(t, err)
	for _, tag := range []string{"one", "two"} {
		_, err := r.writer.Publish(ctx, "ranker", []registry.File{{Name: "model.onnx", Data: model}, {Name: "tag.txt", Data: []byte(tag)}}, registry.Meta{})
		require.NoError(t, err)
	}
	require.NoError(t, r.writer.SetAlias(ctx, "ranker", "production", 1))

	r.srv, err = registry.NewServer(store(nil), registry.FileLoader("onnx", gorgonia.Opener(gorgonia.Options{})),
		registry.ServerOptions{PollInterval: time.Hour, Aliases: []string{"production"}, Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.srv.Close() })
	require.NoError(t, r.srv.Start(ctx))
	r.waitFor(t, 1)

	r.sub, err = redisnotify.New(client(), redisnotify.Options{HealthCheck: 200 * time.Millisecond, Logger: quiet})
	require.NoError(t, err)
	fctx, cancel := context.WithCancel(ctx)
	followed := make(chan error, 1)
	go func() {
		followed <- r.sub.Follow(fctx, func(e registry.AuditEvent) {
			r.pokes <- e
			r.srv.Poke()
		})
	}()
	t.Cleanup(func() {
		cancel()
		require.ErrorIs(t, <-followed, context.Canceled)
	})
	require.Equal(t, registry.AuditEvent{}, r.nextPoke(t), "subscribed: one poke for whatever changed before")
	return r
}

// waitFor waits until the follower's production alias serves version.
func (r *replicas) waitFor(t *testing.T, version int64) time.Duration {
	t.Helper()
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := r.srv.WaitFor(ctx, "ranker", "production", version)
	require.NoError(t, err, "production never served version %d", version)
	return time.Since(began)
}

func (r *replicas) nextPoke(t *testing.T) registry.AuditEvent {
	t.Helper()
	select {
	case e := <-r.pokes:
		return e
	case <-time.After(20 * time.Second):
		require.FailNow(t, "no poke")
		return registry.AuditEvent{}
	}
}

// An alias moved through one replica's store is served by another whose
// Server polls once an hour: the notification pokes it, and the poke
// carries the move's audit event.
func TestAliasMoveFollowedAtOnce(t *testing.T) {
	r := start(t)
	ctx := context.Background()
	require.NoError(t, r.writer.SetAlias(ctx, "ranker", "production", 2))
	took := r.waitFor(t, 2)
	t.Logf("version 2 served %v after SetAlias returned (poll interval: an hour)", took)
	e := r.nextPoke(t)
	require.Equal(t, registry.ActionSetAlias, e.Action)
	require.Equal(t, "ranker", e.Model)
	require.Equal(t, "production", e.Alias)
	require.Equal(t, "1", e.Old)
	require.Equal(t, "2", e.New)

	// Every kind of change is published; a rollback is followed too.
	require.NoError(t, r.writer.Tag(ctx, "ranker", 2, "owner", "ranking-team"))
	require.Equal(t, registry.ActionTag, r.nextPoke(t).Action)
	back, err := r.writer.Rollback(ctx, "ranker", "production")
	require.NoError(t, err)
	require.Equal(t, int64(1), back)
	r.waitFor(t, 1)
	require.Equal(t, registry.ActionRollback, r.nextPoke(t).Action)

	// A message that is not an audit event still pokes, and is counted.
	other := redis.NewClient(&redis.Options{Addr: r.redis.Addr})
	defer other.Close()
	require.NoError(t, other.Publish(ctx, redisnotify.DefaultChannel, "garbage").Err())
	require.Equal(t, registry.AuditEvent{}, r.nextPoke(t))
	st := r.sub.Stats()
	require.Equal(t, uint64(4), st.Received)
	require.Equal(t, uint64(1), st.Undecodable)
	require.Equal(t, uint64(1), st.Subscriptions)
	require.Equal(t, uint64(0), r.pub.Stats().PublishFailures)
	require.Equal(t, uint64(6), r.pub.Stats().Published, "two publishes and four changes")
}

// With Redis down, changes are still made (the notification is lost,
// counted and logged once); when Redis returns the follower subscribes
// again and reads the registry, so the move it missed is served.
func TestRedisOutage(t *testing.T) {
	r := start(t)
	ctx := context.Background()
	r.redis.Kill()
	require.NoError(t, r.writer.SetAlias(ctx, "ranker", "production", 2), "a registry write never fails for its notification")
	require.NoError(t, r.writer.Tag(ctx, "ranker", 2, "owner", "ranking-team"))
	require.Equal(t, uint64(2), r.pub.Stats().PublishFailures)
	require.Equal(t, 1, r.pubLog.Count(slog.LevelWarn, "change not published"), "once per outage")

	began := time.Now()
	r.redis.Restart()
	r.waitFor(t, 2)
	t.Logf("the missed move served %v after Redis was restarted", time.Since(began))
	require.Equal(t, uint64(2), r.sub.Stats().Subscriptions)
	require.NoError(t, r.writer.Untag(ctx, "ranker", 2, "owner"))
	require.Equal(t, 1, r.pubLog.Count(slog.LevelInfo, "publishing again"))
	for e := r.nextPoke(t); e.Action != registry.ActionUntag; e = r.nextPoke(t) {
	}
}

func TestOptions(t *testing.T) {
	_, err := redisnotify.New(nil, redisnotify.Options{})
	require.ErrorIs(t, err, redisnotify.ErrConfig)
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	for _, o := range []redisnotify.Options{{Timeout: -time.Second}, {HealthCheck: -1}} {
		_, err := redisnotify.New(c, o)
		require.ErrorIs(t, err, redisnotify.ErrConfig, "%+v", o)
	}
}
