package registry

import (
	"context"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/require"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"ranker", true},
		{"Ranker-v2.onnx", true},
		{"a_b-c.d", true},
		{"x", true},
		{strings.Repeat("a", MaxNameLen), true},
		{"", false},
		{strings.Repeat("a", MaxNameLen+1), false},
		{".", false},
		{"..", false},
		{"../x", false},
		{"x/../y", false},
		{"/etc/passwd", false},
		{"a/b", false},
		{`a\b`, false},
		{".hidden", false},
		{"nul\x00byte", false},
		{"new\nline", false},
		{"space name", false},
		{"caf\u00e9", false},    // non-ASCII letter
		{"\u0430dmin", false},   // Cyrillic a look-alike
		{"a\u200bb", false},     // zero-width space
		{"\u2215etc", false},    // division slash
		{"\uff0e\uff0e", false}, // fullwidth dots
		{"C:", false},           // drive letter
		{"x\xff", false},        // invalid UTF-8
		{"~root", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidName(tt.name)
			if tt.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidName)
		})
	}
}

func TestPublishAndRead(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	src := filepath.Join(t.TempDir(), "weights.bin")
	require.NoError(t, os.WriteFile(src, []byte("weights"), 0o644))

	v1, err := s.Publish(ctx, "ranker", []File{
		{Name: "model.onnx", Data: versionedMLP(t, 1)},
		{Name: "weights.bin", Path: src},
	}, Meta{
		Signature:   Signature{Inputs: []TensorSpec{{Name: "x", ElementType: "float32", Shape: []int64{-1, 16}}}},
		Metrics:     map[string]float64{"auc": 0.91},
		Tags:        map[string]string{"team": "search"},
		Lineage:     Lineage{DataVersion: "snap-7", CodeVersion: "abc123"},
		Description: "first",
	})
	require.NoError(t, err)
	require.Equal(t, int64(1), v1.Number)
	require.Equal(t, "model.onnx", v1.Entry)
	require.Equal(t, "onnx", v1.Format)
	require.Len(t, v1.Files, 2)
	f, ok := v1.File("weights.bin")
	require.True(t, ok)
	require.Equal(t, int64(7), f.Size)
	require.Equal(t, formatHash(xxhash.Sum64String("weights")), f.XXHash64)
	require.False(t, v1.Created.IsZero())

	v2 := publishText(t, s, "ranker", "v2")
	require.Equal(t, int64(2), v2.Number, "numbers continue from the highest")
	v9, err := s.Publish(ctx, "ranker", []File{{Name: "m", Data: []byte("v9")}}, Meta{Number: 9, Lineage: Lineage{Parent: 2}})
	require.NoError(t, err)
	require.Equal(t, int64(9), v9.Number)
	require.Equal(t, int64(10), publishText(t, s, "ranker", "v10").Number)

	_, err = s.Publish(ctx, "ranker", []File{{Name: "m", Data: []byte("x")}}, Meta{Number: 2})
	require.ErrorIs(t, err, ErrExists)

	got, err := s.Get(ctx, "ranker", 1)
	require.NoError(t, err)
	require.Equal(t, v1.Signature, got.Signature)
	require.Equal(t, v1.Metrics, got.Metrics)
	require.Equal(t, v1.Lineage, got.Lineage)
	require.Equal(t, "search", got.Tags["team"])
	require.True(t, v1.Created.Equal(got.Created))

	vs, err := s.Versions(ctx, "ranker")
	require.NoError(t, err)
	var nums []int64
	for _, v := range vs {
		nums = append(nums, v.Number)
	}
	require.Equal(t, []int64{1, 2, 9, 10}, nums)

	publishText(t, s, "other", "v1")
	models, err := s.Models(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"other", "ranker"}, models)

	_, err = s.Get(ctx, "ranker", 5)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = s.Versions(ctx, "missing")
	require.ErrorIs(t, err, ErrNotFound)

	latest, err := s.Resolve(ctx, "ranker", Latest)
	require.NoError(t, err)
	require.Equal(t, int64(10), latest.Number)

	_, dir, err := s.Fetch(ctx, "ranker", 1)
	require.NoError(t, err)
	data, err := os.ReadFile(filepath.Join(dir, "weights.bin"))
	require.NoError(t, err)
	require.Equal(t, "weights", string(data))
}

