package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// printStartup says what New built, for someone reading the demo's output
// for the first time.
func printStartup(w io.Writer, app *App, took time.Duration) {
	s := app.startup
	fmt.Fprintf(w, "Quiver recommender: feature store, vector index, model registry, batched ONNX scoring\n"+
		"and a canary experiment in one Go process (started in %v).\n\n", took.Round(time.Millisecond))
	tier := "in-process"
	if s.RedisTier != "" {
		tier = "in-process, shared through Redis at " + s.RedisTier
	}
	fmt.Fprintf(w, "features   %d users and %d items written to the feature store (%s) in %v\n",
		s.Users, s.Items, tier, s.FeaturesTook.Round(time.Millisecond))
	fmt.Fprintf(w, "vector     %d item embeddings indexed (HNSW, inner product) in %v\n", s.Items, s.IndexTook.Round(time.Millisecond))
	ag := s.Agreement
	fmt.Fprintf(w, "quant      v2 quantized to int8 weights (%d -> %d bytes) and checked against v2 on %d users'\n"+
		"           candidate lists (%d rows) in %v: top-10 overlap %.1f%%, same first item %.1f%%, score max abs error %.4f\n",
		ag.BytesBefore, ag.BytesAfter, ag.Users, ag.Rows, s.QuantTook.Round(time.Millisecond), 100*ag.TopKOverlap, 100*ag.Top1, ag.Scores.MaxAbs)
	fmt.Fprintf(w, "registry   %s (published, loaded and warmed up in %v); lineage: data %s, code %s\n",
		s.RegistryDir, s.RegistryTook.Round(time.Millisecond), s.Training.DataVersion, s.Training.CodeVersion)
	for _, r := range s.Releases {
		parent := ""
		if r.Parent > 0 {
			parent = fmt.Sprintf(", parent v%d", r.Parent)
		}
		auc := ""
		if v, ok := r.Metrics["auc"]; ok {
			auc = fmt.Sprintf(", held-out AUC %.3f", v)
		}
		fmt.Fprintf(w, "             v%d  %s%s%s\n", r.Number, r.Description, parent, auc)
	}
	fmt.Fprintf(w, "aliases    production -> v%d, canary -> v%d, shadow -> v%d (one serving.Batcher in front of each)\n",
		s.ServedVersions[aliasProduction], s.ServedVersions[aliasCanary], s.ServedVersions[aliasShadow])
	var split []string
	for _, v := range app.exp.Weights() {
		split = append(split, fmt.Sprintf("%s %.0f%%", v.Name, v.Weight))
	}
	fmt.Fprintf(w, "abtest     experiment %q splits users %s (sticky hash of the user id);\n"+
		"           the shadow alias gets a copy of every request and never answers\n", app.exp.Name(), strings.Join(split, ", "))
}

// printLoad prints what the clients saw and what the experiment concluded.
func printLoad(w io.Writer, r loadResult, s Snapshot) {
	secs := r.Elapsed.Seconds()
	var failed uint64
	for _, n := range r.Failed {
		failed += n
	}
	fmt.Fprintf(w, "\nresults after %v\n", r.Elapsed.Round(100*time.Millisecond))
	fmt.Fprintf(w, "  requests     %d recommendations (%.0f/s) and %d feedback posts answered; failed: %d and %d\n",
		r.Recommendations, float64(r.Recommendations)/secs, r.Feedback, failed, r.FeedbackFailed)
	for _, e := range r.Errors {
		fmt.Fprintf(w, "               e.g. %s\n", e)
	}
	fmt.Fprintf(w, "  latency      p50 %v, p99 %v per recommendation (client side: HTTP, features, retrieval, batched model run)\n",
		r.Latency.Quantile(0.5).Round(10*time.Microsecond), r.Latency.Quantile(0.99).Round(10*time.Microsecond))

	names := make([]string, 0, len(r.Variants))
	for v := range r.Variants {
		names = append(names, v)
	}
	slices.Sort(names)
	var parts []string
	for _, v := range names {
		parts = append(parts, fmt.Sprintf("%s %d (%.1f%%)", v, r.Variants[v], 100*float64(r.Variants[v])/float64(max(r.Recommendations, 1))))
	}
	fmt.Fprintf(w, "  split        %s\n", strings.Join(parts, ", "))
	for _, v := range names {
		var vs []string
		versions := make([]int64, 0, len(r.Versions[v]))
		for n := range r.Versions[v] {
			versions = append(versions, n)
		}
		slices.Sort(versions)
		for _, n := range versions {
			vs = append(vs, fmt.Sprintf("v%d %d", n, r.Versions[v][n]))
		}
		fmt.Fprintf(w, "  served by    %s: %s\n", v, strings.Join(vs, ", "))
	}
	for _, v := range s.Variants {
		state := ""
		if v.Stopped {
			state = " (stopped)"
		}
		fmt.Fprintf(w, "  clicks       %-10s %5.1f%% [%.1f, %.1f] of %d recommendations%s\n",
			v.Name, 100*v.CTR, 100*v.CTRLow, 100*v.CTRHigh, v.Exposures, state)
	}

	fmt.Fprintf(w, "  alias moves  %d moves of production, while clients kept asking:\n", len(r.Moves))
	for _, m := range r.Moves {
		if m.Observed {
			fmt.Fprintf(w, "                 v%d -> v%d, first answer from v%d %v after the move\n", m.From, m.To, m.To, m.Seen.Round(100*time.Microsecond))
		} else {
			fmt.Fprintf(w, "                 v%d -> v%d, NOT SEEN: %s\n", m.From, m.To, m.Err)
		}
	}

	if len(s.Decisions) == 0 {
		fmt.Fprintln(w, "  guardrails   no decision: the canary kept its traffic")
	}
	for _, d := range s.Decisions {
		what := "error rate"
		if d.Reason == "no_click_rate" {
			what = "no-click rate"
		}
		if d.Reason == "p99_latency" {
			fmt.Fprintf(w, "  guardrails   %s stopped by the %s guardrail: model p99 %v vs %v on production\n",
				d.Variant, d.Guardrail, d.Decision.VariantP99, d.Decision.ControlP99)
			continue
		}
		p := fmt.Sprintf("p = %.2g", d.PValue)
		if d.PValue < 1e-12 {
			p = "p < 1e-12"
		}
		fmt.Fprintf(w, "  guardrails   %s stopped by the %s guardrail %v into the load: %s %.1f%% vs %.1f%% on production\n"+
			"               (%d vs %d outcomes, one-sided %s); its users now get production\n",
			d.Variant, d.Guardrail, d.Time.Sub(r.Start).Round(100*time.Millisecond), what, 100*d.VariantRate, 100*d.ControlRate, d.VariantN, d.ControlN, p)
	}
	fmt.Fprintf(w, "  shadow       int8 v%d got %d copies (%d dropped while its queue was full), %d failed, model p99 %v\n",
		s.Shadow.Version, s.Shadow.Enqueued, s.Shadow.Dropped, s.Shadow.Failed, s.Shadow.P99.Round(10*time.Microsecond))
}
