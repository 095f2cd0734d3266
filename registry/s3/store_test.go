package s3

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/serving/servingtest"
)

func TestPublishFetchRoundTrip(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	pub := e.open(t)
	src := filepath.Join(t.TempDir(), "labels.txt")
	require.NoError(t, os.WriteFile(src, []byte("cat\ndog\n"), 0o644))

	v, err := pub.Publish(registry.WithActor(ctx, "ci@42"), "ranker", []registry.File{
		{Name: "model.onnx", Data: mlpBytes(t)},
		{Name: "labels.txt", Path: src},
	}, registry.Meta{Lineage: registry.Lineage{CodeVersion: "abc"}, Tags: map[string]string{"team": "search"}})
	require.NoError(t, err)
	require.Equal(t, int64(1), v.Number)
	require.Equal(t, "model.onnx", v.Entry)
	require.Equal(t, "onnx", v.Format)
	require.Len(t, v.Files, 2)
	require.Equal(t, "x float32[-1 16]", v.Signature.Inputs[0].String(), "the signature is read from the ONNX entry")

	// A second Store, with its own cache, sees and fetches it.
	rd := e.open(t)
	models, err := rd.Models(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"ranker"}, models)
	got, err := rd.Get(ctx, "ranker", 1)
	require.NoError(t, err)
	require.True(t, got.Created.Equal(v.Created))
	require.Equal(t, v.Files, got.Files)
	require.Equal(t, "search", got.Tags["team"])

	fv, dir, err := rd.Fetch(ctx, "ranker", 1)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(rd.CacheDir(), "ranker", "1"), dir)
	require.Equal(t, v.Files, fv.Files)
	data, err := os.ReadFile(filepath.Join(dir, "labels.txt"))
	require.NoError(t, err)
	require.Equal(t, "cat\ndog\n", string(data))
	data, err = os.ReadFile(filepath.Join(dir, "model.onnx"))
	require.NoError(t, err)
	require.Equal(t, mlpBytes(t), data)
	mf, err := os.ReadFile(filepath.Join(dir, registry.ManifestFile))
	require.NoError(t, err)
	cached, err := registry.DecodeManifest(mf)
	require.NoError(t, err)
	require.Equal(t, int64(1), cached.Number)
	require.Equal(t, uint64(1), rd.Stats().Downloads)

	// Later fetches reuse the verified entry.
	_, dir2, err := rd.Fetch(ctx, "ranker", 1)
	require.NoError(t, err)
	require.Equal(t, dir, dir2)
	st := rd.Stats()
	require.Equal(t, uint64(1), st.Downloads)
	require.Equal(t, uint64(1), st.CacheHits)

	// The publisher keeps what it uploaded as its cache entry.
	_, pdir, err := pub.Fetch(ctx, "ranker", 1)
	require.NoError(t, err)
	require.DirExists(t, pdir)
	require.Zero(t, pub.Stats().Downloads, "the publisher does not download what it uploaded")

	require.NoError(t, rd.Verify(ctx, "ranker", 1))

	events, err := rd.Audit(ctx)
	require.NoError(t, err)
	require.Len(t, events, 1)
	require.Equal(t, registry.ActionPublish, events[0].Action)
	require.Equal(t, "ci@42", events[0].Actor)
	require.Equal(t, int64(1), events[0].Version)

	v2 := publishMLP(t, pub, "ranker", "two")
	require.Equal(t, int64(2), v2.Number)
	versions, err := rd.Versions(ctx, "ranker")
	require.NoError(t, err)
	require.Len(t, versions, 2)
	latest, err := rd.Resolve(ctx, "ranker", registry.Latest)
	require.NoError(t, err)
	require.Equal(t, int64(2), latest.Number)
}

func TestPublishRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.open(t)
	publishMLP(t, s, "m", "one")
	otherSig := registry.Signature{Inputs: []registry.TensorSpec{{Name: "z", ElementType: "float32", Shape: []int64{-1, 3}}}}
	linkDir := t.TempDir()
	link := filepath.Join(linkDir, "link.onnx")
	require.NoError(t, os.Symlink(servingtest.ModelPath("mlp"), link))
	tests := []struct {
		name  string
		model string
		files []registry.File
		meta  registry.Meta
		want  error
	}{
		{"bad model name", "../x", []registry.File{{Name: "a.onnx", Data: mlpBytes(t)}}, registry.Meta{}, registry.ErrInvalidName},
		{"no files", "m", nil, registry.Meta{}, registry.ErrBadInput},
		{"bad file name", "m", []registry.File{{Name: ".hidden", Data: []byte("x")}}, registry.Meta{}, registry.ErrInvalidName},
		{"duplicate names", "m", []registry.File{{Name: "a", Data: []byte("x")}, {Name: "a", Data: []byte("y")}}, registry.Meta{Format: "raw"}, registry.ErrBadInput},
		{"data and path", "m", []registry.File{{Name: "a", Data: []byte("x"), Path: "/etc/hostname"}}, registry.Meta{Format: "raw"}, registry.ErrBadInput},
		{"entry not a file", "m", []registry.File{{Name: "a", Data: []byte("x")}}, registry.Meta{Format: "raw", Entry: "b"}, registry.ErrBadInput},
		{"not onnx", "m", []registry.File{{Name: "a.onnx", Data: []byte("not a model")}}, registry.Meta{}, registry.ErrBadInput},
		{"signature disagrees", "m", []registry.File{{Name: "a.onnx", Data: mlpBytes(t)}}, registry.Meta{Signature: otherSig}, registry.ErrSignature},
		{"symbolic link", "m", []registry.File{{Name: "a.onnx", Path: link}}, registry.Meta{}, registry.ErrBadInput},
		{"number taken", "m", []registry.File{{Name: "a.onnx", Data: mlpBytes(t)}}, registry.Meta{Number: 1}, registry.ErrExists},
		{"number too large", "m", []registry.File{{Name: "a.onnx", Data: mlpBytes(t)}}, registry.Meta{Number: registry.MaxVersion + 1}, registry.ErrBadInput},
		{"negative number", "m", []registry.File{{Name: "a.onnx", Data: mlpBytes(t)}}, registry.Meta{Number: -1}, registry.ErrBadInput},
		{"NaN metric", "m", []registry.File{{Name: "a", Data: []byte("x")}}, registry.Meta{Format: "raw", Metrics: map[string]float64{"auc": nanValue()}}, registry.ErrBadInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Publish(ctx, tt.model, tt.files, tt.meta)
			require.ErrorIs(t, err, tt.want)
		})
	}
	// Nothing was published and no number was burned.
	versions, err := s.Versions(ctx, "m")
	require.NoError(t, err)
	require.Len(t, versions, 1)
	v := publishMLP(t, s, "m", "two")
	require.Equal(t, int64(2), v.Number)
	// An explicit free number works, and the next automatic one follows it.
	v, err = s.Publish(ctx, "m", []registry.File{{Name: "a.onnx", Data: mlpBytes(t)}}, registry.Meta{Number: 7})
	require.NoError(t, err)
	require.Equal(t, int64(7), v.Number)
	require.Equal(t, int64(8), publishMLP(t, s, "m", "three").Number)
}

func nanValue() float64 {
	var zero float64
	return zero / zero
}

func TestCancelledPublishLeavesNothing(t *testing.T) {
	e := newEnv(t)
	s := e.open(t)
	publishMLP(t, s, "m", "one")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cancelled between the upload of the first file and the second one:
	// the claim is taken and one object is uploaded.
	uploadHook = func(file string) {
		if file == "vocab.txt" {
			cancel()
		}
	}
	defer func() { uploadHook = nil }()
	_, err := s.Publish(ctx, "m", []registry.File{{Name: "model.onnx", Data: mlpBytes(t)}, {Name: "vocab.txt", Data: []byte("two")}}, registry.Meta{})
	require.ErrorIs(t, err, context.Canceled)
	uploadHook = nil

	bg := context.Background()
	objs, err := s.list(bg, s.modelPrefix("m"), true, "")
	require.NoError(t, err)
	for _, o := range objs {
		require.False(t, strings.HasPrefix(o.Key, s.versionPrefix("m", 2)), "left behind: %s", o.Key)
		require.NotEqual(t, s.claimKey("m", 2), o.Key, "the claim is released")
	}
	staging, err := os.ReadDir(filepath.Join(s.CacheDir(), stagingDir))
	require.NoError(t, err)
	require.Empty(t, staging, "no staging folder is left")
	require.Equal(t, int64(2), publishMLP(t, s, "m", "two").Number, "the number is free again")

	// Cancelled before anything was uploaded.
	done, cancel2 := context.WithCancel(bg)
	cancel2()
	_, err = s.Publish(done, "m", []registry.File{{Name: "a.onnx", Data: mlpBytes(t)}}, registry.Meta{})
	require.ErrorIs(t, err, context.Canceled)
}

