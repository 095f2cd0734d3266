// Command abtest shows the abtest package on simulated traffic: two canary
// ramps guarded by error rate (one healthy, one broken), then a Thompson
// sampling bandit choosing among three rankers. Everything is seeded, so
// each run prints the same decisions.
//
//	go run ./examples/abtest
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"strconv"
	"sync"

	"github.com/quiverml/quiver/abtest"
	"github.com/quiverml/quiver/serving"
)

// simModel stands in for an ONNX model: it fails with probability errRate
// and otherwise answers with its name. Real deployments pass onnx.Load
// models, batchers or registry aliases instead.
type simModel struct {
	name    string
	errRate float64
	mu      sync.Mutex
	rng     *rand.Rand
}

var errSim = errors.New("simulated inference failure")

func newSim(name string, errRate float64, seed uint64) *simModel {
	return &simModel{name: name, errRate: errRate, rng: rand.New(rand.NewPCG(seed, 1))}
}

func (m *simModel) Info() serving.Info { return serving.Info{Name: m.name} }

func (m *simModel) Predict(context.Context, map[string]serving.Tensor) (map[string]serving.Value, error) {
	m.mu.Lock()
	fail := m.rng.Float64() < m.errRate
	m.mu.Unlock()
	if fail {
		return nil, errSim
	}
	return map[string]serving.Value{"score": serving.TensorValue(serving.NewTensor([]int64{1}, []float32{0.5}))}, nil
}

func (m *simModel) Close() error { return nil }

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	fmt.Println("== canary ramp: ranker v2 (healthy) against v1")
	if err := canary("v2", 0.005, 0.052, 11); err != nil {
		return err
	}
	fmt.Println()
	fmt.Println("== canary ramp: ranker v3 (3% errors) against v1")
	if err := canary("v3", 0.03, 0.05, 12); err != nil {
		return err
	}
	fmt.Println()
	fmt.Println("== Thompson sampling over three rankers")
	return bandit()
}

// canary ramps name from 1% to 100% against v1 (0.5% errors, 5% conversion),
// 20,000 requests per step, with a guardrail checked after each step.
func canary(name string, errRate, convRate float64, seed uint64) error {
	exp, err := abtest.NewExperiment(abtest.Config{
		Name:     "ranker-" + name,
		Variants: []abtest.Variant{{Name: name, Weight: 1}, {Name: "v1", Weight: 99}},
		Control:  "v1",
	})
	if err != nil {
		return err
	}
	router, err := abtest.NewRouter(exp, map[string]serving.Model{
		"v1": newSim("v1", 0.005, seed*10+1),
		name: newSim(name, errRate, seed*10+2),
	}, abtest.RouterOptions{})
	if err != nil {
		return err
	}
	defer router.Close()
	tracker := router.Tracker()
	guard, err := abtest.NewGuardrail(exp, tracker, abtest.GuardrailOptions{
		MaxErrorRateIncrease: 0.01, // one percentage point above v1
		// The simulated models answer in nanoseconds, so latency carries no
		// signal here; a real deployment keeps the p99 check (default 1.5x).
		MaxP99Ratio: -1,
	})
	if err != nil {
		return err
	}
	users := rand.New(rand.NewPCG(seed, 2))
	conv := map[string]float64{"v1": 0.05, name: convRate}
	ctx := context.Background()
	for step, pct := range []float64{1, 5, 20, 50, 100} {
		if err := exp.SetWeights(map[string]float64{name: pct, "v1": 100 - pct}); err != nil {
			return err
		}
		for range 20000 {
			user := "user-" + strconv.Itoa(users.IntN(200000))
			res, err := router.Predict(ctx, abtest.Request{Unit: user})
			if err != nil {
				continue // counted by the router as an error of res.Variant
			}
			if users.Float64() < conv[res.Variant] {
				if err := tracker.Convert(res.Variant); err != nil {
					return err
				}
			}
		}
		c, _ := tracker.Variant("v1")
		v, _ := tracker.Variant(name)
		fmt.Printf("step %d: %s at %3.0f%%: requests %6d/%6d, errors %.2f%% vs %.2f%%\n",
			step+1, name, pct, v.Requests, c.Requests, 100*v.ErrorRate, 100*c.ErrorRate)
		if step == 0 {
			// The split has not changed yet, so a sample ratio check is valid.
			srm, err := tracker.SRM(exp.Weights())
			if err != nil {
				return err
			}
			fmt.Printf("        sample ratio check: chi2 %.2f, p %.3f, mismatch %v\n", srm.ChiSquare, srm.PValue, srm.Mismatch)
		}
		if ds := guard.Check(); len(ds) > 0 {
			for _, d := range ds {
				fmt.Println("        guardrail:", d)
			}
			fmt.Println("        weights now:", exp.Weights())
			// The ramp schedule cannot undo the decision by accident.
			err := exp.SetWeights(map[string]float64{name: 20, "v1": 80})
			fmt.Println("        next ramp step refused:", errors.Is(err, abtest.ErrStopped))
			return nil
		}
	}
	z, err := tracker.CompareConversions("v1", name)
	if err != nil {
		return err
	}
	c, _ := tracker.Variant("v1")
	v, _ := tracker.Variant(name)
	fmt.Printf("ramp complete: conversion %.2f%% [%.2f, %.2f] vs %.2f%% [%.2f, %.2f], z %.2f, p %.4f\n",
		100*v.ConversionRate, 100*v.ConversionLow, 100*v.ConversionHigh,
		100*c.ConversionRate, 100*c.ConversionLow, 100*c.ConversionHigh, z.Z, z.PValue)
	return nil
}

