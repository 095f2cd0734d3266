package s3

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/quiverml/quiver/internal/atomicfile"
	"github.com/quiverml/quiver/registry"
)

// cleanupTimeout bounds the removal of what a failed publish uploaded.
const cleanupTimeout = 30 * time.Second

// Publish adds a new version of model from files, with the semantics of
// registry.Store.Publish: the same checks (names, Data or Path, no
// symbolic links, the entry, MaxVersion), the same signature rules for an
// ONNX entry (read from the file, or checked against it: ErrSignature),
// the same manifest with every file's size and xxhash64, and ErrExists for
// a number that is taken.
//
// The version is first staged in the cache folder (validated and hashed by
// a registry.Store there), then its number is claimed with a conditional
// create of <model>/.claims/<n> (If-None-Match: *; a lost race moves on to
// the next number, or fails with ErrExists when Meta.Number was given),
// its files are uploaded to <model>/<n>/, and the manifest is created last,
// conditionally too: it is the commit point, so a reader never sees half a
// version, and two publishers, in any processes, never get the same
// number. Then the model's change marker moves, the staged copy becomes
// the version's cache entry and the change is audited.
//
// A cancelled ctx, or an object store that fails, before the commit ends
// the publish with the error wrapped (ErrUnavailable when it could not be
// reached) and removes what it uploaded; the number is released. After
// the commit, an error only reports the audit record.
func (s *Store) Publish(ctx context.Context, model string, files []registry.File, meta registry.Meta) (registry.Version, error) {
	if err := checkName("model", model); err != nil {
		return registry.Version{}, err
	}
	done, err := s.begin()
	if err != nil {
		return registry.Version{}, err
	}
	defer done()

	// Stage: a registry.Store in the cache folder applies every rule of a
	// publish and hashes the files.
	stagingRoot := filepath.Join(s.cache, stagingDir)
	if err := os.MkdirAll(stagingRoot, 0o755); err != nil {
		return registry.Version{}, fmt.Errorf("s3: publish %s: %w", model, err)
	}
	root, err := os.MkdirTemp(stagingRoot, ".publish-")
	if err != nil {
		return registry.Version{}, fmt.Errorf("s3: publish %s: %w", model, err)
	}
	defer os.RemoveAll(root)
	stage, err := registry.Open(root, registry.Options{Logger: slog.New(slog.DiscardHandler), Now: s.opts.Now})
	if err != nil {
		return registry.Version{}, fmt.Errorf("s3: publish %s: %w", model, err)
	}
	staged := meta
	if staged.Number == 0 {
		staged.Number = 1
	}
	v, err := stage.Publish(ctx, model, files, staged)
	if err != nil {
		return registry.Version{}, err
	}
	stagedDir, _ := stage.Dir(model, staged.Number)

	n, newModel, err := s.claim(ctx, model, meta.Number)
	if err != nil {
		return registry.Version{}, fmt.Errorf("s3: publish %s: %w", model, err)
	}
	v.Number = n
	mf, err := encodeManifest(v)
	if err == nil {
		_, err = registry.DecodeManifest(mf) // the rules a reader applies
	}
	if err == nil {
		err = s.upload(ctx, v, stagedDir, mf)
	}
	if err != nil {
		s.abandon(ctx, model, n, v)
		return registry.Version{}, fmt.Errorf("s3: publish %s version %d: %w", model, n, err)
	}
	s.log.Info("s3: published", "model", model, "version", n, "files", len(v.Files))

	// Committed. What follows makes it visible at once (rather than within
	// RelistInterval) and warms the cache; failures there cost only that.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := s.touch(cctx, s.markerKey(model)); err != nil {
		s.log.Warn("s3: change marker not moved; readers see the version within RelistInterval", "model", model, "error", err)
	}
	if newModel {
		if err := s.touch(cctx, s.modelsMarkerKey()); err != nil {
			s.log.Warn("s3: models marker not moved; readers see the model within RelistInterval", "model", model, "error", err)
		}
	}
	s.adoptStaged(v, stagedDir, mf)
	return v, s.audit(cctx, registry.AuditEvent{Action: registry.ActionPublish, Model: model, Version: n, New: strconv.FormatInt(n, 10)})
}

// uploadHook, when set, runs before each artifact is uploaded; tests use
// it to act in the middle of a publish.
var uploadHook func(file string)

// claimRecord is the body of a claim object: who claimed the number, for
// whoever finds one that a crashed publisher left behind.
// Its nonce makes every claim's bytes, and so its ETag, unique: a create
// whose answer was lost is recognised as this publisher's by the ETag.
type claimRecord struct {
	Actor   string    `json:"actor"`
	Claimed time.Time `json:"claimed"`
	Nonce   string    `json:"nonce"`
}

