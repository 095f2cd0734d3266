package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quiverml/quiver/internal/atomicfile"
	"github.com/quiverml/quiver/registry"
)

// modelState is what a Store remembers of one model between Scans.
type modelState struct {
	scanning chan struct{} // one Scan of the model at a time; holds a token while one runs

	mu        sync.Mutex // guards the fields below
	listed    bool
	marker    string // ETag of the change marker when last listed; "" when missing
	listedAt  time.Time
	numbers   []int64 // versions with a manifest at the last listing, ascending
	manifests map[int64]cachedManifest
	aliasRead bool
	aliasETag string
	aliases   []registry.Alias
	aliasErr  error
}

type cachedManifest struct {
	etag string
	v    registry.Version
	err  error // the manifest could not be decoded
}

func (s *Store) model(name string) *modelState {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.models[name]
	if ms == nil {
		ms = &modelState{manifests: map[int64]cachedManifest{}, scanning: make(chan struct{}, 1)}
		s.models[name] = ms
	}
	return ms
}

// listState is what a Store remembers of the model list.
type listState struct {
	listed bool
	marker string
	at     time.Time
	names  []string
}

// Models lists the models, sorted: one LIST of the prefix's first level,
// cached until the models marker changes (a publish of a new model) or
// Options.RelistInterval passes. While the store is unreachable it returns
// the last list, or the models of the local cache.
func (s *Store) Models(ctx context.Context) ([]string, error) {
	done, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer done()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	names, err := s.modelsOnline(ctx)
	if errors.Is(err, ErrUnavailable) {
		if names, ok := s.modelsOffline(); ok {
			return names, nil
		}
	}
	return names, err
}

func (s *Store) modelsOnline(ctx context.Context) ([]string, error) {
	marker, _, err := s.statObject(ctx, s.modelsMarkerKey())
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		return nil, err
	}
	now := s.opts.Now()
	s.mu.Lock()
	ls := s.modelList
	s.mu.Unlock()
	if ls.listed && ls.marker == marker && now.Sub(ls.at) < s.opts.RelistInterval {
		return slices.Clone(ls.names), nil
	}
	objs, err := s.list(ctx, s.prefix, false, "")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, o := range objs {
		name, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, s.prefix), "/")
		if ok && registry.ValidName(name) == nil {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	s.mu.Lock()
	s.modelList = listState{listed: true, marker: marker, at: now, names: names}
	s.mu.Unlock()
	return slices.Clone(names), nil
}

// modelsOffline answers Models from memory, else from the cache folder.
func (s *Store) modelsOffline() ([]string, bool) {
	s.mu.Lock()
	ls := s.modelList
	s.mu.Unlock()
	if ls.listed {
		s.st.offlineScans.Add(1)
		return slices.Clone(ls.names), true
	}
	entries, err := os.ReadDir(s.cache)
	if err != nil {
		return nil, false
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && registry.ValidName(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil, false
	}
	s.st.offlineScans.Add(1)
	return names, true
}

// Scan reads one model's versions and aliases; see registry.Registry.
//
// A Scan of an unchanged model costs two small requests: a HEAD of the
// model's change marker and a conditional GET of its alias table (answered
// "not modified"). Only when the marker changed (a publish, delete, tag or
// archive by any Store) does it LIST the model and GET the manifests whose
// ETag changed. While the object store is unreachable, Scan returns the last
// snapshot it read, or one built from the local cache (the versions this
// machine fetched and the alias table it last saw), and no error, so that a
// Server keeps serving and a restarted one can start; only a model never
// seen fails, with ErrUnavailable.
func (s *Store) Scan(ctx context.Context, model string) (registry.Snapshot, error) {
	if err := checkName("model", model); err != nil {
		return registry.Snapshot{}, err
	}
	done, err := s.begin()
	if err != nil {
		return registry.Snapshot{}, err
	}
	defer done()
	if err := ctx.Err(); err != nil {
		return registry.Snapshot{}, err
	}
	s.st.scans.Add(1)
	ms := s.model(model)
	select {
	case ms.scanning <- struct{}{}:
		defer func() { <-ms.scanning }()
	case <-ctx.Done():
		return registry.Snapshot{}, fmt.Errorf("s3: scan %s: %w", model, ctx.Err())
	}
	snap, err := s.scanOnline(ctx, model, ms)
	if errors.Is(err, ErrUnavailable) {
		if snap, ok := s.scanOffline(model, ms); ok {
			return snap, nil
		}
	}
	return snap, err
}

func (s *Store) scanOnline(ctx context.Context, model string, ms *modelState) (registry.Snapshot, error) {
	// The marker is read before the listing: a change committed after the
	// listing moves the marker after this read, so the next Scan lists.
	marker, _, err := s.statObject(ctx, s.markerKey(model))
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		return registry.Snapshot{}, err
	}
	now := s.opts.Now()
	ms.mu.Lock()
	fresh := ms.listed && ms.marker == marker && now.Sub(ms.listedAt) < s.opts.RelistInterval
	ms.mu.Unlock()
	if fresh {
		s.st.cachedScans.Add(1)
	} else if err := s.relist(ctx, model, ms, marker, now); err != nil {
		return registry.Snapshot{}, err
	}
	if err := s.readAliases(ctx, model, ms); err != nil {
		return registry.Snapshot{}, err
	}
	return ms.snapshot(model), nil
}

