package registry

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
)

// syncDir fsyncs a directory so that entries created, renamed or removed in
// it survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// tempName returns a hidden, unique name in dir for staging.
func tempName(dir, prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return filepath.Join(dir, fmt.Sprintf(".%s-%s", prefix, hex.EncodeToString(b[:])))
}

// writeFileAtomic replaces dir/name with data: written to a temp file,
// fsynced, renamed over the old file, and the directory fsynced. Readers see
// the old content or the new, never a mix.
func writeFileAtomic(dir, name string, data []byte) error {
	tmp := tempName(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}