// TestLayoutIsAFolderRegistry copies the bucket's files, as the S3 server
// keeps them, and opens the copy with registry.Open: the folder store reads
// the same versions, aliases and checksums.
func TestLayoutIsAFolderRegistry(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.open(t)
	publishMLP(t, s, "ranker", "one")
	publishMLP(t, s, "ranker", "two")
	require.NoError(t, s.SetAlias(ctx, "ranker", "production", 1))
	require.NoError(t, s.SetAlias(ctx, "ranker", "production", 2))
	require.NoError(t, s.Tag(ctx, "ranker", 2, "stage", "gold"))
	require.NoError(t, s.Archive(ctx, "ranker", 1))

	copyDir := t.TempDir()
	require.NoError(t, os.CopyFS(copyDir, os.DirFS(e.srv.ObjectPath(e.bucket, "reg"))))
	folder, err := registry.Open(copyDir, registry.Options{})
	require.NoError(t, err)
	want, err := s.Scan(ctx, "ranker")
	require.NoError(t, err)
	got, err := folder.Scan(ctx, "ranker")
	require.NoError(t, err)
	require.Empty(t, got.Broken)
	require.NoError(t, got.AliasesErr)
	require.Equal(t, want.Aliases, got.Aliases)
	require.Equal(t, len(want.Versions), len(got.Versions))
	for i := range want.Versions {
		require.True(t, want.Versions[i].Created.Equal(got.Versions[i].Created))
		want.Versions[i].Created = got.Versions[i].Created
		require.Equal(t, want.Versions[i], got.Versions[i])
	}
	require.NoError(t, folder.Verify(ctx, "ranker", 2), "the folder store verifies the uploaded checksums")
	models, err := folder.Models(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"ranker"}, models, "the store's own objects are hidden from a folder store")
}

