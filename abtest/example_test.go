package abtest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/quiverml/quiver/abtest"
	"github.com/quiverml/quiver/serving"
)

// echoModel is a stand-in for an ONNX model: it answers with its own name.
type echoModel struct{ name string }

func (m echoModel) Info() serving.Info { return serving.Info{Name: m.name} }
func (m echoModel) Predict(context.Context, map[string]serving.Tensor) (map[string]serving.Value, error) {
	return map[string]serving.Value{"y": serving.TensorValue(serving.NewTensor([]int64{1}, []string{m.name}))}, nil
}
func (m echoModel) Close() error { return nil }

func ExampleExperiment_Assign() {
	exp, err := abtest.NewExperiment(abtest.Config{
		Name:     "checkout-button",
		Variants: []abtest.Variant{{Name: "blue", Weight: 1}, {Name: "green", Weight: 1}},
	})
	if err != nil {
		panic(err)
	}
	a, err := exp.Assign("user-42", nil)
	if err != nil {
		panic(err)
	}
	// The bucket is XXH64("checkout-button\x00user-42") mod 1e6, the same in
	// every process; "blue" owns buckets [0, 500000).
	fmt.Println(a.Variant, a.Bucket, a.Enrolled)
	_, err = exp.Assign("", nil)
	fmt.Println(err)
	// Output:
	// blue 77165 true
	// abtest: empty unit id, want a non-empty user or session id (experiment "checkout-button")
}

func ExampleExperiment_SetWeights() {
	exp, err := abtest.NewExperiment(abtest.Config{
		Name:     "ranker-canary",
		Variants: []abtest.Variant{{Name: "canary", Weight: 5}, {Name: "stable", Weight: 95}},
		Control:  "stable",
	})
	if err != nil {
		panic(err)
	}
	inCanary := func() map[string]bool {
		s := map[string]bool{}
		for i := range 10000 {
			u := "user-" + strconv.Itoa(i)
			if a, _ := exp.Assign(u, nil); a.Variant == "canary" {
				s[u] = true
			}
		}
		return s
	}
	at5 := inCanary()
	if err := exp.SetWeights(map[string]float64{"canary": 20, "stable": 80}); err != nil {
		panic(err)
	}
	at20 := inCanary()
	kept := 0
	for u := range at5 {
		if at20[u] {
			kept++
		}
	}
	fmt.Printf("5%%: %d units, 20%%: %d units, kept %d of %d\n", len(at5), len(at20), kept, len(at5))
	fmt.Println(exp.Ranges()[0])
	// Output:
	// 5%: 501 units, 20%: 1992 units, kept 501 of 501
	// {canary 0 200000}
}

func ExampleLayer() {
	layer, _ := abtest.NewLayer("ranking", "")
	a, _ := abtest.NewExperiment(abtest.Config{Name: "a", Variants: []abtest.Variant{{Name: "on", Weight: 1}, {Name: "off", Weight: 1}}})
	b, _ := abtest.NewExperiment(abtest.Config{Name: "b", Variants: []abtest.Variant{{Name: "on", Weight: 1}, {Name: "off", Weight: 1}}})
	// Half the layer's units may enter a, the other half b; never both.
	if err := layer.Add(a, 0, 0.5); err != nil {
		panic(err)
	}
	if err := layer.Add(b, 0.5, 1); err != nil {
		panic(err)
	}
	fmt.Println(layer.Add(b, 0.2, 0.3) != nil)
	got, ok, _ := layer.Assign("user-42", nil)
	fmt.Println(ok, got.Experiment, got.Variant)
	// Output:
	// true
	// true b off
}

