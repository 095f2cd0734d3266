# ONNX Runtime: a user's ONNXRUNTIME_LIB overrides the library that `make ort` installs.
USER_ORT_LIB := $(ONNXRUNTIME_LIB)
export ONNXRUNTIME_LIB := $(or $(USER_ORT_LIB),$(CURDIR)/third_party/onnxruntime/libonnxruntime.so.1.30.0)
export CGO_ENABLED := 1

.PHONY: ort s3gw test demo quickstart bench vet fmt models nocgo

# The packages that need cgo: the ONNX Runtime engine, the process-wide ORT
# environment, and the example programs that serve models on it. Every
# other package must build with CGO_ENABLED=0; nocgo proves it, and runs the
# pure-Go engine's, the trainer's and the online loop's tests without cgo.
CGO_PACKAGES := /serving/onnx /internal/ort /examples/quantize /examples/quickstart /examples/rag /examples/registry /examples/recommender /examples/online

ort:
	@ONNXRUNTIME_LIB="$(USER_ORT_LIB)" bash scripts/install-ort.sh

# The S3-compatible server the object-store tests run against (Versity S3
# gateway, built from the Go module proxy into the ignored third_party/bin).
VERSITYGW := $(CURDIR)/third_party/bin/versitygw
export QUIVER_VERSITYGW := $(or $(QUIVER_VERSITYGW),$(VERSITYGW))
s3gw:
	@test -x "$(QUIVER_VERSITYGW)" || GOBIN=$(CURDIR)/third_party/bin go install github.com/versity/versitygw/cmd/versitygw@v1.8.0

vet:
	go vet ./...

nocgo:
	CGO_ENABLED=0 go build $$(go list ./... | grep -v $(foreach p,$(CGO_PACKAGES),-e '$(p)$$'))
	@! go list -deps ./quant | grep -E 'gorgonia|apache/arrow|flatbuffers' || { echo "quant must not depend on the packages above"; exit 1; }
	CGO_ENABLED=0 go test ./serving/gorgonia/... ./online

test: ort s3gw nocgo
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	go vet ./...
	cd benchmarks && go vet ./...
	go test -race -timeout 30m ./...

# The whole service (examples/recommender) driven by its own load generator
# for 20 seconds; the quickstart is the smallest example.
demo: ort
	go run ./examples/recommender -demo 20s

quickstart: ort
	go run ./examples/quickstart

# Every benchmark of the library, then the side-by-side comparisons with peers
# (the features comparison starts a local redis-server).
bench: ort s3gw
	go test -run '^$$' -bench . -benchmem ./...
	cd benchmarks && go test -run '^$$' -bench . -benchmem ./...

# Regenerates the committed test models (needs Debian's python3-onnx).
models:
	/usr/bin/python3 testdata/models/gen_models.py testdata/models
	/usr/bin/python3 testdata/models/gen_ops.py testdata/models
