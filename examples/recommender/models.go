package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/quiverml/quiver/quant"
	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/onnx"
)

// The scoring models ship inside the binary. model/gen_models.py trained
// them (fixed seeds) and wrote their held-out metrics to metrics.json; the
// int8 variant is made here, at start, with the quant package.

var (
	//go:embed model/ranker_v1.onnx
	rankerV1 []byte
	//go:embed model/ranker_v2.onnx
	rankerV2 []byte
	//go:embed model/ranker_bad.onnx
	rankerBad []byte
	//go:embed model/metrics.json
	trainingMetricsJSON []byte
)

// The registry model, its aliases, and the experiment's variants. A
// variant is served by the alias of the same name, so the router needs no
// translation table.
const (
	modelName       = "ranker"
	aliasProduction = "production"
	aliasCanary     = "canary"
	aliasShadow     = "shadow"
)

// servedAliases are the aliases the registry Server serves and /readyz
// waits for.
var servedAliases = []string{aliasProduction, aliasCanary, aliasShadow}

// Version numbers of the releases in the registry. Fixed numbers make a
// restart over the same -data folder find the versions it published before
// instead of publishing them again.
const (
	versionV1   int64 = 1 // first release
	versionV2   int64 = 2 // retrained, parent v1
	versionBad  int64 = 3 // the deliberately bad canary, parent v2
	versionInt8 int64 = 4 // v2 with int8 weights, parent v2
)

// trainingMetrics is model/metrics.json.
type trainingMetrics struct {
	DataVersion string                        `json:"data_version"`
	CodeVersion string                        `json:"code_version"`
	Models      map[string]map[string]float64 `json:"models"`
}

// release is one version to publish.
type release struct {
	Number      int64
	File        []byte
	Description string
	Metrics     map[string]float64
	Tags        map[string]string
	Parent      int64
}

// releases returns the four versions: the three trained files and the
// int8 copy of v2 with its agreement numbers as metrics.
func releases(int8Model []byte, agree agreement) ([]release, trainingMetrics, error) {
	var tm trainingMetrics
	if err := json.Unmarshal(trainingMetricsJSON, &tm); err != nil {
		return nil, tm, fmt.Errorf("model/metrics.json: %w", err)
	}
	int8Metrics := map[string]float64{
		"top10_agreement": agree.TopKOverlap, "top1_agreement": agree.Top1, "score_max_abs_err": agree.Scores.MaxAbs,
	}
	if sq := agree.Scores.SQNR; !math.IsInf(sq, 0) && !math.IsNaN(sq) { // JSON has no infinity
		int8Metrics["score_sqnr_db"] = sq
	}
	return []release{
		{Number: versionV1, File: rankerV1, Description: "first release: 8 hidden units",
			Metrics: tm.Models["ranker_v1"], Tags: map[string]string{"role": "release"}},
		{Number: versionV2, File: rankerV2, Description: "retrained: 32 hidden units, more data",
			Metrics: tm.Models["ranker_v2"], Tags: map[string]string{"role": "release"}, Parent: versionV1},
		{Number: versionBad, File: rankerBad, Description: "v2 with its output negated: a deliberately bad canary",
			Metrics: tm.Models["ranker_bad"], Tags: map[string]string{"role": "bad-canary"}, Parent: versionV2},
		{Number: versionInt8, File: int8Model, Description: "v2 with int8 weights (quant.QuantizeModel)",
			Metrics: int8Metrics,
			Tags:    map[string]string{"role": "shadow", "quantization": "int8"}, Parent: versionV2},
	}, tm, nil
}

// publish puts every release into the registry with its lineage, and
// points each alias that does not exist yet at its first version:
// production at v1, canary at the bad version, shadow at the int8 copy.
// Aliases that exist already (a restart over the same -data folder) are
// left where an operator moved them.
func publish(ctx context.Context, store *registry.Store, rels []release, tm trainingMetrics) error {
	ctx = registry.WithActor(ctx, "recommender-startup")
	for _, r := range rels {
		_, err := store.Publish(ctx, modelName, []registry.File{{Name: "model.onnx", Data: r.File}}, registry.Meta{
			Number: r.Number, Format: "onnx", Description: r.Description, Metrics: r.Metrics, Tags: r.Tags,
			Lineage: registry.Lineage{DataVersion: tm.DataVersion, CodeVersion: tm.CodeVersion, Parent: r.Parent},
		})
		if errors.Is(err, registry.ErrExists) {
			err = samePublished(ctx, store, r)
		}
		if err != nil {
			return fmt.Errorf("publish %s v%d: %w", modelName, r.Number, err)
		}
	}
	have, err := store.Aliases(ctx, modelName)
	if err != nil {
		return err
	}
	for alias, v := range map[string]int64{aliasProduction: versionV1, aliasCanary: versionBad, aliasShadow: versionInt8} {
		if slices.ContainsFunc(have, func(a registry.Alias) bool { return a.Name == alias }) {
			continue
		}
		if err := store.SetAlias(ctx, modelName, alias, v); err != nil {
			return fmt.Errorf("alias %s: %w", alias, err)
		}
	}
	return nil
}