func TestAliasesFollowFolderStoreSemantics(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.open(t, func(o *Options) { o.Actor = "ops" })
	for i := range 3 {
		publishMLP(t, s, "m", string(rune('a'+i)))
	}
	multi, err := os.ReadFile(servingtest.ModelPath("multi_io"))
	require.NoError(t, err)
	_, err = s.Publish(ctx, "m", []registry.File{{Name: "model.onnx", Data: multi}}, registry.Meta{})
	require.NoError(t, err)

	require.ErrorIs(t, s.SetAlias(ctx, "m", "latest", 1), registry.ErrInvalidName)
	require.ErrorIs(t, s.SetAlias(ctx, "m", "prod", 9), registry.ErrNotFound)
	require.NoError(t, s.SetAlias(ctx, "m", "prod", 1))
	require.NoError(t, s.SetAlias(ctx, "m", "prod", 1), "moving to where it is is a no-op")
	require.NoError(t, s.SetAlias(ctx, "m", "prod", 2))
	require.NoError(t, s.SetAlias(ctx, "m", "prod", 3))
	require.ErrorIs(t, s.SetAlias(ctx, "m", "prod", 4), registry.ErrIncompatible, "multi_io has other inputs than mlp")
	a, err := s.Resolve(ctx, "m", "prod")
	require.NoError(t, err)
	require.Equal(t, int64(3), a.Number, "a refused move leaves the alias where it was")
	require.ErrorIs(t, s.SetAlias(ctx, "m", "prod", 4, registry.MoveOptions{}, registry.MoveOptions{}), registry.ErrBadInput)

	require.ErrorIs(t, s.Delete(ctx, "m", 3), registry.ErrAliased)
	require.ErrorIs(t, s.Archive(ctx, "m", 3), registry.ErrAliased)
	require.NoError(t, s.Archive(ctx, "m", 2))
	require.ErrorIs(t, s.SetAlias(ctx, "m", "canary", 2), registry.ErrArchived)

	to, err := s.Rollback(ctx, "m", "prod")
	require.NoError(t, err)
	require.Equal(t, int64(1), to, "rollback skips the archived version 2")
	_, err = s.Rollback(ctx, "m", "prod")
	require.ErrorIs(t, err, registry.ErrNoHistory)
	_, err = s.Rollback(ctx, "m", "nope")
	require.ErrorIs(t, err, registry.ErrNotFound)

	require.NoError(t, s.Unarchive(ctx, "m", 2))
	require.NoError(t, s.Tag(ctx, "m", 2, "stage", "silver"))
	require.NoError(t, s.Untag(ctx, "m", 2, "stage"))
	require.NoError(t, s.Untag(ctx, "m", 2, "stage"), "removing a missing tag is not an error")
	require.ErrorIs(t, s.Tag(ctx, "m", 2, "bad key", "x"), registry.ErrInvalidName)
	require.ErrorIs(t, s.Tag(ctx, "m", 99, "k", "x"), registry.ErrNotFound)

	require.NoError(t, s.SetAlias(ctx, "m", "prod", 4, registry.MoveOptions{Force: true}))
	require.NoError(t, s.SetAlias(ctx, "m", "canary", 2))
	require.NoError(t, s.Delete(ctx, "m", 3))
	require.ErrorIs(t, s.Delete(ctx, "m", 3), registry.ErrNotFound)
	aliases, err := s.Aliases(ctx, "m")
	require.NoError(t, err)
	require.Len(t, aliases, 2)
	require.Equal(t, "canary", aliases[0].Name)
	require.Equal(t, "prod", aliases[1].Name)
	require.Equal(t, int64(4), aliases[1].Version)
	require.NotContains(t, aliases[1].Previous, int64(3), "a deleted version leaves alias histories")
	require.NoError(t, s.DeleteAlias(ctx, "m", "canary"))
	require.ErrorIs(t, s.DeleteAlias(ctx, "m", "canary"), registry.ErrNotFound)

	// The deleted version's objects and claim are gone; its number is free.
	objs, err := s.list(ctx, s.versionPrefix("m", 3), true, "")
	require.NoError(t, err)
	require.Empty(t, objs)
	_, _, err = s.statObject(ctx, s.claimKey("m", 3))
	require.ErrorIs(t, err, registry.ErrNotFound)
	v, err := s.Publish(ctx, "m", []registry.File{{Name: "model.onnx", Data: mlpBytes(t)}}, registry.Meta{Number: 3})
	require.NoError(t, err)
	require.Equal(t, int64(3), v.Number)

	events, err := s.Audit(ctx)
	require.NoError(t, err)
	var actions []string
	for _, e := range events {
		actions = append(actions, string(e.Action))
		require.Equal(t, "ops", e.Actor)
	}
	require.Equal(t, []string{
		"publish", "publish", "publish", "publish",
		"set_alias", "set_alias", "set_alias",
		"archive", "rollback", "unarchive", "tag", "untag",
		"set_alias", "set_alias", "delete", "delete_alias", "publish",
	}, actions, "every change, in order; refused ones are not recorded")
	since := events[8].Time
	later, err := s.AuditSince(ctx, since)
	require.NoError(t, err)
	require.Equal(t, events[8:], later)
}

