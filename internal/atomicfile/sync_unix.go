//go:build unix

package atomicfile

import "os"

func syncFolder(d *os.File) error { return d.Sync() }