func TestPublishBadInput(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	one := []File{{Name: "m", Data: []byte("x")}}
	tests := []struct {
		name  string
		model string
		files []File
		meta  Meta
		want  error
	}{
		{"traversal model", "../evil", one, Meta{}, ErrInvalidName},
		{"absolute model", "/tmp/evil", one, Meta{}, ErrInvalidName},
		{"nul in model", "a\x00b", one, Meta{}, ErrInvalidName},
		{"unicode model", "mod\u00e8le", one, Meta{}, ErrInvalidName},
		{"traversal file", "m", []File{{Name: "../../x", Data: []byte("x")}}, Meta{}, ErrInvalidName},
		{"separator file", "m", []File{{Name: "a/b", Data: []byte("x")}}, Meta{}, ErrInvalidName},
		{"no files", "m", nil, Meta{}, ErrBadInput},
		{"duplicate file", "m", []File{{Name: "a", Data: []byte("x")}, {Name: "a", Data: []byte("y")}}, Meta{}, ErrBadInput},
		{"manifest name", "m", []File{{Name: ManifestFile, Data: []byte("x")}}, Meta{}, ErrBadInput},
		{"data and path", "m", []File{{Name: "a", Data: []byte("x"), Path: "/etc/hostname"}}, Meta{}, ErrBadInput},
		{"neither data nor path", "m", []File{{Name: "a"}}, Meta{}, ErrBadInput},
		{"entry not a file", "m", one, Meta{Entry: "other"}, ErrBadInput},
		{"negative number", "m", one, Meta{Number: -3}, ErrBadInput},
		{"bad tag key", "m", one, Meta{Tags: map[string]string{"a b": "x"}}, ErrBadInput},
		{"negative parent", "m", one, Meta{Lineage: Lineage{Parent: -1}}, ErrBadInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Publish(ctx, tt.model, tt.files, tt.meta)
			require.ErrorIs(t, err, tt.want)
		})
	}
	_, err := s.Publish(ctx, "m", []File{{Name: "a", Path: "/does/not/exist"}}, Meta{})
	require.Error(t, err)

	models, err := s.Models(ctx)
	require.NoError(t, err)
	for _, m := range models {
		vs, err := s.Versions(ctx, m)
		require.NoError(t, err)
		require.Empty(t, vs, "a refused publish leaves no version behind")
	}
	entries, err := os.ReadDir(filepath.Dir(s.Root()))
	require.NoError(t, err)
	for _, e := range entries {
		require.NotEqual(t, "evil", e.Name(), "nothing written outside the root")
	}
}

func TestPublishCancelled(t *testing.T) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Publish(ctx, "m", []File{{Name: "a", Data: []byte("x")}}, Meta{})
	require.ErrorIs(t, err, context.Canceled)
	vs, err := s.Versions(context.Background(), "m")
	require.NoError(t, err)
	require.Empty(t, vs)
}

func TestChecksumCatchesTampering(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
	}{
		{"flipped byte", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.bin")
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			b[3] ^= 0x40
			require.NoError(t, os.WriteFile(p, b, 0o644))
		}},
		{"truncated", func(t *testing.T, dir string) {
			require.NoError(t, os.Truncate(filepath.Join(dir, "model.bin"), 4))
		}},
		{"missing", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, "model.bin")))
		}},
		{"extra file", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "evil.so"), []byte("x"), 0o644))
		}},
		{"replaced by directory", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.bin")
			require.NoError(t, os.Remove(p))
			require.NoError(t, os.Mkdir(p, 0o755))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			publishText(t, s, "m", "the model bytes")
			require.NoError(t, s.Verify(ctx, "m", 1))
			dir, err := s.Dir("m", 1)
			require.NoError(t, err)
			tt.damage(t, dir)
			_, _, err = s.Fetch(ctx, "m", 1)
			require.ErrorIs(t, err, ErrChecksum)
		})
	}
}

