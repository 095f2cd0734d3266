package vector

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// craftedHNSW returns a file of an HNSW index with string keys, dimension
// dim and M=128 (the largest per-slot sizes) that claims n slots with the
// flags byte flag and a level of 0, followed by body and a trailer that is
// a valid checksum when valid is true.
func craftedHNSW(dim, n uint32, flag byte, body []byte, valid bool) []byte {
	b := []byte(fileMagic)
	b = binary.LittleEndian.AppendUint16(b, fileVersion)
	b = append(b, kindHNSW, keyTypeString, uint8(L2), 0)
	for _, v := range []uint32{dim, 128, 200, 64} {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	b = binary.LittleEndian.AppendUint64(b, 42)
	b = binary.LittleEndian.AppendUint32(b, n)
	b = binary.LittleEndian.AppendUint64(b, 0) // no entry point
	for range n {
		b = append(b, flag, 0)
	}
	b = append(b, body...)
	b = append(b, make([]byte, 8)...)
	if valid {
		return resum(b, func([]byte) {})
	}
	return b
}

// craftedFlat returns a Flat file with string keys and dimension dim that
// claims n items followed by body, with a valid checksum.
func craftedFlat(dim, n uint32, body []byte) []byte {
	b := []byte(fileMagic)
	b = binary.LittleEndian.AppendUint16(b, fileVersion)
	b = append(b, kindFlat, keyTypeString, uint8(L2), 0)
	b = binary.LittleEndian.AppendUint32(b, dim)
	b = append(b, make([]byte, 3*4+8)...)
	b = binary.LittleEndian.AppendUint32(b, n)
	b = append(b, body...)
	return resum(append(b, make([]byte, 8)...), func([]byte) {})
}

// TestLoadCraftedFileIsBoundedByItsSize loads small files whose counts
// claim far more than they hold. Each must be refused (or, for free slots
// that are legal, loaded) using memory of the order of the file, not of
// its claims: 2,000 free slots of dimension 65536 once cost 2 bytes each
// in the file and 256 KiB each in memory.
func TestLoadCraftedFileIsBoundedByItsSize(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cases := []struct {
		name string
		b    []byte
		load func(path string) error
		want error // nil: loads
	}{
		{
			name: "free slots of a wide index, bad checksum",
			b:    craftedHNSW(1<<16, 2000, 0, nil, false),
			load: func(p string) error { _, err := LoadHNSW[string](ctx, p, Options{}); return err },
			want: ErrCorrupt,
		},
		{
			name: "free slots of a wide index, valid checksum",
			b:    craftedHNSW(1<<16, 2000, 0, nil, true),
			load: func(p string) error {
				h, err := LoadHNSW[string](ctx, p, Options{})
				if err == nil && h.Len() != 0 {
					t.Errorf("loaded %d items from a file without any", h.Len())
				}
				return err
			},
		},
		{
			name: "used slots the file cannot hold",
			b:    craftedHNSW(1<<16, 2000, flagUsed, make([]byte, 4096), true),
			load: func(p string) error { _, err := LoadHNSW[string](ctx, p, Options{}); return err },
			want: ErrCorrupt,
		},
		{
			name: "millions of slots in a few KB",
			b:    craftedHNSW(1<<16, 3_000_000, 0, nil, true)[:6000],
			load: func(p string) error { _, err := LoadHNSW[string](ctx, p, Options{}); return err },
			want: ErrCorrupt,
		},
		{
			name: "millions of flat items in a few KB",
			b:    craftedFlat(1, 3_000_000, make([]byte, 6000)),
			load: func(p string) error { _, err := LoadFlat[string](ctx, p); return err },
			want: ErrCorrupt,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Less(t, len(c.b), 16<<10)
			p := filepath.Join(dir, "crafted")
			require.NoError(t, os.WriteFile(p, c.b, 0o600))
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := c.load(p)
			runtime.ReadMemStats(&after)
			if c.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, c.want)
			}
			// The loader's 1 MiB read buffer plus the order of the file.
			require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(4<<20), "bytes allocated")
		})
	}
}

// TestLoadDropsFreeSlots checks that an index saved after a compaction
// loads without the freed slots and answers as the saved one did.
func TestLoadDropsFreeSlots(t *testing.T) {
	ctx := context.Background()
	data, queries := clustered(2000, 30, 8, 6, 31)
	h := must(NewHNSW[uint64](Options{Dim: 8, EfConstruction: 64, CompactRatio: -1}))
	require.NoError(t, h.Add(ctx, items(data)...))
	ids := make([]uint64, 0, 1500)
	for i := 0; i < 2000; i += 4 {
		ids = append(ids, uint64(i), uint64(i+1), uint64(i+2))
	}
	_, err := h.Delete(ctx, ids...)
	require.NoError(t, err)
	require.NoError(t, h.Compact(ctx))
	path := filepath.Join(t.TempDir(), "idx")
	require.NoError(t, h.Save(ctx, path))
	g, err := LoadHNSW[uint64](ctx, path, Options{})
	require.NoError(t, err)
	require.Equal(t, h.Len(), g.Len())
	require.Equal(t, 0, g.Stats().FreeSlots)
	require.Less(t, g.Stats().Slots, h.Stats().Slots)
	for _, q := range queries {
		a, err := h.Search(ctx, q, 10, SearchOptions{})
		require.NoError(t, err)
		b, err := g.Search(ctx, q, 10, SearchOptions{})
		require.NoError(t, err)
		require.Equal(t, a, b)
	}
	// The renumbered index keeps working.
	require.NoError(t, g.Add(ctx, Item[uint64]{ID: 0, Vector: data[0]}))
	res, err := g.Search(ctx, data[0], 1, SearchOptions{})
	require.NoError(t, err)
	require.Equal(t, uint64(0), res[0].ID)
}

// TestLoadRemovesLeftoversOfInterruptedSaves checks that loading an index
// removes the temporary files a crash during Save left next to it, and
// only those.
func TestLoadRemovesLeftoversOfInterruptedSaves(t *testing.T) {
	ctx := context.Background()
	data, _ := clustered(100, 1, 4, 2, 41)
	cases := []struct {
		name string
		save func(path string) error
		load func(path string) error
	}{
		{
			name: "hnsw",
			save: func(p string) error {
				h := must(NewHNSW[uint64](Options{Dim: 4}))
				if err := h.Add(ctx, items(data)...); err != nil {
					return err
				}
				return h.Save(ctx, p)
			},
			load: func(p string) error { _, err := LoadHNSW[uint64](ctx, p, Options{}); return err },
		},
		{
			name: "flat",
			save: func(p string) error {
				f := must(NewFlat[uint64](FlatOptions{Dim: 4}))
				if err := f.Add(ctx, items(data)...); err != nil {
					return err
				}
				return f.Save(ctx, p)
			},
			load: func(p string) error { _, err := LoadFlat[uint64](ctx, p); return err },
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "idx.qvix")
			require.NoError(t, c.save(path))
			leftovers := []string{".idx.qvix.tmp-0123456789abcdef", ".idx.qvix.tmp-fedcba9876543210"}
			kept := []string{"other.qvix", ".other.qvix.tmp-0123456789abcdef", ".idx.qvix.tmp-not-hex"}
			for _, name := range append(append([]string(nil), leftovers...), kept...) {
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("partial"), 0o600))
			}
			require.NoError(t, c.load(path))
			for _, name := range leftovers {
				require.NoFileExists(t, filepath.Join(dir, name))
			}
			for _, name := range kept {
				require.FileExists(t, filepath.Join(dir, name))
			}
			require.FileExists(t, path)
		})
	}
}
