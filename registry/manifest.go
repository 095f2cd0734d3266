package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/quiverml/quiver/internal/atomicfile"
)

// ManifestFile is the name of the manifest inside a version directory.
const ManifestFile = "manifest.json"

// ManifestFormat is the manifest format version this package writes. A
// manifest with a newer format is refused with ErrCorrupt rather than
// misread.
const ManifestFormat = 1

// maxManifestSize bounds what is read from disk before decoding.
const maxManifestSize = 4 << 20

// Version describes one published version of a model: the decoded manifest of
// <root>/<model>/<number>/. Everything but Tags and Archived is fixed when the
// version is published.
type Version struct {
	// FormatVersion is the manifest format (ManifestFormat).
	FormatVersion int `json:"format_version"`
	// Model is the model's name.
	Model string `json:"model"`
	// Number is the version number, > 0, unique within the model.
	Number int64 `json:"version"`
	// Format names the artifact format, such as "onnx"; free text for
	// loaders to check.
	Format string `json:"format"`
	// Entry is the file a loader opens first (the .onnx file); one of Files.
	Entry string `json:"entry"`
	// Created is when the version was published.
	Created time.Time `json:"created"`
	// Files lists every artifact file with its size and xxhash64.
	Files []FileSum `json:"files"`
	// Signature records the model's inputs and outputs, when known.
	Signature Signature `json:"signature"`
	// Metrics holds evaluation results (auc, rmse...).
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// Tags are free key/value labels; keys follow ValidName.
	Tags map[string]string `json:"tags,omitempty"`
	// Lineage says where the version came from.
	Lineage Lineage `json:"lineage"`
	// Description is free text.
	Description string `json:"description,omitempty"`
	// Archived versions stay on disk but are not "latest", cannot be
	// aliased and are not loaded by the latest-N policy.
	Archived bool `json:"archived,omitempty"`
}

// FileSum is one artifact file of a version.
type FileSum struct {
	// Name is the file's name inside the version directory (ValidName).
	Name string `json:"name"`
	// Size in bytes.
	Size int64 `json:"size"`
	// XXHash64 is the xxhash64 of the content, 16 lowercase hex digits.
	XXHash64 string `json:"xxhash64"`
}

// Signature is a model's interface as recorded at publish time.
type Signature struct {
	Inputs  []TensorSpec `json:"inputs,omitempty"`
	Outputs []TensorSpec `json:"outputs,omitempty"`
}

// TensorSpec describes one input or output. ElementType uses
// serving.ElementType's names ("float32", "int64"...); -1 in Shape marks a
// dynamic axis. Empty ElementType or nil Shape mean "not recorded"; an
// empty, non-nil Shape is a scalar.
type TensorSpec struct {
	Name        string  `json:"name"`
	ElementType string  `json:"element_type,omitempty"`
	Shape       []int64 `json:"shape,omitzero"`
}

// Lineage records where a version came from.
type Lineage struct {
	// DataVersion identifies the training data (a snapshot id, a hash...).
	DataVersion string `json:"data_version,omitempty"`
	// CodeVersion identifies the training code (a commit...).
	CodeVersion string `json:"code_version,omitempty"`
	// Parent is the version this one was derived from (fine-tuned,
	// retrained), 0 when none.
	Parent int64 `json:"parent,omitempty"`
}

// File returns the FileSum named name.
func (v Version) File(name string) (FileSum, bool) {
	for _, f := range v.Files {
		if f.Name == name {
			return f, true
		}
	}
	return FileSum{}, false
}

