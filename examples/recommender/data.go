package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/quiverml/quiver/features"
	"github.com/quiverml/quiver/vector"
)

// The demo world: users with a taste, items with an embedding, and a known
// click model that says how likely a user is to click an item. The scoring
// models (model/gen_models.py) were trained on pairs drawn from the same
// distributions, and the load generator clicks according to clickProb, so
// a model that ranks well earns clicks and a bad one does not.

const (
	// embDim is the length of user tastes and item embeddings.
	embDim = 8
	// userWidth and itemWidth are the float32 columns each view's selection
	// reads: two scalars, then the embedding.
	userWidth = 2 + embDim
	itemWidth = 2 + embDim
	// rowWidth is the model's input width: the user's row, then the item's.
	rowWidth = userWidth + itemWidth
)

// Feature views. The column order of a dense read is the order of Features,
// which is the order the models were trained on.
var (
	userView = features.View{
		Name: "user", Entity: "user_id", Version: 1, TTL: 24 * time.Hour,
		Features: []features.Feature{
			{Name: "activity", Kind: features.KindFloat32, Default: features.Float32(0.5)},
			{Name: "budget", Kind: features.KindFloat32, Default: features.Float32(0.6)},
			{Name: "taste", Kind: features.KindEmbedding, Dim: embDim},
		},
	}
	itemView = features.View{
		Name: "item", Entity: "item_id", Version: 1, TTL: 24 * time.Hour,
		Features: []features.Feature{
			{Name: "popularity", Kind: features.KindFloat32},
			{Name: "price", Kind: features.KindFloat32, Default: features.Float32(1)},
			{Name: "emb", Kind: features.KindEmbedding, Dim: embDim},
		},
	}
)

type user struct {
	ID               string
	Activity, Budget float32
	Taste            []float32
}

type item struct {
	ID                string
	Popularity, Price float32
	Emb               []float32
}

// world is the generated data set. It is the ground truth the load
// generator clicks by; the service itself reads only the feature store and
// the vector index.
type world struct {
	users []user
	items []item
}

// newWorld generates users and items from seed; equal seeds give equal
// worlds.
func newWorld(seed uint64, users, items int) *world {
	r := rand.New(rand.NewPCG(seed, 0x7265636f6d6d656e))
	w := &world{users: make([]user, users), items: make([]item, items)}
	for i := range w.users {
		w.users[i] = user{
			ID:       "u" + strconv.Itoa(i),
			Activity: r.Float32(),
			Budget:   0.2 + 0.8*r.Float32(),
			Taste:    unitVector(r),
		}
	}
	for i := range w.items {
		p := r.Float32()
		w.items[i] = item{
			ID:         "i" + strconv.Itoa(i),
			Popularity: p * p,
			Price:      r.Float32(),
			Emb:        unitVector(r),
		}
	}
	return w
}

func unitVector(r *rand.Rand) []float32 {
	v := make([]float32, embDim)
	var n float64
	for i := range v {
		x := r.NormFloat64()
		v[i] = float32(x)
		n += x * x
	}
	n = math.Sqrt(n)
	for i := range v {
		v[i] = float32(float64(v[i]) / n)
	}
	return v
}

// userByID returns the user with id "u<n>".
func (w *world) userByID(id string) (user, bool) {
	n, ok := parseID(id, 'u')
	if !ok || n >= len(w.users) {
		return user{}, false
	}
	return w.users[n], true
}

// itemByID returns the item with id "i<n>".
func (w *world) itemByID(id string) (item, bool) {
	n, ok := parseID(id, 'i')
	if !ok || n >= len(w.items) {
		return item{}, false
	}
	return w.items[n], true
}

// parseID reads ids of the form <prefix><decimal number>, the only form the
// demo world uses.
func parseID(id string, prefix byte) (int, bool) {
	if len(id) < 2 || len(id) > 10 || id[0] != prefix || (id[1] == '0' && len(id) > 2) {
		return 0, false
	}
	n := 0
	for _, c := range id[1:] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// clickLogit is the true click model, the formula gen_models.py trains on.
func clickLogit(u user, it item) float64 {
	var dot float64
	for i := range u.Taste {
		dot += float64(u.Taste[i]) * float64(it.Emb[i])
	}
	return -2 + 4*dot + 2*float64(it.Popularity) + 0.5*float64(u.Activity) -
		4*math.Max(0, float64(it.Price-u.Budget))
}

// clickProb is the probability that u clicks it when looking at it.
func clickProb(u user, it item) float64 {
	return 1 / (1 + math.Exp(-clickLogit(u, it)))
}

// userRow and itemRow are a user's and an item's feature rows.
func userRow(u user, at time.Time) features.Row {
	return features.Row{Entity: u.ID, EventTime: at, Values: map[string]features.Value{
		"activity": features.Float32(u.Activity),
		"budget":   features.Float32(u.Budget),
		"taste":    features.Embedding(u.Taste),
	}}
}

func itemRow(it item, at time.Time) features.Row {
	return features.Row{Entity: it.ID, EventTime: at, Values: map[string]features.Value{
		"popularity": features.Float32(it.Popularity),
		"price":      features.Float32(it.Price),
		"emb":        features.Embedding(it.Emb),
	}}
}

// loadFeatures registers the views and writes every user's and item's row,
// in batches, stamped with the time of the write.
func loadFeatures(ctx context.Context, store features.Store, w *world) error {
	for _, v := range []features.View{userView, itemView} {
		if err := store.Register(v); err != nil {
			return fmt.Errorf("register view %q: %w", v.Name, err)
		}
	}
	now := time.Now()
	const batch = 512
	rows := make([]features.Row, 0, batch)
	flush := func(view string) error {
		if len(rows) == 0 {
			return nil
		}
		err := store.Put(ctx, view, rows...)
		rows = rows[:0]
		if err != nil {
			return fmt.Errorf("write %s rows: %w", view, err)
		}
		return nil
	}
	for _, u := range w.users {
		if rows = append(rows, userRow(u, now)); len(rows) == batch {
			if err := flush(userView.Name); err != nil {
				return err
			}
		}
	}
	if err := flush(userView.Name); err != nil {
		return err
	}
	for _, it := range w.items {
		if rows = append(rows, itemRow(it, now)); len(rows) == batch {
			if err := flush(itemView.Name); err != nil {
				return err
			}
		}
	}
	return flush(itemView.Name)
}

// buildIndex indexes every item's embedding for retrieval by inner product
// with a user's taste, with the item's price as metadata for filters.
func buildIndex(ctx context.Context, w *world, opts vector.Options) (*vector.HNSW[string], error) {
	opts.Dim, opts.Metric = embDim, vector.InnerProduct
	idx, err := vector.NewHNSW[string](opts)
	if err != nil {
		return nil, err
	}
	items := make([]vector.Item[string], len(w.items))
	for i, it := range w.items {
		items[i] = vector.Item[string]{ID: it.ID, Vector: it.Emb, Metadata: vector.Metadata{"price": it.Price}}
	}
	if err := idx.Add(ctx, items...); err != nil {
		_ = idx.Close()
		return nil, fmt.Errorf("index item embeddings: %w", err)
	}
	return idx, nil
}
