package benchmarks

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// featuresRedis is a redis-server started for the feature benchmarks,
// persistence off, on a free loopback port.
type featuresRedis struct {
	cmd    *exec.Cmd
	client *redis.Client
}

// startFeaturesRedis starts redis-server or fails the benchmark with a
// message saying how to install it.
func startFeaturesRedis(tb testing.TB) (*featuresRedis, error) {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found on PATH (install Debian's redis-server package): %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
		}
	}()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), PoolSize: 4})
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, fmt.Errorf("redis-server on port %d did not answer PING within 10s", port)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &featuresRedis{cmd: cmd, client: c}, nil
}

func (r *featuresRedis) stop() {
	_ = r.client.Close()
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
}