func TestBrokenManifestIsReportedNotFatal(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	publishN(t, s, "m", 1)
	publishN(t, s, "m", 2)
	dir, _ := s.Dir("m", 2)
	require.NoError(t, os.WriteFile(filepath.Join(dir, ManifestFile), []byte(`{"format_version":1,`), 0o644))
	// A version directory without a manifest, as a foreign copy might leave.
	require.NoError(t, os.Mkdir(filepath.Join(s.Root(), "m", "3"), 0o755))
	// Hidden staging leftovers and non-numeric names are not versions.
	require.NoError(t, os.Mkdir(filepath.Join(s.Root(), "m", ".stage-dead"), 0o755))
	require.NoError(t, os.Mkdir(filepath.Join(s.Root(), "m", "007"), 0o755))

	snap, err := s.Scan(ctx, "m")
	require.NoError(t, err)
	require.Len(t, snap.Versions, 1)
	require.Equal(t, int64(1), snap.Versions[0].Number)
	require.Len(t, snap.Broken, 2)
	require.ErrorIs(t, snap.Broken[0], ErrCorrupt)

	// The next publish clears staging leftovers and skips past broken numbers.
	v := publishText(t, s, "m", "v4")
	require.Equal(t, int64(4), v.Number)
	_, err = os.Stat(filepath.Join(s.Root(), "m", ".stage-dead"))
	require.True(t, os.IsNotExist(err))
}

func TestManifestOfAnotherVersionIsRefused(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	publishN(t, s, "m", 1)
	d1, _ := s.Dir("m", 1)
	// Copying version 1 to 5 by hand must not pass as version 5.
	d5 := filepath.Join(s.Root(), "m", "5")
	require.NoError(t, os.CopyFS(d5, os.DirFS(d1)))
	_, err := s.Get(ctx, "m", 5)
	require.ErrorIs(t, err, ErrCorrupt)
}

func TestAliasesAndRollback(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	for n := int64(1); n <= 3; n++ {
		publishN(t, s, "m", n)
	}
	require.NoError(t, s.SetAlias(ctx, "m", "production", 1))
	require.NoError(t, s.SetAlias(ctx, "m", "production", 2))
	require.NoError(t, s.SetAlias(ctx, "m", "production", 3))
	require.NoError(t, s.SetAlias(ctx, "m", "production", 3), "a no-op move is fine")
	require.NoError(t, s.SetAlias(ctx, "m", "canary", 3))

	aliases, err := s.Aliases(ctx, "m")
	require.NoError(t, err)
	require.Len(t, aliases, 2)
	require.Equal(t, "canary", aliases[0].Name)
	require.Equal(t, Alias{Name: "production", Version: 3, Previous: []int64{1, 2}, Updated: aliases[1].Updated}, aliases[1])

	v, err := s.Resolve(ctx, "m", "production")
	require.NoError(t, err)
	require.Equal(t, int64(3), v.Number)

	to, err := s.Rollback(ctx, "m", "production")
	require.NoError(t, err)
	require.Equal(t, int64(2), to)
	to, err = s.Rollback(ctx, "m", "production")
	require.NoError(t, err)
	require.Equal(t, int64(1), to)
	_, err = s.Rollback(ctx, "m", "production")
	require.ErrorIs(t, err, ErrNoHistory)
	_, err = s.Rollback(ctx, "m", "staging")
	require.ErrorIs(t, err, ErrNotFound)

	// Refusals.
	require.ErrorIs(t, s.SetAlias(ctx, "m", "production", 42), ErrNotFound)
	require.ErrorIs(t, s.SetAlias(ctx, "m", Latest, 1), ErrInvalidName)
	require.ErrorIs(t, s.SetAlias(ctx, "m", "../production", 1), ErrInvalidName)
	require.ErrorIs(t, s.SetAlias(ctx, "../m", "production", 1), ErrInvalidName)
	require.ErrorIs(t, s.Delete(ctx, "m", 1), ErrAliased)
	require.ErrorIs(t, s.Archive(ctx, "m", 3), ErrAliased)

	// Archived versions cannot be aliased and are skipped by rollback.
	require.NoError(t, s.SetAlias(ctx, "m", "production", 2))
	require.NoError(t, s.SetAlias(ctx, "m", "production", 3))
	require.NoError(t, s.DeleteAlias(ctx, "m", "canary"))
	require.NoError(t, s.Archive(ctx, "m", 2))
	require.ErrorIs(t, s.SetAlias(ctx, "m", "staging", 2), ErrArchived)
	to, err = s.Rollback(ctx, "m", "production")
	require.NoError(t, err)
	require.Equal(t, int64(1), to, "rollback skips the archived version 2")
	require.NoError(t, s.Unarchive(ctx, "m", 2))

	// Deleting a version drops it from alias histories.
	require.NoError(t, s.SetAlias(ctx, "m", "production", 2))
	require.NoError(t, s.SetAlias(ctx, "m", "production", 3))
	require.NoError(t, s.Delete(ctx, "m", 2))
	_, err = s.Get(ctx, "m", 2)
	require.ErrorIs(t, err, ErrNotFound)
	aliases, err = s.Aliases(ctx, "m")
	require.NoError(t, err)
	require.NotContains(t, aliases[0].Previous, int64(2))
	require.ErrorIs(t, s.Delete(ctx, "m", 2), ErrNotFound)
	require.ErrorIs(t, s.DeleteAlias(ctx, "m", "canary"), ErrNotFound)
}

