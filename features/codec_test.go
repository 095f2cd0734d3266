package features

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRowCodecRoundTrip(t *testing.T) {
	m, clk := newTestStore(t, Options{}, userView())
	r := userRow("u1", clk.Now(), 12.5, -3)
	delete(r.Values, "age")
	b, err := m.MarshalRow("user", r)
	require.NoError(t, err)
	got, err := m.UnmarshalRow("user", "u1", b)
	require.NoError(t, err)
	require.Equal(t, r.EventTime.UnixNano(), got.EventTime.UnixNano())
	require.Len(t, got.Values, len(r.Values))
	for k, v := range r.Values {
		require.True(t, v.Equal(got.Values[k]), k)
	}
	bad := userRow("u1", clk.Now(), 1, 1)
	bad.Values["emb"] = Embedding([]float32{1})
	_, err = m.MarshalRow("user", bad)
	require.ErrorIs(t, err, ErrDimension)
	_, err = m.UnmarshalRow("user", "u1", b[:len(b)-1])
	require.ErrorIs(t, err, ErrSnapshot)
	_, err = m.UnmarshalRow("user", "u1", append(append([]byte(nil), b...), 0))
	require.ErrorIs(t, err, ErrSnapshot)
	_, err = m.MarshalRow("nope", r)
	require.ErrorIs(t, err, ErrUnknownView)
	v, err := m.View("user")
	require.NoError(t, err)
	require.Equal(t, "user_id", v.Entity)
}

// FuzzUnmarshalRow feeds arbitrary bytes (as read from a shared tier) to
// the row decoder: an error or a row that Put accepts, never a panic.
func FuzzUnmarshalRow(f *testing.F) {
	m := New(Options{})
	defer m.Close()
	if err := m.Register(userView()); err != nil {
		f.Fatal(err)
	}
	good, err := m.MarshalRow("user", userRow("u", time.Unix(100, 0), 1, 2))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:20])
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := m.UnmarshalRow("user", "u", data)
		if err != nil {
			require.ErrorIs(t, err, ErrSnapshot)
			return
		}
		require.NoError(t, m.Put(t.Context(), "user", r))
	})
}
