#!/usr/bin/python3
"""Trains and writes the scoring models of the recommender example.

Every model scores (user, item) pairs: input "x" float32 [batch, 20], the
user's feature row (activity, budget, taste[8]) followed by the item's
(popularity, price, emb[8]), exactly as the service reads them from its
feature store; output "score" float32 [batch, 1], the predicted click
probability. The graph multiplies taste and emb element-wise, concatenates
that with x, and runs a one-hidden-layer MLP with a sigmoid on top:

    x -> [x, taste * emb] -> MatMul W1 + b1 -> Relu -> MatMul W2 + b2 -> Sigmoid -> score

The demo data follow a known click model (the same formula as clickLogit in
data.go), so the models are trained here on pairs drawn from the same
distributions as the Go data, with the true click probability as a soft
label:

    logit = -2 + 4 * dot(taste, emb) + 2 * popularity + 0.5 * activity
            - 4 * max(0, price - budget)

Written files (all deterministic: fixed seeds, no timestamps):
  ranker_v1.onnx   8 hidden units, a short training run (the first release)
  ranker_v2.onnx   32 hidden units, a longer run on more data (the retrain)
  ranker_bad.onnx  ranker_v2 with its output layer negated: it scores
                   1 - p, so it ranks the least likely clicks first (the
                   deliberately bad canary)
  metrics.json     held-out AUC and log loss of each model, and the
                   training data and code versions (registry lineage)

Run with Debian's python3-onnx from the repository root:
    /usr/bin/python3 examples/recommender/model/gen_models.py
"""
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DIM = 8  # taste and emb length
USER_WIDTH = 2 + DIM
WIDTH = 2 * USER_WIDTH
DATA_VERSION = "synthetic-clicks-seed-20261201"
CODE_VERSION = "gen_models.py@1"


def unit(rng, n):
    v = rng.standard_normal((n, DIM))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def sample(rng, n):
    """Pairs as the service sees them: half random items, half items near
    the user's taste (what vector retrieval returns as candidates)."""
    taste = unit(rng, n)
    activity = rng.uniform(0, 1, n)
    budget = rng.uniform(0.2, 1, n)
    emb = unit(rng, n)
    near = rng.uniform(0, 1, n) < 0.5
    close = taste + 0.6 * rng.standard_normal((n, DIM))
    close /= np.linalg.norm(close, axis=1, keepdims=True)
    emb[near] = close[near]
    popularity = rng.uniform(0, 1, n) ** 2
    price = rng.uniform(0, 1, n)
    x = np.concatenate([activity[:, None], budget[:, None], taste,
                        popularity[:, None], price[:, None], emb], axis=1).astype(np.float32)
    logit = (-2 + 4 * np.sum(taste * emb, axis=1) + 2 * popularity + 0.5 * activity
             - 4 * np.maximum(0, price - budget))
    p = 1 / (1 + np.exp(-logit))
    return x, p


def features(x):
    return np.concatenate([x, x[:, 2:2 + DIM] * x[:, USER_WIDTH + 2:]], axis=1)


def forward(params, x):
    w1, b1, w2, b2 = params
    a1 = features(x) @ w1 + b1
    h = np.maximum(a1, 0)
    s = 1 / (1 + np.exp(-(h @ w2 + b2)))
    return a1, h, s


def train(seed, hidden, n, steps):
    """Full-batch Adam on the soft-label cross-entropy."""
    rng = np.random.default_rng(seed)
    x, p = sample(rng, n)
    fin = WIDTH + DIM
    params = [rng.standard_normal((fin, hidden)) * np.sqrt(2 / fin), np.zeros(hidden),
              rng.standard_normal((hidden, 1)) * np.sqrt(1 / hidden), np.zeros(1)]
    m = [np.zeros_like(q) for q in params]
    v = [np.zeros_like(q) for q in params]
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    f = features(x)
    for t in range(1, steps + 1):
        a1, h, s = forward(params, x)
        d2 = (s[:, 0] - p)[:, None] / n
        grads = [None, None, h.T @ d2, d2.sum(axis=0)]
        d1 = (d2 @ params[2].T) * (a1 > 0)
        grads[0], grads[1] = f.T @ d1, d1.sum(axis=0)
        for i, g in enumerate(grads):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            params[i] = params[i] - lr * (m[i] / (1 - b1 ** t)) / (np.sqrt(v[i] / (1 - b2 ** t)) + eps)
    return [q.astype(np.float32) for q in params]