func TestCorruptObjectIsDetected(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.open(t)
	v := publishMLP(t, s, "m", "vocabulary")
	path := e.objectPath(s, s.fileKey("m", 1, "vocab.txt"))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "vocabulary", string(data))

	flipped := []byte("vocabulerY")
	require.NoError(t, os.WriteFile(path, flipped, 0o644))
	require.ErrorIs(t, s.Verify(ctx, "m", 1), registry.ErrChecksum)
	fresh := e.open(t)
	_, _, err = fresh.Fetch(ctx, "m", 1)
	require.ErrorIs(t, err, registry.ErrChecksum)
	require.Contains(t, err.Error(), `"vocab.txt"`)
	require.NoDirExists(t, filepath.Join(fresh.CacheDir(), "m", "1"), "nothing damaged enters the cache")
	require.Equal(t, uint64(1), fresh.Stats().ChecksumFailures)

	require.NoError(t, os.WriteFile(path, []byte("vocab"), 0o644))
	_, _, err = fresh.Fetch(ctx, "m", 1)
	require.ErrorIs(t, err, registry.ErrChecksum, "truncated")

	require.NoError(t, os.WriteFile(path, []byte("vocabulary and more"), 0o644))
	_, _, err = fresh.Fetch(ctx, "m", 1)
	require.ErrorIs(t, err, registry.ErrChecksum, "grown")

	require.NoError(t, os.Remove(path))
	_, _, err = fresh.Fetch(ctx, "m", 1)
	require.ErrorIs(t, err, registry.ErrChecksum, "missing")

	require.NoError(t, os.WriteFile(path, []byte("vocabulary"), 0o644))
	_, dir, err := fresh.Fetch(ctx, "m", 1)
	require.NoError(t, err, "a repaired object fetches")
	require.FileExists(t, filepath.Join(dir, "vocab.txt"))
	require.Equal(t, v.Files, mustGet(t, fresh, "m", 1).Files)
}

func mustGet(t *testing.T, s *Store, model string, n int64) registry.Version {
	t.Helper()
	v, err := s.Get(context.Background(), model, n)
	require.NoError(t, err)
	return v
}

func TestCorruptCacheIsFetchedAgain(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.open(t)
	publishMLP(t, s, "m", "vocabulary")
	rd := e.open(t)
	_, dir, err := rd.Fetch(ctx, "m", 1)
	require.NoError(t, err)
	vocab := filepath.Join(dir, "vocab.txt")

	damage := []struct {
		name string
		do   func()
	}{
		{"same size, changed byte", func() { require.NoError(t, os.WriteFile(vocab, []byte("vocabulerY"), 0o644)) }},
		{"truncated", func() { require.NoError(t, os.WriteFile(vocab, []byte("voc"), 0o644)) }},
		{"missing", func() { require.NoError(t, os.Remove(vocab)) }},
		{"extra file", func() { require.NoError(t, os.WriteFile(filepath.Join(dir, "extra"), nil, 0o644)) }},
		{"manifest of another version", func() {
			mf := filepath.Join(dir, registry.ManifestFile)
			v, err := readCachedManifest(dir, "m", 1)
			require.NoError(t, err)
			v.Created = v.Created.Add(-time.Hour)
			data, err := encodeManifest(v)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(mf, data, 0o644))
		}},
	}
	for i, d := range damage {
		t.Run(d.name, func(t *testing.T) {
			d.do()
			_, dir2, err := rd.Fetch(ctx, "m", 1)
			require.NoError(t, err)
			require.Equal(t, dir, dir2)
			data, err := os.ReadFile(vocab)
			require.NoError(t, err)
			require.Equal(t, "vocabulary", string(data))
			require.NoFileExists(t, filepath.Join(dir, "extra"))
			require.Equal(t, uint64(i+1), rd.Stats().CorruptCache)
			require.Equal(t, uint64(i+2), rd.Stats().Downloads)
		})
	}

	// A new process hashes a cache entry in full before trusting it, even
	// when sizes match.
	require.NoError(t, os.WriteFile(vocab, []byte("vocabulerY"), 0o644))
	other := e.open(t, func(o *Options) { o.CacheDir = rd.CacheDir() })
	_, _, err = other.Fetch(ctx, "m", 1)
	require.NoError(t, err)
	require.Equal(t, uint64(1), other.Stats().CorruptCache)
	data, err := os.ReadFile(vocab)
	require.NoError(t, err)
	require.Equal(t, "vocabulary", string(data))
}

