// Package abtest decides which model variant answers each request — A/B
// tests, canaries, shadow traffic and bandits — and measures which variant
// is better.
//
// An Experiment assigns units (users, sessions) to weighted variants by
// hashing, so an assignment is sticky across requests, processes and
// restarts. A ModelRouter predicts through the assigned variant's
// serving.Model and reports which variant answered; shadow models get
// asynchronous copies. A Tracker accumulates per-variant statistics, a
// Guardrail stops a canary that is worse than control, and the bandits
// (EpsilonGreedy, UCB1, ThompsonBeta, ThompsonGaussian) learn from rewards.
//
//	exp, err := abtest.NewExperiment(abtest.Config{
//		Name:     "ranker-v2",
//		Variants: []abtest.Variant{{Name: "v2", Weight: 5}, {Name: "v1", Weight: 95}},
//		Control:  "v1",
//	})
//	if err != nil { ... }
//	router, err := abtest.NewRouter(exp, map[string]serving.Model{"v1": m1, "v2": m2}, abtest.RouterOptions{})
//	if err != nil { ... }
//	defer router.Close()
//	res, err := router.Predict(ctx, abtest.Request{Unit: userID, Inputs: inputs})
//	// res.Variant says who answered; later, on a conversion:
//	router.Tracker().Convert(res.Variant)
//	// ramp the canary from 5% to 20%: units already in v2 stay in v2
//	err = exp.SetWeights(map[string]float64{"v2": 20, "v1": 80})
//
// Variants hold any serving.Model: an ONNX model, a batcher, or a registry
// alias (a serving.Model that forwards each call to the version the alias
// points at), so promoting a version behind an alias needs no change here.
//
// # Assignment scheme
//
// Everything below is exact, so that another service (in any language) can
// reproduce an assignment. XXH64 is the 64-bit xxHash with seed 0; ‖ is
// byte concatenation; strings are their UTF-8 bytes; salts never contain
// the bytes 0x00 or 0x01 (NewExperiment and NewLayer reject them).
//
//	bucket(salt, unit)   = XXH64(salt ‖ 0x00 ‖ unit) mod 1000000
//	coverage(salt, unit) = XXH64(salt ‖ 0x01 ‖ unit) mod 1000000
//
// The salt is Config.Salt, or the experiment name when empty. For salt
// "checkout-button" and unit "user-42" the hashed bytes are
// 63 68 65 63 6b 6f 75 74 2d 62 75 74 74 6f 6e 00 75 73 65 72 2d 34 32,
// XXH64 is 0xe30f09928f85a5ed, and the bucket is 77165; the coverage hash is
// 0x786f86a1e03a4541, coverage bucket 6977 (testdata/bucket_vectors.py
// computes these with an independent XXH64).
//
// A fraction f in [0, 1] becomes a bucket count as floor(f*1000000 + 0.5).
// Variants are laid out in declaration order: with weights w_1..w_n, total
// W and running sums C_i = w_1 + ... + w_i (IEEE double, summed in order),
// variant i owns buckets [B_{i-1}, B_i) where B_0 = 0, B_i =
// floor(C_i/W*1000000 + 0.5) and B_n = 1000000. Experiment.Ranges returns
// the current B_i. A unit is assigned by these steps, in order:
//
//  1. An empty unit id is an error (ErrEmptyUnit).
//  2. A unit listed in Config.Overrides gets its forced variant (not enrolled).
//  3. If the experiment belongs to a Layer with slice [L, H) (bucket counts
//     of the slice's fractions), a unit with bucket(layer salt, unit) outside
//     [L, H) gets the control (not enrolled).
//  4. If Config.Target rejects the unit's attributes, it gets the control.
//  5. If coverage c < 1 and coverage(salt, unit) >= floor(c*1000000 + 0.5),
//     it gets the control (not enrolled).
//  6. Otherwise it is enrolled in the variant whose range holds
//     bucket(salt, unit).
//
// Properties that follow: the 1,000,000 buckets give a resolution of
// 0.0001%; assignment is uniform (xxHash's output is); changing a weight
// moves only units across the boundaries that shift, so a canary listed
// first (or last) and ramped against the control only gains units when
// raised and loses the most recently added ones first when lowered;
// coverage uses a separate hash, so raising it only adds units and does not
// move anyone between variants; layers use their own salts, so experiments
// in different layers are independent while experiments sharing a layer
// are mutually exclusive.
//
// # Statistics
//
// TwoProportionZTest compares conversion rates, WelchTTest compares means,
// WilsonInterval and MeanInterval give 95% intervals, and SRMCheck tests a
// sample ratio mismatch (chi-square, alert at p < 0.001). The
// distribution functions come from gonum's distuv.
//
// # Replicas
//
// Assignment needs no coordination between replicas of a service: it is a
// hash. What they learn does: a Tracker and the bandits implement
// Poolable (their own numbers as Totals that add up across replicas, and
// SetPooled to read everyone's), and an Experiment reports its stops and
// resumes to Watch functions and applies other replicas' with
// ApplyChange. Package abtest/redisstate moves both through Redis, so
// Stats, a Guardrail and a bandit's Select decide from every replica's
// numbers while the request path stays in memory.
//
// # Metrics and logs
//
// They follow the rules of package quiver. ModelRouter.Collector and
// Tracker.Collector export these series, labelled with experiment=<name>
// (a router's shadow tracker is "<name>/shadow"):
//
//   - quiver_abtest_router_requests_total: counter; variant
//   - quiver_abtest_router_errors_total: counter
//   - quiver_abtest_shadow_copies_total: counter; outcome (enqueued, dropped, completed, failed)
//   - quiver_abtest_requests_total, quiver_abtest_errors_total: counters; variant
//   - quiver_abtest_exposures_total, quiver_abtest_conversions_total: counters; variant
//   - quiver_abtest_request_seconds: histogram; variant
//
// A nil RouterOptions.Logger or GuardrailOptions.Logger means
// slog.Default(): a guardrail stopping a variant is logged at warn level
// with its experiment, variant and numbers; shadow failures at debug level.
package abtest
