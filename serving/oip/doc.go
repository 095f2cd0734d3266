// Package oip serves Quiver models over the Open Inference Protocol (the
// KServe "V2" protocol that Triton, KServe, Seldon MLServer and their
// clients speak), over REST and gRPC, from inside a Go service.
//
// A Repository says which models are served: Models serves a fixed map of
// serving.Model values (batchers, engines, registry handles), RegistryModels
// the aliases of a registry.Server. NewHandler returns the REST endpoints as
// an http.Handler; RegisterGRPC registers the gRPC service
// inference.GRPCInferenceService on a grpc.Server.
//
//	b, err := serving.NewBatcher(m, serving.BatcherOptions{})
//	if err != nil { ... }
//	repo := oip.Models(map[string]serving.Model{"ranker": b})
//	mux := http.NewServeMux()
//	mux.Handle("/v2/", oip.NewHandler(repo, oip.HandlerOptions{}))
//	gs := grpc.NewServer()
//	oip.RegisterGRPC(gs, repo, oip.GRPCOptions{})
//
// # REST endpoints
//
//	GET  /v2                                          server metadata
//	GET  /v2/health/live                              {"live": true}
//	GET  /v2/health/ready                             {"ready": bool}; 503 when not ready
//	GET  /v2/models/{name}[/versions/{v}]             model metadata
//	GET  /v2/models/{name}[/versions/{v}]/ready       {"name", "ready"}; 503 when not ready
//	POST /v2/models/{name}[/versions/{v}]/infer       inference
//
// An inference request carries its inputs with name, shape, datatype and
// data: a flat row-major array, or nested arrays, which are flattened. The
// datatypes are BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32,
// INT64, FP16, FP32, FP64, BYTES (serving's string elements) and BF16
// (bfloat16). Numbers are coerced to the datatype when they fit exactly;
// NaN and infinities travel as the strings "NaN", "Infinity" and
// "-Infinity", in requests and answers, since JSON numbers cannot hold
// them. The optional "outputs" list picks the outputs answered, in that
// order; without it every tensor output of the model is answered. "id" is
// echoed. Sequence and map outputs cannot travel in the protocol: they are
// left out of metadata and of default answers, and requesting one is an
// error (ErrUnsupported).
//
// # Binary tensor data
//
// The handler implements Triton's binary tensor data extension (reported
// as "binary_tensor_data" in the server metadata). A request with the
// header Inference-Header-Content-Length: <n> holds the JSON request in its
// first n bytes; the rest of the body is the raw data of every input that
// sets parameters.binary_data_size, concatenated in input order:
// little-endian, row-major, no padding, BOOL as one byte, each BYTES
// element as a 4-byte little-endian length followed by its bytes. Every
// size must match the shape and the body exactly. An answer is binary for
// every output when the request sets parameters.binary_data_output, or
// for each requested output that sets parameters.binary_data (false turns
// it off for one output): such an output has parameters.binary_data_size
// and no data, its bytes follow the JSON answer in output order, and the
// answer has Content-Type application/octet-stream and the
// Inference-Header-Content-Length header.
//
// # Errors
//
// Errors are answered as {"error": "<message>"}; the message says what was
// wrong and what was expected. Statuses and gRPC codes:
//
//	400 InvalidArgument     ErrInvalidRequest, ErrUnsupported, serving.ErrShape, ErrType, ErrInput
//	400 ResourceExhausted   serving.ErrTooLarge (more rows than the Batcher takes)
//	404 NotFound            ErrModelNotFound, ErrVersionNotFound
//	405                     wrong method (an Allow header names the right one)
//	413 ResourceExhausted   ErrBodyTooLarge (HandlerOptions.MaxBodyBytes; gRPC: grpc.MaxRecvMsgSize)
//	415                     a Content-Encoding other than identity
//	503 Unavailable         serving.ErrOverloaded, ErrNotReady, ErrClosed: retry later
//	504 DeadlineExceeded    the request's timeout (HandlerOptions.Timeout) or deadline passed
//	499 Canceled            the client went away (logged and counted; nobody reads it)
//	500 Internal            anything else, such as a model that failed to run
//
// 504 (Gateway Timeout) rather than 408 (Request Timeout): the client sent
// its request in time, the server did not answer in time.
//
// # gRPC
//
// GRPCServer implements ServerLive, ServerReady, ModelReady,
// ServerMetadata, ModelMetadata and ModelInfer of
// inference.GRPCInferenceService (generated code in package inferencepb).
// ModelInfer takes typed contents (FP16 and BF16 have none) or
// raw_input_contents for every input, in the raw layout above, and answers
// raw_output_contents when the request was raw or an output is FP16 or
// BF16, typed contents otherwise.
//
// # Authentication and observability
//
// The package has no authentication of its own: wrap the handler in the
// application's middleware (see the example of a bearer token), and give
// the gRPC server an interceptor (grpc.UnaryInterceptor). The request's
// context reaches the model's Predict, so a trace span started by
// middleware (otelhttp, otelgrpc) parents the Batcher's spans, and
// cancellation by the client ends the wait. Handler.Stats and
// GRPCServer.Stats count requests by endpoint and code, and time
// successful inferences; their Collector exports them as
// quiver_oip_requests_total{endpoint, code} and quiver_oip_infer_seconds,
// labelled protocol="rest" or "grpc" plus the caller's constant labels.
// Failed requests are logged through the options' slog.Logger.
package oip