def auc(score, label):
    """Area under the ROC curve (Mann-Whitney U, ties averaged)."""
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    s = score[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = label.sum()
    neg = len(label) - pos
    return float((ranks[label].sum() - pos * (pos + 1) / 2) / (pos * neg))


def evaluate(params):
    rng = np.random.default_rng(99)
    x, p = sample(rng, 20000)
    clicked = rng.uniform(0, 1, len(p)) < p
    s = np.clip(forward(params, x)[2][:, 0].astype(np.float64), 1e-7, 1 - 1e-7)
    logloss = -np.mean(p * np.log(s) + (1 - p) * np.log(1 - s))
    return {"auc": round(auc(s, clicked), 4), "logloss": round(float(logloss), 4)}


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def write(out, name, params, doc, meta):
    w1, b1, w2, b2 = params
    nodes = [
        helper.make_node("Slice", ["x", "taste_start", "taste_end", "axis1"], ["taste"]),
        helper.make_node("Slice", ["x", "emb_start", "emb_end", "axis1"], ["emb"]),
        helper.make_node("Mul", ["taste", "emb"], ["match"]),
        helper.make_node("Concat", ["x", "match"], ["features"], axis=1),
        helper.make_node("MatMul", ["features", "W1"], ["h_pre"]),
        helper.make_node("Add", ["h_pre", "b1"], ["h_lin"]),
        helper.make_node("Relu", ["h_lin"], ["h"]),
        helper.make_node("MatMul", ["h", "W2"], ["logit_pre"]),
        helper.make_node("Add", ["logit_pre", "b2"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["score"]),
    ]
    inits = [
        init("taste_start", np.array([2], np.int64)), init("taste_end", np.array([2 + DIM], np.int64)),
        init("emb_start", np.array([USER_WIDTH + 2], np.int64)), init("emb_end", np.array([WIDTH], np.int64)),
        init("axis1", np.array([1], np.int64)),
        init("W1", w1), init("b1", b1), init("W2", w2), init("b2", b2),
    ]
    graph = helper.make_graph(
        nodes, "ranker",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])],
        initializer=inits)
    model = helper.make_model(graph, producer_name="quiver-examples-recommender",
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    model.producer_version = "1"
    model.model_version = 1
    model.doc_string = doc
    for k, v in sorted(meta.items()):
        e = model.metadata_props.add()
        e.key, e.value = k, v
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out, name + ".onnx"))


def main():
    out = os.path.dirname(os.path.abspath(__file__))
    v1 = train(seed=1, hidden=8, n=4000, steps=150)
    v2 = train(seed=2, hidden=32, n=40000, steps=1500)
    bad = [v2[0], v2[1], -v2[2], -v2[3]]
    models = {
        "ranker_v1": (v1, "ranker v1: 8 hidden units, short training run"),
        "ranker_v2": (v2, "ranker v2: 32 hidden units, retrained on more data"),
        "ranker_bad": (bad, "ranker v2 with its output negated: ranks the least likely clicks first"),
    }
    metrics = {"data_version": DATA_VERSION, "code_version": CODE_VERSION, "models": {}}
    for name, (params, doc) in models.items():
        m = evaluate(params)
        metrics["models"][name] = m
        write(out, name, params, doc, {"auc": str(m["auc"]), "data_version": DATA_VERSION})
        print(f"wrote {name}.onnx: auc {m['auc']}, logloss {m['logloss']}")
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