func TestOpenChecksItsOptions(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	opts := e.options(t)
	for name, edit := range map[string]func(*Options){
		"no endpoint": func(o *Options) { o.Endpoint = "" },
		"no bucket":   func(o *Options) { o.Bucket = "" },
		"bad prefix":  func(o *Options) { o.Prefix = "a/../b" },
	} {
		t.Run(name, func(t *testing.T) {
			o := opts
			edit(&o)
			_, err := Open(ctx, o)
			require.Error(t, err)
			require.True(t, errors.Is(err, registry.ErrBadInput) || errors.Is(err, registry.ErrInvalidName), "%v", err)
		})
	}
	o := opts
	o.Bucket = "no-such-bucket"
	_, err := Open(ctx, o)
	require.ErrorIs(t, err, registry.ErrNotFound)
	require.Contains(t, err.Error(), "no-such-bucket")
	o = opts
	o.SecretKey = "wrong"
	_, err = Open(ctx, o)
	require.Error(t, err, "wrong credentials are refused")
	require.NotErrorIs(t, err, ErrUnavailable)
}

func TestClosedStoreRefusesCalls(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.open(t)
	publishMLP(t, s, "m", "x")
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	_, err := s.Scan(ctx, "m")
	require.ErrorIs(t, err, ErrClosed)
	_, _, err = s.Fetch(ctx, "m", 1)
	require.ErrorIs(t, err, ErrClosed)
	_, err = s.Publish(ctx, "m", []registry.File{{Name: "a.onnx", Data: mlpBytes(t)}}, registry.Meta{})
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, s.SetAlias(ctx, "m", "prod", 1), ErrClosed)
	_, err = s.Models(ctx)
	require.ErrorIs(t, err, ErrClosed)
	_, err = s.LatestSnapshot(ctx, "idx")
	require.ErrorIs(t, err, ErrClosed)
}

func TestScanIsCheapAndSeesChanges(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	w := e.open(t)
	for i := range 5 {
		publishMLP(t, w, "m", strings.Repeat("v", i+1))
	}
	require.NoError(t, w.SetAlias(ctx, "m", "prod", 5))
	rd := e.open(t)
	snap, err := rd.Scan(ctx, "m")
	require.NoError(t, err)
	require.Len(t, snap.Versions, 5)

	before := rd.Stats()
	snap2, err := rd.Scan(ctx, "m")
	require.NoError(t, err)
	require.Equal(t, snap, snap2)
	after := rd.Stats()
	require.Equal(t, uint64(2), after.Requests-before.Requests, "an unchanged model costs a HEAD and a conditional GET")
	require.Zero(t, after.Lists-before.Lists)
	require.Equal(t, uint64(1), after.NotModified-before.NotModified)
	require.Equal(t, uint64(1), after.CachedScans-before.CachedScans)

	// An alias move by another Store is seen by the next Scan, without a
	// listing.
	require.NoError(t, w.SetAlias(ctx, "m", "prod", 4))
	before = rd.Stats()
	snap, err = rd.Scan(ctx, "m")
	require.NoError(t, err)
	require.Equal(t, int64(4), snap.Aliases[0].Version)
	require.Zero(t, rd.Stats().Lists-before.Lists)

	// A publish, a tag and a delete by another Store move the marker: one
	// listing, and only the changed manifest is read.
	publishMLP(t, w, "m", "six")
	require.NoError(t, w.Tag(ctx, "m", 2, "k", "v"))
	require.NoError(t, w.Delete(ctx, "m", 1))
	before = rd.Stats()
	snap, err = rd.Scan(ctx, "m")
	require.NoError(t, err)
	after = rd.Stats()
	require.Equal(t, uint64(1), after.Lists-before.Lists)
	var numbers []int64
	for _, v := range snap.Versions {
		numbers = append(numbers, v.Number)
	}
	require.Equal(t, []int64{2, 3, 4, 5, 6}, numbers)
	require.Equal(t, "v", snap.Versions[0].Tags["k"])
	// marker HEAD + LIST + 2 manifests (new 6, retagged 2) + aliases GET
	require.Equal(t, uint64(5), after.Requests-before.Requests)

	_, err = rd.Scan(ctx, "absent")
	require.ErrorIs(t, err, registry.ErrNotFound)
	_, err = rd.Scan(ctx, "../m")
	require.ErrorIs(t, err, registry.ErrInvalidName)
}

