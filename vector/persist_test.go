package vector

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/require"
)

func TestSaveLoadHNSW(t *testing.T) {
	ctx := context.Background()
	data, queries := clustered(1500, 40, 16, 8, 3)
	h := must(NewHNSW[string](Options{Dim: 16, Metric: Cosine, EfConstruction: 64, CompactRatio: -1}))
	its := make([]Item[string], len(data))
	for i, v := range data {
		its[i] = Item[string]{ID: "doc-" + itoa(i), Vector: v, Metadata: Metadata{"i": i, "even": i%2 == 0, "tag": "t" + itoa(i%5)}}
	}
	require.NoError(t, h.Add(ctx, its...))
	_, err := h.Delete(ctx, "doc-3", "doc-7")
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "idx.qvix")
	require.NoError(t, h.Save(ctx, path))

	g, err := LoadHNSW[string](ctx, path, Options{})
	require.NoError(t, err)
	require.Equal(t, h.Len(), g.Len())
	require.Equal(t, Cosine, g.Metric())
	for _, q := range queries {
		a, err := h.Search(ctx, q, 10, SearchOptions{})
		require.NoError(t, err)
		b, err := g.Search(ctx, q, 10, SearchOptions{})
		require.NoError(t, err)
		require.Equal(t, a, b, "a loaded index answers exactly as the saved one")
	}
	it, ok := g.Get("doc-10")
	require.True(t, ok)
	require.Equal(t, Metadata{"i": 10, "even": true, "tag": "t0"}, it.Metadata)
	_, ok = g.Get("doc-3")
	require.False(t, ok)
	// the loaded index keeps working: compaction, inserts
	require.NoError(t, g.Compact(ctx))
	require.NoError(t, g.Add(ctx, Item[string]{ID: "doc-3", Vector: data[3]}))
	res, err := g.Search(ctx, data[3], 1, SearchOptions{})
	require.NoError(t, err)
	require.Equal(t, "doc-3", res[0].ID)

	_, err = LoadHNSW[uint64](ctx, path, Options{})
	require.ErrorIs(t, err, ErrKeyType)
	_, err = LoadFlat[string](ctx, path)
	require.ErrorIs(t, err, ErrCorrupt)
}

func TestSaveLoadFlat(t *testing.T) {
	ctx := context.Background()
	data, queries := clustered(300, 10, 8, 4, 4)
	f := must(NewFlat[uint64](FlatOptions{Dim: 8, Metric: InnerProduct}))
	require.NoError(t, f.Add(ctx, items(data)...))
	path := filepath.Join(t.TempDir(), "flat.qvix")
	require.NoError(t, f.Save(ctx, path))
	g, err := LoadFlat[uint64](ctx, path)
	require.NoError(t, err)
	for _, q := range queries {
		a, _ := f.Search(ctx, q, 5, SearchOptions{})
		b, _ := g.Search(ctx, q, 5, SearchOptions{})
		require.Equal(t, a, b)
	}
}

func TestLoadCorrupt(t *testing.T) {
	ctx := context.Background()
	data, _ := clustered(200, 1, 8, 4, 5)
	h := must(NewHNSW[uint64](Options{Dim: 8, EfConstruction: 32}))
	require.NoError(t, h.Add(ctx, items(data)...))
	dir := t.TempDir()
	path := filepath.Join(dir, "idx")
	require.NoError(t, h.Save(ctx, path))
	good, err := os.ReadFile(path)
	require.NoError(t, err)

	flip := append([]byte(nil), good...)
	flip[len(flip)/2] ^= 0x40
	badVersion := resum(append([]byte(nil), good...), func(b []byte) { binary.LittleEndian.PutUint16(b[4:], 99) })
	badLink := resum(append([]byte(nil), good...), func(b []byte) {
		// first used slot's first link: header (34 bytes), slots u32 + ep u64, flags, vector, count
		off := 34 + 12 + 2*200 + 4*8 + 4
		binary.LittleEndian.PutUint32(b[off:], 1<<30)
	})
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"truncated", good[:len(good)-20], ErrCorrupt},
		{"header only", good[:40], ErrCorrupt},
		{"bit flip", flip, ErrCorrupt},
		{"bad magic", append([]byte("NOPE"), good[4:]...), ErrCorrupt},
		{"future version", badVersion, ErrVersion},
		{"link out of range", badLink, ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name)
			require.NoError(t, os.WriteFile(p, c.b, 0o600))
			_, err := LoadHNSW[uint64](ctx, p, Options{})
			require.ErrorIs(t, err, c.want)
		})
	}
	_, err = LoadHNSW[uint64](ctx, filepath.Join(dir, "missing"), Options{})
	require.ErrorIs(t, err, os.ErrNotExist)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = LoadHNSW[uint64](cctx, path, Options{})
	require.ErrorIs(t, err, context.Canceled)
	_, err = LoadFlat[uint64](cctx, path)
	require.ErrorIs(t, err, context.Canceled)
}

