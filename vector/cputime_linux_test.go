package vector

import (
	"syscall"
	"time"
)

// threadCPU returns the CPU time used by the calling OS thread, so that a
// benchmark locked to its thread can report qps that other processes on a
// shared machine do not distort.
func threadCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
