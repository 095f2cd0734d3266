package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/minio/minio-go/v7"

	"github.com/quiverml/quiver/registry"
)

// ErrUnavailable reports an object store that could not be reached or
// answered with a server error (5xx, throttling) after the configured
// retries. The error also wraps the cause. Reads of versions already in
// the local cache keep working while it lasts (see the package
// documentation); writes fail with it and change nothing that a later
// retry would not redo.
var ErrUnavailable = errors.New("s3: object store unavailable")

// ErrClosed is returned by every method after Close. It is
// registry.ErrClosed, so callers see one closed error.
var ErrClosed = registry.ErrClosed

// errNotModified is a conditional GET answered 304: the cached copy is
// current.
var errNotModified = errors.New("s3: not modified")

// errPrecondition is a conditional write that lost: the object exists
// (If-None-Match) or changed (If-Match).
var errPrecondition = errors.New("s3: precondition failed")

// classify turns an error of the S3 client into one of the package's:
// context errors stay as they are, 404 becomes registry.ErrNotFound, 304
// errNotModified, 412 errPrecondition, throttling, server errors and
// transport failures ErrUnavailable; anything else (access denied, a
// missing bucket) is wrapped unchanged. what names the operation and key.
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("s3: %s: %w", what, err)
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && resp.StatusCode != 0 {
		switch {
		case resp.StatusCode == http.StatusNotFound && resp.Code != "NoSuchBucket":
			return fmt.Errorf("%w: s3: %s", registry.ErrNotFound, what)
		case resp.StatusCode == http.StatusNotModified:
			return errNotModified
		case resp.StatusCode == http.StatusPreconditionFailed:
			return fmt.Errorf("%w: %s", errPrecondition, what)
		case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
			return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
		}
		return fmt.Errorf("s3: %s: %w", what, err)
	}
	// No S3 answer at all: refused, reset, timed out, DNS.
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
}

// ErrNoConditionalWrites reports an object store that ignores the
// conditional headers of PutObject (If-None-Match, If-Match) that this
// package's guarantees rest on; see CheckConditionalWrites.
var ErrNoConditionalWrites = errors.New("s3: object store ignores conditional writes")