func TestTagsAndArchive(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	publishN(t, s, "m", 1)
	publishN(t, s, "m", 2)
	require.NoError(t, s.Tag(ctx, "m", 1, "stage", "validated"))
	require.NoError(t, s.Tag(ctx, "m", 1, "stage", "shipped"))
	require.ErrorIs(t, s.Tag(ctx, "m", 1, "bad key", "x"), ErrInvalidName)
	require.ErrorIs(t, s.Tag(ctx, "m", 7, "k", "x"), ErrNotFound)
	v, err := s.Get(ctx, "m", 1)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"stage": "shipped"}, v.Tags)
	require.NoError(t, s.Verify(ctx, "m", 1), "tags do not disturb checksums")
	require.NoError(t, s.Untag(ctx, "m", 1, "stage"))
	require.NoError(t, s.Untag(ctx, "m", 1, "stage"))
	v, err = s.Get(ctx, "m", 1)
	require.NoError(t, err)
	require.Empty(t, v.Tags)

	require.NoError(t, s.Archive(ctx, "m", 2))
	latest, err := s.Resolve(ctx, "m", Latest)
	require.NoError(t, err)
	require.Equal(t, int64(1), latest.Number, "an archived version is not latest")
	require.NoError(t, s.Unarchive(ctx, "m", 2))
	latest, err = s.Resolve(ctx, "m", Latest)
	require.NoError(t, err)
	require.Equal(t, int64(2), latest.Number)
}

func TestAuditLogSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	clock := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	now := func() time.Time { clock = clock.Add(time.Second); return clock }
	s, err := Open(root, Options{Actor: "default-actor", Now: now})
	require.NoError(t, err)
	alice := WithActor(ctx, "alice")
	_, err = s.Publish(alice, "m", []File{{Name: "a", Data: []byte("v1")}}, Meta{})
	require.NoError(t, err)
	_, err = s.Publish(alice, "m", []File{{Name: "a", Data: []byte("v2")}}, Meta{})
	require.NoError(t, err)
	require.NoError(t, s.SetAlias(WithActor(ctx, "bob"), "m", "production", 1))
	require.NoError(t, s.SetAlias(WithActor(ctx, "bob"), "m", "production", 2))
	require.ErrorIs(t, s.Delete(ctx, "m", 2), ErrAliased)

	s2, err := Open(root, Options{Now: now})
	require.NoError(t, err)
	_, err = s2.Rollback(ctx, "m", "production")
	require.NoError(t, err)
	require.NoError(t, s2.Tag(WithActor(ctx, "carol"), "m", 2, "bad", "yes"))
	require.NoError(t, s2.Delete(WithActor(ctx, "carol"), "m", 2))

	evs, err := s2.Audit(ctx)
	require.NoError(t, err)
	type row struct {
		actor, model, alias, old, new string
		action                        Action
		version                       int64
	}
	var got []row
	for i, e := range evs {
		got = append(got, row{e.Actor, e.Model, e.Alias, e.Old, e.New, e.Action, e.Version})
		if i > 0 {
			require.True(t, e.Time.After(evs[i-1].Time), "records are in order")
		}
	}
	require.Equal(t, []row{
		{"alice", "m", "", "", "1", ActionPublish, 1},
		{"alice", "m", "", "", "2", ActionPublish, 2},
		{"bob", "m", "production", "", "1", ActionSetAlias, 1},
		{"bob", "m", "production", "1", "2", ActionSetAlias, 2},
		{"unknown", "m", "production", "2", "1", ActionRollback, 1},
		{"carol", "m", "", "", "yes", ActionTag, 2},
		{"carol", "m", "", "2", "", ActionDelete, 2},
	}, got, "refused changes are not recorded")
}

