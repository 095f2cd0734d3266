package atomicfile

import (
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// entries lists dir's file names.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFileReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	require.NoError(t, WriteFile(path, []byte("first"), 0o600))
	require.NoError(t, WriteFile(path, []byte("second, longer"), 0o600))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "second, longer", string(got))
	require.NoError(t, WriteFile(path, nil, 0o600))
	got, err = os.ReadFile(path)
	require.NoError(t, err)
	require.Empty(t, got)
	require.Equal(t, []string{"f"}, entries(t, dir), "no temporary file is left")
}

func TestWriteStreams(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "big")
	chunk := []byte(strings.Repeat("0123456789abcdef", 4096))
	const chunks = 40 // past the write buffer, so it is flushed more than once
	require.NoError(t, Write(path, 0o600, func(w io.Writer) error {
		for range chunks {
			if _, err := w.Write(chunk); err != nil {
				return err
			}
		}
		return nil
	}))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, int64(chunks*len(chunk)), st.Size())
}

// TestReaderSeesOldOrNew reads while another goroutine replaces the file:
// every read sees one whole version.
func TestReaderSeesOldOrNew(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	a := []byte(strings.Repeat("a", 1<<16))
	b := []byte(strings.Repeat("b", 3<<15))
	require.NoError(t, WriteFile(path, a, 0o600))
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 50 {
			data := a
			if i%2 == 0 {
				data = b
			}
			if err := WriteFile(path, data, 0o600); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 200 {
		got, err := os.ReadFile(path)
		require.NoError(t, err)
		require.True(t, string(got) == string(a) || string(got) == string(b), "read a mix of %d bytes", len(got))
	}
	wg.Wait()
}

func TestModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix permission bits")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	require.NoError(t, WriteFile(path, []byte("x"), 0o600))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o600), st.Mode().Perm(), "a new file gets perm")

	require.NoError(t, os.Chmod(path, 0o640))
	require.NoError(t, WriteFile(path, []byte("y"), 0o600))
	st, err = os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o640), st.Mode().Perm(), "a replaced file keeps its mode")

	// The old mode is kept exactly, even bits the umask would clear.
	require.NoError(t, os.Chmod(path, 0o666))
	require.NoError(t, Write(path, 0o600, func(w io.Writer) error { _, err := w.Write([]byte("z")); return err }))
	st, err = os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o666), st.Mode().Perm())
}

func TestCallbackErrorRemovesTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	require.NoError(t, WriteFile(path, []byte("old"), 0o600))
	boom := errors.New("boom")
	err := Write(path, 0o600, func(w io.Writer) error {
		_, _ = w.Write([]byte("partial new content"))
		return boom
	})
	require.Same(t, boom, err, "the callback's error is returned unchanged")
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "old", string(got), "the target is untouched")
	require.Equal(t, []string{"f"}, entries(t, dir))

	// Also when there was no target: nothing at all is left.
	require.Same(t, boom, Write(filepath.Join(dir, "new"), 0o600, func(io.Writer) error { return boom }))
	require.Equal(t, []string{"f"}, entries(t, dir))
}

func TestRenameErrorRemovesTemp(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "d")
	require.NoError(t, os.Mkdir(target, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(target, "inside"), nil, 0o600))
	err := WriteFile(target, []byte("x"), 0o600)
	require.Error(t, err, "a file cannot replace a non-empty folder")
	require.Equal(t, []string{"d"}, entries(t, dir))
	st, err := os.Stat(target)
	require.NoError(t, err)
	require.True(t, st.IsDir())
}

func TestCreateError(t *testing.T) {
	err := WriteFile(filepath.Join(t.TempDir(), "no", "such", "folder", "f"), []byte("x"), 0o600)
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestFolderSync(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	var synced []string
	boom := errors.New("fsync failed")
	fail := false
	syncDir = func(d string) error {
		synced = append(synced, d)
		if fail {
			return boom
		}
		return SyncDir(d)
	}
	t.Cleanup(func() { syncDir = SyncDir })

	require.NoError(t, WriteFile(path, []byte("x"), 0o600))
	require.Equal(t, []string{dir}, synced, "the folder is fsynced after the rename")

	// A failed folder fsync is reported; the new content is already in place.
	fail = true
	err := WriteFile(path, []byte("y"), 0o600)
	require.ErrorIs(t, err, boom)
	got, rerr := os.ReadFile(path)
	require.NoError(t, rerr)
	require.Equal(t, "y", string(got))
	require.Equal(t, []string{"f"}, entries(t, dir))

	// A path without a folder syncs the working directory.
	fail = false
	synced = nil
	t.Chdir(dir)
	require.NoError(t, WriteFile("g", []byte("z"), 0o600))
	require.Equal(t, []string{"."}, synced)
}

func TestSyncDirMissing(t *testing.T) {
	require.ErrorIs(t, SyncDir(filepath.Join(t.TempDir(), "missing")), fs.ErrNotExist)
}

func TestTempNames(t *testing.T) {
	name := tempName("manifest.json", 0x0123456789abcdef)
	require.Equal(t, ".manifest.json.tmp-0123456789abcdef", name)
	require.True(t, IsTemp(name, "manifest.json"))
	require.True(t, IsTemp(tempName("x", 0), "x"))
	for _, bad := range []string{
		"manifest.json",
		".manifest.json.tmp-0123456789abcde",   // short
		".manifest.json.tmp-0123456789abcdef0", // long
		".manifest.json.tmp-0123456789ABCDEF",  // upper case
		".manifest.json.tmp-0123456789abcdeg",
		".aliases.json.tmp-0123456789abcdef", // another target
		"xmanifest.json.tmp-0123456789abcdef",
		".manifest.jsonxtmp-0123456789abcdef",
		"",
	} {
		require.False(t, IsTemp(bad, "manifest.json"), bad)
	}
}

// TestCollision makes the first temporary names taken: create retries with
// fresh ones, and leaves the files it collided with alone.
func TestCollision(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	for i := range 3 {
		require.NoError(t, os.WriteFile(filepath.Join(dir, tempName("f", uint64(i))), []byte("leftover"), 0o600))
	}
	var next uint64
	random = func() uint64 { next++; return next - 1 }
	t.Cleanup(func() { random = rand.Uint64 })
	require.NoError(t, WriteFile(path, []byte("x"), 0o600))
	require.Equal(t, uint64(4), next, "three names taken, the fourth used")
	require.Len(t, entries(t, dir), 4)

	random = func() uint64 { return 0 }
	err := WriteFile(path, []byte("y"), 0o600)
	require.ErrorContains(t, err, "too many collisions")
	got, rerr := os.ReadFile(path)
	require.NoError(t, rerr)
	require.Equal(t, "x", string(got))
}

// TestSweepRemovesOnlyLeftovers leaves behind what a crash between create
// and rename would, next to unrelated files, and checks that Sweep removes
// exactly the leftovers of the one path.
func TestSweepRemovesOnlyLeftovers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "index.bin")
	require.NoError(t, WriteFile(path, []byte("live"), 0o644))
	leftovers := []string{tempName("index.bin", 1), tempName("index.bin", 0xdeadbeef)}
	keep := []string{"index.bin", "other.bin", tempName("other.bin", 2), ".index.bin.tmp-short"}
	for _, name := range append(slices.Clone(leftovers), keep[1:]...) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600))
	}
	n, err := Sweep(path)
	require.NoError(t, err)
	require.Equal(t, len(leftovers), n)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.ElementsMatch(t, keep, names)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "live", string(got))
}
