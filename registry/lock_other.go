//go:build !unix

package registry

// lockFile is a no-op where flock is unavailable: writers in one process
// are still serialised by the Store's mutex, but several writer processes
// sharing a root must coordinate themselves.
func lockFile(string) (func(), error) { return func() {}, nil }

// tryLockFile is lockFile.
func tryLockFile(path string) (func(), error) { return lockFile(path) }
