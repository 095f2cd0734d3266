package s3

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/registry"
)

// TestConcurrentPublishers: two Stores, as two processes would be, each
// with several goroutines publishing at once. Every publish gets its own
// number, none is lost, and every version holds the files its publisher
// gave.
func TestConcurrentPublishers(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	stores := []*Store{e.open(t), e.open(t)}
	const goroutines, each = 4, 3
	type result struct {
		number int64
		tag    string
		err    error
	}
	results := make(chan result, len(stores)*goroutines*each)
	model := mlpBytes(t)
	var wg sync.WaitGroup
	for si, s := range stores {
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					tag := fmt.Sprintf("store%d-g%d-%d", si, g, i)
					v, err := s.Publish(ctx, "m", []registry.File{
						{Name: "model.onnx", Data: model},
						{Name: "vocab.txt", Data: []byte(tag)},
					}, registry.Meta{})
					results <- result{v.Number, tag, err}
				}
			})
		}
	}
	wg.Wait()
	close(results)
	byNumber := map[int64]string{}
	for r := range results {
		require.NoError(t, r.err)
		_, dup := byNumber[r.number]
		require.False(t, dup, "version %d given twice", r.number)
		byNumber[r.number] = r.tag
	}
	total := len(stores) * goroutines * each
	require.Len(t, byNumber, total)
	for n := int64(1); n <= int64(total); n++ {
		require.Contains(t, byNumber, n, "numbers are dense: no claim was lost")
	}
	rd := e.open(t)
	snap, err := rd.Scan(ctx, "m")
	require.NoError(t, err)
	require.Len(t, snap.Versions, total)
	require.Empty(t, snap.Broken)
	for _, v := range snap.Versions {
		_, dir, err := rd.Fetch(ctx, "m", v.Number)
		require.NoError(t, err)
		data, err := os.ReadFile(filepath.Join(dir, "vocab.txt"))
		require.NoError(t, err)
		require.Equal(t, byNumber[v.Number], string(data), "version %d holds its publisher's files", v.Number)
	}
	events, err := rd.Audit(ctx)
	require.NoError(t, err)
	require.Len(t, events, total)
}

// TestAliasCompareAndSwap forces the interleaving the CAS exists for: the
// alias table changes between a writer's read and its write. The write is
// refused, read again and redone, and both moves land.
func TestAliasCompareAndSwap(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	a, b := e.open(t), e.open(t)
	publishMLP(t, a, "m", "one")
	publishMLP(t, a, "m", "two")
	require.NoError(t, a.SetAlias(ctx, "m", "prod", 1))

	calls := 0
	err := a.updateAliases(ctx, "m", func(aliases []registry.Alias) ([]registry.Alias, bool, error) {
		calls++
		if calls == 1 {
			// Another process moves another alias after this read.
			require.NoError(t, b.SetAlias(ctx, "m", "canary", 2))
		}
		return append(aliases, registry.Alias{Name: "staging", Version: 1}), true, nil
	})
	require.NoError(t, err)
	require.Equal(t, 2, calls, "the stale write was refused and redone")
	require.Equal(t, uint64(1), a.Stats().Conflicts)
	aliases, err := b.Aliases(ctx, "m")
	require.NoError(t, err)
	var names []string
	for _, al := range aliases {
		names = append(names, al.Name)
	}
	require.Equal(t, []string{"canary", "prod", "staging"}, names, "no move was lost")

	// The same holds for a manifest rewrite racing another one.
	calls = 0
	_, err = a.updateManifest(ctx, "m", 1, func(v *registry.Version) (bool, error) {
		calls++
		if calls == 1 {
			require.NoError(t, b.Tag(ctx, "m", 1, "owner", "b"))
		}
		if v.Tags == nil {
			v.Tags = map[string]string{}
		}
		v.Tags["reviewed"] = "yes"
		return true, nil
	})
	require.NoError(t, err)
	require.Equal(t, 2, calls)
	v := mustGet(t, b, "m", 1)
	require.Equal(t, map[string]string{"owner": "b", "reviewed": "yes"}, v.Tags)
}

