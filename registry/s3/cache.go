package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/minio/minio-go/v7"

	"github.com/quiverml/quiver/internal/atomicfile"
	"github.com/quiverml/quiver/registry"
)

// fileStamp is what a cached file looked like when this process last
// hashed it; a file that still looks the same is not hashed again.
type fileStamp struct {
	hash  string
	size  int64
	mod   time.Time
	inode os.FileInfo
}

// Fetch returns a version's manifest and a local directory holding its
// files, verified against the manifest; see registry.Registry. The
// directory is <CacheDir>/<model>/<version>/: it is downloaded once
// (into a temporary directory, every file's size and xxhash64 checked,
// fsynced, then renamed into place), and reused afterwards. A cache entry
// is hashed in full the first time this process uses it and when a file's
// size, modification time or inode changed since; an entry that fails
// (damaged, truncated, extra or missing files, or an older version with
// the same number) is downloaded again. Concurrent Fetches of one version
// download it once.
//
// A corrupted object fails with registry.ErrChecksum and leaves the cache
// as it was. While the object store is unreachable, a cached version is
// still returned (its manifest comes from memory or from the cache entry);
// one not cached fails with ErrUnavailable.
func (s *Store) Fetch(ctx context.Context, model string, number int64) (registry.Version, string, error) {
	if err := checkNumber(model, number); err != nil {
		return registry.Version{}, "", err
	}
	done, err := s.begin()
	if err != nil {
		return registry.Version{}, "", err
	}
	defer done()
	if err := ctx.Err(); err != nil {
		return registry.Version{}, "", err
	}
	s.st.fetches.Add(1)
	v, _, err := s.get(ctx, model, number)
	if err != nil {
		return registry.Version{}, "", fmt.Errorf("s3: fetch: %w", err)
	}
	dir := s.cacheDir(model, number)
	key := dir + "\x00" + v.Created.String()
	ch := s.fetches.DoChan(key, func() (any, error) {
		// Detached from one caller's ctx: a caller that gives up must not
		// fail the others waiting for the same download. Close waits for
		// it like for any call.
		done, err := s.begin()
		if err != nil {
			return nil, err
		}
		defer done()
		return nil, s.ensureCached(context.WithoutCancel(ctx), v, dir)
	})
	select {
	case <-ctx.Done():
		return registry.Version{}, "", fmt.Errorf("s3: fetch %s/%d: %w", model, number, ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return registry.Version{}, "", fmt.Errorf("s3: fetch: %w", r.Err)
		}
	}
	return v, dir, nil
}

func (s *Store) cacheDir(model string, n int64) string {
	return filepath.Join(s.cache, model, strconv.FormatInt(n, 10))
}

// ensureCached makes dir a verified copy of v.
func (s *Store) ensureCached(ctx context.Context, v registry.Version, dir string) error {
	err := s.checkCached(dir, v)
	if err == nil {
		s.st.cacheHits.Add(1)
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		s.st.corruptCache.Add(1)
		s.log.Warn("s3: cache entry does not match its manifest; fetching it again", "model", v.Model, "version", v.Number, "error", err)
	}
	return s.download(ctx, v, dir)
}

// checkCached verifies a cache entry: its manifest describes v, it holds
// exactly the manifest and v's files, and every file has its size and
// hash (hashed again only when it changed since this process hashed it).
func (s *Store) checkCached(dir string, v registry.Version) error {
	cv, err := readCachedManifest(dir, v.Model, v.Number)
	if err != nil {
		return err
	}
	if !sameContent(cv, v) {
		return fmt.Errorf("%w: cache holds %s/%d published %v; want the one published %v", registry.ErrChecksum, v.Model, v.Number, cv.Created, v.Created)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) != len(v.Files)+1 {
		return fmt.Errorf("%w: cache entry %s holds %d files; want %d and the manifest", registry.ErrChecksum, dir, len(entries), len(v.Files))
	}
	for _, f := range v.Files {
		if err := s.checkFile(filepath.Join(dir, f.Name), f); err != nil {
			return err
		}
	}
	return nil
}

// checkFile verifies one cached file: size first, then xxhash64 unless this
// process hashed the very same file (same inode, size and modification
// time) before.
func (s *Store) checkFile(path string, want registry.FileSum) error {
	st, err := os.Lstat(path)
	if err != nil {
		if os.IsNotExist(err) {
			return fmt.Errorf("%w: cached file %q is missing", registry.ErrChecksum, want.Name)
		}
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: cached file %q is a %v; want a regular file", registry.ErrChecksum, want.Name, st.Mode().Type())
	}
	if st.Size() != want.Size {
		return fmt.Errorf("%w: cached file %q is %d bytes; want %d", registry.ErrChecksum, want.Name, st.Size(), want.Size)
	}
	s.mu.Lock()
	stamp, ok := s.verified[path]
	s.mu.Unlock()
	if ok && stamp.hash == want.XXHash64 && stamp.size == st.Size() && stamp.mod.Equal(st.ModTime()) && os.SameFile(stamp.inode, st) {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := xxhash.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := fmt.Sprintf("%016x", h.Sum64()); got != want.XXHash64 {
		return fmt.Errorf("%w: cached file %q has xxhash64 %s; want %s", registry.ErrChecksum, want.Name, got, want.XXHash64)
	}
	s.remember(path, want.XXHash64, st)
	return nil
}

func (s *Store) remember(path, hash string, st os.FileInfo) {
	s.mu.Lock()
	s.verified[path] = fileStamp{hash: hash, size: st.Size(), mod: st.ModTime(), inode: st}
	s.mu.Unlock()
}

// download fetches v's objects into a temporary directory beside dir,
// checking each against the manifest, and renames it into place.
func (s *Store) download(ctx context.Context, v registry.Version, dir string) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, ".fetch-"+strconv.FormatInt(v.Number, 10)+"-")
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			_ = os.RemoveAll(tmp)
		}
	}()
	for _, f := range v.Files {
		if err := s.downloadFile(ctx, s.fileKey(v.Model, v.Number, f.Name), filepath.Join(tmp, f.Name), f); err != nil {
			if errors.Is(err, registry.ErrChecksum) {
				s.st.checksumFailures.Add(1)
			}
			return fmt.Errorf("%s/%d: %w", v.Model, v.Number, err)
		}
	}
	mf, err := encodeManifest(v)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, registry.ManifestFile), mf, 0o644); err != nil {
		return err
	}
	if err := s.install(tmp, dir); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process sharing the cache installed it first.
			return s.checkCached(dir, v)
		}
		return err
	}
	committed = true
	s.st.downloads.Add(1)
	for _, f := range v.Files {
		if st, err := os.Lstat(filepath.Join(dir, f.Name)); err == nil {
			s.remember(filepath.Join(dir, f.Name), f.XXHash64, st)
		}
	}
	return nil
}