// relist lists a model's objects and reads the manifests that are new or
// changed since the last listing.
func (s *Store) relist(ctx context.Context, model string, ms *modelState, marker string, now time.Time) error {
	prefix := s.modelPrefix(model)
	objs, err := s.list(ctx, prefix, true, "")
	if err != nil {
		return err
	}
	if len(objs) == 0 {
		return fmt.Errorf("%w: s3: model %q", registry.ErrNotFound, model)
	}
	etags := map[int64]string{}
	var numbers []int64
	for _, o := range objs {
		if n, ok := versionFromKey(strings.TrimPrefix(o.Key, prefix)); ok {
			etags[n] = o.ETag
			numbers = append(numbers, n)
		}
	}
	slices.Sort(numbers)
	// A copy: Get adds to ms.manifests while this reads manifests outside
	// the lock.
	ms.mu.Lock()
	old := maps.Clone(ms.manifests)
	ms.mu.Unlock()
	fresh := make(map[int64]cachedManifest, len(numbers))
	kept := numbers[:0:0]
	for _, n := range numbers {
		if c, ok := old[n]; ok && c.etag == etags[n] {
			fresh[n] = c
			kept = append(kept, n)
			continue
		}
		data, etag, err := s.getObject(ctx, s.manifestKey(model, n), maxManifestSize, "")
		switch {
		case errors.Is(err, registry.ErrNotFound):
			continue // deleted between the listing and the read
		case errors.Is(err, registry.ErrCorrupt):
			fresh[n] = cachedManifest{etag: etags[n], err: err}
		case err != nil:
			return err
		default:
			v, derr := decodeManifest(data, model, n)
			fresh[n] = cachedManifest{etag: etag, v: v, err: derr}
		}
		kept = append(kept, n)
	}
	ms.mu.Lock()
	ms.listed, ms.marker, ms.listedAt, ms.numbers, ms.manifests = true, marker, now, kept, fresh
	ms.mu.Unlock()
	return nil
}

// readAliases refreshes the cached alias table with a conditional GET and
// keeps a copy in the cache folder for a restart during an outage.
func (s *Store) readAliases(ctx context.Context, model string, ms *modelState) error {
	ms.mu.Lock()
	etag := ""
	if ms.aliasRead {
		etag = ms.aliasETag
	}
	ms.mu.Unlock()
	data, newETag, err := s.getObject(ctx, s.aliasesKey(model), maxAliasesSize, etag)
	var aliases []registry.Alias
	var aliasErr error
	switch {
	case errors.Is(err, errNotModified):
		return nil
	case errors.Is(err, registry.ErrNotFound):
		newETag, data = "", nil
	case errors.Is(err, registry.ErrCorrupt):
		aliasErr = fmt.Errorf("s3: %s: %w", s.aliasesKey(model), err)
	case err != nil:
		return err
	default:
		if aliases, err = decodeAliases(data, model); err != nil {
			aliasErr = fmt.Errorf("s3: %s: %w", s.aliasesKey(model), err)
		}
	}
	ms.mu.Lock()
	ms.aliasRead, ms.aliasETag, ms.aliases, ms.aliasErr = true, newETag, aliases, aliasErr
	ms.mu.Unlock()
	if aliasErr == nil {
		s.keepAliases(model, data)
	}
	return nil
}

