// Package coderimport moves an index built with github.com/coder/hnsw into
// a Quiver vector.Index: the graph saved with coder/hnsw's Graph.Export is
// read through coder/hnsw's own Graph.Import, and every key and vector is
// inserted into the destination index (which builds its own graph).
//
// It lives apart from package vector so that services which do not migrate
// do not link coder/hnsw.
//
//	f, _ := os.Open("graph.hnsw")
//	idx, _ := vector.NewHNSW[string](vector.Options{Dim: 384, Metric: vector.Cosine})
//	n, err := coderimport.Import(ctx, bufio.NewReader(f), idx)
package coderimport
