//go:build linux

package vector

import (
	"os"
	"syscall"
)

// mapFile maps the first size bytes of f read-only and shared, so that
// the kernel's page cache backs them: pages read often stay resident
// (counted in the process's RSS but not in the Go heap), and the kernel
// evicts them under memory pressure instead of the process being killed.
// Writes made through f are visible in the mapping at once.
func mapFile(f *os.File, size int64) ([]byte, error) {
	if size == 0 {
		return nil, nil
	}
	return syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
}

func unmapFile(b []byte) error {
	if b == nil {
		return nil
	}
	return syscall.Munmap(b)
}
