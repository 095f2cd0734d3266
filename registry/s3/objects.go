package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/quiverml/quiver/registry"
)

// note records the outcome of a request in the counters and the
// online/offline state, and returns err.
func (s *Store) note(err error) error {
	switch {
	case err == nil, errors.Is(err, registry.ErrNotFound), errors.Is(err, errNotModified), errors.Is(err, errPrecondition):
		if s.offline.CompareAndSwap(true, false) {
			s.log.Info("s3: object store reachable again")
		}
	case errors.Is(err, ErrUnavailable):
		s.st.unavailable.Add(1)
		s.st.setLastError(err, s.opts.Now())
		if s.offline.CompareAndSwap(false, true) {
			s.log.Warn("s3: object store unreachable; reads fall back to the local cache", "error", err)
		}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
	default:
		s.st.requestErrors.Add(1)
		s.st.setLastError(err, s.opts.Now())
	}
	return err
}

// getObject reads a small object whole, refusing one longer than max with
// registry.ErrCorrupt. With ifNoneMatch set, an unchanged object answers
// errNotModified; a missing one matches registry.ErrNotFound.
func (s *Store) getObject(ctx context.Context, key string, max int64, ifNoneMatch string) ([]byte, string, error) {
	opts := minio.GetObjectOptions{}
	if ifNoneMatch != "" {
		_ = opts.SetMatchETagExcept(ifNoneMatch)
	}
	s.st.requests.Add(1)
	rc, info, _, err := s.core.GetObject(ctx, s.opts.Bucket, key, opts)
	if err != nil {
		err = s.note(classify("get "+key, err))
		if errors.Is(err, errNotModified) {
			s.st.notModified.Add(1)
		}
		return nil, "", err
	}
	defer rc.Close()
	if info.Size > max {
		return nil, "", fmt.Errorf("%w: s3: object %s is %d bytes; want at most %d", registry.ErrCorrupt, key, info.Size, max)
	}
	data, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, "", s.note(classify("read "+key, err))
	}
	if int64(len(data)) > max {
		return nil, "", fmt.Errorf("%w: s3: object %s is over %d bytes", registry.ErrCorrupt, key, max)
	}
	s.note(nil)
	return data, info.ETag, nil
}

// putCond says when a put may happen.
type putCond struct {
	create  bool   // only when the key does not exist (If-None-Match: *)
	ifMatch string // only when the object has this ETag (If-Match)
}

// putObject writes a small object. A write whose condition fails matches
// errPrecondition.
func (s *Store) putObject(ctx context.Context, key string, data []byte, cond putCond) (string, error) {
	opts := minio.PutObjectOptions{ContentType: "application/json", DisableMultipart: true}
	switch {
	case cond.create:
		opts.SetMatchETagExcept("*")
	case cond.ifMatch != "":
		opts.SetMatchETag(cond.ifMatch)
	}
	s.st.requests.Add(1)
	info, err := s.client.PutObject(ctx, s.opts.Bucket, key, bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		err = s.note(classify("put "+key, err))
		if errors.Is(err, errPrecondition) {
			s.st.conflicts.Add(1)
		}
		return "", err
	}
	s.note(nil)
	s.st.uploaded.Add(uint64(len(data)))
	return info.ETag, nil
}

// putIdempotent creates key with data unless it exists. A create whose
// answer was lost, and whose retry found the object, is recognised by
// reading the object back: the same bytes mean this write made it (every
// caller's bytes are unique to it), so it reports success rather than a
// conflict.
func (s *Store) putIdempotent(ctx context.Context, key string, data []byte) error {
	_, err := s.putObject(ctx, key, data, putCond{create: true})
	if !errors.Is(err, errPrecondition) {
		return err
	}
	got, _, gerr := s.getObject(ctx, key, int64(len(data)), "")
	if gerr == nil && bytes.Equal(got, data) {
		return nil
	}
	return err
}

// statObject returns an object's ETag and size; a missing one matches
// registry.ErrNotFound.
func (s *Store) statObject(ctx context.Context, key string) (string, int64, error) {
	s.st.requests.Add(1)
	info, err := s.client.StatObject(ctx, s.opts.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return "", 0, s.note(classify("stat "+key, err))
	}
	s.note(nil)
	return info.ETag, info.Size, nil
}

