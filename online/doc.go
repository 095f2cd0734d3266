// Package online keeps a model learning from the outcomes a service sees:
// the loop that joins predictions to their labels, trains in
// mini-batches, measures itself on held-out events, and turns what it
// learned into canaries that are promoted or stopped. It composes the
// other packages (features, registry, abtest, serving) and needs no cgo.
//
// A Loop serves each prediction with the features of its moment: Predict
// reads the request's entities from a features.Store (Options.Features,
// one selection per entity), runs the model (Options.Model, or an
// abtest.Router between the registry's production and canary aliases),
// and logs the request id, entity keys, the feature row, the score, the
// variant and registry version that answered, and the time. Outcomes
// arrive later, through Outcome or a RedisStreamSource, and join the
// logged row: a feature written after the prediction never reaches the
// training row (the row is copied at prediction time; the store has no
// as-of read, and needs none). Predictions whose outcome does not come
// within Options.TTL expire, and at most Options.MaxPending wait, so
// memory is bounded; both are counted.
//
// Every Options.HoldoutEvery-th joined event is held out: never trained
// on, it is scored by the learner as it stands, the
// production alias and any Options.Baselines, and each Options.WindowSize
// held-out events make a Window of AUC and log-loss per model. Other
// events fill mini-batches of Options.BatchSize rows for Learner.Update.
// AUC counts ties as one half (Mann-Whitney with mid-ranks) and is NaN,
// with ErrOneClass from AUC, for one-class sets; LogLoss clips
// probabilities to [1e-15, 1-1e-15].
//
// The Learner is any model that predicts, updates on a mini-batch and
// exports ONNX; serving/gorgonia/train's Trainer fits through
// LearnerFrom. With Options.Deploy, every Deploy.Every joined events the
// learner is exported and published to the registry (lineage: the
// production version as parent, the prediction times of its training
// rows as an ISO 8601 interval in DataVersion and the data_from/data_to
// tags; metrics auc, log_loss and heldout_events), the canary alias moves
// to it, and the experiment's canary variant gets Deploy.CanaryWeight of
// the traffic. The candidate is judged on the next Deploy.EvalEvents
// held-out events, scored through the canary and production handles
// exactly as ONNX Runtime serves them: promoted (production alias moves)
// when its AUC gain is at least Deploy.MinAUCGain and its log-loss
// increase at most Deploy.MaxLogLossIncrease, stopped otherwise; an
// abtest.Guardrail that stops the canary variant for errors or latency
// stops it at once. Every Decision is kept with its reason and numbers
// (Loop.Decisions).
//
//	learner, _ := train.New(train.LogisticRegression{Features: 8}, train.Options{LearningRate: 0.03})
//	loop, err := online.New(online.LearnerFrom(learner), online.Options{
//		Store: store, Features: []*features.Selection{userSel, itemSel},
//		Router: router, // production and canary registry handles
//		Deploy: &online.Deploy{Registry: reg, Model: "clicks", Production: prod, Canary: canary,
//			Sync: srv.Sync, Experiment: exp, Guardrail: guard},
//	})
//	if err != nil { ... }
//	p, err := loop.Predict(ctx, online.Request{ID: reqID, Entities: []string{userID, itemID}})
//	// later, when the user clicks (or not):
//	err = loop.Outcome(ctx, online.Outcome{RequestID: reqID, Label: 1})
//	// or from a Redis stream, acknowledged once the update is applied
//	// (at most StreamOptions.FlushDelay later, so a slow stream still
//	// fills mini-batches):
//	src, _ := online.NewRedisStreamSource(rdb, online.StreamOptions{Stream: "outcomes", Group: "learners", Consumer: host})
//	go src.Run(ctx, loop)
//
// On the test stream of TestOnlineRecoversFromDrift (eight features, the
// click weights of four change sign at event 20,000), the learner's
// held-out AUC is back within 0.02 of its pre-drift AUC 4,248 events
// after the drift (asserted: within 5,000), while a copy that stopped
// learning before the drift stays near 0.46 against 0.93 before.
//
// Metrics and logs follow the rules of package quiver. Loop.Collector
// exports quiver_online_* series (predictions, outcomes by result,
// expired, evicted, pending, held-out, trained rows, updates, exports,
// promotions, stops, canary version, window AUC and log-loss per model),
// labelled loop=Options.Name plus the caller's constant labels. A nil
// Options.Logger or StreamOptions.Logger means slog.Default().
package online