// TestRelistBound: a writer that died between committing a version and
// moving the marker leaves readers with a cached listing; they see the
// version once RelistInterval has passed.
func TestRelistBound(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	w := e.open(t)
	publishMLP(t, w, "m", "one")
	var now time.Time = time.Now()
	clock := func() time.Time { return now }
	rd := e.open(t, func(o *Options) { o.Now = clock; o.RelistInterval = time.Minute })
	snap, err := rd.Scan(ctx, "m")
	require.NoError(t, err)
	require.Len(t, snap.Versions, 1)

	// Commit version 2 by hand, as a writer that dies right after.
	v := mustGet(t, w, "m", 1)
	v.Number = 2
	mf, err := encodeManifest(v)
	require.NoError(t, err)
	for _, f := range v.Files {
		data, err := os.ReadFile(e.objectPath(w, w.fileKey("m", 1, f.Name)))
		require.NoError(t, err)
		_, err = w.putObject(ctx, w.fileKey("m", 2, f.Name), data, putCond{})
		require.NoError(t, err)
	}
	_, err = w.putObject(ctx, w.manifestKey("m", 2), mf, putCond{create: true})
	require.NoError(t, err)

	snap, err = rd.Scan(ctx, "m")
	require.NoError(t, err)
	require.Len(t, snap.Versions, 1, "within RelistInterval the cached listing stands")
	now = now.Add(time.Minute)
	snap, err = rd.Scan(ctx, "m")
	require.NoError(t, err)
	require.Len(t, snap.Versions, 2, "after it, the model is listed again")
	// A publisher skips the version that has no claim.
	require.Equal(t, int64(3), publishMLP(t, w, "m", "three").Number)
}

func TestDamagedMetadataIsReported(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.open(t)
	publishMLP(t, s, "m", "one")
	publishMLP(t, s, "m", "two")
	require.NoError(t, s.SetAlias(ctx, "m", "prod", 1))
	require.NoError(t, os.WriteFile(e.objectPath(s, s.manifestKey("m", 2)), []byte(`{"format_version": 1, "bogus": true}`), 0o644))
	require.NoError(t, os.WriteFile(e.objectPath(s, s.aliasesKey("m")), []byte(`{"format_version": 9}`), 0o644))
	rd := e.open(t)
	snap, err := rd.Scan(ctx, "m")
	require.NoError(t, err)
	require.Len(t, snap.Versions, 1)
	require.Len(t, snap.Broken, 1)
	require.ErrorIs(t, snap.Broken[0], registry.ErrCorrupt)
	require.ErrorIs(t, snap.AliasesErr, registry.ErrCorrupt)
	require.ErrorIs(t, rd.SetAlias(ctx, "m", "prod", 1), registry.ErrCorrupt, "a damaged alias table is not overwritten")
	_, err = rd.Get(ctx, "m", 2)
	require.ErrorIs(t, err, registry.ErrCorrupt)
	latest, err := rd.Resolve(ctx, "m", registry.Latest)
	require.NoError(t, err, "latest resolves with a damaged alias table")
	require.Equal(t, int64(1), latest.Number)
}

func TestCheckConditionalWrites(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.open(t)
	require.NoError(t, s.CheckConditionalWrites(ctx))
	objs, err := s.list(ctx, s.prefix, true, "")
	require.NoError(t, err)
	require.Empty(t, objs, "the probe is removed")
	e.srv.Kill()
	require.ErrorIs(t, s.CheckConditionalWrites(ctx), ErrUnavailable)
}

func TestPutIdempotentRecognisesItsOwnWrite(t *testing.T) {
	ctx := context.Background()
	s := newEnv(t).open(t)
	require.NoError(t, s.putIdempotent(ctx, "k", []byte("mine")))
	require.NoError(t, s.putIdempotent(ctx, "k", []byte("mine")), "a retried create of the same bytes succeeded before")
	require.ErrorIs(t, s.putIdempotent(ctx, "k", []byte("theirs")), errPrecondition)
	require.ErrorIs(t, s.putIdempotent(ctx, "k", []byte("mine, longer")), errPrecondition)
}

