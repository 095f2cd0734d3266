package s3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"golang.org/x/sync/singleflight"

	"github.com/quiverml/quiver/registry"
)

// Options configures a Store. Endpoint and Bucket are required; every
// other zero value is a documented default.
type Options struct {
	// Endpoint is the S3 server's host[:port], without a scheme
	// ("s3.amazonaws.com", "minio.internal:9000").
	Endpoint string
	// Bucket holds the registry. It must exist.
	Bucket string
	// Prefix is prepended to every key ("prod/models"), so that several
	// registries share a bucket. Segments follow registry.ValidName; a
	// trailing "/" is added. Empty means the bucket's root.
	Prefix string
	// AccessKey, SecretKey and SessionToken are the credentials. Empty
	// keys mean anonymous requests.
	AccessKey, SecretKey, SessionToken string
	// Secure selects https.
	Secure bool
	// Region is the bucket's region. Empty means "us-east-1".
	Region string
	// CacheDir holds verified local copies of fetched versions,
	// <CacheDir>/<model>/<version>/, and staging space for publishes (on
	// the same file system, so that a staged version moves into the cache
	// with a rename). Empty means <user cache dir>/quiver/s3/<16 hex
	// digits naming Endpoint, Bucket and Prefix>.
	CacheDir string
	// Logger receives one line per change and per outage. Nil means
	// slog.Default().
	Logger *slog.Logger
	// Actor is recorded in the audit log for changes whose context carries
	// none (registry.WithActor). Empty means "unknown".
	Actor string
	// AliasHistory is how many earlier versions an alias remembers for
	// Rollback. Zero means 16.
	AliasHistory int
	// RelistInterval bounds how long a cached listing of a model's
	// versions (and of the models) is trusted while its change marker
	// stays the same. Writers of this package update the marker after
	// every change, so the bound matters only when a writer died between
	// its change and the marker update. Zero means 30 seconds.
	RelistInterval time.Duration
	// Retries is how many times one request is tried before it fails.
	// Zero means 3; 1 disables retries.
	Retries int
	// DialTimeout bounds connecting to the server, so that an unreachable
	// one fails fast. Zero means 5 seconds. Ignored when Transport is set.
	DialTimeout time.Duration
	// Transport, when set, carries every request (TLS settings, proxies).
	Transport http.RoundTripper
	// Name identifies the store in its metrics (the "store" label) and
	// logs. Empty by default.
	Name string
	// Now returns the current time; nil means time.Now. For tests.
	Now func() time.Time
	// OnChange, when set, is called after each change this Store makes
	// (publish, alias move, rollback, alias deletion, tag, archive,
	// version deletion), once the change is visible to every reader, with
	// the change's audit event, whether or not its audit record could be
	// written. It runs on the writer's goroutine before the write returns,
	// so it should be quick. registry/redisnotify's Notifier.Publish
	// tells the other replicas at once, so that they need not wait for
	// their next poll.
	OnChange func(registry.AuditEvent)
}

// Store is a model registry in an S3 bucket with a local cache; see the
// package documentation for the layout and the guarantees. Many Stores, in
// many processes, may share one bucket and prefix. A Store is safe for
// concurrent use.
type Store struct {
	opts   Options
	log    *slog.Logger
	client *minio.Client
	core   minio.Core
	tr     *http.Transport // nil when the caller gave one
	prefix string
	cache  string

	fetches singleflight.Group

	mu        sync.Mutex
	models    map[string]*modelState
	modelList listState
	verified  map[string]fileStamp // path -> what was hashed; see cache.go

	closeMu sync.Mutex
	closed  bool
	busy    sync.WaitGroup

	offline atomic.Bool // the last request found the store unreachable
	st      counters
}

// A Store feeds a registry.Server like a folder registry.Store does.
var _ registry.Registry = (*Store)(nil)

