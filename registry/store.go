package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/quiverml/quiver/internal/atomicfile"
	"github.com/quiverml/quiver/serving"
)

// Registry is what a Server serves from: the list of models, a snapshot of
// one model's versions and aliases, and a verified local copy of a version's
// files. Store implements it over a directory tree; another implementation
// (an object store with a local cache, say) fits the Server unchanged.
type Registry interface {
	// Models lists the model names, sorted.
	Models(ctx context.Context) ([]string, error)
	// Scan reads one model's versions and aliases. Versions whose manifest
	// cannot be read are left out of Snapshot.Versions and reported in
	// Snapshot.Broken; an alias table that cannot be read is reported in
	// Snapshot.AliasesErr; the error is for the model as a whole.
	Scan(ctx context.Context, model string) (Snapshot, error)
	// Fetch verifies a version's files against its manifest and returns the
	// local directory that holds them.
	Fetch(ctx context.Context, model string, number int64) (Version, string, error)
}

// Snapshot is one read of a model's state.
type Snapshot struct {
	Model string
	// Versions in ascending number order, archived ones included.
	Versions []Version
	// Aliases sorted by name.
	Aliases []Alias
	// Broken holds one error per version directory whose manifest could
	// not be read or decoded.
	Broken []error
	// AliasesErr is set when the alias table could not be read or decoded
	// (ErrCorrupt for a damaged file); Aliases is then empty while Versions
	// is complete, so "latest" can still be served.
	AliasesErr error
}

// Latest returns the newest non-archived version, if any.
func (s Snapshot) Latest() (Version, bool) {
	for i := len(s.Versions) - 1; i >= 0; i-- {
		if !s.Versions[i].Archived {
			return s.Versions[i], true
		}
	}
	return Version{}, false
}

// Options configures a Store. The zero value is ready to use.
type Options struct {
	// Logger receives one line per change. Default: slog.Default().
	Logger *slog.Logger
	// Actor is recorded in the audit log for changes whose context carries
	// no actor (see WithActor). Empty means "unknown".
	Actor string
	// AliasHistory is how many earlier versions an alias remembers for
	// Rollback. Zero means 16.
	AliasHistory int
	// Now returns the current time; nil means time.Now. For tests.
	Now func() time.Time
	// OnChange, when set, is called after each change this Store makes,
	// once it is durable, with the change's audit event (whether or not
	// the audit log append succeeded), on the writer's goroutine before
	// the write returns, so it should be quick. Processes sharing the
	// folder can learn of changes at once through
	// registry/redisnotify's Notifier.Publish rather than at their next
	// poll.
	OnChange func(AuditEvent)
}

// Store is a model registry in a directory tree:
//
//	<root>/audit.log                     append-only JSON lines
//	<root>/<model>/aliases.json          alias table
//	<root>/<model>/<version>/manifest.json
//	<root>/<model>/<version>/<files>     the artifacts
//
// Versions are published atomically (staged in a hidden directory, fsynced,
// renamed), so a reader never sees half a version. Open sweeps what writers
// that crashed left behind. Writes are serialised by
// a mutex within a process and by an advisory file lock across processes;
// readers take no lock. A Store is safe for concurrent use.
type Store struct {
	root string
	opts Options
	log  *slog.Logger
	mu   sync.Mutex
	mc   manifestCache
}