func TestConcurrentFetchesDownloadOnce(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	publishMLP(t, e.open(t), "m", "x")
	rd := e.open(t)
	type result struct {
		dir string
		err error
	}
	results := make(chan result, 8)
	for range 8 {
		go func() {
			_, dir, err := rd.Fetch(ctx, "m", 1)
			results <- result{dir, err}
		}()
	}
	for range 8 {
		r := <-results
		require.NoError(t, r.err)
		require.Equal(t, filepath.Join(rd.CacheDir(), "m", "1"), r.dir)
	}
	require.Equal(t, uint64(1), rd.Stats().Downloads)
	require.Equal(t, uint64(8), rd.Stats().Fetches)
}

// TestFolderRegistryCopiedIntoBucket: a folder registry copied into the
// bucket as it is (an `aws s3 sync` of its root) is served, and publishing
// continues after its versions.
func TestFolderRegistryCopiedIntoBucket(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	folder, err := registry.Open(root, registry.Options{})
	require.NoError(t, err)
	for range 3 {
		_, err := folder.Publish(ctx, "ranker", []registry.File{{Name: "model.onnx", Data: mlpBytes(t)}}, registry.Meta{})
		require.NoError(t, err)
	}
	require.NoError(t, folder.SetAlias(ctx, "ranker", "production", 2))

	e := newEnv(t)
	s := e.open(t)
	require.NoError(t, filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		_, err = s.putObject(ctx, s.prefix+filepath.ToSlash(rel), data, putCond{})
		return err
	}))

	models, err := s.Models(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"ranker"}, models)
	prod, err := s.Resolve(ctx, "ranker", "production")
	require.NoError(t, err)
	require.Equal(t, int64(2), prod.Number)
	_, _, err = s.Fetch(ctx, "ranker", 3)
	require.NoError(t, err)
	v, err := s.Publish(ctx, "ranker", []registry.File{{Name: "model.onnx", Data: mlpBytes(t)}}, registry.Meta{})
	require.NoError(t, err)
	require.Equal(t, int64(4), v.Number, "numbering continues after versions that have no claim")
	require.NoError(t, s.SetAlias(ctx, "ranker", "production", 4))
}

func TestCancelledContextEndsCalls(t *testing.T) {
	e := newEnv(t)
	s := e.open(t)
	publishMLP(t, s, "m", "x")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Scan(ctx, "m")
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.Models(ctx)
	require.ErrorIs(t, err, context.Canceled)
	_, _, err = s.Fetch(ctx, "m", 1)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, s.SetAlias(ctx, "m", "prod", 1), context.Canceled)
	require.ErrorIs(t, s.Tag(ctx, "m", 1, "k", "v"), context.Canceled)
	_, err = s.PutSnapshot(ctx, "idx", strings.NewReader("x"))
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.Audit(ctx)
	require.ErrorIs(t, err, context.Canceled)
	aliases, err := s.Aliases(context.Background(), "m")
	require.NoError(t, err)
	require.Empty(t, aliases, "nothing changed")
}

// TestGetDuringScan: Get caches manifests (changed by another Store's
// tags, so each Get reads anew) while a Scan of the same model lists it
// again; under the race detector this catches a listing that reads the
// cache outside its lock.
func TestGetDuringScan(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	w := e.open(t)
	for i := range 3 {
		publishMLP(t, w, "m", strings.Repeat("g", i+1))
	}
	rd := e.open(t, func(o *Options) { o.RelistInterval = time.Nanosecond })
	_, err := rd.Scan(ctx, "m")
	require.NoError(t, err)
	const rounds = 30
	errs := make(chan error, 2)
	go func() {
		for i := range rounds {
			n := int64(i%3 + 1)
			if err := w.Tag(ctx, "m", n, "round", strconv.Itoa(i)); err != nil {
				errs <- err
				return
			}
			if _, err := rd.Get(ctx, "m", n); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	go func() {
		for range rounds {
			if _, err := rd.Scan(ctx, "m"); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	for range 2 {
		require.NoError(t, <-errs)
	}
	snap, err := rd.Scan(ctx, "m")
	require.NoError(t, err)
	require.Len(t, snap.Versions, 3)
}
