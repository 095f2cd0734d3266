#!/bin/sh
# Quiver HNSW vs coder/hnsw vs hnswlib on one clustered data set, in one run.
# Not part of CI: needs Debian's python3-hnswlib (apt-get install python3-hnswlib).
# QUIVER_BENCH_N sets the data set size (default 100000).
set -eu
cd "$(dirname "$0")/../.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
QUIVER_BENCH_FVECS="$dir" go test -run '^$' -bench 'BenchmarkSearch' -benchtime 2000x -timeout 60m ./vector/
go test -run '^$' -bench 'BenchmarkLoad(1M)?$' -benchtime 3x ./vector/
/usr/bin/python3 benchmarks/vector/hnswlib_bench.py "$dir"
