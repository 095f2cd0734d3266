#!/bin/sh
# Quiver HNSW vs coder/hnsw vs hnswlib on one clustered data set, in one run.
# Not part of CI. Needs Debian's libhnswlib-dev (headers, for the native
# peer compiled here with -march=native) and optionally python3-hnswlib
# (Debian's SSE build, through Python).
# QUIVER_BENCH_N sets the data set size (default 100000).
set -eu
cd "$(dirname "$0")/../.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
g++ -O3 -march=native -std=c++17 -pthread -o "$dir/hnswlib_native" benchmarks/vector/hnswlib_native.cc
QUIVER_BENCH_FVECS="$dir" go test -run '^$' -bench 'BenchmarkSearch' -benchtime 2000x -timeout 60m ./vector/
"$dir/hnswlib_native" "$dir" l2
go test -run '^$' -bench 'BenchmarkLoad(1M)?$' -benchtime 3x ./vector/
if /usr/bin/python3 -c 'import hnswlib' 2>/dev/null; then
	/usr/bin/python3 benchmarks/vector/hnswlib_bench.py "$dir"
fi