// resum applies edit to b and rewrites its checksum, so the parser (not the
// checksum) must catch the damage.
func resum(b []byte, edit func([]byte)) []byte {
	edit(b)
	binary.LittleEndian.PutUint64(b[len(b)-8:], xxhash.Sum64(b[:len(b)-8]))
	return b
}

func FuzzLoad(f *testing.F) {
	ctx := context.Background()
	dir := f.TempDir()
	data, _ := clustered(40, 1, 4, 3, 6)
	h := must(NewHNSW[string](Options{Dim: 4, M: 4, EfConstruction: 16, CompactRatio: -1}))
	its := make([]Item[string], len(data))
	for i, v := range data {
		its[i] = Item[string]{ID: itoa(i), Vector: v, Metadata: Metadata{"n": i, "s": "x", "b": true}}
	}
	if err := h.Add(ctx, its...); err != nil {
		f.Fatal(err)
	}
	h.Delete(ctx, "1", "2")
	p := filepath.Join(dir, "h")
	if err := h.Save(ctx, p); err != nil {
		f.Fatal(err)
	}
	hb, _ := os.ReadFile(p)
	fl := must(NewFlat[string](FlatOptions{Dim: 4}))
	fl.Add(ctx, its[:5]...)
	fl.Save(ctx, p)
	fb, _ := os.ReadFile(p)
	f.Add(hb)
	f.Add(fb)
	f.Add(hb[:len(hb)/2])
	f.Add([]byte("QVIX"))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Through the checksum, and past it, so the fuzzer reaches the parser.
		if len(b) < 12 {
			_, err := verify(b)
			if err == nil {
				t.Fatal("a file shorter than magic and checksum verified")
			}
			return
		}
		for _, in := range [][]byte{b, resum(append([]byte(nil), b...), func([]byte) {})} {
			// the streaming loader that LoadHNSW uses: checksum at the end
			g, err := decodeHNSWFrom[string](ctx, newStreamDecoder(bytes.NewReader(in), len(in)-8), Options{})
			if err == nil {
				if _, verr := verify(in); verr != nil {
					t.Fatalf("stream decoder accepted a file that fails verification: %v", verr)
				}
				checkLoaded(t, g)
			}
			if body, err := verify(in); err == nil {
				if g, err := decodeHNSW[string](body, Options{}); err == nil {
					checkLoaded(t, g)
				}
				if g, err := decodeFlat[string](body); err == nil {
					_, err := g.Search(ctx, make([]float32, g.Dim()), 3, SearchOptions{})
					if err != nil && g.Metric() != Cosine {
						t.Fatalf("search on loaded flat index: %v", err)
					}
				}
			}
		}
	})
}

// checkLoaded exercises a decoded index: nothing may panic.
func checkLoaded(t *testing.T, g *HNSW[string]) {
	t.Helper()
	ctx := context.Background()
	q := make([]float32, g.Dim())
	q[0] = 1
	if _, err := g.Search(ctx, q, 3, SearchOptions{Ef: 8}); err != nil {
		t.Fatalf("search on loaded index: %v", err)
	}
	if err := g.Add(ctx, Item[string]{ID: "fuzz-new", Vector: q}); err != nil {
		t.Fatalf("add on loaded index: %v", err)
	}
	if err := g.Compact(ctx); err != nil {
		t.Fatalf("compact on loaded index: %v", err)
	}
}
