package features

import (
	"fmt"
	"math"
	"sync/atomic"
)

// Selection is a compiled list of a view's features for dense reads: it
// fixes the column layout of the rows GetMany writes, so a read does no
// name lookups. Create it once with Memory.Select and reuse it; it is
// immutable and safe for concurrent use.
type Selection struct {
	vs       *viewStore
	names    []string
	width    int      // float32 columns per entity
	cols     []int    // per selected feature: first column
	widths   []int    // per selected feature: columns
	bits     []uint64 // per selected feature: presence bit
	mask     uint64
	runs     []copyRun // float32 and embedding words, merged where contiguous
	ints     []intCol
	defaults []float32
	// Status templates for one entity.
	stPresent, stNotFound, stExpired []Status
}

type copyRun struct{ src, dst, n int }

type intCol struct{ src, dst int }

// View returns the name of the view the selection reads.
func (s *Selection) View() string { return s.vs.s.view.Name }

// Features returns the selected feature names in column order.
func (s *Selection) Features() []string { return append([]string(nil), s.names...) }

// Width returns the float32 columns per entity (embeddings take Dim).
func (s *Selection) Width() int { return s.width }

// Len returns the number of selected features: the statuses per entity.
func (s *Selection) Len() int { return len(s.names) }

// Columns returns the first column of each selected feature.
func (s *Selection) Columns() []int { return append([]int(nil), s.cols...) }

func newSelection(vs *viewStore, names []string) (*Selection, error) {
	sc := vs.s
	if len(names) == 0 {
		for _, f := range sc.view.Features {
			if f.Kind != KindString {
				names = append(names, f.Name)
			}
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("%w: view %q has only string features, which have no dense form; read them with GetRow", ErrType, sc.view.Name)
		}
	}
	sel := &Selection{vs: vs, names: append([]string(nil), names...)}
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		i, ok := sc.index[name]
		if !ok {
			return nil, fmt.Errorf("%w: view %q has no feature %q", ErrUnknownFeature, sc.view.Name, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("%w: feature %q selected twice from view %q", ErrInvalidView, name, sc.view.Name)
		}
		seen[name] = true
		f := sc.view.Features[i]
		w := 1
		switch f.Kind {
		case KindString:
			return nil, fmt.Errorf("%w: feature %q of view %q is a string, which has no dense form; read it with GetRow", ErrType, name, sc.view.Name)
		case KindInt64:
			sel.ints = append(sel.ints, intCol{src: sc.off[i], dst: sel.width})
		case KindEmbedding:
			w = f.Dim
			fallthrough
		default:
			if n := len(sel.runs); n > 0 && sel.runs[n-1].src+sel.runs[n-1].n == sc.off[i] && sel.runs[n-1].dst+sel.runs[n-1].n == sel.width {
				sel.runs[n-1].n += w
			} else {
				sel.runs = append(sel.runs, copyRun{src: sc.off[i], dst: sel.width, n: w})
			}
		}
		def := sc.defaultValue(i)
		switch f.Kind {
		case KindFloat32:
			sel.defaults = append(sel.defaults, def.f)
		case KindInt64:
			sel.defaults = append(sel.defaults, float32(def.i))
		default:
			sel.defaults = append(sel.defaults, def.v...)
		}
		sel.cols = append(sel.cols, sel.width)
		sel.widths = append(sel.widths, w)
		sel.bits = append(sel.bits, 1<<uint(i))
		sel.mask |= 1 << uint(i)
		sel.width += w
		sel.stPresent = append(sel.stPresent, StatusPresent)
		sel.stNotFound = append(sel.stNotFound, StatusNotFound)
		sel.stExpired = append(sel.stExpired, StatusOutsideMaxAge)
	}
	return sel, nil
}

// copyRow copies the selected values of one stored row into dst. Every
// load is atomic because a writer may be changing the row (the caller
// validates the shard's sequence number afterwards).
func (s *Selection) copyRow(words []uint32, dst []float32) {
	for _, r := range s.runs {
		src := words[r.src : r.src+r.n]
		out := dst[r.dst : r.dst+r.n]
		for j := range src {
			out[j] = math.Float32frombits(atomic.LoadUint32(&src[j]))
		}
	}
	for _, c := range s.ints {
		lo, hi := atomic.LoadUint32(&words[c.src]), atomic.LoadUint32(&words[c.src+1])
		dst[c.dst] = float32(int64(uint64(lo) | uint64(hi)<<32))
	}
}

// fillStatus writes the statuses of a found, fresh row and serves
// defaults for null features.
func (s *Selection) fillStatus(present uint64, dst []float32, status []Status) (nulls int) {
	if present&s.mask == s.mask {
		copy(status, s.stPresent)
		return 0
	}
	for k, b := range s.bits {
		if present&b != 0 {
			status[k] = StatusPresent
			continue
		}
		status[k] = StatusNull
		c, w := s.cols[k], s.widths[k]
		copy(dst[c:c+w], s.defaults[c:c+w])
		nulls++
	}
	return nulls
}
