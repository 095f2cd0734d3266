// Package redistest starts real redis-server processes for tests: on a
// free loopback port, stopped when the test ends, and able to be killed and
// restarted on the same port to test what a dead Redis does to its
// clients.
//
// A missing redis-server binary fails the test with how to install it
// (Debian: apt-get install redis-server); CI installs it.
package redistest

import (
	"bufio"
	"context"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options configure a server.
type Options struct {
	// Durable turns on the append-only file with an fsync per write, so
	// that what Redis acknowledged survives Kill and Restart. Default:
	// persistence off, and a restarted server starts empty.
	Durable bool
}

// Server is one redis-server process.
type Server struct {
	// Addr is host:port, the same across restarts.
	Addr string

	t    testing.TB
	bin  string
	args []string
	mu   sync.Mutex
	cmd  *exec.Cmd
}

// Start starts redis-server and waits until it answers PING.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is required and was not found on PATH (apt-get install redis-server): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), t: t, bin: bin}
	s.args = []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", ""}
	if opts.Durable {
		s.args = append(s.args, "--appendonly", "yes", "--appendfsync", "always", "--dir", t.TempDir())
	} else {
		s.args = append(s.args, "--appendonly", "no")
	}
	s.start()
	t.Cleanup(s.Kill)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	s.mu.Lock()
	s.cmd = exec.Command(s.bin, s.args...)
	out, err := s.cmd.StdoutPipe()
	if err == nil {
		err = s.cmd.Start()
	}
	s.mu.Unlock()
	if err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	go func() { // drain its log so it never blocks on a full pipe
		sc := bufio.NewScanner(out)
		for sc.Scan() {
		}
	}()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server at %s did not answer PING within 10s", s.Addr)
		}
		time.Sleep(10 * time.Millisecond) // polling a process we do not control
	}
}

// Kill stops the server at once (SIGKILL), as a crash would. It is safe to
// call more than once.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Pause freezes the server (SIGSTOP) without closing its socket, as a hung
// or partitioned server would be: connections are accepted by the kernel
// but nothing is answered. Resume (or Kill) ends it.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume lets a paused server run again (SIGCONT); it answers what was
// sent meanwhile.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("redis-server at %s is not running", s.Addr)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signalling redis-server: %v", err)
	}
}

// Restart starts the server again on the same address after Kill.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.start()
}
