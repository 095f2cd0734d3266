package redisstore

import (
	"testing"

	"github.com/quiverml/quiver/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// redisServer is a redis-server process started for one test, with
// persistence off (internal/redistest).
type redisServer struct {
	*redistest.Server
	addr string
}

// startRedis starts redis-server on a free loopback port; it stops when the
// test ends. A missing binary fails the test: CI installs Debian's
// redis-server.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	s := redistest.Start(t, redistest.Options{})
	return &redisServer{Server: s, addr: s.Addr}
}

// start restarts a stopped server on the same port.
func (s *redisServer) start(t *testing.T) {
	t.Helper()
	s.Restart()
}

// stop kills the server process (its data is lost) and waits for it.
func (s *redisServer) stop() { s.Kill() }

func (s *redisServer) client(t *testing.T) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}
