// Package inferencepb holds the Go types and gRPC service of the Open
// Inference Protocol, generated from open_inference_grpc.proto: proto
// package inference, service inference.GRPCInferenceService, as clients
// of Triton and KServe expect.
//
// The .proto is not kept in this repository. It is the file
// specification/protocol/open_inference_grpc.proto of the repository
// github.com/kserve/open-inference-protocol at commit d49cc23. The
// generated files are committed, so building Quiver needs no protoc. To
// regenerate them, put that file in this folder, install protoc (Debian:
// apt-get install protobuf-compiler; 3.21.12 was used) and the plugins
// (protoc-gen-go v1.36.12, the version of google.golang.org/protobuf in
// go.mod, and protoc-gen-go-grpc v1.6.2) on PATH:
//
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
//
// then run, in this folder,
//
//	protoc --proto_path=. \
//	  --go_out=. --go_opt=paths=source_relative \
//	  --go_opt=Mopen_inference_grpc.proto=github.com/quiverml/quiver/serving/oip/inferencepb \
//	  --go-grpc_out=. --go-grpc_opt=paths=source_relative \
//	  --go-grpc_opt=Mopen_inference_grpc.proto=github.com/quiverml/quiver/serving/oip/inferencepb \
//	  open_inference_grpc.proto
//
// and delete the .proto again.
package inferencepb
