#!/usr/bin/python3
"""Builds the ONNX test models used by Quiver's tests, benchmarks and demo.

Deterministic: fixed seeds, no timestamps. Run with Debian's python3-onnx:
    /usr/bin/python3 testdata/models/gen_models.py testdata/models
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def save(model, out, name, meta=None):
    model.producer_name = "quiver-testgen"
    model.producer_version = "1"
    model.model_version = 1
    model.doc_string = name
    for k, v in sorted((meta or {}).items()):
        e = model.metadata_props.add()
        e.key, e.value = k, v
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out, name + ".onnx"))


def graph_model(nodes, name, inputs, outputs, inits=()):
    g = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
    return helper.make_model(g, opset_imports=OPSET, ir_version=8)


def init(name, arr):
    return numpy_helper.from_array(arr, name)


def mlp(out, name, sizes, seed, meta):
    """A tabular MLP: Gemm + Relu layers, dynamic batch axis."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    prev = "x"
    for i in range(len(sizes) - 1):
        w = (rng.standard_normal((sizes[i], sizes[i + 1])) / np.sqrt(sizes[i])).astype(np.float32)
        b = (rng.standard_normal(sizes[i + 1]) * 0.1).astype(np.float32)
        inits += [init(f"w{i}", w), init(f"b{i}", b)]
        last = i == len(sizes) - 2
        h = "y" if last else f"h{i}"
        nodes.append(helper.make_node("Gemm", [prev, f"w{i}", f"b{i}"], [h if last else h + "_pre"]))
        if not last:
            nodes.append(helper.make_node("Relu", [h + "_pre"], [h]))
        prev = h
    m = graph_model(
        nodes, name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", sizes[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", sizes[-1]])],
        inits)
    save(m, out, name, meta)


def multi_io(out):
    """Several inputs and outputs of different element types."""
    nodes = [
        helper.make_node("Add", ["a", "b"], ["sum"]),
        helper.make_node("Mul", ["a", "b"], ["prod"]),
        helper.make_node("Add", ["ids", "one"], ["ids_next"]),
        helper.make_node("Greater", ["a", "zero"], ["positive"]),
    ]
    m = graph_model(
        nodes, "multi_io",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 3])],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("prod", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("ids_next", TensorProto.INT64, ["batch", 3]),
         helper.make_tensor_value_info("positive", TensorProto.BOOL, ["batch", 4])],
        [init("one", np.array(1, dtype=np.int64)), init("zero", np.array(0, dtype=np.float32))])
    save(m, out, "multi_io")


# Element types passed through Identity, so every type crosses the Go/C boundary both ways.
IDENTITY_TYPES = [
    ("f64", TensorProto.DOUBLE), ("i8", TensorProto.INT8), ("u8", TensorProto.UINT8),
    ("i16", TensorProto.INT16), ("u16", TensorProto.UINT16), ("i32", TensorProto.INT32),
    ("u32", TensorProto.UINT32), ("i64", TensorProto.INT64), ("u64", TensorProto.UINT64),
    ("bf16", TensorProto.BFLOAT16), ("str", TensorProto.STRING),
]


def types(out):
    """float16 and bool arithmetic, plus an Identity for every other element type."""
    nodes = [
        helper.make_node("Mul", ["half", "two"], ["half_x2"]),
        helper.make_node("Not", ["flag"], ["not_flag"]),
    ]
    inputs = [helper.make_tensor_value_info("half", TensorProto.FLOAT16, ["batch", 3]),
              helper.make_tensor_value_info("flag", TensorProto.BOOL, ["batch", 2])]
    outputs = [helper.make_tensor_value_info("half_x2", TensorProto.FLOAT16, ["batch", 3]),
               helper.make_tensor_value_info("not_flag", TensorProto.BOOL, ["batch", 2])]
    for n, t in IDENTITY_TYPES:
        nodes.append(helper.make_node("Identity", [n], [n + "_out"]))
        inputs.append(helper.make_tensor_value_info(n, t, ["batch", 2]))
        outputs.append(helper.make_tensor_value_info(n + "_out", t, ["batch", 2]))
    m = graph_model(nodes, "types", inputs, outputs,
                    [init("two", np.array(2, dtype=np.float16))])
    save(m, out, "types")


def fixed_batch(out):
    """First axis fixed at 4: cannot be merged with other requests."""
    m = graph_model(
        [helper.make_node("Mul", ["x", "two"], ["y"])], "fixed_batch",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])],
        [init("two", np.array(2, dtype=np.float32))])
    save(m, out, "fixed_batch")


