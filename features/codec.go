package features

import (
	"encoding/binary"
	"fmt"
	"time"
)

// rowCodecVersion prefixes every encoded row.
const rowCodecVersion = 1

// MarshalRow validates r against view exactly as Put does and returns its
// compact binary form (event time, null mask, values), for shared tiers
// such as Redis. The encoding depends on the view's definition: decode it
// with the same definition. As in Put, the zero EventTime is encoded as
// the store's current time and one outside CheckEventTime's range is
// ErrEventTime.
func (m *Memory) MarshalRow(view string, r Row) ([]byte, error) {
	vs, err := m.view(view)
	if err != nil {
		return nil, err
	}
	var e encoded
	if err := vs.s.encode(&r, &e); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 1+16+4*len(e.words))
	b = append(b, rowCodecVersion)
	ts := e.ts
	if e.now {
		ts = m.nowNanos()
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(ts))
	b = binary.LittleEndian.AppendUint64(b, e.present)
	for _, w := range e.words {
		b = binary.LittleEndian.AppendUint32(b, w)
	}
	for _, s := range e.strs {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b, nil
}

// UnmarshalRow decodes a MarshalRow encoding of view into a Row for
// entity. Malformed data is an error wrapping ErrSnapshot. The event time
// is read as Unix nanoseconds, so every encoding decodes to a time
// CheckEventTime accepts: nothing wraps.
func (m *Memory) UnmarshalRow(view, entity string, data []byte) (Row, error) {
	vs, err := m.view(view)
	if err != nil {
		return Row{}, err
	}
	s := vs.s
	bad := func(what string) (Row, error) {
		return Row{}, fmt.Errorf("%w: encoded row of view %q: %s", ErrSnapshot, view, what)
	}
	if len(data) < 17+4*s.words || data[0] != rowCodecVersion {
		return bad(fmt.Sprintf("%d bytes or unknown version, want version %d and at least %d bytes", len(data), rowCodecVersion, 17+4*s.words))
	}
	ts := int64(binary.LittleEndian.Uint64(data[1:]))
	present := binary.LittleEndian.Uint64(data[9:])
	if len(s.view.Features) < 64 && present>>uint(len(s.view.Features)) != 0 {
		return bad("null mask names undeclared features")
	}
	words := make([]uint32, s.words)
	for i := range words {
		words[i] = binary.LittleEndian.Uint32(data[17+4*i:])
	}
	rest := data[17+4*s.words:]
	strs := make([]string, s.nstr)
	for i := range strs {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return bad("truncated string value")
		}
		strs[i] = string(rest[k : k+int(n)])
		rest = rest[k+int(n):]
	}
	if len(rest) != 0 {
		return bad("trailing bytes")
	}
	r := Row{Entity: entity, EventTime: time.Unix(0, ts), Values: make(map[string]Value, len(s.view.Features))}
	for i, f := range s.view.Features {
		if present&(1<<uint(i)) == 0 {
			continue
		}
		v, _ := s.value(i, present, words, strs)
		r.Values[f.Name] = v
	}
	// The decoded row must be one Put accepts (NaN policy included).
	var e encoded
	if err := s.encode(&r, &e); err != nil {
		return Row{}, fmt.Errorf("%w: encoded row of view %q: %w", ErrSnapshot, view, err)
	}
	return r, nil
}

// View returns the registered definition of view.
func (m *Memory) View(view string) (View, error) {
	vs, err := m.view(view)
	if err != nil {
		return View{}, err
	}
	v := vs.s.view
	v.Features = append([]Feature(nil), v.Features...)
	return v, nil
}