func TestAuditTornRecord(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	publishN(t, s, "m", 1)
	// A crash in the middle of an append leaves half a record.
	f, err := os.OpenFile(filepath.Join(s.Root(), AuditFile), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"time":"2026-11-27T08:00:00Z","actor":"x","act`)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	evs, err := s.Audit(ctx)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	// The next append starts on a fresh line and the torn one is skipped.
	publishN(t, s, "m", 2)
	evs, err = s.Audit(ctx)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	require.Equal(t, int64(2), evs[1].Version)

	// A damaged complete record is corruption, not a torn append.
	require.NoError(t, os.WriteFile(filepath.Join(s.Root(), AuditFile), []byte("{\"action\":1}\n"), 0o644))
	_, err = s.Audit(ctx)
	require.ErrorIs(t, err, ErrCorrupt)
}

func TestDecodeManifestRejects(t *testing.T) {
	good := `{"format_version":1,"model":"m","version":1,"format":"onnx","entry":"a","created":"2026-11-27T08:00:00Z",` +
		`"files":[{"name":"a","size":1,"xxhash64":"0123456789abcdef"}],"signature":{},"lineage":{}}`
	_, err := DecodeManifest([]byte(good))
	require.NoError(t, err)
	tests := map[string]string{
		"empty":          ``,
		"not json":       `hello`,
		"trailing data":  good + `{}`,
		"unknown field":  strings.Replace(good, `"format":"onnx"`, `"format":"onnx","evil":1`, 1),
		"newer format":   strings.Replace(good, `"format_version":1`, `"format_version":2`, 1),
		"zero format":    strings.Replace(good, `"format_version":1`, `"format_version":0`, 1),
		"bad model":      strings.Replace(good, `"model":"m"`, `"model":"../m"`, 1),
		"zero version":   strings.Replace(good, `"version":1`, `"version":0`, 1),
		"negative size":  strings.Replace(good, `"size":1`, `"size":-1`, 1),
		"short hash":     strings.Replace(good, `0123456789abcdef`, `0123`, 1),
		"upper hash":     strings.Replace(good, `0123456789abcdef`, `0123456789ABCDEF`, 1),
		"bad file name":  strings.Replace(good, `"name":"a"`, `"name":"../a"`, 1),
		"entry missing":  strings.Replace(good, `"entry":"a"`, `"entry":"b"`, 1),
		"no files":       strings.Replace(good, `[{"name":"a","size":1,"xxhash64":"0123456789abcdef"}]`, `[]`, 1),
		"duplicate file": strings.Replace(good, `{"name":"a","size":1,"xxhash64":"0123456789abcdef"}`, `{"name":"a","size":1,"xxhash64":"0123456789abcdef"},{"name":"a","size":1,"xxhash64":"0123456789abcdef"}`, 1),
		"huge version":   strings.Replace(good, `"version":1`, `"version":1e30`, 1),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeManifest([]byte(data))
			require.ErrorIs(t, err, ErrCorrupt)
		})
	}
}

func TestConcurrentWritersShareOneRoot(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	// Two Stores on one root stand for two writer processes: the file lock
	// makes them take turns.
	a, err := Open(root, Options{})
	require.NoError(t, err)
	b, err := Open(root, Options{})
	require.NoError(t, err)
	const each = 8
	errc := make(chan error, 2*each)
	nums := make(chan int64, 2*each)
	for _, s := range []*Store{a, b} {
		go func() {
			for range each {
				v, err := s.Publish(ctx, "m", []File{{Name: "m", Data: []byte("x")}}, Meta{})
				errc <- err
				nums <- v.Number
			}
		}()
	}
	seen := map[int64]bool{}
	for range 2 * each {
		require.NoError(t, <-errc)
		n := <-nums
		require.False(t, seen[n], "version %d handed out twice", n)
		seen[n] = true
	}
	vs, err := a.Versions(ctx, "m")
	require.NoError(t, err)
	require.Len(t, vs, 2*each)
	evs, err := b.Audit(ctx)
	require.NoError(t, err)
	require.Len(t, evs, 2*each)
}

func TestLeftoverManifestRewriteIsNotAnArtifact(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	publishN(t, s, "m", 1)
	dir, _ := s.Dir("m", 1)
	// A crash during a tag left the temp file of the manifest rewrite.
	leftover := filepath.Join(dir, ".manifest.json.tmp-0123456789abcdef")
	require.NoError(t, os.WriteFile(leftover, []byte("{"), 0o644))
	require.NoError(t, s.Verify(ctx, "m", 1))
	require.NoError(t, s.Tag(ctx, "m", 1, "k", "v"))
	_, err := os.Stat(leftover)
	require.True(t, os.IsNotExist(err), "the next rewrite removes it")
	// Other hidden files are not excused.
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".evil"), []byte("x"), 0o644))
	require.ErrorIs(t, s.Verify(ctx, "m", 1), ErrChecksum)
}