def image(out):
    """Dynamic non-batch axes: [batch, 3, H, W] -> per-channel mean, scaled."""
    nodes = [
        helper.make_node("ReduceMean", ["img"], ["mean"], axes=[2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "scale"], ["features"]),
    ]
    m = graph_model(
        nodes, "image",
        [helper.make_tensor_value_info("img", TensorProto.FLOAT, ["batch", 3, "H", "W"])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 3])],
        [init("scale", np.array([1.0, 2.0, 3.0], dtype=np.float32))])
    save(m, out, "image")


def state(out):
    """A recurrent-style step: state h has its batch axis at 1, scale is a scalar.

    y = (x + h[0]) * scale, h_next = y[None]. Inputs lack a common leading
    batch axis, so a batcher runs it unbatched.
    """
    nodes = [
        helper.make_node("Squeeze", ["h", "axis0"], ["h0"]),
        helper.make_node("Add", ["x", "h0"], ["xh"]),
        helper.make_node("Mul", ["xh", "scale"], ["y"]),
        helper.make_node("Unsqueeze", ["y", "axis0"], ["h_next"]),
    ]
    m = graph_model(
        nodes, "state",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, "batch", 4]),
         helper.make_tensor_value_info("scale", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("h_next", TensorProto.FLOAT, [1, "batch", 4])],
        [init("axis0", np.array([0], dtype=np.int64))])
    save(m, out, "state")


def sequence(out):
    """A non-tensor output: a sequence of two tensors."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Neg", ["x"], ["n"]),
        helper.make_node("SequenceConstruct", ["r", "n"], ["parts"]),
        helper.make_node("Identity", ["x"], ["same"]),
    ]
    seq_t = helper.make_sequence_type_proto(
        helper.make_tensor_type_proto(TensorProto.FLOAT, ["batch", 2]))
    m = graph_model(
        nodes, "sequence",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_value_info("parts", seq_t),
         helper.make_tensor_value_info("same", TensorProto.FLOAT, ["batch", 2])])
    save(m, out, "sequence")


def reflect_pad(out):
    """Reflect padding of one on each side of axis 1: ONNX Runtime refuses
    an axis shorter than 2, so warm-up on one-long dynamic axes fails."""
    pads = init("pads", np.array([0, 1, 0, 1], dtype=np.int64))
    m = graph_model(
        [helper.make_node("Pad", ["x", "pads"], ["y"], mode="reflect")], "reflect_pad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "len"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "padded"])],
        [pads])
    save(m, out, "reflect_pad")


def conv_dyn(out):
    """A small conv net as converters export it: every dynamic axis has a
    fresh name (DynamicDimension.N), so names alone cannot prove that the
    output's first axis follows the input's."""
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((4, 3, 3, 3)) * 0.2).astype(np.float32)
    b = (rng.standard_normal(4) * 0.1).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["y"], axis=1),
    ]
    m = graph_model(
        nodes, "conv_dyn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                       ["DynamicDimension.0", 3, "DynamicDimension.1", "DynamicDimension.2"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["DynamicDimension.3", 4])],
        [init("w", w), init("b", b)])
    save(m, out, "conv_dyn")


def center_rows(out):
    """Subtracts the batch mean: input and output first axes carry different
    names and the output follows the batch in shape, but each row depends
    on the others, so a probe must refuse to batch it."""
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mean"], axes=[0], keepdims=1),
        helper.make_node("Sub", ["x", "mean"], ["y"]),
    ]
    m = graph_model(
        nodes, "center_rows",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", 4])])
    save(m, out, "center_rows")


def conv640(out):
    """A small image classifier on 640x640 RGB images, for the batching
    benchmarks: Conv 3->8 3x3 stride 2 + Relu + GlobalAveragePool + Gemm to
    10 classes. Its run costs grow with the rows, so merging images buys
    little and can lose where the per-run cost is already small."""
    rng = np.random.default_rng(6)
    w = (rng.standard_normal((8, 3, 3, 3)) * 0.2).astype(np.float32)
    b = (rng.standard_normal(8) * 0.1).astype(np.float32)
    fw = (rng.standard_normal((8, 10)) / np.sqrt(8)).astype(np.float32)
    fb = (rng.standard_normal(10) * 0.1).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"]),
    ]
    m = graph_model(
        nodes, "conv640",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 640, 640])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
        [init("w", w), init("b", b), init("fw", fw), init("fb", fb)])
    save(m, out, "conv640", {"task": "benchmark"})


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    mlp(out, "mlp", [16, 32, 4], 1, {"task": "tabular", "owner": "quiver"})
    mlp(out, "bench_mlp", [64, 256, 256, 1], 2, {"task": "benchmark"})
    multi_io(out)
    types(out)
    fixed_batch(out)
    image(out)
    state(out)
    sequence(out)
    reflect_pad(out)
    conv_dyn(out)
    center_rows(out)
    conv640(out)


if __name__ == "__main__":
    main()
