package s3test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"
)

func put(ctx context.Context, c *minio.Client, bucket, key, body string, opts minio.PutObjectOptions) (minio.UploadInfo, error) {
	return c.PutObject(ctx, bucket, key, bytes.NewReader([]byte(body)), int64(len(body)), opts)
}

func TestKillAndRestart(t *testing.T) {
	ctx := context.Background()
	s := Start(t, Options{Buckets: []string{"bkt"}})
	c := s.Client()
	_, err := put(ctx, c, "bkt", "dir/k", "v1", minio.PutObjectOptions{})
	require.NoError(t, err)
	data, err := os.ReadFile(s.ObjectPath("bkt", "dir/k"))
	require.NoError(t, err)
	require.Equal(t, "v1", string(data), "ObjectPath names the file behind the object")

	s.Kill()
	_, err = c.StatObject(ctx, "bkt", "dir/k", minio.StatObjectOptions{})
	require.Error(t, err, "a killed server does not answer")
	s.Kill() // twice is fine

	s.Restart()
	obj, err := c.GetObject(ctx, "bkt", "dir/k", minio.GetObjectOptions{})
	require.NoError(t, err)
	got, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.Equal(t, "v1", string(got), "what the server acknowledged survives the crash")
}

// TestConditionalWrites pins down what the registry relies on: PutObject
// with If-None-Match: * creates only, with If-Match: <etag> replaces only
// that version, and GetObject with If-None-Match: <etag> answers 304.
func TestConditionalWrites(t *testing.T) {
	ctx := context.Background()
	s := Start(t, Options{})
	bucket := s.Bucket()
	require.Equal(t, bucket, s.Bucket(), "Bucket is the default bucket")
	require.NotEqual(t, bucket, s.NewBucket())
	c := s.Client()

	create := minio.PutObjectOptions{}
	create.SetMatchETagExcept("*")
	first, err := put(ctx, c, bucket, "k", "one", create)
	require.NoError(t, err)
	_, err = put(ctx, c, bucket, "k", "two", create)
	require.Error(t, err)
	require.Equal(t, http.StatusPreconditionFailed, minio.ToErrorResponse(err).StatusCode, "If-None-Match: * on an existing key: %v", err)

	stale := minio.PutObjectOptions{}
	stale.SetMatchETag("00000000000000000000000000000000")
	_, err = put(ctx, c, bucket, "k", "three", stale)
	require.Error(t, err)
	require.Equal(t, http.StatusPreconditionFailed, minio.ToErrorResponse(err).StatusCode, "If-Match with a stale ETag: %v", err)

	match := minio.PutObjectOptions{}
	match.SetMatchETag(first.ETag)
	second, err := put(ctx, c, bucket, "k", "four", match)
	require.NoError(t, err)
	require.NotEqual(t, first.ETag, second.ETag)
	_, err = put(ctx, c, bucket, "k", "five", match)
	require.Equal(t, http.StatusPreconditionFailed, minio.ToErrorResponse(err).StatusCode, "If-Match with the replaced ETag: %v", err)

	missing := minio.PutObjectOptions{}
	missing.SetMatchETag(first.ETag)
	_, err = put(ctx, c, bucket, "absent", "x", missing)
	require.Error(t, err, "If-Match on a missing key must not create it")

	core := minio.Core{Client: c}
	get := minio.GetObjectOptions{}
	require.NoError(t, get.SetMatchETagExcept(second.ETag))
	_, _, _, err = core.GetObject(ctx, bucket, "k", get)
	require.Error(t, err)
	require.Equal(t, http.StatusNotModified, minio.ToErrorResponse(err).StatusCode, "conditional GET: %v", err)

	// Concurrent creates of one key: exactly one wins.
	const racers = 16
	results := make(chan error, racers)
	for i := range racers {
		go func() {
			_, err := put(ctx, c, bucket, "race", fmt.Sprint(i), create)
			results <- err
		}()
	}
	wins := 0
	for range racers {
		err := <-results
		if err == nil {
			wins++
			continue
		}
		require.Equal(t, http.StatusPreconditionFailed, minio.ToErrorResponse(err).StatusCode, "a lost create: %v", err)
	}
	require.Equal(t, 1, wins, "concurrent If-None-Match creates of one key")
}

func TestMissingBinaryFailsWithHowToInstall(t *testing.T) {
	t.Setenv(EnvBinary, "/nonexistent/versitygw")
	_, err := Binary()
	require.ErrorContains(t, err, "make s3gw")
}