// Open opens (creating it if needed) the registry rooted at root.
func Open(root string, opts Options) (*Store, error) {
	if root == "" {
		return nil, fmt.Errorf("%w: empty root directory", ErrBadInput)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("registry: open %s: %w", root, err)
	}
	if opts.AliasHistory <= 0 {
		opts.AliasHistory = 16
	}
	if opts.Actor == "" {
		opts.Actor = "unknown"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Store{root: root, opts: opts, log: log.With("root", root)}
	s.sweep()
	return s, nil
}

// sweep removes what writers that crashed left behind: temporary files of
// alias tables and manifests, staged versions and renamed-away deletions.
// It runs under the write lock, so no writer of this or another process is
// between creating and renaming one of them. It does not wait for the lock:
// while another process writes, or where the registry cannot be locked (a
// read-only mount a Server reads), the leftovers stay for a later Open.
func (s *Store) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := tryLockFile(filepath.Join(s.root, ".lock"))
	if err != nil {
		s.log.Debug("registry: not sweeping leftovers of interrupted writes", "error", err)
		return
	}
	defer unlock()
	models, err := s.Models(context.Background())
	if err != nil {
		s.log.Warn("registry: cannot list models to sweep", "error", err)
		return
	}
	for _, m := range models {
		modelDir := filepath.Join(s.root, m)
		s.removeStale(modelDir)
		s.sweepFile(filepath.Join(modelDir, AliasesFile))
		numbers, err := versionNumbers(modelDir)
		if err != nil {
			s.log.Warn("registry: cannot list versions to sweep", "model", m, "error", err)
			continue
		}
		for _, n := range numbers {
			s.sweepFile(filepath.Join(modelDir, strconv.FormatInt(n, 10), ManifestFile))
		}
	}
}

// sweepFile removes the temporary files of interrupted writes of path; a
// failure is logged, since leftovers only cost disk space.
func (s *Store) sweepFile(path string) {
	n, err := atomicfile.Sweep(path)
	if n > 0 {
		s.log.Warn("registry: removed leftovers of an interrupted write", "path", path, "files", n)
	}
	if err != nil {
		s.log.Warn("registry: sweeping leftovers failed", "path", path, "error", err)
	}
}

// Root returns the registry's root directory.
func (s *Store) Root() string { return s.root }

// MaxVersion is the largest version number: 2^53, the largest integer
// every JSON reader (JavaScript's included) holds exactly. Publish refuses
// numbers above it, so the next automatic number can never overflow.
const MaxVersion int64 = 1 << 53

// Dir returns the directory of a version (whether or not it exists).
func (s *Store) Dir(model string, number int64) (string, error) {
	if err := checkName("model", model); err != nil {
		return "", err
	}
	if number <= 0 || number > MaxVersion {
		return "", fmt.Errorf("%w: version %d; want 1..%d", ErrBadInput, number, MaxVersion)
	}
	return filepath.Join(s.root, model, strconv.FormatInt(number, 10)), nil
}

// File is one artifact to publish: its content in Data, or the path of a
// regular file to copy in Path (a symbolic link is refused, not followed).
type File struct {
	Name string
	Data []byte
	Path string
}

// Meta describes a version being published.
type Meta struct {
	// Number is the version number; 0 picks one more than the highest
	// existing version.
	Number int64
	// Format names the artifact format ("onnx"); empty means "onnx".
	Format string
	// Entry is the file a loader opens; empty means the first file.
	Entry string
	// Signature is the model's interface. For an ONNX entry (see Publish)
	// it is read from the file when left empty, and checked against the
	// file when given.
	Signature   Signature
	Metrics     map[string]float64
	Tags        map[string]string
	Lineage     Lineage
	Description string
}

