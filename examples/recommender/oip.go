package main

import (
	"context"
	"net/http"

	"google.golang.org/grpc"

	"github.com/quiverml/quiver/serving/oip"
)

// newOIP returns the Open Inference Protocol (KServe v2) handler for the
// scoring model's aliases, by registry name: "ranker" is production,
// "ranker:canary" and "ranker:shadow" the other aliases, and
// /v2/models/ranker/versions/<n> any version an alias points at now.
// Answers report the registry version as model_version.
//
// It goes straight to the aliases' registry Handles, one model run per
// request: the protocol is for tools and other services asking the model
// directly, while /recommend goes through the experiment and the batchers.
func (a *App) newOIP() *oip.Handler {
	return oip.NewHandler(oip.RegistryModels(a.srv, servedAliases...), oip.HandlerOptions{
		Logger:     a.log,
		ServerName: "quiver-recommender",
		Ready:      a.ready,
	})
}

func (a *App) ready(context.Context) bool {
	ok, _ := a.Ready()
	return ok
}

// RegisterGRPC registers the protocol's gRPC flavour
// (inference.GRPCInferenceService) for the same models as /v2 on s, and
// adds its series (quiver_oip_*, protocol="grpc") to /metrics. Call it once,
// before s serves.
func (a *App) RegisterGRPC(s grpc.ServiceRegistrar) error {
	g := oip.RegisterGRPC(s, oip.RegistryModels(a.srv, servedAliases...), oip.GRPCOptions{
		Logger:     a.log,
		ServerName: "quiver-recommender",
		Ready:      a.ready,
	})
	return a.metrics.Register(g.Collector(nil))
}

// mountOIP serves the protocol under /v2, through instrument so its
// requests get ids, logs, spans and the service's HTTP metrics too.
func (a *App) mountOIP(mux *http.ServeMux) {
	h := a.instrument("/v2", a.oip.ServeHTTP)
	mux.Handle("/v2", h)
	mux.Handle("/v2/", h)
}
