#!/bin/sh
# Quiver HNSW vs coder/hnsw vs hnswlib on the two clustered data sets
# (set=l2-128: 128-d under L2; set=cos-384: 384-d under cosine), in one run.
# Not part of CI. Needs Debian's libhnswlib-dev (headers, for the native
# peer compiled here with -march=native) and optionally python3-hnswlib
# (Debian's SSE build, through Python).
# QUIVER_BENCH_N sets the size of each data set (default 100000).
set -eu
cd "$(dirname "$0")/../.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
g++ -O3 -march=native -std=c++17 -pthread -o "$dir/hnswlib_native" benchmarks/vector/hnswlib_native.cc
# Builds both sets, writes them to $dir and searches them with Quiver
# (and coder/hnsw on the L2 set).
QUIVER_BENCH_FVECS="$dir" go test -run '^$' -bench 'BenchmarkSearch$' -benchtime 2000x -timeout 60m ./vector/
"$dir/hnswlib_native" "$dir" l2
"$dir/hnswlib_native" "$dir" cosine
# SearchBatch against a loop of Search on the L2 set (mode=alternate runs
# both in every iteration; mode=loop and mode=batch one each).
go test -run '^$' -bench 'BenchmarkSearchBatch$' -benchtime 20x -count 4 -timeout 30m ./vector/
go test -run '^$' -bench 'BenchmarkLoad(1M)?$' -benchtime 3x -timeout 30m ./vector/
if /usr/bin/python3 -c 'import hnswlib' 2>/dev/null; then
	/usr/bin/python3 benchmarks/vector/hnswlib_bench.py "$dir" l2
	/usr/bin/python3 benchmarks/vector/hnswlib_bench.py "$dir" cosine
fi