func ExampleNewRouter() {
	exp, _ := abtest.NewExperiment(abtest.Config{
		Name:     "ranker",
		Variants: []abtest.Variant{{Name: "v1", Weight: 1}, {Name: "v2", Weight: 1}},
	})
	// Any serving.Model works: an ONNX model from onnx.Load, a batcher,
	// or a registry alias that follows the version it points at.
	router, err := abtest.NewRouter(exp, map[string]serving.Model{
		"v1": echoModel{"v1"}, "v2": echoModel{"v2"},
	}, abtest.RouterOptions{
		Shadows: map[string]serving.Model{"v3": echoModel{"v3"}},
		OnShadow: func(s abtest.ShadowResult) {
			// Compare s.Outputs with s.PrimaryOutputs offline; never returned.
		},
	})
	if err != nil {
		panic(err)
	}
	defer router.Close()
	for _, user := range []string{"user-1", "user-2", "user-3"} {
		res, err := router.Predict(context.Background(), abtest.Request{Unit: user})
		if err != nil {
			panic(err)
		}
		answer := res.Outputs["y"].Tensor.Data.([]string)[0]
		fmt.Println(user, res.Variant, answer)
		if user == "user-2" {
			_ = router.Tracker().Convert(res.Variant) // an outcome
		}
	}
	// Output:
	// user-1 v1 v1
	// user-2 v1 v1
	// user-3 v2 v2
}

func ExampleThompsonBeta() {
	b, err := abtest.NewThompsonBeta([]string{"a", "b", "c"}, abtest.BanditOptions{Seed: 1})
	if err != nil {
		panic(err)
	}
	rates := map[string]float64{"a": 0.02, "b": 0.03, "c": 0.06}
	env := rand.New(rand.NewPCG(2, 3)) // simulated users
	for range 20000 {
		arm := b.Select()
		reward := 0.0
		if env.Float64() < rates[arm] {
			reward = 1
		}
		if err := b.Update(arm, reward); err != nil {
			panic(err)
		}
	}
	best := b.Stats()[0]
	for _, s := range b.Stats() {
		if s.Pulls > best.Pulls {
			best = s
		}
	}
	fmt.Println("most played:", best.Arm)
	snap, _ := b.Snapshot() // persist; Restore continues from here
	c, _ := abtest.NewThompsonBeta([]string{"a", "b", "c"}, abtest.BanditOptions{})
	fmt.Println(c.Restore(snap) == nil, c.Select() == b.Select())
	// Output:
	// most played: c
	// true true
}

func ExampleTwoProportionZTest() {
	r, err := abtest.TwoProportionZTest(200, 1000, 250, 1000)
	if err != nil {
		panic(err)
	}
	fmt.Printf("diff %.3f z %.3f p %.4f 95%% CI [%.4f, %.4f]\n", r.Diff, r.Z, r.PValue, r.Low, r.High)
	// Output:
	// diff 0.050 z 2.677 p 0.0074 95% CI [0.0135, 0.0865]
}

func ExampleSRMCheck() {
	r, err := abtest.SRMCheck([]uint64{50600, 49400}, []float64{50, 50})
	if err != nil {
		panic(err)
	}
	fmt.Printf("chi2 %.1f p %.5f mismatch %v\n", r.ChiSquare, r.PValue, r.Mismatch)
	// Output:
	// chi2 14.4 p 0.00015 mismatch true
}

func ExampleGuardrail() {
	exp, _ := abtest.NewExperiment(abtest.Config{
		Name:     "ranker-canary",
		Variants: []abtest.Variant{{Name: "canary", Weight: 10}, {Name: "stable", Weight: 90}},
		Control:  "stable",
	})
	tracker, _ := abtest.NewTracker("ranker-canary", exp.Variants())
	g, _ := abtest.NewGuardrail(exp, tracker, abtest.GuardrailOptions{MaxErrorRateIncrease: 0.01})
	// A Router records these; here they are simulated.
	for i := range 1000 {
		_ = tracker.ObserveRequest("stable", 10*time.Millisecond, i%100 == 0) // 1% errors
		_ = tracker.ObserveRequest("canary", 10*time.Millisecond, i%20 == 0)  // 5% errors
	}
	for _, d := range g.Check() {
		fmt.Println(d.Reason, d.Variant, d.VariantErrorRate, d.ControlErrorRate)
	}
	fmt.Println(exp.Weights())
	// Output:
	// error_rate canary 0.05 0.01
	// [{canary 0} {stable 90}]
}
