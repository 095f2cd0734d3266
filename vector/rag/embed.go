package rag

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strings"
	"unicode"

	"github.com/quiverml/quiver/serving"
)

// Embedder turns texts into vectors, one per text, all of one dimension.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// EmbedderFunc adapts a function to an Embedder.
type EmbedderFunc func(ctx context.Context, texts []string) ([][]float32, error)

// Embed calls f.
func (f EmbedderFunc) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	return f(ctx, texts)
}

// ErrEmbedding reports an embedder or model whose output does not fit.
var ErrEmbedding = errors.New("rag: bad embedding")

// ModelEmbedder embeds with a serving.Model (an ONNX model, or a Batcher in
// front of one) that maps a float32 [batch, F] input to a float32 [batch, D]
// output. Features turns each text into its F input features.
type ModelEmbedder struct {
	Model serving.Model
	// Input and Output name the model's tensors; empty means the model's
	// first input and first output.
	Input, Output string
	// Features maps one text to the model's input row, for example
	// HashedBagOfWords(F).
	Features func(text string) []float32
}

// Embed runs the model on all texts as one batch.
func (e ModelEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if len(texts) == 0 {
		return nil, nil
	}
	info := e.Model.Info()
	in, out := e.Input, e.Output
	if in == "" && len(info.Inputs) > 0 {
		in = info.Inputs[0].Name
	}
	if out == "" && len(info.Outputs) > 0 {
		out = info.Outputs[0].Name
	}
	var flat []float32
	width := -1
	for i, t := range texts {
		row := e.Features(t)
		if width >= 0 && len(row) != width {
			return nil, fmt.Errorf("%w: features of text %d have %d values, text 0 has %d", ErrEmbedding, i, len(row), width)
		}
		width = len(row)
		if flat == nil {
			flat = make([]float32, 0, width*len(texts))
		}
		flat = append(flat, row...)
	}
	res, err := e.Model.Predict(ctx, map[string]serving.Tensor{
		in: serving.NewTensor([]int64{int64(len(texts)), int64(width)}, flat),
	})
	if err != nil {
		return nil, fmt.Errorf("rag: embed: %w", err)
	}
	v, ok := res[out]
	if !ok || v.Kind != serving.KindTensor {
		return nil, fmt.Errorf("%w: model has no tensor output %q", ErrEmbedding, out)
	}
	data, err := v.Tensor.Float32s()
	if err != nil {
		return nil, fmt.Errorf("%w: output %q: %v", ErrEmbedding, out, err)
	}
	shape := v.Tensor.Shape
	if len(shape) != 2 || shape[0] != int64(len(texts)) || int64(len(data)) != shape[0]*shape[1] {
		return nil, fmt.Errorf("%w: output %q has shape %v, want [%d, D]", ErrEmbedding, out, shape, len(texts))
	}
	d := int(shape[1])
	vecs := make([][]float32, len(texts))
	for i := range vecs {
		vecs[i] = data[i*d : (i+1)*d : (i+1)*d]
	}
	return vecs, nil
}

// Tokenize lowercases text and splits it into runs of letters and digits.
func Tokenize(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// HashedBagOfWords returns a featuriser that counts each token of a text
// (Tokenize) into one of buckets slots chosen by FNV-1a, with a hashed sign
// (the hashing trick), scaled to unit length. It pairs with an embedding
// model whose input is float32 [batch, buckets].
func HashedBagOfWords(buckets int) func(string) []float32 {
	return HashedFeatures(buckets, Tokenize, nil)
}

// HashedFeatures is HashedBagOfWords with a caller's tokenizer and token
// weights (for example inverse document frequencies); tokens of weight 0
// are dropped, and a nil weight counts every token once.
func HashedFeatures(buckets int, tokenize func(string) []string, weight func(token string) float32) func(string) []float32 {
	return func(text string) []float32 {
		v := make([]float32, buckets)
		var sq float64
		for _, t := range tokenize(text) {
			w := float32(1)
			if weight != nil {
				if w = weight(t); w == 0 {
					continue
				}
			}
			h := fnv.New32a()
			h.Write([]byte(t))
			x := h.Sum32()
			if x&0x80000000 != 0 {
				w = -w
			}
			v[int(x&0x7fffffff)%buckets] += w
		}
		for _, x := range v {
			sq += float64(x) * float64(x)
		}
		if sq > 0 {
			s := float32(1 / math.Sqrt(sq))
			for i := range v {
				v[i] *= s
			}
		}
		return v
	}
}
