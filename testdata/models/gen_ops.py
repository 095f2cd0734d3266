#!/usr/bin/python3
"""Builds ONNX test models that cover every operator of the pure-Go engine
(serving/gorgonia) with the attribute values it supports, for tests that
compare it with ONNX Runtime.

Deterministic: fixed seeds, no timestamps. Run with Debian's python3-onnx:
    /usr/bin/python3 testdata/models/gen_ops.py testdata/models
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT


def save(out, name, nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    m.producer_name = "quiver-testgen"
    m.producer_version = "1"
    m.model_version = 1
    m.doc_string = name
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(out, name + ".onnx"))


def init(name, arr):
    return numpy_helper.from_array(arr, name)


def rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def vi(name, shape, t=F):
    return helper.make_tensor_value_info(name, t, shape)


def gemm(out):
    """Gemm with every attribute, Transpose feeding transA, and the
    activations between."""
    rng = np.random.default_rng(11)
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["g1"], transB=1, alpha=0.5, beta=2.0),
        helper.make_node("LeakyRelu", ["g1"], ["l1"], alpha=0.2),
        helper.make_node("Transpose", ["l1"], ["l1t"]),
        helper.make_node("Gemm", ["l1t", "w2", "b2"], ["g2"], transA=1),
        helper.make_node("Tanh", ["g2"], ["t2"]),
        helper.make_node("Gemm", ["t2", "w3"], ["g3"]),
        helper.make_node("Sigmoid", ["g3"], ["y"]),
    ]
    inits = [init("w1", rand(rng, 6, 8, scale=0.5)), init("b1", rand(rng, 6, scale=0.1)),
             init("w2", rand(rng, 6, 5, scale=0.5)), init("b2", rand(rng, 1, 5, scale=0.1)),
             init("w3", rand(rng, 5, 3, scale=0.5))]
    save(out, "ops_gemm", nodes, [vi("x", ["batch", 8])], [vi("y", ["batch", 3])], inits)


def elementwise(out):
    """Add, Sub, Mul, Div with numpy broadcasting, and the activations."""
    rng = np.random.default_rng(12)
    nodes = [
        helper.make_node("Add", ["a", "b"], ["add"]),
        helper.make_node("Sub", ["a", "c"], ["sub"]),
        helper.make_node("Mul", ["a", "s"], ["mul"]),
        helper.make_node("Div", ["d", "a"], ["div_pre"]),
        helper.make_node("Mul", ["div_pre", "b"], ["div"]),
        helper.make_node("Sub", ["col", "a"], ["rsub"]),
        helper.make_node("Relu", ["a"], ["relu"]),
        helper.make_node("LeakyRelu", ["a"], ["leaky"]),
        helper.make_node("Sigmoid", ["a"], ["sigmoid"]),
        helper.make_node("Tanh", ["a"], ["tanh"]),
    ]
    inits = [init("c", rand(rng, 4)), init("s", np.array(1.5, dtype=np.float32)),
             init("d", (np.abs(rand(rng, 3, 1)) + 0.5).astype(np.float32)),
             init("col", rand(rng, 1, 3, 1))]
    outs = [vi(n, ["batch", 3, 4]) for n in
            ["add", "sub", "mul", "div", "rsub", "relu", "leaky", "sigmoid", "tanh"]]
    save(out, "ops_elementwise", nodes, [vi("a", ["batch", 3, 4]), vi("b", ["batch", 1, 4])], outs, inits)


def softmax(out, opset):
    """Softmax and LogSoftmax on a 3-D input: opset 13 takes one axis,
    older opsets flatten from the axis on."""
    nodes = [
        helper.make_node("Softmax", ["x"], ["sm_axis1"], axis=1),
        helper.make_node("Softmax", ["x"], ["sm_default"]),
        helper.make_node("LogSoftmax", ["x"], ["lsm_axis1"], axis=1),
        helper.make_node("LogSoftmax", ["x"], ["lsm_last"], axis=-1),
    ]
    outs = [vi(n, ["batch", 3, 5]) for n in ["sm_axis1", "sm_default", "lsm_axis1", "lsm_last"]]
    save(out, "ops_softmax%d" % opset, nodes, [vi("x", ["batch", 3, 5])], outs, opset=opset)


def shape_ops(out):
    """Reshape (0 and -1, from an initializer and from a Constant), Flatten,
    Transpose, Concat, Identity and Dropout at inference."""
    nodes = [
        helper.make_node("Constant", [], ["shape2"], value=numpy_helper.from_array(np.array([0, -1], dtype=np.int64))),
        helper.make_node("Reshape", ["x", "shape2"], ["flat"]),
        helper.make_node("Reshape", ["x", "shape4"], ["regroup"]),
        helper.make_node("Flatten", ["x"], ["flat2"], axis=2),
        helper.make_node("Transpose", ["x"], ["perm"], perm=[0, 3, 1, 2]),
        helper.make_node("Mul", ["x", "two"], ["x2"]),
        helper.make_node("Concat", ["x", "x2", "x"], ["cat"], axis=1),
        helper.make_node("Concat", ["x", "x2"], ["cat_last"], axis=-1),
        helper.make_node("Identity", ["perm"], ["ident"]),
        helper.make_node("Dropout", ["x2", "ratio"], ["drop"]),
    ]
    inits = [init("shape4", np.array([0, 3, -1, 2], dtype=np.int64)),
             init("two", np.array(2, dtype=np.float32)),
             init("ratio", np.array(0.3, dtype=np.float32))]
    outs = [vi("flat", ["batch", 24]), vi("regroup", ["batch", 3, 4, 2]), vi("flat2", ["flat2_rows", 12]),
            vi("perm", ["batch", 4, 2, 3]), vi("cat", ["batch", 6, 3, 4]), vi("cat_last", ["batch", 2, 3, 8]),
            vi("ident", ["batch", 4, 2, 3]), vi("drop", ["batch", 2, 3, 4])]
    save(out, "ops_shape", nodes, [vi("x", ["batch", 2, 3, 4])], outs, inits)


def gather(out):
    """An embedding lookup with int64 ids, then Gather on axis 1 with
    constant (one negative) indices, Flatten and MatMul."""
    rng = np.random.default_rng(13)
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["emb"]),
        helper.make_node("Gather", ["emb", "pick"], ["picked"], axis=1),
        helper.make_node("Flatten", ["picked"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["y"]),
    ]
    inits = [init("table", rand(rng, 10, 4)), init("pick", np.array([2, -3], dtype=np.int64)),
             init("w", rand(rng, 8, 2, scale=0.5))]
    save(out, "ops_gather", nodes, [vi("ids", ["batch", 3], TensorProto.INT64)],
         [vi("emb", ["batch", 3, 4]), vi("y", ["batch", 2])], inits)


def matmul(out):
    """MatMul of a stack by a matrix, of two stacks, and a vector operand."""
    rng = np.random.default_rng(14)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["xw"]),
        helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["x", "xt"], ["gram"]),
        helper.make_node("MatMul", ["x", "v"], ["xv"]),
        helper.make_node("MatMul", ["x4", "w4"], ["bcast"]),
    ]
    inits = [init("w", rand(rng, 4, 5)), init("v", rand(rng, 4)), init("w4", rand(rng, 2, 1, 4, 3))]
    save(out, "ops_matmul", nodes, [vi("x", ["batch", 3, 4]), vi("x4", [1, 3, 2, 4])],
         [vi("xw", ["batch", 3, 5]), vi("gram", ["batch", 3, 3]), vi("xv", ["batch", 3]),
          vi("bcast", [2, 3, 2, 3])], inits)


def conv(out):
    """A small conv net: asymmetric pads, strides, BatchNormalization,
    MaxPool with ceil_mode, a depthwise (grouped) Conv, AveragePool counting
    the padding, GlobalAveragePool, Flatten and Gemm."""
    rng = np.random.default_rng(15)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 0, 2, 1], strides=[2, 1]),
        helper.make_node("BatchNormalization", ["c1", "scale", "bias", "mean", "var"], ["bn"], epsilon=1e-3),
        helper.make_node("Relu", ["bn"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], group=4, kernel_shape=[3, 3], pads=[1, 1, 1, 1], dilations=[1, 2]),
        helper.make_node("AveragePool", ["c2"], ["p2"], kernel_shape=[2, 2], pads=[1, 1, 0, 0], count_include_pad=1),
        helper.make_node("GlobalAveragePool", ["p2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1),
    ]
    inits = [init("w1", rand(rng, 4, 3, 3, 3, scale=0.3)), init("b1", rand(rng, 4, scale=0.1)),
             init("scale", (rand(rng, 4, scale=0.2) + 1).astype(np.float32)), init("bias", rand(rng, 4, scale=0.1)),
             init("mean", rand(rng, 4, scale=0.1)), init("var", (np.abs(rand(rng, 4)) + 0.5).astype(np.float32)),
             init("w2", rand(rng, 4, 1, 3, 3, scale=0.3)),
             init("w3", rand(rng, 2, 4, scale=0.5)), init("b3", rand(rng, 2, scale=0.1))]
    save(out, "ops_conv", nodes, [vi("x", ["batch", 3, "H", "W"])],
         [vi("p1", ["batch", 4, "H1", "W1"]), vi("y", ["batch", 2])], inits)


def pool(out):
    """Pooling variants: dilations, padding counted or not, ceil_mode and
    automatic padding."""
    nodes = [
        helper.make_node("MaxPool", ["x"], ["max_dil"], kernel_shape=[2, 2], dilations=[2, 2], strides=[1, 2]),
        helper.make_node("MaxPool", ["x"], ["max_same"], kernel_shape=[3, 2], strides=[2, 2], auto_pad="SAME_UPPER"),
        helper.make_node("AveragePool", ["x"], ["avg_excl"], kernel_shape=[3, 3], pads=[1, 2, 1, 0]),
        helper.make_node("AveragePool", ["x"], ["avg_ceil"], kernel_shape=[2, 3], strides=[2, 2], ceil_mode=1, count_include_pad=1, pads=[0, 1, 1, 1]),
        helper.make_node("AveragePool", ["x"], ["avg_lower"], kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_LOWER"),
        helper.make_node("MaxPool", ["x"], ["max_valid"], kernel_shape=[2, 3], auto_pad="VALID", strides=[1, 2]),
    ]
    outs = [vi(n, ["batch", 2, "h_" + n, "w_" + n]) for n in
            ["max_dil", "max_same", "avg_excl", "avg_ceil", "avg_lower", "max_valid"]]
    save(out, "ops_pool", nodes, [vi("x", ["batch", 2, "H", "W"])], outs)


def conv1d(out):
    """One spatial axis: a Conv with SAME_UPPER padding, a dilated and
    grouped Conv, MaxPool and AveragePool."""
    rng = np.random.default_rng(16)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], auto_pad="SAME_UPPER", kernel_shape=[3], strides=[2]),
        helper.make_node("Conv", ["c1", "w2"], ["c2"], group=2, dilations=[2], pads=[1, 2]),
        helper.make_node("MaxPool", ["c2"], ["m"], kernel_shape=[2], strides=[1]),
        helper.make_node("AveragePool", ["m"], ["y"], kernel_shape=[3], pads=[1, 1]),
    ]
    inits = [init("w1", rand(rng, 4, 3, 3, scale=0.3)), init("b1", rand(rng, 4, scale=0.1)),
             init("w2", rand(rng, 6, 2, 2, scale=0.3))]
    save(out, "ops_conv1d", nodes, [vi("x", ["batch", 3, "L"])], [vi("y", ["batch", 6, "L2"])], inits)


def mlp_f64(out):
    """A float64 MLP: Gemm, Relu, Add, Softmax."""
    rng = np.random.default_rng(17)
    D = TensorProto.DOUBLE
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["m"]),
        helper.make_node("Add", ["m", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["y"]),
    ]
    inits = [init("w1", rng.standard_normal((6, 8))), init("b1", rng.standard_normal(8) * 0.1),
             init("w2", rng.standard_normal((8, 3))), init("b2", rng.standard_normal(3) * 0.1)]
    save(out, "ops_f64", nodes, [vi("x", ["batch", 6], D)], [vi("y", ["batch", 3], D)], inits)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    gemm(out)
    elementwise(out)
    softmax(out, 13)
    softmax(out, 11)
    shape_ops(out)
    gather(out)
    matmul(out)
    conv(out)
    pool(out)
    conv1d(out)
    mlp_f64(out)


if __name__ == "__main__":
    main()