// install renames the complete directory tmp to dir, moving a stale dir
// out of the way first. It fails with fs.ErrExist when another process
// installed dir in between.
func (s *Store) install(tmp, dir string) error {
	parent := filepath.Dir(dir)
	if _, err := os.Lstat(dir); err == nil {
		trash := filepath.Join(parent, ".trash-"+filepath.Base(dir)+"-"+randomHex(6))
		if err := os.Rename(dir, trash); err != nil && !os.IsNotExist(err) {
			return err
		}
		defer os.RemoveAll(trash)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			return fs.ErrExist
		}
		return err
	}
	return atomicfile.SyncDir(parent)
}

// downloadFile streams one object into path, hashing it on the way; a
// size or hash that differs from want fails with registry.ErrChecksum.
// Never more than want.Size+1 bytes are read.
func (s *Store) downloadFile(ctx context.Context, key, path string, want registry.FileSum) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	h := xxhash.New()
	n, err := s.streamObject(ctx, key, io.MultiWriter(out, h), want.Size)
	if err != nil {
		return err
	}
	if err := checkSum(want, n, h.Sum64()); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return out.Close()
}

// streamObject copies an object into w, reading at most limit+1 bytes,
// and returns how many it copied.
func (s *Store) streamObject(ctx context.Context, key string, w io.Writer, limit int64) (int64, error) {
	s.st.requests.Add(1)
	rc, _, _, err := s.core.GetObject(ctx, s.opts.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		err = s.note(classify("get "+key, err))
		if errors.Is(err, registry.ErrNotFound) {
			return 0, fmt.Errorf("%w: object %s is missing", registry.ErrChecksum, key)
		}
		return 0, err
	}
	defer rc.Close()
	n, err := io.CopyBuffer(w, io.LimitReader(rc, limit+1), make([]byte, 1<<20))
	s.st.downloaded.Add(uint64(n))
	if err != nil {
		if ctx.Err() != nil {
			return n, fmt.Errorf("s3: get %s: %w", key, ctx.Err())
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return n, err // the local disk, not the store
		}
		return n, s.note(classify("read "+key, err))
	}
	s.note(nil)
	return n, nil
}

// checkSum compares what was read with the manifest's entry.
func checkSum(want registry.FileSum, n int64, sum uint64) error {
	if n != want.Size {
		return fmt.Errorf("%w: file %q is %d bytes in the object store; want %d (truncated or replaced)", registry.ErrChecksum, want.Name, n, want.Size)
	}
	if got := fmt.Sprintf("%016x", sum); got != want.XXHash64 {
		return fmt.Errorf("%w: file %q has xxhash64 %s in the object store; want %s (modified after publish)", registry.ErrChecksum, want.Name, got, want.XXHash64)
	}
	return nil
}

// Verify checks a version's objects in the store against its manifest:
// every file is streamed and hashed (nothing is written to disk), so a
// damaged, truncated or missing object fails with registry.ErrChecksum.
func (s *Store) Verify(ctx context.Context, model string, number int64) error {
	if err := checkNumber(model, number); err != nil {
		return err
	}
	done, err := s.begin()
	if err != nil {
		return err
	}
	defer done()
	v, _, err := s.get(ctx, model, number)
	if err != nil {
		return fmt.Errorf("s3: verify: %w", err)
	}
	for _, f := range v.Files {
		h := xxhash.New()
		n, err := s.streamObject(ctx, s.fileKey(model, number, f.Name), h, f.Size)
		if err == nil {
			err = checkSum(f, n, h.Sum64())
		}
		if err != nil {
			if errors.Is(err, registry.ErrChecksum) {
				s.st.checksumFailures.Add(1)
			}
			return fmt.Errorf("s3: verify %s/%d: %w", model, number, err)
		}
	}
	return nil
}

// sweepStaging removes what interrupted publishes and downloads of an
// earlier process left in the cache folder. Entries of this process's own
// work are younger than the process, and only older ones are removed, so
// that a second process sharing the folder is not disturbed.
func (s *Store) sweepStaging() {
	cutoff := time.Now().Add(-time.Hour)
	sweep := func(dir string) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), ".") {
				continue
			}
			if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
				_ = os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
	}
	sweep(filepath.Join(s.cache, stagingDir))
	if entries, err := os.ReadDir(s.cache); err == nil {
		for _, e := range entries {
			if e.IsDir() && registry.ValidName(e.Name()) == nil {
				sweep(filepath.Join(s.cache, e.Name()))
			}
		}
	}
}

// stagingDir, inside the cache folder, holds publishes in progress.
const stagingDir = ".staging"

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
