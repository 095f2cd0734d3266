package rag

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// ErrChunkOptions reports invalid chunking options.
var ErrChunkOptions = errors.New("rag: invalid chunk options")

// Unit is what chunk sizes count.
type Unit uint8

// Units.
const (
	// Chars counts Unicode code points; chunks end at whitespace when one
	// lies in the last quarter of the window.
	Chars Unit = iota
	// Tokens counts whitespace-separated words (a stand-in for a model's
	// tokens at about 0.75 words per token).
	Tokens
)

// ChunkOptions configures Split. The zero value splits into chunks of 512
// characters with 64 characters of overlap.
type ChunkOptions struct {
	// Unit is Chars (default) or Tokens.
	Unit Unit
	// Size is the largest chunk, in units (default 512 chars or 128 tokens).
	Size int
	// Overlap is how many units consecutive chunks share (default Size/8;
	// negative for none). It must be below Size.
	Overlap int
}

func (o ChunkOptions) withDefaults() (ChunkOptions, error) {
	if o.Unit > Tokens {
		return o, fmt.Errorf("%w: unknown unit %d", ErrChunkOptions, o.Unit)
	}
	if o.Size == 0 {
		o.Size = 512
		if o.Unit == Tokens {
			o.Size = 128
		}
	}
	if o.Size < 0 {
		return o, fmt.Errorf("%w: size %d, want > 0", ErrChunkOptions, o.Size)
	}
	switch {
	case o.Overlap == 0:
		o.Overlap = o.Size / 8
	case o.Overlap < 0:
		o.Overlap = 0
	}
	if o.Overlap >= o.Size {
		return o, fmt.Errorf("%w: overlap %d must be below size %d", ErrChunkOptions, o.Overlap, o.Size)
	}
	return o, nil
}

// Span is one chunk of a text: text[Start:End] (byte offsets).
type Span struct {
	Start, End int
}

// Split cuts text into overlapping spans. Spans never start or end inside
// a UTF-8 sequence, never start with whitespace, and cover all of the text
// that is not whitespace.
func Split(text string, o ChunkOptions) ([]Span, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if o.Unit == Tokens {
		return splitTokens(text, o), nil
	}
	return splitChars(text, o), nil
}

type word struct{ start, end int }

func words(text string) []word {
	var ws []word
	start := -1
	for i, r := range text {
		if unicode.IsSpace(r) {
			if start >= 0 {
				ws = append(ws, word{start, i})
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		ws = append(ws, word{start, len(text)})
	}
	return ws
}

func splitTokens(text string, o ChunkOptions) []Span {
	ws := words(text)
	var out []Span
	step := o.Size - o.Overlap
	for i := 0; i < len(ws); i += step {
		j := min(i+o.Size, len(ws))
		out = append(out, Span{ws[i].start, ws[j-1].end})
		if j == len(ws) {
			break
		}
	}
	return out
}

func splitChars(text string, o ChunkOptions) []Span {
	// offs[i] is the byte offset of rune i; offs[n] = len(text).
	offs := make([]int, 0, len(text)+1)
	for i := range text {
		offs = append(offs, i)
	}
	n := len(offs)
	offs = append(offs, len(text))
	isSpace := func(ri int) bool {
		r, _ := utf8.DecodeRuneInString(text[offs[ri]:])
		return unicode.IsSpace(r)
	}
	var out []Span
	start := 0
	for start < n {
		for start < n && isSpace(start) {
			start++
		}
		if start >= n {
			break
		}
		end := min(start+o.Size, n)
		if end < n {
			// Prefer to cut at whitespace in the last quarter of the window.
			for cut := end; cut > end-o.Size/4 && cut > start; cut-- {
				if isSpace(cut) {
					end = cut
					break
				}
			}
		}
		trim := end
		for trim > start && isSpace(trim-1) {
			trim--
		}
		out = append(out, Span{offs[start], offs[trim]})
		if end >= n {
			break
		}
		next := end - o.Overlap
		if next <= start {
			next = start + 1
		}
		// Start the overlap at a word boundary when one is near.
		for b := next; b < end && b < next+o.Overlap/2; b++ {
			if isSpace(b) {
				next = b + 1
				break
			}
		}
		start = next
	}
	return out
}