// keepAliases writes the alias table into the cache folder (removing it
// when the model has none); a failure only costs the offline start.
func (s *Store) keepAliases(model string, data []byte) {
	path := filepath.Join(s.cache, model, registry.AliasesFile)
	var err error
	if data == nil {
		err = os.Remove(path)
		if os.IsNotExist(err) {
			err = nil
		}
	} else if err = os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
		err = atomicfile.WriteFile(path, data, 0o644)
	}
	if err != nil {
		s.log.Warn("s3: cannot keep a copy of the alias table in the cache", "model", model, "error", err)
	}
}

// snapshot builds a Snapshot from what ms holds.
func (ms *modelState) snapshot(model string) registry.Snapshot {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	snap := registry.Snapshot{Model: model, Aliases: cloneAliases(ms.aliases), AliasesErr: ms.aliasErr}
	for _, n := range ms.numbers {
		c := ms.manifests[n]
		if c.err != nil {
			snap.Broken = append(snap.Broken, fmt.Errorf("s3: %s version %d: %w", model, n, c.err))
			continue
		}
		snap.Versions = append(snap.Versions, cloneVersion(c.v))
	}
	return snap
}

// scanOffline answers Scan from memory, else from the cache folder.
func (s *Store) scanOffline(model string, ms *modelState) (registry.Snapshot, bool) {
	ms.mu.Lock()
	listed := ms.listed
	ms.mu.Unlock()
	if listed {
		s.st.offlineScans.Add(1)
		return ms.snapshot(model), true
	}
	dir := filepath.Join(s.cache, model)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return registry.Snapshot{}, false
	}
	snap := registry.Snapshot{Model: model}
	for _, e := range entries {
		n, ok := parseNumber(e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		if v, err := readCachedManifest(filepath.Join(dir, e.Name()), model, n); err == nil {
			snap.Versions = append(snap.Versions, v)
		}
	}
	if len(snap.Versions) == 0 {
		return registry.Snapshot{}, false
	}
	slices.SortFunc(snap.Versions, func(a, b registry.Version) int { return cmpInt(a.Number, b.Number) })
	if data, err := os.ReadFile(filepath.Join(dir, registry.AliasesFile)); err == nil {
		if snap.Aliases, err = decodeAliases(data, model); err != nil {
			snap.Aliases, snap.AliasesErr = nil, fmt.Errorf("s3: cached alias table of %s: %w", model, err)
		}
	}
	s.st.offlineScans.Add(1)
	return snap, true
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readCachedManifest reads the manifest a cache entry keeps beside its
// files.
func readCachedManifest(dir, model string, n int64) (registry.Version, error) {
	data, err := readFileMax(filepath.Join(dir, registry.ManifestFile), maxManifestSize)
	if err != nil {
		return registry.Version{}, err
	}
	return decodeManifest(data, model, n)
}

// readFileMax reads a small file, refusing one over max bytes.
func readFileMax(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%w: %s is %d bytes; want at most %d", registry.ErrCorrupt, path, st.Size(), max)
	}
	data := make([]byte, st.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, err
	}
	return data, nil
}

// Versions lists a model's readable versions in ascending order, archived
// ones included. Scan also reports the unreadable ones.
func (s *Store) Versions(ctx context.Context, model string) ([]registry.Version, error) {
	snap, err := s.Scan(ctx, model)
	return snap.Versions, err
}

