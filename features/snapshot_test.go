package features

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func snapshotStore(t testing.TB) (*Memory, *fakeClock) {
	t.Helper()
	clk := newFakeClock(t0)
	m := New(Options{Clock: clk.Now, Shards: 4})
	v := userView()
	v.Features = append([]Feature(nil), v.Features...)
	v.Features[3].Default = Embedding([]float32{9, 9, 9})
	v.Version = 3
	v.NaN = NaNNull
	if err := m.Register(v); err != nil {
		t.Fatal(err)
	}
	if err := m.Register(floatView("small", 10, 0)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 40 {
		r := userRow("u"+strconv.Itoa(i), clk.At(-time.Duration(i)*time.Minute), float32(i), int64(i)*1000)
		if i%4 == 0 {
			delete(r.Values, "country")
		}
		if err := m.Put(ctx, "user", r); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Put(ctx, "small", Row{Entity: "a-key-longer-than-sixteen-bytes", EventTime: clk.Now(), Values: map[string]Value{"x": Float32(5)}}); err != nil {
		t.Fatal(err)
	}
	return m, clk
}

func snapshotBytes(t testing.TB, m *Memory) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := m.WriteSnapshot(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSnapshotRoundTrip(t *testing.T) {
	m, clk := snapshotStore(t)
	defer m.Close()
	path := filepath.Join(t.TempDir(), "features.snap")
	ctx := context.Background()
	require.NoError(t, m.Save(ctx, path))
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file is left behind")

	got, err := Load(ctx, path, Options{Clock: clk.Now})
	require.NoError(t, err)
	defer got.Close()
	for _, v := range m.Views() {
		var found bool
		for _, w := range got.Views() {
			if w.Name == v.Name {
				found = true
				require.True(t, sameDefinition(v, w), v.Name)
			}
		}
		require.True(t, found, v.Name)
		n1, _ := m.Len(v.Name)
		n2, _ := got.Len(v.Name)
		require.Equal(t, n1, n2)
	}
	for i := range 40 {
		k := "u" + strconv.Itoa(i)
		a, errA := m.GetRow(ctx, "user", k)
		b, errB := got.GetRow(ctx, "user", k)
		require.Equal(t, errA == nil, errB == nil)
		require.Equal(t, a.EventTime, b.EventTime)
		require.Equal(t, a.Status, b.Status)
		for name, v := range a.Values {
			require.True(t, v.Equal(b.Values[name]), "%s %s: %v vs %v", k, name, v, b.Values[name])
		}
	}
	r, err := got.GetRow(ctx, "small", "a-key-longer-than-sixteen-bytes")
	require.NoError(t, err)
	require.Equal(t, float32(5), r.Values["x"].Float32())
}

func TestSnapshotRejectsDamage(t *testing.T) {
	m, _ := snapshotStore(t)
	defer m.Close()
	good := snapshotBytes(t, m)
	ctx := context.Background()
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x40
		return b
	}
	badVersion := bytes.Clone(good)
	binary.LittleEndian.PutUint32(badVersion[8:], 99)
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrSnapshot},
		{"bad magic", flip(0), ErrSnapshot},
		{"future version", badVersion, ErrVersion},
		{"truncated body", good[:len(good)/2], ErrSnapshot},
		{"truncated checksum", good[:len(good)-3], ErrSnapshot},
		{"flipped value byte", flip(len(good) - 13), ErrChecksum}, // the last row's float (views are written in name order)
		{"flipped checksum", flip(len(good) - 1), ErrChecksum},
		{"trailing bytes", append(bytes.Clone(good), 0), ErrSnapshot},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadSnapshot(ctx, bytes.NewReader(tc.data), Options{})
			require.ErrorIs(t, err, tc.want)
			require.Nil(t, got)
		})
	}
	path := filepath.Join(t.TempDir(), "s")
	require.NoError(t, os.WriteFile(path, good[:100], 0o600))
	_, err := Load(ctx, path, Options{})
	require.ErrorIs(t, err, ErrSnapshot)
	_, err = Load(ctx, filepath.Join(t.TempDir(), "missing"), Options{})
	require.ErrorIs(t, err, os.ErrNotExist)
	require.Error(t, m.Save(ctx, filepath.Join(t.TempDir(), "no", "such", "dir", "s")))
}

// FuzzReadSnapshot feeds arbitrary bytes to the decoder: it must return a
// store or an error wrapping a package sentinel, never panic.
func FuzzReadSnapshot(f *testing.F) {
	m, _ := snapshotStore(f)
	defer m.Close()
	good := snapshotBytes(f, m)
	f.Add(good)
	f.Add(good[:len(good)/3])
	f.Add([]byte(snapshotMagic))
	empty := New(Options{})
	f.Add(snapshotBytes(f, empty))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ReadSnapshot(context.Background(), bytes.NewReader(data), Options{Shards: 2})
		if err != nil {
			require.Nil(t, got)
			require.True(t, isSnapshotError(err), "unexpected error %v", err)
			return
		}
		got.Close()
	})
}

func isSnapshotError(err error) bool {
	for _, s := range []error{ErrSnapshot, ErrChecksum, ErrVersion} {
		if errorsIs(err, s) {
			return true
		}
	}
	return false
}

var errorsIs = errors.Is
