//go:build unix

package registry

import (
	"os"
	"syscall"
)

// fileID returns the inode number, which changes whenever a file is
// replaced by rename.
func fileID(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
