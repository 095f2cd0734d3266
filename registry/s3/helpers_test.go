package s3

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/internal/s3test"
	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/serving/servingtest"
)

// env is one S3 server with one bucket.
type env struct {
	srv    *s3test.Server
	bucket string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	srv := s3test.Start(t, s3test.Options{})
	return &env{srv: srv, bucket: srv.Bucket()}
}

// options returns Options for the env's bucket with a fresh cache, one try
// per request and quiet logs.
func (e *env) options(t testing.TB) Options {
	return Options{
		Endpoint: e.srv.Endpoint, Bucket: e.bucket, Prefix: "reg",
		AccessKey: e.srv.AccessKey, SecretKey: e.srv.SecretKey,
		CacheDir: t.TempDir(), Retries: 1, DialTimeout: time.Second,
		Logger: slog.New(slog.DiscardHandler),
	}
}

// open opens a Store over the env's bucket, closed at the end of the test.
func (e *env) open(t testing.TB, edit ...func(*Options)) *Store {
	t.Helper()
	opts := e.options(t)
	for _, f := range edit {
		f(&opts)
	}
	s, err := Open(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// objectPath is the file behind an object of the store's bucket.
func (e *env) objectPath(s *Store, key string) string {
	return e.srv.ObjectPath(e.bucket, key)
}

func mlpBytes(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(servingtest.ModelPath("mlp"))
	require.NoError(t, err)
	return data
}

// publishMLP publishes mlp.onnx with an extra file whose content is tag.
func publishMLP(t testing.TB, s *Store, model, tag string) registry.Version {
	t.Helper()
	v, err := s.Publish(context.Background(), model, []registry.File{
		{Name: "model.onnx", Data: mlpBytes(t)},
		{Name: "vocab.txt", Data: []byte(tag)},
	}, registry.Meta{Metrics: map[string]float64{"auc": 0.8}})
	require.NoError(t, err)
	return v
}