// claim reserves a version number: want when it is given, else the one
// after every number claimed or published. newModel reports that the model
// had no object at all.
func (s *Store) claim(ctx context.Context, model string, want int64) (n int64, newModel bool, err error) {
	body, _ := json.Marshal(claimRecord{Actor: registry.ActorFrom(ctx, s.opts.Actor), Claimed: s.opts.Now().UTC(), Nonce: randomHex(16)})
	if want > 0 {
		if _, _, err := s.statObject(ctx, s.manifestKey(model, want)); err == nil {
			return 0, false, fmt.Errorf("%w: %s version %d", registry.ErrExists, model, want)
		} else if !errors.Is(err, registry.ErrNotFound) {
			return 0, false, err
		}
		objs, err := s.list(ctx, s.modelPrefix(model), false, "")
		if err != nil {
			return 0, false, err
		}
		err = s.putIdempotent(ctx, s.claimKey(model, want), body)
		if errors.Is(err, errPrecondition) {
			return 0, false, fmt.Errorf("%w: %s version %d is published or being published", registry.ErrExists, model, want)
		}
		return want, len(objs) == 0, err
	}
	// Every version this package published has a claim, so the claims
	// alone give the next number; versions another tool wrote have none
	// and are stepped over below. Only a model without claims is listed
	// whole, to start after such versions and to tell a new model.
	prefix := s.modelPrefix(model)
	objs, err := s.list(ctx, prefix+claimsDir, false, "")
	if err != nil {
		return 0, false, err
	}
	if len(objs) == 0 {
		if objs, err = s.list(ctx, prefix, true, ""); err != nil {
			return 0, false, err
		}
		newModel = len(objs) == 0
	}
	var top int64
	for _, o := range objs {
		rel := strings.TrimPrefix(o.Key, prefix)
		if c, ok := strings.CutPrefix(rel, claimsDir); ok {
			if k, ok := parseNumber(c); ok {
				top = max(top, k)
			}
		} else if k, ok := versionFromKey(rel); ok {
			top = max(top, k)
		}
	}
	for attempt := 0; ; attempt++ {
		n = top + 1
		if n > registry.MaxVersion {
			return 0, false, fmt.Errorf("%w: the next version number %d is above %d; give Meta.Number", registry.ErrBadInput, n, registry.MaxVersion)
		}
		err := s.putIdempotent(ctx, s.claimKey(model, n), body)
		if err == nil {
			// A version written by another tool has no claim; never
			// upload over it.
			if _, _, serr := s.statObject(ctx, s.manifestKey(model, n)); errors.Is(serr, registry.ErrNotFound) {
				return n, newModel, nil
			} else if serr != nil {
				s.releaseClaim(ctx, model, n)
				return 0, false, serr
			}
		} else if !errors.Is(err, errPrecondition) {
			return 0, false, err
		}
		top = n
		if attempt >= maxCASAttempts {
			return 0, false, fmt.Errorf("s3: %s: no free version number after %d attempts; too many concurrent publishers", model, attempt+1)
		}
	}
}

// upload writes the staged files, then the manifest: the commit.
func (s *Store) upload(ctx context.Context, v registry.Version, stagedDir string, manifest []byte) error {
	for _, f := range v.Files {
		if uploadHook != nil {
			uploadHook(f.Name)
		}
		if err := s.uploadFile(ctx, s.fileKey(v.Model, v.Number, f.Name), filepath.Join(stagedDir, f.Name), f); err != nil {
			return err
		}
	}
	// The last moment a cancelled publish can still leave nothing behind.
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.putIdempotent(ctx, s.manifestKey(v.Model, v.Number), manifest)
	if errors.Is(err, errPrecondition) {
		return fmt.Errorf("%w: %s version %d", registry.ErrExists, v.Model, v.Number)
	}
	return err
}

func (s *Store) uploadFile(ctx context.Context, key, path string, f registry.FileSum) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	s.st.requests.Add(1)
	_, err = s.client.PutObject(ctx, s.opts.Bucket, key, in, f.Size, minio.PutObjectOptions{
		ContentType:  "application/octet-stream",
		UserMetadata: map[string]string{"Xxhash64": f.XXHash64},
	})
	if err != nil {
		return s.note(classify("put "+key, err))
	}
	s.note(nil)
	s.st.uploaded.Add(uint64(f.Size))
	return nil
}

// abandon removes what a publish that did not commit uploaded, and its
// claim, so that the number is free again. It runs even when ctx was
// cancelled; while the store is unreachable the leftovers stay (they are
// invisible: no manifest) and the number stays taken.
func (s *Store) abandon(ctx context.Context, model string, n int64, v registry.Version) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for _, f := range v.Files {
		if err := s.removeObject(cctx, s.fileKey(model, n, f.Name)); err != nil {
			s.log.Warn("s3: leftover of a failed publish", "model", model, "version", n, "file", f.Name, "error", err)
		}
	}
	s.releaseClaim(cctx, model, n)
}

func (s *Store) releaseClaim(ctx context.Context, model string, n int64) {
	if err := s.removeObject(ctx, s.claimKey(model, n)); err != nil {
		s.log.Warn("s3: claim of a failed publish left behind; its number is skipped", "model", model, "version", n, "error", err)
	}
}

// adoptStaged turns the staged copy of a published version into its cache
// entry (a rename within the cache folder), so that the publisher does not
// download what it uploaded. A failure leaves Fetch to download it.
func (s *Store) adoptStaged(v registry.Version, stagedDir string, manifest []byte) {
	err := atomicfile.WriteFile(filepath.Join(stagedDir, registry.ManifestFile), manifest, 0o644)
	if err == nil {
		dir := s.cacheDir(v.Model, v.Number)
		if err = os.MkdirAll(filepath.Dir(dir), 0o755); err == nil {
			if err = s.install(stagedDir, dir); err == nil {
				for _, f := range v.Files {
					if st, err := os.Lstat(filepath.Join(dir, f.Name)); err == nil {
						s.remember(filepath.Join(dir, f.Name), f.XXHash64, st)
					}
				}
			}
		}
	}
	if err != nil {
		s.log.Debug("s3: published version not kept in the cache", "model", v.Model, "version", v.Number, "error", err)
	}
}
