// Package rag is the retrieval half of retrieval-augmented generation on
// top of package vector: it splits documents into overlapping chunks that
// keep their source offsets, embeds them with any Embedder (a function, or
// a serving.Model through ModelEmbedder), indexes them in a vector.Index
// and answers queries with the nearest chunks, optionally re-ranked for
// diversity with maximal marginal relevance (MMR).
//
//	idx, _ := vector.NewHNSW[string](vector.Options{Dim: 384, Metric: vector.Cosine})
//	store, _ := rag.NewStore(idx, embedder, rag.StoreOptions{
//		Chunking: rag.ChunkOptions{Unit: rag.Tokens, Size: 200, Overlap: 40},
//	})
//	store.AddDocuments(ctx, rag.Document{ID: "handbook", Text: text})
//	hits, _ := store.Query(ctx, "how do I reset my password?", 4, rag.QueryOptions{MMR: true})
//	for _, h := range hits {
//		fmt.Println(h.DocID, h.Start, h.End, h.Text)
//	}
package rag