// cancellingReader cancels its context once n bytes have been read, so a
// test can end a copy mid-file without a timer.
type cancellingReader struct {
	r      io.ReadCloser
	n      int64
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	if c.n -= int64(k); c.n <= 0 {
		c.cancel()
	}
	return k, err
}

func (c *cancellingReader) Close() error { return c.r.Close() }

// requireNothingPublished checks that model has no version and its folder
// no staging leftovers.
func requireNothingPublished(t *testing.T, s *Store, model string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.Root(), model))
	if os.IsNotExist(err) {
		return
	}
	require.NoError(t, err)
	for _, e := range entries {
		require.Equal(t, AliasesFile, e.Name(), "a cancelled publish leaves nothing in the model folder")
	}
}

func TestPublishCancelledMidCopy(t *testing.T) {
	src := filepath.Join(t.TempDir(), "big.bin")
	require.NoError(t, os.WriteFile(src, make([]byte, 8*copyChunk), 0o644))
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		// after, when > 0, cancels the context once that many bytes of
		// the source were read.
		after int64
		want  error
	}{
		{"cancelled after the first chunk", func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}, copyChunk, context.Canceled},
		{"cancelled at the last byte", func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}, 8 * copyChunk, context.Canceled},
		{"expired deadline", func() (context.Context, context.CancelFunc) {
			return context.WithDeadline(context.Background(), time.Unix(0, 0))
		}, 0, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			ctx, cancel := tt.ctx()
			defer cancel()
			var read atomic.Int64
			orig := openSource
			t.Cleanup(func() { openSource = orig })
			openSource = func(path string) (io.ReadCloser, error) {
				f, err := orig(path)
				if err != nil || tt.after <= 0 {
					return f, err
				}
				return &countingReader{&cancellingReader{r: f, n: tt.after, cancel: cancel}, &read}, nil
			}
			_, err := s.Publish(ctx, "m", []File{{Name: "model.bin", Path: src}}, Meta{})
			require.ErrorIs(t, err, tt.want)
			if tt.after > 0 {
				require.Less(t, read.Load(), tt.after+copyChunk+1, "the copy stops within a chunk of the cancellation")
			}
			requireNothingPublished(t, s, "m")
			vs, err := s.Versions(context.Background(), "m")
			require.NoError(t, err)
			require.Empty(t, vs)
			// The store is usable afterwards, and numbering starts at 1.
			v, err := s.Publish(context.Background(), "m", []File{{Name: "model.bin", Path: src}}, Meta{})
			require.NoError(t, err)
			require.Equal(t, int64(1), v.Number)
		})
	}
}

type countingReader struct {
	r io.ReadCloser
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.Add(int64(k))
	return k, err
}

func (c *countingReader) Close() error { return c.r.Close() }

func TestPublishAndVerifyRefuseSymlinks(t *testing.T) {
	ctx := context.Background()
	outside := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(outside, []byte("the model bytes"), 0o644))

	t.Run("publish from a link", func(t *testing.T) {
		s := newStore(t)
		link := filepath.Join(t.TempDir(), "model.bin")
		require.NoError(t, os.Symlink(outside, link))
		_, err := s.Publish(ctx, "m", []File{{Name: "model.bin", Path: link}}, Meta{})
		require.ErrorIs(t, err, ErrBadInput)
		require.Contains(t, err.Error(), "symbolic link")
		requireNothingPublished(t, s, "m")
	})
	t.Run("publish from a folder", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Publish(ctx, "m", []File{{Name: "model.bin", Path: t.TempDir()}}, Meta{})
		require.ErrorIs(t, err, ErrBadInput)
		requireNothingPublished(t, s, "m")
	})
	t.Run("artifact replaced by a link", func(t *testing.T) {
		s := newStore(t)
		publishText(t, s, "m", "the model bytes") // same size and hash as outside
		dir, err := s.Dir("m", 1)
		require.NoError(t, err)
		p := filepath.Join(dir, "model.bin")
		require.NoError(t, os.Remove(p))
		require.NoError(t, os.Symlink(outside, p))
		_, _, err = s.Fetch(ctx, "m", 1)
		require.ErrorIs(t, err, ErrChecksum)
		require.Contains(t, err.Error(), "want a regular file")
	})
	t.Run("verifyFile on a link", func(t *testing.T) {
		link := filepath.Join(t.TempDir(), "model.bin")
		require.NoError(t, os.Symlink(outside, link))
		err := verifyFile(link, FileSum{Name: "model.bin", Size: 15, XXHash64: formatHash(xxhash.Sum64String("the model bytes"))})
		require.ErrorIs(t, err, ErrChecksum)
	})
}