// Publish adds a new version of model from files, atomically: the version
// is staged in a hidden directory, every file and the directory are
// fsynced, and a rename makes it visible at once. A version number that
// exists already is refused with ErrExists, one above MaxVersion with
// ErrBadInput. ctx is checked between chunks of every copy: a cancelled or
// expired ctx ends the publish with its error wrapped, leaving nothing
// published and no staging directory behind.
//
// The entry is an ONNX entry when Meta.Format is "onnx", or is empty and the
// entry's name ends in ".onnx". Publish reads its signature
// (SignatureFromONNX): when Meta.Signature is empty, the file's is recorded;
// when it is given, it must agree with the file as CheckSignature judges a
// loaded model (recorded inputs and outputs present with the same element
// type and shape, -1 matching any size, and no file input left out), or
// Publish fails with ErrSignature; the given signature is then recorded as
// given. An ONNX entry that is not an ONNX model fails with ErrBadInput.
func (s *Store) Publish(ctx context.Context, model string, files []File, meta Meta) (Version, error) {
	if err := checkName("model", model); err != nil {
		return Version{}, err
	}
	if meta.Number < 0 || meta.Number > MaxVersion {
		return Version{}, fmt.Errorf("%w: version %d; want 1..%d, or 0 for the next number", ErrBadInput, meta.Number, MaxVersion)
	}
	if len(files) == 0 {
		return Version{}, fmt.Errorf("%w: publish %s: no files", ErrBadInput, model)
	}
	names := make(map[string]bool, len(files))
	for _, f := range files {
		if err := checkName("file", f.Name); err != nil {
			return Version{}, err
		}
		if f.Name == ManifestFile || names[f.Name] {
			return Version{}, fmt.Errorf("%w: publish %s: file name %q used twice or reserved", ErrBadInput, model, f.Name)
		}
		if (f.Data != nil) == (f.Path != "") {
			return Version{}, fmt.Errorf("%w: publish %s: file %q: want exactly one of Data or Path", ErrBadInput, model, f.Name)
		}
		if f.Path != "" {
			if err := checkSource(f.Path); err != nil {
				return Version{}, fmt.Errorf("publish %s: file %q: %w", model, f.Name, err)
			}
		}
		names[f.Name] = true
	}
	if meta.Entry == "" {
		meta.Entry = files[0].Name
	}
	if !names[meta.Entry] {
		return Version{}, fmt.Errorf("%w: publish %s: entry %q is not one of the files", ErrBadInput, model, meta.Entry)
	}
	onnxEntry := meta.Format == "onnx" || meta.Format == "" && strings.HasSuffix(strings.ToLower(meta.Entry), ".onnx")
	if meta.Format == "" {
		meta.Format = "onnx"
	}
	v := Version{
		FormatVersion: ManifestFormat, Model: model, Format: meta.Format, Entry: meta.Entry,
		Signature: meta.Signature, Metrics: maps.Clone(meta.Metrics), Tags: maps.Clone(meta.Tags),
		Lineage: meta.Lineage, Description: meta.Description,
	}

	unlock, err := s.lock()
	if err != nil {
		return Version{}, err
	}
	defer unlock()

	modelDir := filepath.Join(s.root, model)
	newModel := false
	if _, err := os.Stat(modelDir); os.IsNotExist(err) {
		newModel = true
	}
	if err := os.MkdirAll(modelDir, 0o755); err != nil {
		return Version{}, fmt.Errorf("registry: publish %s: %w", model, err)
	}
	if newModel {
		if err := atomicfile.SyncDir(s.root); err != nil {
			return Version{}, fmt.Errorf("registry: publish %s: %w", model, err)
		}
	}
	s.removeStale(modelDir)
	numbers, err := versionNumbers(modelDir)
	if err != nil {
		return Version{}, fmt.Errorf("registry: publish %s: %w", model, err)
	}
	v.Number = meta.Number
	if v.Number == 0 {
		v.Number = 1
		if len(numbers) > 0 {
			v.Number = numbers[len(numbers)-1] + 1
		}
		if v.Number > MaxVersion {
			return Version{}, fmt.Errorf("%w: publish %s: the next version number %d is above %d; give Meta.Number", ErrBadInput, model, v.Number, MaxVersion)
		}
	} else if slices.Contains(numbers, v.Number) {
		return Version{}, fmt.Errorf("%w: %s version %d", ErrExists, model, v.Number)
	}
	v.Created = s.opts.Now().UTC()

	stage := tempName(modelDir, "stage")
	if err := os.Mkdir(stage, 0o755); err != nil {
		return Version{}, fmt.Errorf("registry: publish %s: %w", model, err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = os.RemoveAll(stage)
		}
	}()
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return Version{}, fmt.Errorf("registry: publish %s: %w", model, err)
		}
		sum, err := writeArtifact(ctx, filepath.Join(stage, f.Name), f)
		if err != nil {
			return Version{}, fmt.Errorf("registry: publish %s: file %q: %w", model, f.Name, err)
		}
		v.Files = append(v.Files, sum)
	}
	if onnxEntry {
		if v.Signature, err = entrySignature(filepath.Join(stage, meta.Entry), files, meta); err != nil {
			return Version{}, fmt.Errorf("registry: publish %s: %w", model, err)
		}
	}
	if err := v.validate(); err != nil {
		return Version{}, fmt.Errorf("%w: publish %s: %v", ErrBadInput, model, err)
	}
	mf, err := encodeManifest(v)
	if err != nil {
		return Version{}, fmt.Errorf("registry: publish %s: %w", model, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(stage, ManifestFile), mf, 0o644); err != nil {
		return Version{}, fmt.Errorf("registry: publish %s: %w", model, err)
	}
	// The last moment a cancelled publish can still leave nothing behind.
	if err := ctx.Err(); err != nil {
		return Version{}, fmt.Errorf("registry: publish %s: %w", model, err)
	}
	final := filepath.Join(modelDir, strconv.FormatInt(v.Number, 10))
	if err := os.Rename(stage, final); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			return Version{}, fmt.Errorf("%w: %s version %d", ErrExists, model, v.Number)
		}
		return Version{}, fmt.Errorf("registry: publish %s: %w", model, err)
	}
	committed = true
	if err := atomicfile.SyncDir(modelDir); err != nil {
		return Version{}, fmt.Errorf("registry: publish %s: %w", model, err)
	}
	s.log.Info("registry: published", "model", model, "version", v.Number, "files", len(v.Files))
	return v, s.audit(ctx, AuditEvent{Action: ActionPublish, Model: model, Version: v.Number, New: strconv.FormatInt(v.Number, 10)})
}