// TestConcurrentAliasMoves: goroutines of two Stores move aliases at once.
// Distinct aliases all land; moves of one alias are serialised, so its
// history holds one entry per move that the audit log recorded.
func TestConcurrentAliasMoves(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	stores := []*Store{e.open(t, func(o *Options) { o.AliasHistory = 1000 }), e.open(t, func(o *Options) { o.AliasHistory = 1000 })}
	for i := range 3 {
		publishMLP(t, stores[0], "m", fmt.Sprint(i))
	}
	const goroutines = 4
	errs := make(chan error, 2*goroutines*8)
	var wg sync.WaitGroup
	for si, s := range stores {
		for g := range goroutines {
			wg.Go(func() {
				errs <- s.SetAlias(ctx, "m", fmt.Sprintf("a%d-%d", si, g), int64(g%3+1))
				for i := range 6 {
					// Every move changes the alias: versions cycle 1, 2, 3.
					errs <- s.SetAlias(ctx, "m", "prod", int64((si*goroutines+g+i)%3+1))
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	rd := e.open(t)
	aliases, err := rd.Aliases(ctx, "m")
	require.NoError(t, err)
	byName := map[string]registry.Alias{}
	for _, a := range aliases {
		byName[a.Name] = a
	}
	for si := range stores {
		for g := range goroutines {
			a, ok := byName[fmt.Sprintf("a%d-%d", si, g)]
			require.True(t, ok, "alias a%d-%d was lost", si, g)
			require.Equal(t, int64(g%3+1), a.Version)
		}
	}
	events, err := rd.Audit(ctx)
	require.NoError(t, err)
	moves := 0
	for _, ev := range events {
		if ev.Action == registry.ActionSetAlias && ev.Alias == "prod" {
			moves++
		}
	}
	prod := byName["prod"]
	require.Equal(t, moves, len(prod.Previous)+1, "every recorded move of prod is in its history")
	for i := 1; i < len(prod.Previous); i++ {
		require.NotEqual(t, prod.Previous[i-1], prod.Previous[i], "each history entry is a real move")
	}
	t.Logf("prod moved %d times; %d conflicts retried", moves, stores[0].Stats().Conflicts+stores[1].Stats().Conflicts)
}

// TestDeleteRacesAliasMove: a Delete (or Archive) in one Store and a
// SetAlias to the same version in another, at once. Whatever the
// interleaving, the alias never ends on a deleted or archived version: at
// most one of the two succeeds.
func TestDeleteRacesAliasMove(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	a, b := e.open(t), e.open(t)
	base := publishMLP(t, a, "m", "base")
	removals, moves := 0, 0
	require.NoError(t, a.SetAlias(ctx, "m", "prod", base.Number))
	for round := range 8 {
		archive := round%2 == 1
		v := publishMLP(t, a, "m", fmt.Sprint(round))
		var delErr, setErr error
		var wg sync.WaitGroup
		wg.Go(func() {
			if archive {
				delErr = a.Archive(ctx, "m", v.Number)
			} else {
				delErr = a.Delete(ctx, "m", v.Number)
			}
		})
		wg.Go(func() { setErr = b.SetAlias(ctx, "m", "prod", v.Number) })
		wg.Wait()
		require.False(t, delErr == nil && setErr == nil, "round %d: both the removal and the move succeeded", round)
		cur, err := a.Resolve(ctx, "m", "prod")
		require.NoError(t, err, "round %d: prod points at a version that exists", round)
		require.False(t, cur.Archived, "round %d: prod points at an archived version", round)
		if setErr == nil {
			require.Equal(t, v.Number, cur.Number)
			moves++
		}
		if delErr == nil {
			require.NotEqual(t, v.Number, cur.Number)
			removals++
		}
		// Leave prod on the base version for the next round.
		require.NoError(t, a.SetAlias(ctx, "m", "prod", base.Number))
	}
	t.Logf("8 rounds: %d removals won, %d moves won, %d both refused", removals, moves, 8-removals-moves)
	// Nothing archived or deleted is aliased.
	snap, err := a.Scan(ctx, "m")
	require.NoError(t, err)
	for _, al := range snap.Aliases {
		i := slices.IndexFunc(snap.Versions, func(v registry.Version) bool { return v.Number == al.Version })
		require.GreaterOrEqual(t, i, 0)
		require.False(t, snap.Versions[i].Archived)
	}
}

// TestReaderNeverSeesHalfPublishedVersion: readers in other Stores, one
// with a cached listing and one cold, look at the bucket in the middle of a
// publish (its first artifact uploaded, the rest and the manifest not), and
// then poll while another Store publishes: no reader ever lists, gets,
// resolves or fetches a version before its manifest is committed, and every
// version a reader lists fetches whole, its checksums verified.
func TestReaderNeverSeesHalfPublishedVersion(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	w := e.open(t)
	publishMLP(t, w, "m", "one")
	warm := e.open(t)
	_, err := warm.Scan(ctx, "m")
	require.NoError(t, err)

	hooked := 0
	uploadHook = func(file string) {
		if file != "vocab.txt" {
			return
		}
		hooked++
		_, _, err := w.statObject(ctx, w.fileKey("m", 2, "model.onnx"))
		require.NoError(t, err, "in the middle of the publish: an artifact of version 2 is uploaded")
		for _, rd := range []*Store{warm, e.open(t)} {
			snap, err := rd.Scan(ctx, "m")
			require.NoError(t, err)
			require.Len(t, snap.Versions, 1, "version 2 is not listed before its commit")
			require.Empty(t, snap.Broken)
			_, err = rd.Get(ctx, "m", 2)
			require.ErrorIs(t, err, registry.ErrNotFound)
			_, _, err = rd.Fetch(ctx, "m", 2)
			require.ErrorIs(t, err, registry.ErrNotFound)
			latest, err := rd.Resolve(ctx, "m", registry.Latest)
			require.NoError(t, err)
			require.Equal(t, int64(1), latest.Number)
		}
	}
	v2 := publishMLP(t, w, "m", "two")
	uploadHook = nil
	require.Equal(t, 1, hooked)
	snap, err := warm.Scan(ctx, "m")
	require.NoError(t, err)
	require.Len(t, snap.Versions, 2, "committed: listed at once")
	require.Equal(t, v2.Created, snap.Versions[1].Created)

	// Free-running: a publisher in its own goroutine, readers polling.
	const more = 6
	model := mlpBytes(t)
	published := make(chan error, 1)
	go func() {
		for i := range more {
			if _, err := w.Publish(ctx, "m", []registry.File{
				{Name: "model.onnx", Data: model},
				{Name: "vocab.txt", Data: fmt.Appendf(nil, "tag-%d", i)},
			}, registry.Meta{}); err != nil {
				published <- err
				return
			}
		}
		published <- nil
	}()
	cold := e.open(t)
	verified := map[int64]bool{}
	check := func() {
		for _, rd := range []*Store{warm, cold} {
			snap, err := rd.Scan(ctx, "m")
			require.NoError(t, err)
			require.Empty(t, snap.Broken)
			for _, v := range snap.Versions {
				_, dir, err := rd.Fetch(ctx, "m", v.Number)
				require.NoError(t, err, "listed version %d fetches whole", v.Number)
				for _, f := range v.Files {
					st, err := os.Stat(filepath.Join(dir, f.Name))
					require.NoError(t, err)
					require.Equal(t, f.Size, st.Size())
				}
				verified[v.Number] = true
			}
		}
	}
	for done := false; !done; {
		select {
		case err := <-published:
			require.NoError(t, err)
			done = true
		default:
		}
		check() // one more pass after the last publish
	}
	require.Len(t, verified, 2+more)
}