// Aliases returns a model's aliases, sorted by name.
func (s *Store) Aliases(ctx context.Context, model string) ([]registry.Alias, error) {
	snap, err := s.Scan(ctx, model)
	if err == nil {
		err = snap.AliasesErr
	}
	return snap.Aliases, err
}

// Get returns one version's manifest, with a conditional GET when it is
// cached. While the store is unreachable it answers from memory or from the
// cache folder.
func (s *Store) Get(ctx context.Context, model string, number int64) (registry.Version, error) {
	if err := checkNumber(model, number); err != nil {
		return registry.Version{}, err
	}
	done, err := s.begin()
	if err != nil {
		return registry.Version{}, err
	}
	defer done()
	if err := ctx.Err(); err != nil {
		return registry.Version{}, err
	}
	v, _, err := s.get(ctx, model, number)
	return v, err
}

// get is Get without the checks; it also returns the manifest's ETag ("" when
// answered offline).
func (s *Store) get(ctx context.Context, model string, number int64) (registry.Version, string, error) {
	ms := s.model(model)
	ms.mu.Lock()
	c, cached := ms.manifests[number]
	ms.mu.Unlock()
	etag := ""
	if cached && c.err == nil {
		etag = c.etag
	}
	data, newETag, err := s.getObject(ctx, s.manifestKey(model, number), maxManifestSize, etag)
	switch {
	case errors.Is(err, errNotModified):
		return cloneVersion(c.v), c.etag, nil
	case errors.Is(err, registry.ErrNotFound):
		ms.forget(number)
		return registry.Version{}, "", fmt.Errorf("%w: %s version %d", registry.ErrNotFound, model, number)
	case errors.Is(err, ErrUnavailable):
		if cached && c.err == nil {
			s.st.offlineFetches.Add(1)
			return cloneVersion(c.v), "", nil
		}
		if v, cerr := readCachedManifest(filepath.Join(s.cache, model, fmt.Sprint(number)), model, number); cerr == nil {
			s.st.offlineFetches.Add(1)
			return v, "", nil
		}
		return registry.Version{}, "", err
	case err != nil:
		return registry.Version{}, "", fmt.Errorf("s3: %s version %d: %w", model, number, err)
	}
	v, err := decodeManifest(data, model, number)
	if err != nil {
		return registry.Version{}, "", fmt.Errorf("s3: %s version %d: %w", model, number, err)
	}
	ms.mu.Lock()
	ms.manifests[number] = cachedManifest{etag: newETag, v: cloneVersion(v)}
	ms.mu.Unlock()
	return v, newETag, nil
}

func (ms *modelState) forget(n int64) {
	ms.mu.Lock()
	delete(ms.manifests, n)
	ms.mu.Unlock()
}

// Resolve returns the version an alias points at; registry.Latest names the
// newest non-archived version, and resolves even when the alias table is
// damaged.
func (s *Store) Resolve(ctx context.Context, model, alias string) (registry.Version, error) {
	snap, err := s.Scan(ctx, model)
	if err != nil {
		return registry.Version{}, err
	}
	if alias == registry.Latest {
		if v, ok := snap.Latest(); ok {
			return v, nil
		}
		return registry.Version{}, fmt.Errorf("%w: %s has no unarchived version", registry.ErrNotFound, model)
	}
	if err := checkAlias(alias); err != nil {
		return registry.Version{}, err
	}
	if snap.AliasesErr != nil {
		return registry.Version{}, snap.AliasesErr
	}
	for _, a := range snap.Aliases {
		if a.Name == alias {
			return s.Get(ctx, model, a.Version)
		}
	}
	return registry.Version{}, fmt.Errorf("%w: %s alias %q", registry.ErrNotFound, model, alias)
}

// checkAlias refuses an invalid alias name and the reserved "latest".
func checkAlias(alias string) error {
	if err := checkName("alias", alias); err != nil {
		return err
	}
	if alias == registry.Latest {
		return fmt.Errorf("s3: alias name: %w: %q is reserved for the newest version", registry.ErrInvalidName, alias)
	}
	return nil
}
