package checkfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"testing"
	"testing/iotest"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/require"
)

func TestAppendVerify(t *testing.T) {
	for _, body := range [][]byte{nil, []byte("x"), []byte("QVIX\x01\x00 some body")} {
		b := Append(bytes.Clone(body))
		require.Len(t, b, len(body)+TrailerSize)
		require.Equal(t, xxhash.Sum64(body), binary.LittleEndian.Uint64(b[len(body):]), "the trailer is xxhash64 of the body, little endian")
		got, err := Verify(b)
		require.NoError(t, err)
		require.Equal(t, string(body), string(got))

		for n := range b[:len(b)-1] {
			_, err := Verify(b[:n])
			require.Error(t, err, "truncated to %d", n)
		}
		for i := range b {
			bad := bytes.Clone(b)
			bad[i] ^= 0x10
			_, err := Verify(bad)
			var ce *ChecksumError
			require.ErrorAs(t, err, &ce, "byte %d flipped", i)
			require.NotEqual(t, ce.Stored, ce.Computed)
		}
	}
	_, err := Verify([]byte("short"))
	require.ErrorIs(t, err, ErrTruncated)
}

// frame writes body through a Writer in pieces and returns the framed bytes.
func frame(t *testing.T, body []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for p := body; len(p) > 0; {
		n := min(len(p), 7)
		k, err := w.Write(p[:n])
		require.NoError(t, err)
		require.Equal(t, n, k)
		p = p[n:]
	}
	require.NoError(t, w.WriteTrailer())
	return buf.Bytes()
}

func TestWriterMatchesAppend(t *testing.T) {
	body := []byte("a body longer than one xxhash block of thirty-two bytes")
	require.Equal(t, Append(bytes.Clone(body)), frame(t, body))
	require.Equal(t, Append(nil), frame(t, nil))
}

func TestWriterError(t *testing.T) {
	boom := errors.New("disk full")
	w := NewWriter(failWriter{boom})
	_, err := w.Write([]byte("x"))
	require.ErrorIs(t, err, boom)
	require.ErrorIs(t, w.WriteTrailer(), boom)
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestReaderKnownSize(t *testing.T) {
	body := []byte("\x05hello world, a streamed body")
	b := frame(t, body)
	for _, src := range []func() io.Reader{
		func() io.Reader { return bytes.NewReader(b) },
		func() io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		func() io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
	} {
		r := NewReader(src(), int64(len(body)))
		require.Equal(t, int64(len(body)), r.Remaining())
		n, err := r.ReadByte()
		require.NoError(t, err)
		require.Equal(t, byte(5), n)
		p := make([]byte, 5)
		_, err = io.ReadFull(r, p)
		require.NoError(t, err)
		require.Equal(t, "hello", string(p))
		require.Equal(t, int64(6), r.Offset())
		require.Equal(t, int64(len(body)-6), r.Remaining())
		require.ErrorIs(t, r.Verify(), ErrTrailing, "body left unread")
		rest, err := io.ReadAll(r)
		require.NoError(t, err)
		require.Equal(t, string(body[6:]), string(rest), "reads stop at the end of the body")
		_, err = r.ReadByte()
		require.ErrorIs(t, err, io.EOF)
		require.NoError(t, r.Verify())
	}
}

func TestReaderUnknownSize(t *testing.T) {
	body := []byte("a body of unknown length")
	b := frame(t, body)
	r := NewReader(bytes.NewReader(b), -5)
	require.Equal(t, int64(math.MaxInt64), r.Remaining())
	p := make([]byte, len(body))
	_, err := io.ReadFull(r, p)
	require.NoError(t, err)
	require.NoError(t, r.Verify())

	r = NewReader(bytes.NewReader(append(bytes.Clone(b), 0)), -1)
	_, err = io.ReadFull(r, p)
	require.NoError(t, err)
	require.ErrorIs(t, r.Verify(), ErrTrailing)

	r = NewReader(bytes.NewReader(b[:len(b)-3]), -1)
	_, err = io.ReadFull(r, p)
	require.NoError(t, err)
	require.ErrorIs(t, r.Verify(), ErrTruncated)
}

func TestReaderDamage(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 10)
	b := frame(t, body)
	for i := range b {
		bad := bytes.Clone(b)
		bad[i] ^= 1
		r := NewReader(bytes.NewReader(bad), int64(len(body)))
		_, err := io.ReadFull(r, make([]byte, len(body)))
		require.NoError(t, err)
		var ce *ChecksumError
		require.ErrorAs(t, r.Verify(), &ce, "byte %d", i)
	}
	// A body that ends early is an unexpected EOF to the decoder.
	r := NewReader(bytes.NewReader(b[:50]), int64(len(body)))
	_, err := io.ReadFull(r, make([]byte, len(body)))
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	// The source's own errors come through.
	boom := errors.New("i/o error")
	r = NewReader(iotest.ErrReader(boom), -1)
	_, err = r.ReadByte()
	require.ErrorIs(t, err, boom)
	require.ErrorIs(t, r.Verify(), boom)
}

// FuzzReader checks that the in-memory and the streaming checks agree on
// arbitrary input, for every split between body and trailer.
func FuzzReader(f *testing.F) {
	f.Add(Append([]byte("body")))
	f.Add([]byte("short"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		body, err := Verify(b)
		if err != nil {
			require.Nil(t, body)
		} else {
			require.Equal(t, b[:len(b)-TrailerSize], body)
		}
		if len(b) < TrailerSize {
			require.ErrorIs(t, err, ErrTruncated)
			return
		}
		size := len(b) - TrailerSize
		for _, known := range []bool{true, false} {
			r := NewReader(bytes.NewReader(b), -1)
			if known {
				r = NewReader(bytes.NewReader(b), int64(size))
			}
			got, rerr := io.ReadAll(io.LimitReader(r, int64(size)))
			require.NoError(t, rerr)
			require.Len(t, got, size)
			require.Equal(t, err == nil, r.Verify() == nil)
		}
	})
}
