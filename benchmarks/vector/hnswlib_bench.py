#!/usr/bin/python3
"""Runs hnswlib (Debian python3-hnswlib) on the data set that Quiver's
vector BenchmarkSearch writes with QUIVER_BENCH_FVECS=<dir>, with the same
parameters (M=16, efConstruction=200, k=10), and prints recall@10 and
one-thread queries per second for each ef.

Two qps figures: "loop" calls knn_query once per query as Quiver's benchmark
does (it includes CPython's per-call overhead, a few microseconds), "batch"
passes all queries in one call on one thread (no per-call overhead).
cpu_qps divides by this thread's CPU time, like the Go benchmark's cpu_qps.

Usage: benchmarks/vector/hnswlib_bench.py <dir> [l2|cosine]   (see run.sh)
"cosine" reads the cosine set (base-cos.fvecs, query-cos.fvecs,
truth-cos.ivecs), which hnswlib's cosine space normalises itself.
"""
import sys
import time

import hnswlib
import numpy as np


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    dim = raw[0]
    rows = raw.reshape(-1, dim + 1)
    return rows[:, 1:].copy().view(dtype)


def main():
    d = sys.argv[1]
    space = sys.argv[2] if len(sys.argv) > 2 else "l2"
    if space not in ("l2", "cosine"):
        sys.exit(f"unknown space {space!r}, want l2 or cosine")
    suffix = "-cos" if space == "cosine" else ""
    base = read_vecs(d + "/base" + suffix + ".fvecs", np.float32)
    queries = read_vecs(d + "/query" + suffix + ".fvecs", np.float32)
    truth = read_vecs(d + "/truth" + suffix + ".ivecs", np.int32)
    n, dim = base.shape
    idx = hnswlib.Index(space=space, dim=dim)
    idx.init_index(max_elements=n, M=16, ef_construction=200, random_seed=42)
    t0 = time.time()
    idx.add_items(base, np.arange(n), num_threads=-1)
    build = time.time() - t0
    idx.set_num_threads(1)
    print(f"hnswlib {space} {n}x{dim} build_s(all cores)={build:.1f}")
    print("ef\trecall@10\tloop_qps\tloop_cpu_qps\tbatch_qps\tbatch_cpu_qps")
    reps = 10
    for ef in (16, 24, 32, 48, 64, 128, 256):
        idx.set_ef(ef)
        labels, _ = idx.knn_query(queries, k=10, num_threads=1)
        hit = sum(len(set(labels[i]) & set(truth[i])) for i in range(len(queries)))
        recall = hit / truth.size
        w0, c0 = time.perf_counter(), time.thread_time()
        for _ in range(reps):
            for q in queries:
                idx.knn_query(q, k=10, num_threads=1)
        w1, c1 = time.perf_counter(), time.thread_time()
        nq = reps * len(queries)
        for _ in range(reps):
            idx.knn_query(queries, k=10, num_threads=1)
        w2, c2 = time.perf_counter(), time.thread_time()
        print(f"{ef}\t{recall:.4f}\t{nq/(w1-w0):.0f}\t{nq/(c1-c0):.0f}\t{nq/(w2-w1):.0f}\t{nq/(c2-c1):.0f}")


if __name__ == "__main__":
    main()
