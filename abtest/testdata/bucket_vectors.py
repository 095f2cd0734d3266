#!/usr/bin/env python3
"""Computes abtest assignment test vectors with a pure-Python XXH64 written
from the xxHash specification (doc/xxhash_spec.md of the xxHash project), so
that the Go tests check the Go implementation against an independent one.

    python3 abtest/testdata/bucket_vectors.py
"""

M = (1 << 64) - 1
P1 = 0x9E3779B185EBCA87
P2 = 0xC2B2AE3D27D4EB4F
P3 = 0x165667B19E3779F9
P4 = 0x85EBCA77C2B2AE63
P5 = 0x27D4EB2F165667C5


def rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M


def rnd(acc, lane):
    acc = (acc + lane * P2) & M
    return (rotl(acc, 31) * P1) & M


def merge(acc, v):
    acc ^= rnd(0, v)
    return (acc * P1 + P4) & M


def xxh64(data, seed=0):
    n = len(data)
    i = 0
    if n >= 32:
        v = [(seed + P1 + P2) & M, (seed + P2) & M, seed, (seed - P1) & M]
        while i + 32 <= n:
            for j in range(4):
                v[j] = rnd(v[j], int.from_bytes(data[i + 8 * j:i + 8 * j + 8], "little"))
            i += 32
        acc = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & M
        for j in range(4):
            acc = merge(acc, v[j])
    else:
        acc = (seed + P5) & M
    acc = (acc + n) & M
    while i + 8 <= n:
        acc ^= rnd(0, int.from_bytes(data[i:i + 8], "little"))
        acc = (rotl(acc, 27) * P1 + P4) & M
        i += 8
    if i + 4 <= n:
        acc ^= (int.from_bytes(data[i:i + 4], "little") * P1) & M
        acc = (rotl(acc, 23) * P2 + P3) & M
        i += 4
    while i < n:
        acc ^= (data[i] * P5) & M
        acc = (rotl(acc, 11) * P1) & M
        i += 1
    acc ^= acc >> 33
    acc = (acc * P2) & M
    acc ^= acc >> 29
    acc = (acc * P3) & M
    acc ^= acc >> 32
    return acc


# Published reference values of XXH64 with seed 0.
assert xxh64(b"") == 0xEF46DB3751D8E999
assert xxh64(b"abc") == 0x44BC2CF5AD770999
assert xxh64(b"Nobody inspects the spammish repetition") == 0xFBCEA83C8A378BF1

BUCKETS = 1_000_000
for salt, sep, unit in [
    ("checkout-button", b"\x00", "user-42"),
    ("checkout-button", b"\x01", "user-42"),
    ("ranker-canary", b"\x00", "session-7f3a9c2e-1d4b-4e8a-9b6f-0c2d4e6f8a1b"),
    ("layer:ranking", b"\x00", "user-42"),
]:
    data = salt.encode() + sep + unit.encode()
    h = xxh64(data)
    print(f"{salt!r} {sep!r} {unit!r}: xxh64=0x{h:016x} bucket={h % BUCKETS}")
