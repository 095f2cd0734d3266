package onnxpb

// onnx.pb.go holds the ONNX protobuf types generated from onnx.proto, a copy of
// ONNX 1.12's onnx.proto (see its header for the two local changes). The
// generated file is committed, so building Quiver needs neither protoc nor
// protoc-gen-go. To regenerate it after changing onnx.proto, install protoc
// (Debian: apt-get install protobuf-compiler; 3.21.12 was used) and
// protoc-gen-go at the version of google.golang.org/protobuf in go.mod:
//
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//
// then run, from the module root, go generate ./internal/onnxpb, which runs
// this command in this folder:
//
//go:generate protoc --proto_path=../.. --go_out=../.. --go_opt=paths=source_relative internal/onnxpb/onnx.proto