// samePublished checks that the version already in the registry holds the
// same bytes as r, so a restart reuses it; anything else is refused rather
// than served under a number that means another model.
func samePublished(ctx context.Context, store *registry.Store, r release) error {
	v, err := store.Get(ctx, modelName, r.Number)
	if err != nil {
		return err
	}
	want := fmt.Sprintf("%016x", xxhash.Sum64(r.File))
	if f, ok := v.File("model.onnx"); !ok || f.XXHash64 != want {
		return fmt.Errorf("%w: the registry at %s already holds a different %s v%d; start with an empty -data folder",
			registry.ErrExists, store.Root(), modelName, r.Number)
	}
	return nil
}

// agreement says how closely the int8 model follows the float model it
// was made from, on the candidate lists real requests score.
type agreement struct {
	Users int // candidate lists compared
	Rows  int // (user, item) pairs scored
	// Scores compares the int8 scores with the float ones.
	Scores quant.ErrorReport
	// TopKOverlap is the mean share of the float model's top 10 that the
	// int8 model also ranks in its top 10; Top1 the share of lists whose
	// first item is the same.
	TopKOverlap, Top1 float64
	// BytesBefore and BytesAfter are the model file sizes.
	BytesBefore, BytesAfter int
}

// quantize makes the int8 copy of v2 and measures its agreement with v2 on
// the candidate lists of lists (one []float32 of rows per user), running
// both models on ONNX Runtime directly: this is the check a release
// pipeline runs before publishing.
func quantize(ctx context.Context, lists [][]float32) ([]byte, agreement, error) {
	out, rep, err := quant.QuantizeModel(ctx, rankerV2, quant.ModelOptions{})
	if err != nil {
		return nil, agreement{}, fmt.Errorf("quantize ranker v2: %w", err)
	}
	agree := agreement{BytesBefore: rep.BytesBefore, BytesAfter: rep.BytesAfter}
	ref, err := onnx.LoadBytes(ctx, rankerV2, onnx.Options{Name: "ranker-v2-float"})
	if err != nil {
		return nil, agree, err
	}
	defer ref.Close()
	got, err := onnx.LoadBytes(ctx, out, onnx.Options{Name: "ranker-v2-int8"})
	if err != nil {
		return nil, agree, err
	}
	defer got.Close()

	var all, allInt8 []float32
	for _, rows := range lists {
		n := len(rows) / rowWidth
		if n == 0 {
			continue
		}
		in := map[string]serving.Tensor{"x": serving.NewTensor([]int64{int64(n), rowWidth}, rows)}
		a, err := scores(ref.Predict(ctx, in))
		if err != nil {
			return nil, agree, err
		}
		b, err := scores(got.Predict(ctx, in))
		if err != nil {
			return nil, agree, err
		}
		all, allInt8 = append(all, a...), append(allInt8, b...)
		ta, tb := topK(a, 10), topK(b, 10)
		same := 0
		for _, i := range ta {
			if slices.Contains(tb, i) {
				same++
			}
		}
		agree.TopKOverlap += float64(same) / float64(len(ta))
		if ta[0] == tb[0] {
			agree.Top1++
		}
		agree.Users++
	}
	if agree.Users == 0 {
		return nil, agree, errors.New("quantize: no candidate lists to compare the int8 model on")
	}
	agree.TopKOverlap /= float64(agree.Users)
	agree.Top1 /= float64(agree.Users)
	agree.Rows = len(all)
	if agree.Scores, err = quant.Compare(all, allInt8); err != nil {
		return nil, agree, err
	}
	return out, agree, nil
}

// scores reads the "score" output: one float32 per row.
func scores(out map[string]serving.Value, err error) ([]float32, error) {
	if err != nil {
		return nil, err
	}
	v, ok := out["score"]
	if !ok || v.Kind != serving.KindTensor {
		return nil, fmt.Errorf("%w: the model has no tensor output \"score\"", serving.ErrModel)
	}
	return v.Tensor.Float32s()
}

// topK returns the indices of the k highest scores, best first; ties go to
// the lower index, so rankings are deterministic.
func topK(s []float32, k int) []int {
	idx := make([]int, len(s))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case s[a] > s[b]:
			return -1
		case s[a] < s[b]:
			return 1
		}
		return 0
	})
	return idx[:min(k, len(idx))]
}