// entrySignature reads the signature of the ONNX entry staged at path (from
// memory when it was given as Data) and reconciles it with meta.Signature.
func entrySignature(path string, files []File, meta Meta) (Signature, error) {
	var info serving.Info
	var err error
	if i := slices.IndexFunc(files, func(f File) bool { return f.Name == meta.Entry }); i >= 0 && files[i].Data != nil {
		info, err = readONNXInfo(bytes.NewReader(files[i].Data), int64(len(files[i].Data)))
	} else {
		info, err = readONNXInfoFile(path)
	}
	if err != nil {
		return Signature{}, fmt.Errorf("entry %q: %w", meta.Entry, err)
	}
	sig := meta.Signature
	if len(sig.Inputs) == 0 && len(sig.Outputs) == 0 {
		return SignatureOf(info), nil
	}
	if err := CheckSignature(sig, info); err != nil {
		return Signature{}, fmt.Errorf("Meta.Signature disagrees with entry %q: %w (the file has %s)", meta.Entry, err, SignatureOf(info))
	}
	return cloneSignature(sig), nil
}

// checkSource refuses a File.Path that is a symbolic link or not a regular
// file: a version holds copies of files, and a link would publish whatever
// it happens to point at, possibly outside the folder it was picked from.
func checkSource(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%w: %s is a symbolic link; want a regular file (give the link's target)", ErrBadInput, path)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is a %v; want a regular file", ErrBadInput, path, fi.Mode().Type())
	}
	return nil
}

// openSource opens a File.Path to copy; tests replace it to observe the
// copy.
var openSource = func(path string) (io.ReadCloser, error) { return os.Open(path) }

// copyChunk is how much is copied between two looks at the context: small
// enough that a cancelled publish of a large file stops within
// milliseconds, large enough that the look costs nothing.
const copyChunk = 1 << 20

// ctxReader ends a copy with the context's error once it is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p[:min(len(p), copyChunk)])
}

