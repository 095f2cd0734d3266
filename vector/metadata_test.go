package vector

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// metadataValues holds every type Metadata accepts, at its edges.
var metadataValues = []struct {
	name  string
	value any
}{
	{"string", "héllo"},
	{"empty string", ""},
	{"bool", true},
	{"float64", math.Pi},
	{"float64 max", math.MaxFloat64},
	{"float64 integral", 2024.0},
	{"float32", float32(0.1)},
	{"int", -7},
	{"int min", math.MinInt},
	{"int8", int8(math.MinInt8)},
	{"int16", int16(math.MaxInt16)},
	{"int32", int32(math.MinInt32)},
	{"int64", int64(1<<53 + 1)},
	{"int64 max", int64(math.MaxInt64)},
	{"uint", uint(42)},
	{"uint8", uint8(math.MaxUint8)},
	{"uint16", uint16(math.MaxUint16)},
	{"uint32", uint32(math.MaxUint32)},
	{"uint64 max", uint64(math.MaxUint64)},
}

// TestMetadataKeepsItsTypes stores each accepted value type in an HNSW and
// a Flat index and reads it back, as stored and after Save and Load: it
// must come back with the same Go type and value, and Eq on it must match.
func TestMetadataKeepsItsTypes(t *testing.T) {
	ctx := context.Background()
	indexes := []struct {
		name string
		new  func() Index[string]
		load func(path string) (Index[string], error)
	}{
		{
			name: "hnsw",
			new:  func() Index[string] { return must(NewHNSW[string](Options{Dim: 2})) },
			load: func(p string) (Index[string], error) { return LoadHNSW[string](ctx, p, Options{}) },
		},
		{
			name: "flat",
			new:  func() Index[string] { return must(NewFlat[string](FlatOptions{Dim: 2})) },
			load: func(p string) (Index[string], error) { return LoadFlat[string](ctx, p) },
		},
	}
	for _, ix := range indexes {
		t.Run(ix.name, func(t *testing.T) {
			idx := ix.new()
			for i, c := range metadataValues {
				require.NoError(t, idx.Add(ctx, Item[string]{ID: c.name, Vector: []float32{float32(i), 1}, Metadata: Metadata{"v": c.value}}))
			}
			path := filepath.Join(t.TempDir(), "idx")
			require.NoError(t, idx.Save(ctx, path))
			loaded, err := ix.load(path)
			require.NoError(t, err)
			for _, stage := range []struct {
				name string
				idx  Index[string]
			}{{"stored", idx}, {"loaded", loaded}} {
				for i, c := range metadataValues {
					it, ok := stage.idx.Get(c.name)
					require.True(t, ok, "%s %s", stage.name, c.name)
					require.IsType(t, c.value, it.Metadata["v"], "%s %s", stage.name, c.name)
					require.Equal(t, c.value, it.Metadata["v"], "%s %s", stage.name, c.name)
					res, err := stage.idx.Search(ctx, []float32{float32(i), 1}, 1, SearchOptions{Filter: Eq("v", c.value)})
					require.NoError(t, err)
					require.NotEmpty(t, res, "%s %s: Eq finds its own value", stage.name, c.name)
					require.Equal(t, c.value, res[0].Metadata["v"], "%s %s", stage.name, c.name)
				}
			}
		})
	}
}

type namedInt int

// TestMetadataRefusesTypesItCannotKeep checks that Add refuses values
// whose type would not survive Save and Load, and changes nothing.
func TestMetadataRefusesTypesItCannotKeep(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name  string
		value any
	}{
		{"named integer type", namedInt(3)},
		{"complex", complex(1, 2)},
		{"bytes", []byte("x")},
		{"nil", nil},
		{"struct", struct{}{}},
		{"pointer", new(int)},
		{"map", map[string]any{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, idx := range []Index[string]{
				must(NewHNSW[string](Options{Dim: 2})),
				must(NewFlat[string](FlatOptions{Dim: 2})),
			} {
				err := idx.Add(ctx,
					Item[string]{ID: "ok", Vector: []float32{1, 0}},
					Item[string]{ID: "bad", Vector: []float32{0, 1}, Metadata: Metadata{"field": c.value}},
				)
				require.ErrorIs(t, err, ErrMetadata)
				require.ErrorContains(t, err, `"field"`)
				require.Equal(t, 0, idx.Len(), "nothing is inserted")
			}
		})
	}
}

// TestFiltersCompareNumbersByValue checks that Eq, In and Range match
// numbers across Go types, and integers exactly beyond 2^53.
func TestFiltersCompareNumbersByValue(t *testing.T) {
	cases := []struct {
		name   string
		stored any
		filter Filter
		want   bool
	}{
		{"int equals float64", 3, Eq("v", 3.0), true},
		{"uint8 equals int64", uint8(3), Eq("v", int64(3)), true},
		{"float32 equals float64 of it", float32(2.5), Eq("v", 2.5), true},
		{"int64 beyond 2^53 exact", int64(1<<53 + 1), Eq("v", int64(1<<53)), false},
		{"int64 beyond 2^53 equal", int64(1<<53 + 1), Eq("v", int64(1<<53+1)), true},
		{"uint64 max equals itself", uint64(math.MaxUint64), Eq("v", uint64(math.MaxUint64)), true},
		{"uint64 max is not int64 max", uint64(math.MaxUint64), Eq("v", int64(math.MaxInt64)), false},
		{"fraction does not equal int", 2.5, Eq("v", 2), false},
		{"string is not number", "3", Eq("v", 3), false},
		{"bool equals bool", true, Eq("v", true), true},
		{"in with mixed types", int16(7), In("v", "a", 7.0, uint(9)), true},
		{"in misses", int16(8), In("v", "a", 7.0, uint(9)), false},
		{"range on int32", int32(2023), Range("v", 2022, math.Inf(1)), true},
		{"range on uint64 below", uint64(5), Range("v", 6, 10), false},
		{"range on string", "7", Range("v", 0, 10), false},
		{"NaN equals nothing", math.NaN(), Eq("v", math.NaN()), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, c.filter.Match(Metadata{"v": c.stored}))
		})
	}
}

// TestLoadVersion1 checks that files of format version 1, whose metadata
// numbers are all float64, still load.
func TestLoadVersion1(t *testing.T) {
	ctx := context.Background()
	h := must(NewHNSW[string](Options{Dim: 2}))
	require.NoError(t, h.Add(ctx, Item[string]{ID: "a", Vector: []float32{1, 0}, Metadata: Metadata{"n": 3.0, "s": "x", "b": true}}))
	path := filepath.Join(t.TempDir(), "idx")
	require.NoError(t, h.Save(ctx, path))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, uint16(fileVersion), binary.LittleEndian.Uint16(b[4:]))
	b = resum(b, func(b []byte) { binary.LittleEndian.PutUint16(b[4:], 1) })
	require.NoError(t, os.WriteFile(path, b, 0o600))
	g, err := LoadHNSW[string](ctx, path, Options{})
	require.NoError(t, err)
	it, ok := g.Get("a")
	require.True(t, ok)
	require.Equal(t, Metadata{"n": 3.0, "s": "x", "b": true}, it.Metadata)
}
