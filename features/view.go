package features

import (
	"fmt"
	"math"
	"time"
)

// Limits on view definitions and keys.
const (
	// MaxFeatures is the most features one view may declare; a row's
	// null mask is one 64-bit word.
	MaxFeatures = 64
	// MaxEmbeddingDim is the longest embedding a feature may declare.
	MaxEmbeddingDim = 1 << 16
	// MaxEntityLen is the longest entity key, in bytes.
	MaxEntityLen = 4096
	// MaxStringLen is the longest string value (and string default), in
	// bytes: what a snapshot holds per string.
	MaxStringLen = 1 << 20
	// MaxVersion is the largest View.Version.
	MaxVersion = math.MaxInt32
	// MaxCapacity is the largest View.Capacity, in rows.
	MaxCapacity = 1 << 40
	// MaxViews is the most views one store holds.
	MaxViews = 1 << 16
	// maxNameLen bounds view and feature names.
	maxNameLen = 256
)

// The event times a row may carry: those whose Unix nanoseconds fit in an
// int64, as rows store them.
var (
	minEventTime = time.Unix(0, math.MinInt64)
	maxEventTime = time.Unix(0, math.MaxInt64)
)

// CheckEventTime returns nil when t can be stored as a row's event time
// (Unix nanoseconds in an int64: from 1677-09-21 00:12:43.145224192 UTC to
// 2262-04-11 23:47:16.854775807 UTC) and otherwise an error wrapping
// ErrEventTime. Times outside that range would wrap around through
// time.Time.UnixNano and be stored as a different, arbitrary time. The
// zero time is outside the range; Put reads it as the time of the write.
func CheckEventTime(t time.Time) error {
	if t.Before(minEventTime) || t.After(maxEventTime) {
		return fmt.Errorf("%w: %s, want a time from %s to %s", ErrEventTime, t.UTC().Format(time.RFC3339Nano),
			minEventTime.UTC().Format(time.RFC3339Nano), maxEventTime.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// NaNPolicy says what a write does with NaN or infinite float values.
type NaNPolicy uint8

// NaN policies. Every policy counts the values it sees in the view's
// statistics (FeatureStats.NaNs).
const (
	// NaNReject, the zero value, rejects the whole row with ErrInvalidValue.
	NaNReject NaNPolicy = iota
	// NaNNull stores the feature as null (reads serve its default).
	NaNNull
	// NaNAllow stores the value unchanged.
	NaNAllow
)

// String returns the policy's name.
func (p NaNPolicy) String() string {
	switch p {
	case NaNReject:
		return "reject"
	case NaNNull:
		return "null"
	case NaNAllow:
		return "allow"
	}
	return fmt.Sprintf("NaNPolicy(%d)", uint8(p))
}

// Feature declares one feature of a view.
type Feature struct {
	// Name is unique within the view.
	Name string
	// Kind is the feature's type.
	Kind Kind
	// Dim is the embedding length; required (1..MaxEmbeddingDim) for
	// KindEmbedding and zero for the other kinds.
	Dim int
	// Default is served when the value is null, missing or expired. The
	// zero Value means the kind's zero (0, "", or Dim zeros); otherwise it
	// must have the feature's Kind (and Dim).
	Default Value
}

// View is a named, typed schema of features keyed by one entity: what
// Feast calls a feature view.
type View struct {
	// Name identifies the view (required).
	Name string
	// Entity names the entity key, for example "user_id" (required).
	Entity string
	// Features lists the view's features in order (1..MaxFeatures).
	Features []Feature
	// TTL is the maximum age (read time minus event time) of a served
	// value; older rows read as OUTSIDE_MAX_AGE and are reclaimed by
	// eviction and Sweep. Zero means values never expire.
	TTL time.Duration
	// Version is a caller-chosen schema version, kept in snapshots and
	// reports; 0..MaxVersion.
	Version int
	// Capacity bounds the rows held (0..MaxCapacity); zero means
	// Options.DefaultCapacity.
	// Rows are spread over shards by key hash and each shard holds
	// Capacity/Shards rows (rounded up), so eviction may begin slightly
	// before Capacity rows when keys spread unevenly. A shard holds at
	// most 2^24-1 rows.
	Capacity int
	// NaN is the policy for NaN and infinite floats; zero rejects them.
	NaN NaNPolicy
}

// schema is a validated View with the layout of its rows.
type schema struct {
	view  View
	index map[string]int
	// Per feature: offset and width in the row's 32-bit words, and the
	// index of its string (strings live outside the word slab).
	off, width, str []int
	words           int // 32-bit words per row
	nstr            int // string features per row
	ttl             int64
}

func (v View) invalid(format string, args ...any) error {
	return fmt.Errorf("%w %q: %s", ErrInvalidView, v.Name, fmt.Sprintf(format, args...))
}

// compile validates v and computes the row layout.
func compile(v View) (*schema, error) {
	if v.Name == "" || len(v.Name) > maxNameLen {
		return nil, v.invalid("name must be 1..%d bytes", maxNameLen)
	}
	if v.Entity == "" || len(v.Entity) > maxNameLen {
		return nil, v.invalid("entity must be 1..%d bytes", maxNameLen)
	}
	if len(v.Features) == 0 || len(v.Features) > MaxFeatures {
		return nil, v.invalid("got %d features, want 1..%d", len(v.Features), MaxFeatures)
	}
	if v.TTL < 0 {
		return nil, v.invalid("TTL %v is negative, want >= 0", v.TTL)
	}
	if v.Capacity < 0 || v.Capacity > MaxCapacity {
		return nil, v.invalid("capacity %d, want 0..%d", v.Capacity, MaxCapacity)
	}
	if v.Version < 0 || v.Version > MaxVersion {
		return nil, v.invalid("version %d, want 0..%d", v.Version, MaxVersion)
	}
	if v.NaN > NaNAllow {
		return nil, v.invalid("unknown NaN policy %d", v.NaN)
	}
	s := &schema{
		view:  v,
		index: make(map[string]int, len(v.Features)),
		off:   make([]int, len(v.Features)),
		width: make([]int, len(v.Features)),
		str:   make([]int, len(v.Features)),
		ttl:   int64(v.TTL),
	}
	s.view.Features = append([]Feature(nil), v.Features...)
	for i, f := range v.Features {
		if f.Name == "" || len(f.Name) > maxNameLen {
			return nil, v.invalid("feature %d: name must be 1..%d bytes", i, maxNameLen)
		}
		if _, dup := s.index[f.Name]; dup {
			return nil, v.invalid("feature %q declared twice", f.Name)
		}
		s.index[f.Name] = i
		s.str[i] = -1
		switch f.Kind {
		case KindFloat32, KindInt64, KindString:
			if f.Dim != 0 {
				return nil, v.invalid("feature %q: Dim %d set on a %s feature, want 0", f.Name, f.Dim, f.Kind)
			}
		case KindEmbedding:
			if f.Dim < 1 || f.Dim > MaxEmbeddingDim {
				return nil, v.invalid("feature %q: embedding Dim %d, want 1..%d", f.Name, f.Dim, MaxEmbeddingDim)
			}
		default:
			return nil, v.invalid("feature %q: unknown kind %s", f.Name, f.Kind)
		}
		if !f.Default.IsNull() {
			if f.Default.kind != f.Kind {
				return nil, v.invalid("feature %q: default is %s, want %s", f.Name, f.Default.kind, f.Kind)
			}
			if f.Kind == KindString && len(f.Default.s) > MaxStringLen {
				return nil, v.invalid("feature %q: default string of %d bytes, want at most %d", f.Name, len(f.Default.s), MaxStringLen)
			}
			if f.Kind == KindEmbedding && len(f.Default.v) != f.Dim {
				return nil, v.invalid("feature %q: default has %d values, want %d", f.Name, len(f.Default.v), f.Dim)
			}
			if f.Kind == KindEmbedding {
				s.view.Features[i].Default = Embedding(append([]float32(nil), f.Default.v...))
			}
		}
		s.off[i] = s.words
		switch f.Kind {
		case KindFloat32:
			s.width[i] = 1
		case KindInt64:
			s.width[i] = 2
		case KindEmbedding:
			s.width[i] = f.Dim
		case KindString:
			s.str[i] = s.nstr
			s.nstr++
		}
		s.words += s.width[i]
	}
	return s, nil
}

// sameDefinition reports whether two views define the same schema.
func sameDefinition(a, b View) bool {
	if a.Name != b.Name || a.Entity != b.Entity || a.TTL != b.TTL || a.Version != b.Version ||
		a.Capacity != b.Capacity || a.NaN != b.NaN || len(a.Features) != len(b.Features) {
		return false
	}
	for i := range a.Features {
		fa, fb := a.Features[i], b.Features[i]
		if fa.Name != fb.Name || fa.Kind != fb.Kind || fa.Dim != fb.Dim || !fa.Default.Equal(fb.Default) {
			return false
		}
	}
	return true
}

// encoded is a row validated and laid out for the slab.
type encoded struct {
	ts      int64 // event time, Unix nanoseconds; valid when !now
	now     bool  // the row has no event time: the write's time stands in
	words   []uint32
	strs    []string
	present uint64
	nans    []uint32 // per feature: NaN/Inf values seen
}

func badFloat(x float32) bool { return math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) }

// encode validates r against s into e (whose buffers it reuses). On error
// e is unusable and nothing of the row may be stored.
func (s *schema) encode(r *Row, e *encoded) error {
	if r.Entity == "" || len(r.Entity) > MaxEntityLen {
		return fmt.Errorf("%w: view %q: key of %d bytes, want 1..%d", ErrInvalidEntity, s.view.Name, len(r.Entity), MaxEntityLen)
	}
	e.now = r.EventTime.IsZero()
	e.ts = 0
	if !e.now {
		if err := CheckEventTime(r.EventTime); err != nil {
			return fmt.Errorf("view %q: %w", s.view.Name, err)
		}
		e.ts = r.EventTime.UnixNano()
	}
	if cap(e.words) < s.words {
		e.words = make([]uint32, s.words)
	}
	e.words = e.words[:s.words]
	clear(e.words)
	if cap(e.strs) < s.nstr {
		e.strs = make([]string, s.nstr)
	}
	e.strs = e.strs[:s.nstr]
	clear(e.strs)
	if cap(e.nans) < len(s.off) {
		e.nans = make([]uint32, len(s.off))
	}
	e.nans = e.nans[:len(s.off)]
	clear(e.nans)
	e.present = 0
	for name, v := range r.Values {
		i, ok := s.index[name]
		if !ok {
			return fmt.Errorf("%w: view %q has no feature %q", ErrUnknownFeature, s.view.Name, name)
		}
		if v.IsNull() {
			continue
		}
		f := &s.view.Features[i]
		if v.kind != f.Kind {
			return fmt.Errorf("%w: view %q feature %q: got %s, want %s", ErrType, s.view.Name, name, v.kind, f.Kind)
		}
		w := e.words[s.off[i]:]
		switch f.Kind {
		case KindFloat32:
			if badFloat(v.f) {
				e.nans[i]++
				switch s.view.NaN {
				case NaNReject:
					return fmt.Errorf("%w: view %q feature %q: %v, want a finite number", ErrInvalidValue, s.view.Name, name, v.f)
				case NaNNull:
					continue
				}
			}
			w[0] = math.Float32bits(v.f)
		case KindInt64:
			w[0], w[1] = uint32(uint64(v.i)), uint32(uint64(v.i)>>32)
		case KindString:
			if len(v.s) > MaxStringLen {
				return fmt.Errorf("%w: view %q feature %q: string of %d bytes, want at most %d", ErrTooLarge, s.view.Name, name, len(v.s), MaxStringLen)
			}
			e.strs[s.str[i]] = v.s
		case KindEmbedding:
			if len(v.v) != f.Dim {
				return fmt.Errorf("%w: view %q feature %q: got %d values, want %d", ErrDimension, s.view.Name, name, len(v.v), f.Dim)
			}
			null := false
			for _, x := range v.v {
				if badFloat(x) {
					e.nans[i]++
				}
			}
			if e.nans[i] > 0 {
				switch s.view.NaN {
				case NaNReject:
					return fmt.Errorf("%w: view %q feature %q: embedding holds %d NaN/Inf values, want finite numbers", ErrInvalidValue, s.view.Name, name, e.nans[i])
				case NaNNull:
					null = true
				}
			}
			if null {
				continue
			}
			for j, x := range v.v {
				w[j] = math.Float32bits(x)
			}
		}
		e.present |= 1 << uint(i)
	}
	return nil
}

// decode turns stored words back into typed values for the features set in
// present, filling defaults for the rest.
func (s *schema) value(i int, present uint64, words []uint32, strs []string) (Value, Status) {
	f := &s.view.Features[i]
	if present&(1<<uint(i)) == 0 {
		return s.defaultValue(i), StatusNull
	}
	w := words[s.off[i]:]
	switch f.Kind {
	case KindFloat32:
		return Float32(math.Float32frombits(w[0])), StatusPresent
	case KindInt64:
		return Int64(int64(uint64(w[0]) | uint64(w[1])<<32)), StatusPresent
	case KindString:
		if s.str[i] < len(strs) {
			return String(strs[s.str[i]]), StatusPresent
		}
		return String(""), StatusPresent
	default:
		v := make([]float32, f.Dim)
		for j := range v {
			v[j] = math.Float32frombits(w[j])
		}
		return Embedding(v), StatusPresent
	}
}

// defaultValue returns feature i's default as a typed Value.
func (s *schema) defaultValue(i int) Value {
	f := &s.view.Features[i]
	if !f.Default.IsNull() {
		if f.Kind == KindEmbedding {
			return Embedding(append([]float32(nil), f.Default.v...))
		}
		return f.Default
	}
	switch f.Kind {
	case KindFloat32:
		return Float32(0)
	case KindInt64:
		return Int64(0)
	case KindString:
		return String("")
	default:
		return Embedding(make([]float32, f.Dim))
	}
}

// timeDuration converts a stored duration, clamping values that do not fit.
func timeDuration(x uint64) time.Duration {
	if x > math.MaxInt64 {
		return -1 // rejected by validation as a negative TTL
	}
	return time.Duration(x)
}
