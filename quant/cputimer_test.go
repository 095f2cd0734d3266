package quant

import (
	"runtime"
	"testing"
	"time"
)

// cpuTimer adds CPU-time metrics to a benchmark. On a machine shared with
// other work, wall-clock ns/op counts the time the benchmark waited for a
// core; cpu-ns/op and cpu-MB/s count only the time it ran, which is what
// the kernel costs.
type cpuTimer struct {
	start time.Duration
}

func startCPU() cpuTimer {
	runtime.LockOSThread()
	return cpuTimer{start: threadCPU()}
}

func (c cpuTimer) report(b *testing.B, bytesPerOp int64) {
	used := threadCPU() - c.start
	runtime.UnlockOSThread()
	if used <= 0 || b.N == 0 {
		return
	}
	b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
	if bytesPerOp > 0 {
		b.ReportMetric(float64(bytesPerOp)*float64(b.N)/used.Seconds()/1e6, "cpu-MB/s")
	}
}
