package serving

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sim drives a group's search the way a batcher with one batch slot does:
// each batch holds the cap's rows, or all the rows there are when fewer
// (load), or whole requests of reqRows rows (a request larger than the cap
// runs alone), and costs cost(rows) of worker time.
type sim struct {
	g       *group
	cost    func(rows int) time.Duration
	load    int // rows queued when a batch is formed
	reqRows int
	rows    map[int]int // rows run, by batch size
}

func newSim(maxBatch int, cost func(int) time.Duration, load int) *sim {
	return &sim{g: newTestGroup(rungsFor(maxBatch, nil)), cost: cost, load: load, reqRows: 1, rows: map[int]int{}}
}

func newTestGroup(rungs []int) *group {
	info := Info{Inputs: []IOInfo{{Name: "x"}}, Version: 3}
	r := &request{tgt: &target{info: info}, ins: []Tensor{{Shape: []int64{1, 4}}}}
	return newGroup(1, r, rungs)
}

func (s *sim) run(batches int) {
	for range batches {
		rung, seq := s.g.pick()
		rows := s.reqRows
		for rows+s.reqRows <= min(s.g.rungs[rung], s.load) {
			rows += s.reqRows
		}
		s.rows[rows] += rows
		s.g.record(rung, seq, rows, s.cost(rows))
	}
}

// share returns the fraction of rows run in batches of size rows.
func (s *sim) share(rows int) float64 {
	total := 0
	for _, n := range s.rows {
		total += n
	}
	return float64(s.rows[rows]) / float64(total)
}

func linear(perRun, perRow time.Duration) func(int) time.Duration {
	return func(n int) time.Duration { return perRun + time.Duration(n)*perRow }
}

func square(unit time.Duration) func(int) time.Duration {
	return func(n int) time.Duration { return time.Duration(n*n) * unit }
}

func TestGroupClimbsWhereMergingWins(t *testing.T) {
	s := newSim(64, linear(time.Millisecond, 10*time.Microsecond), 1000)
	s.run(200)
	require.Equal(t, 64, s.g.rungs[s.g.best], "converged within 200 batches")
	s.rows = map[int]int{}
	s.run(5000)
	require.Equal(t, 64, s.g.rungs[s.g.best])
	require.Greater(t, s.share(64), 0.97, "trials of smaller caps cost little once the choice holds")
	snap := s.g.snapshot()
	require.Equal(t, "x[4]", snap.Shape)
	require.Equal(t, int64(3), snap.Version)
	require.Equal(t, 64, snap.Size)
	require.Len(t, snap.Sizes, 7)
	for i := 1; i < len(snap.Sizes); i++ {
		require.Greater(t, snap.Sizes[i].RowsPerSecond, snap.Sizes[i-1].RowsPerSecond, "size %d", snap.Sizes[i].Size)
	}
	// rows/s exact on the simulated clock: 64 rows in 1.64ms.
	require.InDelta(t, 64/1.64e-3, snap.Sizes[6].RowsPerSecond, 1)
}

func TestGroupStaysAtOneWhereMergingLoses(t *testing.T) {
	s := newSim(64, square(time.Millisecond), 1000)
	s.run(50)
	require.Equal(t, 1, s.g.rungs[s.g.best])
	s.run(5000)
	require.Equal(t, 1, s.g.rungs[s.g.best])
	require.Greater(t, s.share(1), 0.98, "merging is tried rarely once it lost")
	require.InDelta(t, 1000, s.g.caps[0].rate, 1e-6)
	require.InDelta(t, 500, s.g.caps[1].rate, 1e-6)
	require.Zero(t, s.g.caps[2].batches, "a cap next to a losing one is never tried")
}

func TestGroupFindsAnOptimumInside(t *testing.T) {
	// Per row: 1ms/n fixed plus n*20µs growing: best near 8 rows.
	cost := func(n int) time.Duration {
		return time.Millisecond/4 + time.Duration(n)*50*time.Microsecond + time.Duration(n*n)*4*time.Microsecond
	}
	s := newSim(64, cost, 1000)
	s.run(300)
	require.Equal(t, 8, s.g.rungs[s.g.best])
}

