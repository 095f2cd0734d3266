// Package s3test starts real S3-compatible servers for tests: the Versity S3
// gateway (versitygw) over a temporary folder, on a free loopback port,
// stopped when the test ends, and able to be killed and restarted on the
// same port and folder to test what a dead object store does to its
// clients.
//
// The binary is found through the QUIVER_VERSITYGW environment variable,
// else at <module root>/third_party/bin/versitygw, else on PATH. A missing
// binary fails the test with how to install it: `make s3gw`.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// EnvBinary names the environment variable that overrides where the
// versitygw binary is.
const EnvBinary = "QUIVER_VERSITYGW"

// Region is the region the server answers for.
const Region = "us-east-1"

// startTimeout bounds how long a starting server may take to answer.
const startTimeout = 20 * time.Second

// Options configure a server. The zero value is ready to use.
type Options struct {
	// Buckets are created once the server answers.
	Buckets []string
}

// Server is one versitygw process serving the S3 API over a folder.
type Server struct {
	// Endpoint is host:port, the same across restarts.
	Endpoint string
	// AccessKey and SecretKey are the root credentials.
	AccessKey, SecretKey string
	// Dir is the folder the posix backend keeps buckets in: bucket b's
	// object k is the file Dir/b/k.
	Dir string

	t      testing.TB
	bin    string
	args   []string
	env    []string
	mu     sync.Mutex
	cmd    *exec.Cmd
	bucket string // the default bucket, once created
	logs   *lockedBuffer
	done   chan struct{}
}

// Binary returns the path of the versitygw binary, or an error saying how
// to install it.
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", errors.New("s3test: " + EnvBinary + "=" + p + " is not usable (" + err.Error() + "); `make s3gw` installs versitygw")
		}
		return p, nil
	}
	if root, ok := moduleRoot(); ok {
		p := filepath.Join(root, "third_party", "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("versitygw")
	if err != nil {
		return "", errors.New("s3test: the versitygw binary is required and was not found (not in " + EnvBinary +
			", third_party/bin or PATH); `make s3gw` installs it into third_party/bin")
	}
	return p, nil
}

// moduleRoot walks up from the working directory (a test runs in its
// package's folder) to the folder holding go.mod.
func moduleRoot() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// Start starts versitygw on a free loopback port over a fresh temporary
// folder, waits until it answers, creates opts.Buckets and registers Kill
// with t.Cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("s3test: finding a free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{
		Endpoint:  "127.0.0.1:" + strconv.Itoa(port),
		AccessKey: "quiver-test-" + randomHex(4),
		SecretKey: randomHex(16),
		Dir:       t.TempDir(),
		t:         t,
		bin:       bin,
	}
	s.args = []string{"--port", s.Endpoint, "--quiet", "posix", s.Dir}
	s.env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	t.Cleanup(s.Kill)
	s.start()
	for _, b := range opts.Buckets {
		s.CreateBucket(b)
	}
	return s
}

// Client returns a minio client with the root credentials.
func (s *Server) Client() *minio.Client {
	s.t.Helper()
	c, err := minio.New(s.Endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region:     Region,
		MaxRetries: 1,
	})
	if err != nil {
		s.t.Fatalf("s3test: client: %v", err)
	}
	return c
}

// CreateBucket creates a bucket.
func (s *Server) CreateBucket(name string) {
	s.t.Helper()
	if err := s.Client().MakeBucket(context.Background(), name, minio.MakeBucketOptions{Region: Region}); err != nil {
		s.t.Fatalf("s3test: creating bucket %q: %v", name, err)
	}
}

// Bucket returns the server's default bucket, creating it on the first
// call: every call returns the same name, so replicas of a test share it.
func (s *Server) Bucket() string {
	s.t.Helper()
	s.mu.Lock()
	name := s.bucket
	s.mu.Unlock()
	if name != "" {
		return name
	}
	name = s.NewBucket()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bucket == "" {
		s.bucket = name
	}
	return s.bucket
}

// NewBucket creates a bucket with a fresh name and returns the name.
func (s *Server) NewBucket() string {
	s.t.Helper()
	name := "quiver-" + randomHex(6)
	s.CreateBucket(name)
	return name
}

// ObjectPath returns the file the server keeps object key of bucket in,
// so that a test can damage it behind the server's back.
func (s *Server) ObjectPath(bucket, key string) string {
	return filepath.Join(s.Dir, bucket, filepath.FromSlash(key))
}

func (s *Server) start() {
	s.t.Helper()
	s.mu.Lock()
	cmd := exec.Command(s.bin, s.args...)
	cmd.Env = s.env
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	err := cmd.Start()
	done := make(chan struct{})
	if err == nil {
		s.cmd, s.logs, s.done = cmd, logs, done
		go func() { _ = cmd.Wait(); close(done) }()
	}
	s.mu.Unlock()
	if err != nil {
		s.t.Fatalf("s3test: starting %s: %v", s.bin, err)
	}
	c := s.Client()
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.ListBuckets(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-done:
			s.t.Fatalf("s3test: versitygw on %s exited at start: %s", s.Endpoint, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("s3test: versitygw on %s did not answer within %v: %v; its output: %s", s.Endpoint, startTimeout, err, logs.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a process we do not control
	}
}

// Kill stops the server at once (SIGKILL), as a crash would; what it
// acknowledged stays in Dir. It is safe to call more than once.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts the server again on the same address and folder after
// Kill (or kills it first).
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.start()
}

// Logs returns what the current process printed.
func (s *Server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logs == nil {
		return ""
	}
	return s.logs.String()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 { // keep the start: that is where failures to start show
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.TrimSpace(l.b.String())
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