// DecodeManifest parses and validates a manifest. Unknown fields are
// refused, as are a newer format, invalid names, duplicate files, an entry
// that is not one of the files, malformed hashes and negative numbers; every
// failure matches ErrCorrupt.
func DecodeManifest(data []byte) (Version, error) {
	var v Version
	if len(data) > maxManifestSize {
		return v, fmt.Errorf("%w: manifest is %d bytes; want at most %d", ErrCorrupt, len(data), maxManifestSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return Version{}, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Version{}, fmt.Errorf("%w: manifest: trailing data after the JSON object", ErrCorrupt)
	}
	if err := v.validate(); err != nil {
		return Version{}, err
	}
	return v, nil
}

// validate checks everything DecodeManifest promises.
func (v *Version) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: manifest: "+format, append([]any{ErrCorrupt}, args...)...)
	}
	switch {
	case v.FormatVersion < 1:
		return bad("format_version %d; want %d", v.FormatVersion, ManifestFormat)
	case v.FormatVersion > ManifestFormat:
		return bad("format_version %d is newer than this reader (%d); upgrade quiver", v.FormatVersion, ManifestFormat)
	}
	if err := ValidName(v.Model); err != nil {
		return bad("model: %v", err)
	}
	if v.Number <= 0 || v.Number > MaxVersion {
		return bad("version %d; want 1..%d", v.Number, MaxVersion)
	}
	if v.Lineage.Parent < 0 || v.Lineage.Parent > MaxVersion {
		return bad("lineage parent %d; want 0..%d", v.Lineage.Parent, MaxVersion)
	}
	if len(v.Files) == 0 {
		return bad("no files")
	}
	seen := make(map[string]bool, len(v.Files))
	for _, f := range v.Files {
		if err := ValidName(f.Name); err != nil {
			return bad("file: %v", err)
		}
		if f.Name == ManifestFile {
			return bad("file %q is reserved for the manifest", f.Name)
		}
		if seen[f.Name] {
			return bad("file %q listed twice", f.Name)
		}
		seen[f.Name] = true
		if f.Size < 0 {
			return bad("file %q: size %d; want >= 0", f.Name, f.Size)
		}
		if _, err := parseHash(f.XXHash64); err != nil {
			return bad("file %q: %v", f.Name, err)
		}
	}
	if !seen[v.Entry] {
		return bad("entry %q is not one of the files", v.Entry)
	}
	for k := range v.Tags {
		if err := ValidName(k); err != nil {
			return bad("tag: %v", err)
		}
	}
	for k, m := range v.Metrics {
		if math.IsNaN(m) || math.IsInf(m, 0) {
			return bad("metric %q is %v; want a finite number", k, m)
		}
	}
	return nil
}

func formatHash(h uint64) string { return fmt.Sprintf("%016x", h) }

func parseHash(s string) (uint64, error) {
	if len(s) != 16 {
		return 0, fmt.Errorf("xxhash64 %q; want 16 lowercase hex digits", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return 0, fmt.Errorf("xxhash64 %q; want 16 lowercase hex digits", s)
		}
	}
	return strconv.ParseUint(s, 16, 64)
}

// encodeManifest is the inverse of DecodeManifest.
func encodeManifest(v Version) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// readManifest reads and decodes dir/manifest.json, checking that it
// belongs where it was found.
func readManifest(dir, model string, number int64) (Version, error) {
	f, err := os.Open(filepath.Join(dir, ManifestFile))
	if err != nil {
		return Version{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return Version{}, err
	}
	v, err := DecodeManifest(data)
	if err != nil {
		return Version{}, err
	}
	if v.Model != model || v.Number != number {
		return Version{}, fmt.Errorf("%w: manifest names %s/%d", ErrCorrupt, v.Model, v.Number)
	}
	return v, nil
}

// clone returns a deep copy, so callers may modify what they get.
func (v Version) clone() Version {
	v.Files = slices.Clone(v.Files)
	v.Signature.Inputs = cloneSpecs(v.Signature.Inputs)
	v.Signature.Outputs = cloneSpecs(v.Signature.Outputs)
	v.Metrics = maps.Clone(v.Metrics)
	v.Tags = maps.Clone(v.Tags)
	return v
}

func cloneSpecs(in []TensorSpec) []TensorSpec {
	if in == nil {
		return nil
	}
	out := make([]TensorSpec, len(in))
	for i, t := range in {
		t.Shape = slices.Clone(t.Shape)
		out[i] = t
	}
	return out
}

// manifestCache remembers decoded manifests by path, keyed by the file's
// modification time, size and inode, so a poll over many versions costs
// one stat per version instead of a read and a decode. Manifests are only
// ever replaced by rename, which changes the inode.
type manifestCache struct {
	mu sync.Mutex
	m  map[string]cachedManifest
}

type cachedManifest struct {
	mod  time.Time
	size int64
	id   uint64
	v    Version
}

// read returns the manifest in dir, from the cache when the file has not
// changed.
func (c *manifestCache) read(dir, model string, number int64) (Version, error) {
	path := filepath.Join(dir, ManifestFile)
	fi, err := os.Stat(path)
	if err != nil {
		c.forget(dir)
		return Version{}, err
	}
	c.mu.Lock()
	e, ok := c.m[path]
	c.mu.Unlock()
	if ok && e.mod.Equal(fi.ModTime()) && e.size == fi.Size() && e.id == fileID(fi) && e.v.Model == model && e.v.Number == number {
		return e.v.clone(), nil
	}
	v, err := readManifest(dir, model, number)
	if err != nil {
		c.forget(dir)
		return Version{}, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]cachedManifest{}
	}
	c.m[path] = cachedManifest{mod: fi.ModTime(), size: fi.Size(), id: fileID(fi), v: v.clone()}
	c.mu.Unlock()
	return v, nil
}