// removeObject deletes one object; deleting a missing one is not an error.
func (s *Store) removeObject(ctx context.Context, key string) error {
	s.st.requests.Add(1)
	err := s.note(classify("remove "+key, s.client.RemoveObject(ctx, s.opts.Bucket, key, minio.RemoveObjectOptions{})))
	if errors.Is(err, registry.ErrNotFound) {
		return nil
	}
	return err
}

// removePrefix deletes every object under prefix.
func (s *Store) removePrefix(ctx context.Context, prefix string) error {
	objs, err := s.list(ctx, prefix, true, "")
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := s.removeObject(ctx, o.Key); err != nil {
			return err
		}
	}
	return nil
}

// list returns the objects under prefix (every one when recursive, else
// the objects and the common prefixes of the next level), in key order,
// starting after startAfter when it is set.
func (s *Store) list(ctx context.Context, prefix string, recursive bool, startAfter string) ([]minio.ObjectInfo, error) {
	s.st.requests.Add(1)
	s.st.lists.Add(1)
	var out []minio.ObjectInfo
	for o := range s.client.ListObjects(ctx, s.opts.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: recursive, StartAfter: startAfter}) {
		if o.Err != nil {
			return nil, s.note(classify("list "+prefix, o.Err))
		}
		out = append(out, o)
	}
	s.note(nil)
	return out, nil
}

// touch rewrites a change marker with fresh content, so that its ETag
// changes and every reader that cached a listing relists.
func (s *Store) touch(ctx context.Context, key string) error {
	body := fmt.Sprintf("%s %016x\n", s.opts.Now().UTC().Format(time.RFC3339Nano), rand.Uint64())
	_, err := s.putObject(ctx, key, []byte(body), putCond{})
	return err
}

// backoff waits a little before retrying a conditional write that lost a
// race, growing with the attempt and jittered so that racers spread out.
// It returns ctx's error when ctx ends first.
func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(1+rand.IntN(1<<min(attempt, 6))) * time.Millisecond
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// maxCASAttempts bounds the retries of one compare-and-swap; only sustained
// contention from many writers on one object reaches it.
const maxCASAttempts = 64

// CheckConditionalWrites makes sure the object store honours what the
// Store's guarantees rest on: a PutObject with If-None-Match: * must not
// replace an existing object, and one with If-Match must not replace an
// object whose ETag differs. It writes, then removes, a probe object under
// <prefix>.probe/. A store that ignores the headers fails with
// ErrNoConditionalWrites; run it once when deploying on a new S3
// implementation.
func (s *Store) CheckConditionalWrites(ctx context.Context) error {
	done, err := s.begin()
	if err != nil {
		return err
	}
	defer done()
	key := s.prefix + ".probe/" + randomHex(8)
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_ = s.removeObject(cctx, key)
	}()
	etag, err := s.putObject(ctx, key, []byte("one"), putCond{create: true})
	if err != nil {
		return fmt.Errorf("s3: conditional write probe: %w", err)
	}
	_, err = s.putObject(ctx, key, []byte("two"), putCond{create: true})
	if err == nil {
		return fmt.Errorf("%w: PutObject with If-None-Match: * replaced an existing object", ErrNoConditionalWrites)
	}
	if !errors.Is(err, errPrecondition) {
		return fmt.Errorf("s3: conditional write probe: %w", err)
	}
	_, err = s.putObject(ctx, key, []byte("three"), putCond{ifMatch: strings.Repeat("0", len(etag))})
	if err == nil {
		return fmt.Errorf("%w: PutObject with If-Match replaced an object whose ETag differs", ErrNoConditionalWrites)
	}
	if !errors.Is(err, errPrecondition) {
		return fmt.Errorf("s3: conditional write probe: %w", err)
	}
	if _, err := s.putObject(ctx, key, []byte("four"), putCond{ifMatch: etag}); err != nil {
		return fmt.Errorf("s3: conditional write probe: PutObject with a matching If-Match failed: %w", err)
	}
	return nil
}
