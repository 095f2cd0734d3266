//go:build !unix

package atomicfile

import "os"

// syncFolder does nothing where a folder cannot be fsynced: Windows refuses
// FlushFileBuffers on a folder opened for reading, so the durability of a
// rename is left to its file system there.
func syncFolder(*os.File) error { return nil }