// bandit routes 30,000 requests with a Thompson sampler over three rankers
// whose click rates are 3%, 4% and 5.5%, learning from each click.
func bandit() error {
	arms := []string{"ranker-a", "ranker-b", "ranker-c"}
	clicks := map[string]float64{"ranker-a": 0.03, "ranker-b": 0.04, "ranker-c": 0.055}
	ts, err := abtest.NewThompsonBeta(arms, abtest.BanditOptions{Seed: 7})
	if err != nil {
		return err
	}
	assigner, err := abtest.NewBanditAssigner("ranker-bandit", ts)
	if err != nil {
		return err
	}
	models := map[string]serving.Model{}
	for i, a := range arms {
		models[a] = newSim(a, 0, uint64(100+i))
	}
	router, err := abtest.NewRouter(assigner, models, abtest.RouterOptions{})
	if err != nil {
		return err
	}
	defer router.Close()
	users := rand.New(rand.NewPCG(8, 9))
	ctx := context.Background()
	for round := 1; round <= 30000; round++ {
		res, err := router.Predict(ctx, abtest.Request{Unit: "user-" + strconv.Itoa(users.IntN(100000))})
		if err != nil {
			return err
		}
		reward := 0.0
		if users.Float64() < clicks[res.Variant] {
			reward = 1
		}
		if err := ts.Update(res.Variant, reward); err != nil {
			return err
		}
		if round%10000 == 0 {
			fmt.Printf("after %5d requests:", round)
			for _, s := range ts.Stats() {
				fmt.Printf("  %s %5.1f%% of traffic, click rate %.2f%%", s.Arm, 100*float64(s.Pulls)/float64(round), 100*s.Mean)
			}
			fmt.Println()
		}
	}
	snap, err := ts.Snapshot()
	if err != nil {
		return err
	}
	restored, err := abtest.NewThompsonBeta(arms, abtest.BanditOptions{})
	if err != nil {
		return err
	}
	if err := restored.Restore(snap); err != nil {
		return err
	}
	next, again := ts.Select(), restored.Select()
	fmt.Printf("snapshot: %d bytes of JSON; next pick: original %s, restored %s\n", len(snap), next, again)
	return nil
}