// writeArtifact writes one file, hashing it on the way, and fsyncs it. It
// stops with ctx's error when ctx is done mid-copy.
func writeArtifact(ctx context.Context, path string, f File) (FileSum, error) {
	var src io.Reader = bytes.NewReader(f.Data)
	if f.Path != "" {
		in, err := openSource(f.Path)
		if err != nil {
			return FileSum{}, err
		}
		defer in.Close()
		src = in
	}
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return FileSum{}, err
	}
	h := xxhash.New()
	buf := make([]byte, copyChunk)
	n, err := io.CopyBuffer(io.MultiWriter(out, h), ctxReader{ctx, src}, buf)
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return FileSum{}, err
	}
	return FileSum{Name: f.Name, Size: n, XXHash64: formatHash(h.Sum64())}, nil
}

// removeStale deletes staging and deletion leftovers of writers that
// crashed; it runs under the write lock, so none is in use.
func (s *Store) removeStale(modelDir string) {
	entries, err := os.ReadDir(modelDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if n := e.Name(); len(n) > 1 && n[0] == '.' {
			s.log.Warn("registry: removing leftover from an interrupted write", "path", filepath.Join(modelDir, n))
			_ = os.RemoveAll(filepath.Join(modelDir, n))
		}
	}
}

// parseNumber parses a version directory name: a positive decimal without
// sign or leading zeros.
func parseNumber(name string) (int64, bool) {
	if name == "" || name[0] < '1' || name[0] > '9' {
		return 0, false
	}
	n, err := strconv.ParseInt(name, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// versionNumbers lists the version directories of a model, ascending.
func versionNumbers(modelDir string) ([]int64, error) {
	entries, err := os.ReadDir(modelDir)
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, e := range entries {
		if n, ok := parseNumber(e.Name()); ok && e.IsDir() {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Models lists the models that have a directory in the root, sorted.
func (s *Store) Models(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("registry: list models: %w", err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && ValidName(e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Scan reads one model's versions and aliases; see Registry.
func (s *Store) Scan(ctx context.Context, model string) (Snapshot, error) {
	if err := checkName("model", model); err != nil {
		return Snapshot{}, err
	}
	if err := ctx.Err(); err != nil {
		return Snapshot{}, err
	}
	modelDir := filepath.Join(s.root, model)
	numbers, err := versionNumbers(modelDir)
	if os.IsNotExist(err) {
		return Snapshot{}, fmt.Errorf("%w: model %q", ErrNotFound, model)
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("registry: scan %s: %w", model, err)
	}
	snap := Snapshot{Model: model}
	for _, n := range numbers {
		dir := filepath.Join(modelDir, strconv.FormatInt(n, 10))
		v, err := s.mc.read(dir, model, n)
		if err != nil {
			if os.IsNotExist(err) {
				if _, serr := os.Stat(dir); os.IsNotExist(serr) {
					continue // deleted between the listing and the read
				}
				err = fmt.Errorf("%w: no %s", ErrCorrupt, ManifestFile)
			}
			snap.Broken = append(snap.Broken, fmt.Errorf("registry: %s version %d: %w", model, n, err))
			continue
		}
		snap.Versions = append(snap.Versions, v)
	}
	// A damaged alias table must not hide the versions: they are read
	// independently, and the Server still serves "latest" from them.
	if snap.Aliases, err = readAliases(modelDir, model); err != nil {
		snap.Aliases = nil
		snap.AliasesErr = fmt.Errorf("registry: %s: %w", filepath.Join(modelDir, AliasesFile), err)
	}
	return snap, nil
}

// Versions lists a model's readable versions in ascending order, archived
// ones included. Scan also reports the unreadable ones.
func (s *Store) Versions(ctx context.Context, model string) ([]Version, error) {
	snap, err := s.Scan(ctx, model)
	return snap.Versions, err
}

// Get returns one version's manifest.
func (s *Store) Get(ctx context.Context, model string, number int64) (Version, error) {
	dir, err := s.Dir(model, number)
	if err != nil {
		return Version{}, err
	}
	if err := ctx.Err(); err != nil {
		return Version{}, err
	}
	v, err := s.mc.read(dir, model, number)
	if os.IsNotExist(err) {
		return Version{}, fmt.Errorf("%w: %s version %d", ErrNotFound, model, number)
	}
	if err != nil {
		return Version{}, fmt.Errorf("registry: %s version %d: %w", model, number, err)
	}
	return v, nil
}

// Resolve returns the version an alias points at; Latest names the newest
// non-archived version, and resolves even when the alias table is damaged.
func (s *Store) Resolve(ctx context.Context, model, alias string) (Version, error) {
	snap, err := s.Scan(ctx, model)
	if err != nil {
		return Version{}, err
	}
	if alias != Latest && snap.AliasesErr != nil {
		return Version{}, snap.AliasesErr
	}
	if alias == Latest {
		if v, ok := snap.Latest(); ok {
			return v, nil
		}
		return Version{}, fmt.Errorf("%w: %s has no unarchived version", ErrNotFound, model)
	}
	if err := checkAlias(alias); err != nil {
		return Version{}, err
	}
	for _, a := range snap.Aliases {
		if a.Name == alias {
			return s.Get(ctx, model, a.Version)
		}
	}
	return Version{}, fmt.Errorf("%w: %s alias %q", ErrNotFound, model, alias)
}

// Fetch verifies every file of a version against its manifest (size, then
// xxhash64; no missing or extra files) and returns the version and its
// directory. Tampered or truncated files fail with ErrChecksum.
func (s *Store) Fetch(ctx context.Context, model string, number int64) (Version, string, error) {
	v, err := s.Get(ctx, model, number)
	if err != nil {
		return Version{}, "", err
	}
	dir, _ := s.Dir(model, number)
	if err := verifyDir(dir, v); err != nil {
		return Version{}, "", fmt.Errorf("registry: fetch: %w", err)
	}
	return v, dir, nil
}

// Verify checks a version's files like Fetch.
func (s *Store) Verify(ctx context.Context, model string, number int64) error {
	_, _, err := s.Fetch(ctx, model, number)
	return err
}

// Aliases returns a model's aliases, sorted by name.
func (s *Store) Aliases(ctx context.Context, model string) ([]Alias, error) {
	snap, err := s.Scan(ctx, model)
	if err == nil {
		err = snap.AliasesErr
	}
	return snap.Aliases, err
}

// lock serialises writers: the mutex within the process, an flock on
// <root>/.lock across processes.
func (s *Store) lock() (func(), error) {
	s.mu.Lock()
	unlock, err := lockFile(filepath.Join(s.root, ".lock"))
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("registry: lock %s: %w", s.root, err)
	}
	return func() { unlock(); s.mu.Unlock() }, nil
}

// audit appends e to the audit log, stamped with the time and actor.
func (s *Store) audit(ctx context.Context, e AuditEvent) error {
	e.Time = s.opts.Now().UTC()
	e.Actor = actorFrom(ctx, s.opts.Actor)
	if s.opts.OnChange != nil {
		defer s.opts.OnChange(e) // after the append: the change is made either way
	}
	if err := appendAudit(filepath.Join(s.root, AuditFile), e); err != nil {
		s.log.Error("registry: audit log append failed", "action", e.Action, "model", e.Model, "error", err)
		return fmt.Errorf("registry: %s %s: the change is made but the audit log append failed: %w", e.Action, e.Model, err)
	}
	return nil
}

// Audit reads the whole audit log, oldest first. A missing log is empty.
func (s *Store) Audit(ctx context.Context) ([]AuditEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(s.root, AuditFile))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("registry: audit log: %w", err)
	}
	defer f.Close()
	return DecodeAudit(f)
}
