//go:build unix

package registry

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock on path, so that writers in
// several processes sharing one root take turns.
func lockFile(path string) (unlock func(), err error) {
	return flock(path, syscall.LOCK_EX)
}

// tryLockFile is lockFile that fails at once, rather than waiting, while
// another process holds the lock.
func tryLockFile(path string) (unlock func(), err error) {
	return flock(path, syscall.LOCK_EX|syscall.LOCK_NB)
}

func flock(path string, how int) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
