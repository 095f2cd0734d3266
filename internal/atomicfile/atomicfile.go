package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// bufferSize is the write buffer of Write: large enough that multi-megabyte
// indexes and snapshots reach the kernel in few system calls.
const bufferSize = 1 << 20

// tempSuffix sits between the target's name and the random part.
const tempSuffix = ".tmp-"

// syncDir and random are replaced by tests, to observe the folder fsync
// and make it fail, and to make temporary names collide.
var (
	syncDir = SyncDir
	random  = rand.Uint64
)

// WriteFile replaces path with data (see Write). perm is the mode of a new
// file, before the umask; an existing file keeps its mode.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return write(path, perm, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// Write replaces path with what fn writes. fn's writes are buffered; an
// error from fn is returned unchanged, after the temporary file is removed,
// and the target is left as it was. perm is the mode of a new file, before
// the umask; an existing file keeps its mode. A symbolic link at path is
// replaced by the new file, not followed.
func Write(path string, perm fs.FileMode, fn func(w io.Writer) error) error {
	return write(path, perm, func(f *os.File) error {
		bw := bufio.NewWriterSize(f, bufferSize)
		if err := fn(bw); err != nil {
			return err
		}
		return bw.Flush()
	})
}

func write(path string, perm fs.FileMode, fill func(f *os.File) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// The old file's mode is read before writing so that a replaced file
	// keeps its permissions (os.Rename would otherwise install the temp
	// file's). Stat follows a link: the mode is the file it points at.
	keep, keepMode := fs.FileMode(0), false
	if st, serr := os.Stat(path); serr == nil && st.Mode().IsRegular() {
		keep, keepMode = st.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky), true
	}
	f, tmp, err := create(dir, base, perm)
	if err != nil {
		return err
	}
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				_ = f.Close()
			}
			_ = os.Remove(tmp)
		}
	}()
	if keepMode {
		if err = f.Chmod(keep); err != nil {
			return err
		}
	}
	if err = fill(f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	closed = true
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// The new content is in place; only its durability is left to report.
	if serr := syncDir(filepath.Clean(dir)); serr != nil {
		return fmt.Errorf("fsync folder of %s: %w", path, serr)
	}
	return nil
}

// create makes a new temporary file for base in dir. O_EXCL makes the
// name ours alone; a collision (a leftover of a crash, or a concurrent
// writer) is retried with a fresh name.
func create(dir, base string, perm fs.FileMode) (*os.File, string, error) {
	for range 100 {
		name := filepath.Join(dir, tempName(base, random()))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if err == nil {
			return f, name, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, "", err
		}
	}
	return nil, "", fmt.Errorf("create a temporary file for %s in %s: too many collisions", base, dir)
}

// tempName is the hidden name of a temporary file for base: hidden so that
// folder listings and globs of the owner skip it.
func tempName(base string, r uint64) string {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, 1+len(base)+len(tempSuffix)+16)
	b = append(b, '.')
	b = append(b, base...)
	b = append(b, tempSuffix...)
	for i := 60; i >= 0; i -= 4 {
		b = append(b, hex[r>>uint(i)&0xf])
	}
	return string(b)
}

// IsTemp reports whether name (a file name, not a path) is a temporary file
// that Write or WriteFile creates when replacing a file named base. Such a
// file outlives its writer only when the process dies before the rename.
func IsTemp(name, base string) bool {
	prefix := len(base) + 1 + len(tempSuffix)
	if len(name) != prefix+16 || name[0] != '.' || name[1:1+len(base)] != base || name[1+len(base):prefix] != tempSuffix {
		return false
	}
	for _, c := range name[prefix:] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// SyncDir fsyncs the folder dir, so that files created, renamed or removed
// in it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = syncFolder(d)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Sweep removes the temporary files that writes of path left behind when a
// crash came between creating and renaming them (see IsTemp), and returns
// how many it removed. Call it when opening what path holds, before any
// write to path can be in flight in this process: it would remove a
// concurrent write's temporary file too.
func Sweep(path string) (int, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if !e.Type().IsRegular() || !IsTemp(e.Name(), base) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, err
		}
		n++
	}
	return n, nil
}