func TestGroupCapsAboveTheLoadDoNotWin(t *testing.T) {
	// 20 rows queued at most: caps 32 and 64 form the batches cap 16
	// forms... and cap 32 takes all 20, which serves more.
	s := newSim(64, linear(time.Millisecond, 10*time.Microsecond), 20)
	s.run(300)
	require.Equal(t, 32, s.g.rungs[s.g.best], "the smallest cap holding every queued row")
	trials := s.g.trials
	s.run(2000)
	require.Equal(t, 32, s.g.rungs[s.g.best])
	require.Less(t, s.g.trials-trials, uint64(40), "trials back off")
}

func TestGroupSkipsCapsBelowTheRequests(t *testing.T) {
	// Requests of 50 rows: every cap up to 64 runs them alone. The search
	// skips them instead of stopping on equal rates.
	s := newSim(256, linear(time.Millisecond, 10*time.Microsecond), 1000)
	s.reqRows = 50
	s.run(300)
	require.Equal(t, 256, s.g.rungs[s.g.best])
	require.Greater(t, s.share(250), 0.5)
}

func TestGroupReexploresWhenMeasurementsDrift(t *testing.T) {
	s := newSim(64, square(time.Millisecond), 1000)
	s.run(10000)
	require.Equal(t, 1, s.g.rungs[s.g.best])
	require.Equal(t, maxInterval, s.g.interval, "backed off")
	// The same model, now costing a fixed 20ms a run: merging wins by far.
	s.cost = linear(20*time.Millisecond, 10*time.Microsecond)
	s.run(400)
	require.Equal(t, 64, s.g.rungs[s.g.best], "found without waiting out the backed-off interval")
}

func TestGroupIgnoresLateReportsOfEndedTrials(t *testing.T) {
	g := newTestGroup(rungsFor(8, nil))
	for g.trial < 0 {
		rung, seq := g.pick()
		g.record(rung, seq, 1, time.Millisecond)
	}
	rung, oldSeq := g.pick()
	require.Equal(t, g.trial, rung)
	g.begin(g.trial) // a new trial starts before the old batch reports
	g.record(rung, oldSeq, 2, time.Microsecond)
	require.Zero(t, g.tw.seen, "a batch of the old trial is not counted in the new one")
}

func TestRungs(t *testing.T) {
	require.Equal(t, []int{1, 2, 4, 8, 16, 32, 64}, rungsFor(64, nil))
	require.Equal(t, []int{1, 2, 4, 8, 16, 32, 48}, rungsFor(48, nil))
	require.Equal(t, []int{1}, rungsFor(1, nil))
	require.Equal(t, []int{3, 6}, rungsFor(6, []int{3, 6, 12}))
}

func TestGroupQuietSpellsDoNotReachForLargeCaps(t *testing.T) {
	// Merging loses. The load comes in bursts with lone requests between:
	// a trial during a quiet spell must not climb to caps the next burst
	// would fill with batches of a size never run.
	s := newSim(64, square(time.Millisecond), 1)
	for range 20 {
		s.load = 1
		s.run(150)
		s.load = 64
		s.run(150)
	}
	require.Equal(t, 1, s.g.rungs[s.g.best])
	for i := 2; i < len(s.g.rungs); i++ {
		require.Zero(t, s.g.caps[i].batches, "cap %d never tried", s.g.rungs[i])
	}
	require.Greater(t, s.share(1), 0.97)
}

func TestGroupMergesMoreOnlyWhenTheSumAgrees(t *testing.T) {
	// Runs of 2 rows are fast once in a while and slow otherwise (a shape
	// the engine has to warm up again and again): their fastest batch
	// beats one row, their sum does not. Merging is not taken up.
	n := 0
	cost := func(rows int) time.Duration {
		if rows == 1 {
			return time.Millisecond
		}
		n++
		if n%4 == 0 {
			return time.Millisecond // 2 rows per ms: twice as fast
		}
		return 10 * time.Millisecond
	}
	s := newSim(64, cost, 1000)
	s.run(3000)
	require.Equal(t, 1, s.g.rungs[s.g.best])
	require.Positive(t, s.g.caps[1].batches, "merging was tried")
}
