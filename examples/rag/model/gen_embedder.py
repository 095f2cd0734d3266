#!/usr/bin/python3
"""Writes embedder.onnx, the small text-embedding model of the RAG example.

The model maps a hashed bag-of-words vector (float32 [batch, 512], built in
Go by rag.HashedBagOfWords) to a 512-dimensional embedding: a fixed random
rotation (an orthogonal matrix from the QR decomposition of a Gaussian one,
so cosine similarity between bag-of-words vectors is preserved exactly)
followed by L2 normalisation. It is lexical, not semantic, but it exercises
the whole serving path with the shape of a small sentence encoder.

Deterministic: fixed seed. Run: /usr/bin/python3 gen_embedder.py
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BUCKETS = 512
DIM = 512


def main():
    rng = np.random.default_rng(20261127)
    q, r = np.linalg.qr(rng.standard_normal((BUCKETS, DIM)))
    w = (q * np.sign(np.diag(r))).astype(np.float32)  # sign fix: a unique rotation
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["proj"]),
            helper.make_node("LpNormalization", ["proj"], ["embedding"], axis=1, p=2),
        ],
        "hashed_bow_embedder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", BUCKETS])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", DIM])],
        initializer=[numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(
        graph,
        producer_name="quiver-examples-rag",
        opset_imports=[helper.make_opsetid("", 13)],
    )
    model.ir_version = 8
    model.doc_string = "hashed bag-of-words [batch,512] -> random rotation -> L2 norm [batch,512]"
    onnx.checker.check_model(model)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "embedder.onnx")
    onnx.save(model, out)
    print("wrote", out)


if __name__ == "__main__":
    main()
