# ONNX Runtime: a user's ONNXRUNTIME_LIB overrides the library that `make ort` installs.
USER_ORT_LIB := $(ONNXRUNTIME_LIB)
export ONNXRUNTIME_LIB := $(or $(USER_ORT_LIB),$(CURDIR)/third_party/onnxruntime/libonnxruntime.so.1.30.0)
export CGO_ENABLED := 1

.PHONY: ort test demo bench vet fmt models

ort:
	@ONNXRUNTIME_LIB="$(USER_ORT_LIB)" bash scripts/install-ort.sh

vet:
	go vet ./...

test: ort
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	go vet ./...
	cd benchmarks && go vet ./...
	go test -race -timeout 30m ./...

demo: ort
	go run ./examples/quickstart

# Every benchmark of the library, then the side-by-side comparisons with peers
# (the features comparison starts a local redis-server).
bench: ort
	go test -run '^$$' -bench . -benchmem ./...
	cd benchmarks && go test -run '^$$' -bench . -benchmem ./...

# Regenerates the committed test models (needs Debian's python3-onnx).
models:
	/usr/bin/python3 testdata/models/gen_models.py testdata/models