func TestVersionNumbersAreBounded(t *testing.T) {
	ctx := context.Background()
	one := []File{{Name: "m", Data: []byte("x")}}
	tests := []struct {
		name   string
		number int64
		want   error
	}{
		{"max int64", math.MaxInt64, ErrBadInput},
		{"one above the bound", MaxVersion + 1, ErrBadInput},
		{"the bound", MaxVersion, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			_, err := s.Publish(ctx, "m", one, Meta{Number: tt.number})
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				require.Contains(t, err.Error(), "want 1..")
				requireNothingPublished(t, s, "m")
				v, err := s.Publish(ctx, "m", one, Meta{})
				require.NoError(t, err, "the refused number does not break the next publish")
				require.Equal(t, int64(1), v.Number)
				return
			}
			require.NoError(t, err)
			_, err = s.Publish(ctx, "m", one, Meta{})
			require.ErrorIs(t, err, ErrBadInput, "no number after the bound")
			vs, err := s.Versions(ctx, "m")
			require.NoError(t, err)
			require.Len(t, vs, 1)
		})
	}
	_, err := newStore(t).Dir("m", math.MaxInt64)
	require.ErrorIs(t, err, ErrBadInput)
}

func TestOpenSweepsLeftovers(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	publishN(t, s, "m", 1)
	require.NoError(t, s.SetAlias(ctx, "m", "production", 1))
	modelDir := filepath.Join(s.Root(), "m")
	vdir, err := s.Dir("m", 1)
	require.NoError(t, err)
	// A crash mid-write left these behind.
	leftovers := []string{
		filepath.Join(modelDir, "."+AliasesFile+".tmp-0123456789abcdef"),
		filepath.Join(vdir, "."+ManifestFile+".tmp-fedcba9876543210"),
		filepath.Join(modelDir, ".stage-0011223344556677", "model.bin"),
	}
	for _, p := range leftovers {
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte("{"), 0o644))
	}
	kept := filepath.Join(modelDir, "notes.txt") // not ours to remove
	require.NoError(t, os.WriteFile(kept, []byte("x"), 0o644))

	s2, err := Open(s.Root(), Options{})
	require.NoError(t, err)
	for _, p := range leftovers {
		_, err := os.Stat(p)
		require.True(t, os.IsNotExist(err), "%s swept", p)
	}
	_, err = os.Stat(filepath.Join(modelDir, ".stage-0011223344556677"))
	require.True(t, os.IsNotExist(err), "stage folder swept")
	_, err = os.Stat(kept)
	require.NoError(t, err)
	v, err := s2.Resolve(ctx, "m", "production")
	require.NoError(t, err)
	require.Equal(t, int64(1), v.Number)
	require.NoError(t, s2.Verify(ctx, "m", 1))
}

func TestCorruptAliasesKeepLatestResolvable(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	publishN(t, s, "m", 1)
	publishN(t, s, "m", 2)
	require.NoError(t, s.SetAlias(ctx, "m", "production", 1))
	require.NoError(t, os.WriteFile(filepath.Join(s.Root(), "m", AliasesFile), []byte("{not json"), 0o644))

	snap, err := s.Scan(ctx, "m")
	require.NoError(t, err)
	require.Len(t, snap.Versions, 2)
	require.ErrorIs(t, snap.AliasesErr, ErrCorrupt)
	require.Contains(t, snap.AliasesErr.Error(), AliasesFile)
	v, err := s.Resolve(ctx, "m", Latest)
	require.NoError(t, err)
	require.Equal(t, int64(2), v.Number)
	_, err = s.Resolve(ctx, "m", "production")
	require.ErrorIs(t, err, ErrCorrupt)
	_, err = s.Aliases(ctx, "m")
	require.ErrorIs(t, err, ErrCorrupt)
}