// Open returns a Store over opts.Bucket. When the server answers, Open
// checks that the bucket exists (registry.ErrNotFound when it does not);
// when it cannot be reached, Open still succeeds and logs a warning, so
// that a replica restarting during an outage serves what its cache holds.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Endpoint == "" {
		return nil, fmt.Errorf("%w: s3: Options.Endpoint is empty; want host[:port]", registry.ErrBadInput)
	}
	if opts.Bucket == "" {
		return nil, fmt.Errorf("%w: s3: Options.Bucket is empty", registry.ErrBadInput)
	}
	prefix, err := normalizePrefix(opts.Prefix)
	if err != nil {
		return nil, err
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.Actor == "" {
		opts.Actor = "unknown"
	}
	if opts.AliasHistory <= 0 {
		opts.AliasHistory = 16
	}
	if opts.RelistInterval <= 0 {
		opts.RelistInterval = 30 * time.Second
	}
	if opts.Retries <= 0 {
		opts.Retries = 3
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		id := xxhash.Sum64String(opts.Endpoint + "\x00" + opts.Bucket + "\x00" + prefix)
		opts.CacheDir = filepath.Join(base, "quiver", "s3", fmt.Sprintf("%016x", id))
	}
	if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("s3: cache dir: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("bucket", opts.Bucket, "prefix", prefix)
	if opts.Name != "" {
		log = log.With("store", opts.Name)
	}
	s := &Store{opts: opts, log: log, prefix: prefix, cache: opts.CacheDir,
		models: map[string]*modelState{}, verified: map[string]fileStamp{}}
	rt := opts.Transport
	if rt == nil {
		tr, err := minio.DefaultTransport(opts.Secure)
		if err != nil {
			return nil, fmt.Errorf("s3: transport: %w", err)
		}
		tr.DialContext = (&net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}).DialContext
		s.tr, rt = tr, tr
	}
	s.client, err = minio.New(opts.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(opts.AccessKey, opts.SecretKey, opts.SessionToken),
		Secure:       opts.Secure,
		Region:       opts.Region,
		Transport:    rt,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   opts.Retries,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: s3: %v", registry.ErrBadInput, err)
	}
	s.core = minio.Core{Client: s.client}
	s.sweepStaging()
	s.st.requests.Add(1)
	ok, err := s.client.BucketExists(ctx, opts.Bucket)
	if err = s.note(classify("bucket "+opts.Bucket, err)); err != nil {
		if errors.Is(err, ErrUnavailable) {
			s.log.Warn("s3: object store unreachable at open; serving from the cache until it returns", "endpoint", opts.Endpoint, "error", err)
			return s, nil
		}
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: s3: bucket %q at %s", registry.ErrNotFound, opts.Bucket, opts.Endpoint)
	}
	return s, nil
}

// normalizePrefix checks a key prefix and gives it a trailing slash.
func normalizePrefix(p string) (string, error) {
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return "", nil
	}
	for seg := range strings.SplitSeq(p, "/") {
		if err := registry.ValidName(seg); err != nil {
			return "", fmt.Errorf("s3: Options.Prefix %q: segment %q: %w", p, seg, err)
		}
	}
	return p + "/", nil
}

// CacheDir returns the local cache directory.
func (s *Store) CacheDir() string { return s.cache }

// Close waits for the calls in flight, then releases the Store's
// connections. Later calls return ErrClosed. Close is idempotent.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	s.closeMu.Unlock()
	s.busy.Wait()
	if s.tr != nil {
		s.tr.CloseIdleConnections()
	}
	return nil
}

// begin marks a call in flight, or fails with ErrClosed.
func (s *Store) begin() (func(), error) {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	s.busy.Add(1)
	return s.busy.Done, nil
}

// Keys. A model's objects mirror registry.Store's folders, so a copy of the
// bucket is a folder registry; what only this package uses starts with '.',
// which no model, version or file name can.
func (s *Store) modelPrefix(model string) string { return s.prefix + model + "/" }
func (s *Store) versionPrefix(model string, n int64) string {
	return s.modelPrefix(model) + strconv.FormatInt(n, 10) + "/"
}
func (s *Store) manifestKey(model string, n int64) string {
	return s.versionPrefix(model, n) + registry.ManifestFile
}
func (s *Store) fileKey(model string, n int64, name string) string {
	return s.versionPrefix(model, n) + name
}
func (s *Store) aliasesKey(model string) string { return s.modelPrefix(model) + registry.AliasesFile }
func (s *Store) claimKey(model string, n int64) string {
	return s.modelPrefix(model) + claimsDir + strconv.FormatInt(n, 10)
}
func (s *Store) markerKey(model string) string { return s.modelPrefix(model) + markerName }
func (s *Store) modelsMarkerKey() string       { return s.prefix + modelsMarkerName }
func (s *Store) auditPrefix() string           { return s.prefix + auditDir }

const (
	claimsDir        = ".claims/"
	markerName       = ".changed"
	modelsMarkerName = ".models"
	auditDir         = ".audit/"
	snapshotsDir     = ".snapshots/"
)

// versionFromKey parses "<n>/manifest.json" relative to a model's prefix.
func versionFromKey(rel string) (int64, bool) {
	num, rest, ok := strings.Cut(rel, "/")
	if !ok || rest != registry.ManifestFile {
		return 0, false
	}
	return parseNumber(num)
}

// parseNumber parses a version number as registry.Store names its
// folders: a positive decimal without sign or leading zeros, at most
// registry.MaxVersion.
func parseNumber(s string) (int64, bool) {
	if s == "" || s[0] < '1' || s[0] > '9' {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > registry.MaxVersion {
		return 0, false
	}
	return n, true
}

func checkName(what, name string) error {
	if err := registry.ValidName(name); err != nil {
		return fmt.Errorf("s3: %s name: %w", what, err)
	}
	return nil
}

func checkNumber(model string, n int64) error {
	if err := checkName("model", model); err != nil {
		return err
	}
	if n <= 0 || n > registry.MaxVersion {
		return fmt.Errorf("%w: version %d; want 1..%d", registry.ErrBadInput, n, registry.MaxVersion)
	}
	return nil
}
