#!/usr/bin/env bash
# Prints on-CPU nanoseconds per operation of abtest benchmarks, from the
# process's task-clock (perf stat) over N iterations minus a 1-iteration run
# (setup). Unlike the wall-clock ns/op of `go test -bench`, CPU time is barely
# inflated when other processes share the cores.
#
#   bash abtest/testdata/cpu_per_op.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000000}
bin=$(mktemp)
trap 'rm -f "$bin"' EXIT
go test -c -o "$bin" .
cpu() {
	perf stat -x, -e task-clock -r 3 "$bin" -test.run '^$' -test.bench "$1" -test.benchtime "$2" 2>&1 >/dev/null |
		awk -F, '/task-clock/ {print $1}'
}
measure() {
	local b=$1 k=$2
	t0=$(cpu "$b" 1x)
	t1=$(cpu "$b" "${k}x")
	awk -v b="$b" -v t0="$t0" -v t1="$t1" -v n="$k" 'BEGIN {printf "%-28s %10.1f ns/op CPU\n", b, (t1 - t0) * 1e6 / n}'
}
for b in 'Assign/plain$' 'Assign/layer' 'Assign/xxhash-floor' 'Assign/parallel' 'Router/fake/direct' \
	'Router/fake/router$' 'Router/clock-pair' 'Router/fake/router\+shadow'; do
	measure "$b" "$n"
done
# ONNX Runtime runs are ~1000x slower: fewer iterations (enough that model
# loading, in the 1-iteration run, is small against the difference).
for b in 'Router/onnx-mlp/direct' 'Router/onnx-mlp/router'; do
	measure "$b" $((n / 100))
done
