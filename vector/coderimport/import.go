package coderimport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/coder/hnsw"
	"github.com/quiverml/quiver/vector"
)

// ErrFormat reports an export that coder/hnsw cannot read or that does not
// match the destination index (key type, metric).
var ErrFormat = errors.New("coderimport: bad coder/hnsw export")

// Import reads a coder/hnsw graph export from r and adds all its keys and
// vectors to dst in one Add call, so on any error nothing is inserted. The
// export's distance must match dst: "euclidean" for vector.L2, "cosine" for
// vector.Cosine. It returns the number of items added.
func Import[K vector.Key](ctx context.Context, r io.Reader, dst vector.Index[K]) (int, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return 0, fmt.Errorf("coderimport: read: %w", err)
	}
	// Walk the whole export first with bounds checks: coder/hnsw's Import
	// trusts the counts it reads, so a damaged file could make it allocate
	// without limit.
	meta, keys, err := walkExport[K](data)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	g := hnsw.NewGraph[K]()
	if err := safeImport(g, data); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	want := map[string]vector.Metric{"euclidean": vector.L2, "cosine": vector.Cosine}
	if m, ok := want[meta]; !ok || m != dst.Metric() {
		return 0, fmt.Errorf("%w: export uses %q distance, destination index uses %s", ErrFormat, meta, dst.Metric())
	}
	items := make([]vector.Item[K], 0, len(keys))
	for _, k := range keys {
		v, ok := g.Lookup(k)
		if !ok {
			return 0, fmt.Errorf("%w: key %v listed but not found by coder/hnsw", ErrFormat, k)
		}
		items = append(items, vector.Item[K]{ID: k, Vector: v})
	}
	if err := dst.Add(ctx, items...); err != nil {
		return 0, fmt.Errorf("coderimport: %w", err)
	}
	return len(items), nil
}

// safeImport runs coder/hnsw's Import, turning a panic on damaged input
// into an error.
func safeImport[K vector.Key](g *hnsw.Graph[K], data []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("coder/hnsw import panicked: %v", r)
		}
	}()
	return g.Import(bytes.NewReader(data))
}

// walkExport validates an export and lists the keys of its base layer
// (which holds every node) in file order; coder/hnsw has no API to
// enumerate keys. The
// layout is coder/hnsw v0.6 encoding version 1: varint version, varint M,
// float64 Ml, varint EfSearch, string distance, varint layer count, then
// per layer a varint node count and per node key, vector and neighbour keys.
func walkExport[K vector.Key](data []byte) (string, []K, error) {
	r := bytes.NewReader(data)
	varint := func() (int, error) {
		v, err := binary.ReadVarint(r)
		if err != nil {
			return 0, err
		}
		if v < 0 || v > int64(r.Len()) {
			return 0, fmt.Errorf("count %d exceeds the %d bytes left", v, r.Len())
		}
		return int(v), nil
	}
	skip := func(n int) error {
		if n > r.Len() {
			return io.ErrUnexpectedEOF
		}
		_, err := r.Seek(int64(n), io.SeekCurrent)
		return err
	}
	readKey := func() (K, error) {
		var k K
		switch p := any(&k).(type) {
		case *string:
			n, err := varint()
			if err != nil {
				return k, err
			}
			if n > r.Len() {
				return k, io.ErrUnexpectedEOF
			}
			b := make([]byte, n)
			if _, err := io.ReadFull(r, b); err != nil {
				return k, err
			}
			*p = string(b)
		case *uint64:
			if err := binary.Read(r, binary.LittleEndian, p); err != nil {
				return k, err
			}
		}
		return k, nil
	}
	version, err := varint()
	if err != nil {
		return "", nil, err
	}
	if version != 1 {
		return "", nil, fmt.Errorf("encoding version %d, want 1", version)
	}
	if _, err := varint(); err != nil { // M
		return "", nil, err
	}
	if err := skip(8); err != nil { // Ml
		return "", nil, err
	}
	if _, err := varint(); err != nil { // EfSearch
		return "", nil, err
	}
	n, err := varint()
	if err != nil {
		return "", nil, fmt.Errorf("distance name: %v", err)
	}
	dist := make([]byte, n)
	io.ReadFull(r, dist)
	layers, err := varint()
	if err != nil {
		return "", nil, err
	}
	var keys []K
	for l := range layers {
		nodes, err := varint()
		if err != nil {
			return "", nil, err
		}
		for range nodes {
			k, err := readKey()
			if err != nil {
				return "", nil, err
			}
			dim, err := varint()
			if err != nil {
				return "", nil, err
			}
			if err := skip(4 * dim); err != nil {
				return "", nil, err
			}
			nn, err := varint()
			if err != nil {
				return "", nil, err
			}
			for range nn {
				if _, err := readKey(); err != nil {
					return "", nil, err
				}
			}
			if l == 0 {
				keys = append(keys, k)
			}
		}
	}
	if r.Len() != 0 {
		return "", nil, fmt.Errorf("%d trailing bytes", r.Len())
	}
	return string(dist), keys, nil
}
