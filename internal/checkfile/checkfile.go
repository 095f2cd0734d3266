package checkfile

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/cespare/xxhash/v2"
)

// TrailerSize is the length of the checksum trailer.
const TrailerSize = 8

var (
	// ErrTruncated reports input that ends inside the body or the trailer.
	ErrTruncated = errors.New("truncated")
	// ErrTrailing reports bytes after the trailer, or body bytes a decoder
	// left unread.
	ErrTrailing = errors.New("trailing bytes")
)

// ChecksumError reports a trailer that does not match the body: the data
// was damaged or cut short.
type ChecksumError struct {
	Stored, Computed uint64
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("checksum %016x, computed %016x (truncated or damaged)", e.Stored, e.Computed)
}

// Append returns body with its trailer appended.
func Append(body []byte) []byte {
	return binary.LittleEndian.AppendUint64(body, xxhash.Sum64(body))
}

// Verify checks the trailer at the end of b and returns the body before
// it (a sub-slice of b). Input shorter than the trailer is ErrTruncated; a
// mismatch is a *ChecksumError.
func Verify(b []byte) ([]byte, error) {
	if len(b) < TrailerSize {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the checksum", ErrTruncated, len(b))
	}
	body := b[:len(b)-TrailerSize]
	stored := binary.LittleEndian.Uint64(b[len(body):])
	if sum := xxhash.Sum64(body); sum != stored {
		return nil, &ChecksumError{Stored: stored, Computed: sum}
	}
	return body, nil
}

// Writer hashes the body written through it; WriteTrailer ends the body.
// It does not buffer.
type Writer struct {
	w io.Writer
	h xxhash.Digest
}

// NewWriter returns a Writer that writes the body to w.
func NewWriter(w io.Writer) *Writer {
	cw := &Writer{w: w}
	cw.h.Reset()
	return cw
}

// Write writes p to the underlying writer and hashes what was written.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	_, _ = w.h.Write(p[:n])
	return n, err
}

// WriteTrailer writes the checksum of everything written so far. Nothing
// may be written after it.
func (w *Writer) WriteTrailer() error {
	var t [TrailerSize]byte
	binary.LittleEndian.PutUint64(t[:], w.h.Sum64())
	_, err := w.w.Write(t[:])
	return err
}

// Reader reads a body, hashing it, and then checks the trailer (Verify).
// With a known body size it never reads past the body, so a decoder's
// over-read is an io.EOF rather than a read of the trailer.
type Reader struct {
	r    *bufio.Reader
	h    xxhash.Digest
	size int64 // body bytes; -1 when unknown
	off  int64
	one  [1]byte
}

// NewReader returns a Reader of a body of size bytes followed by its
// trailer; size < 0 means unknown, the body then ends where the decoder
// stops reading. r is wrapped in a bufio.Reader unless it is one.
func NewReader(r io.Reader, size int64) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(r)
	}
	if size < 0 {
		size = -1
	}
	cr := &Reader{r: br, size: size}
	cr.h.Reset()
	return cr
}

// Remaining returns how many body bytes are left to read, or
// math.MaxInt64 when the size is unknown. Decoders check counts against it
// before allocating for them.
func (r *Reader) Remaining() int64 {
	if r.size < 0 {
		return math.MaxInt64
	}
	return r.size - r.off
}

// Offset returns how many body bytes have been read.
func (r *Reader) Offset() int64 { return r.off }

// Read reads body bytes into p and hashes them; at the end of a body of
// known size it returns io.EOF.
func (r *Reader) Read(p []byte) (int, error) {
	if r.size >= 0 {
		left := r.size - r.off
		if left == 0 {
			return 0, io.EOF
		}
		if int64(len(p)) > left {
			p = p[:left]
		}
	}
	n, err := r.r.Read(p)
	_, _ = r.h.Write(p[:n])
	r.off += int64(n)
	return n, err
}

// ReadByte reads and hashes one body byte (io.ByteReader, for varints).
func (r *Reader) ReadByte() (byte, error) {
	if r.size >= 0 && r.off == r.size {
		return 0, io.EOF
	}
	c, err := r.r.ReadByte()
	if err != nil {
		return 0, err
	}
	r.one[0] = c
	_, _ = r.h.Write(r.one[:])
	r.off++
	return c, nil
}

// Verify checks that the body was read to its end (when its size is
// known), that the trailer follows and matches, and that nothing follows
// the trailer. It returns ErrTrailing, ErrTruncated or a *ChecksumError.
func (r *Reader) Verify() error {
	if left := r.Remaining(); r.size >= 0 && left != 0 {
		return fmt.Errorf("%w: %d body bytes not read", ErrTrailing, left)
	}
	var t [TrailerSize]byte
	if _, err := io.ReadFull(r.r, t[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: checksum missing", ErrTruncated)
		}
		return err
	}
	if stored, sum := binary.LittleEndian.Uint64(t[:]), r.h.Sum64(); stored != sum {
		return &ChecksumError{Stored: stored, Computed: sum}
	}
	if _, err := r.r.ReadByte(); err != io.EOF {
		if err != nil {
			return err
		}
		return fmt.Errorf("%w after the checksum", ErrTrailing)
	}
	return nil
}