func (c *manifestCache) forget(dir string) {
	c.mu.Lock()
	delete(c.m, filepath.Join(dir, ManifestFile))
	c.mu.Unlock()
}

// verifyDir checks that dir holds exactly the manifest and v.Files, with the
// recorded sizes and hashes. A size mismatch (a truncated copy) is caught
// before reading the content.
func verifyDir(dir string, v Version) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Name() == ManifestFile || isManifestTemp(e.Name()) {
			continue
		}
		if _, ok := v.File(e.Name()); !ok {
			return fmt.Errorf("%w: %s/%d: file %q is not in the manifest", ErrChecksum, v.Model, v.Number, e.Name())
		}
		if !e.Type().IsRegular() {
			return fmt.Errorf("%w: %s/%d: file %q is a %v; want a regular file", ErrChecksum, v.Model, v.Number, e.Name(), e.Type())
		}
		names = append(names, e.Name())
	}
	for _, f := range v.Files {
		if !slices.Contains(names, f.Name) {
			return fmt.Errorf("%w: %s/%d: file %q is missing", ErrChecksum, v.Model, v.Number, f.Name)
		}
		if err := verifyFile(filepath.Join(dir, f.Name), f); err != nil {
			return fmt.Errorf("%s/%d: %w", v.Model, v.Number, err)
		}
	}
	return nil
}

// isManifestTemp reports the temp file of a manifest rewrite; one left by a
// crash is not an artifact (and is removed by the next rewrite).
func isManifestTemp(name string) bool { return atomicfile.IsTemp(name, ManifestFile) }

// verifyFile checks one artifact. A symbolic link is refused, not
// followed: what it points at (possibly outside the registry) is not what
// was published, and a loader must never open it. The file opened must be
// the one Lstat saw, so a link swapped in between is caught too.
func verifyFile(path string, want FileSum) error {
	lst, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !lst.Mode().IsRegular() {
		return fmt.Errorf("%w: file %q is a %v; want a regular file", ErrChecksum, want.Name, lst.Mode().Type())
	}
	fd, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() || !os.SameFile(lst, st) {
		return fmt.Errorf("%w: file %q was replaced while being verified", ErrChecksum, want.Name)
	}
	if st.Size() != want.Size {
		return fmt.Errorf("%w: file %q is %d bytes; want %d (truncated or replaced)", ErrChecksum, want.Name, st.Size(), want.Size)
	}
	h := xxhash.New()
	n, err := io.Copy(h, fd)
	if err != nil {
		return err
	}
	if n != want.Size {
		return fmt.Errorf("%w: file %q: read %d bytes; want %d", ErrChecksum, want.Name, n, want.Size)
	}
	if got := formatHash(h.Sum64()); got != want.XXHash64 {
		return fmt.Errorf("%w: file %q has xxhash64 %s; want %s (modified after publish)", ErrChecksum, want.Name, got, want.XXHash64)
	}
	return nil
}
