"""Small single-op ONNX models for the TFLite writer tests, and their float/int8 (QDQ) variants."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["CASES", "NCHW_ORDER", "build", "feeds_for", "quantized"]

X4 = [1, 8, 10, 10]


def _w(rng: np.random.Generator, name: str, *shape: int, scale: float = 0.3) -> onnx.TensorProto:
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def _i64(name: str, values: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def _f(name: str, values) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.float32), name)


def _single(
    op: str,
    out_shape: list[int],
    *,
    inputs: list[str] | None = None,
    inits: list | None = None,
    in_shape: list[int] = X4,
    conv_in: bool = True,
    extra_nodes: list | None = None,
    outputs: int = 1,
    **attrs,
) -> Callable[[np.random.Generator], onnx.ModelProto]:
    """x -> Conv 1x1 (so that int8 models have a real producer) -> OP -> y."""

    def make(rng: np.random.Generator) -> onnx.ModelProto:
        c = in_shape[1]
        nodes, init = [], list(inits or [])
        src = "x"
        if conv_in and len(in_shape) == 4:
            init += [_w(rng, "cw", c, c, 1, 1), _w(rng, "cb", c, scale=0.1)]
            nodes.append(helper.make_node("Conv", ["x", "cw", "cb"], ["h"], name="pre"))
            src = "h"
        elif conv_in:  # a FullyConnected producer (int8 models need weights)
            init += [_w(rng, "fw", c, c), _w(rng, "fb", c, scale=0.1)]
            nodes.append(helper.make_node("Gemm", ["x", "fw", "fb"], ["h"], name="pre", transB=1))
            src = "h"
        nodes += list(extra_nodes or [])
        ins = [src if i == "$" else i for i in (inputs or ["$"])]
        names = ["y", *(f"y{i + 1}" for i in range(1, outputs))]
        nodes.append(helper.make_node(op, ins, names, name=f"the_{op.lower()}", **attrs))
        graph = helper.make_graph(
            nodes,
            op,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, out_shape) for n in names],
            initializer=init,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.checker.check_model(model, full_check=True)
        return model

    return make


def _with(inits: Callable[[np.random.Generator], list], **kw) -> Callable[[np.random.Generator], onnx.ModelProto]:
    def make(rng: np.random.Generator) -> onnx.ModelProto:
        return _single(**kw, inits=inits(rng))(rng)

    return make


def _between_convs(op: str, **attrs) -> Callable[[np.random.Generator], onnx.ModelProto]:
    """x -> Conv 1x1 -> OP -> Conv 1x1 -> y: in an int8 model both sides of OP are quantised, so OP is written in int8."""

    def make(rng: np.random.Generator) -> onnx.ModelProto:
        c = X4[1]
        init = [_w(rng, "cw", c, c, 1, 1), _w(rng, "cb", c, scale=0.1), _w(rng, "dw", c, c, 1, 1), _w(rng, "db", c, scale=0.1)]
        nodes = [
            helper.make_node("Conv", ["x", "cw", "cb"], ["h"], name="pre"),
            helper.make_node(op, ["h"], ["a"], name=f"the_{op.lower()}", **attrs),
            helper.make_node("Conv", ["a", "dw", "db"], ["y"], name="post"),
        ]
        graph = helper.make_graph(
            nodes,
            op,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, X4)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, X4)],
            initializer=init,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.checker.check_model(model, full_check=True)
        return model

    return make


#: cases whose ONNX op reorders an NHWC tensor's elements: one TRANSPOSE back to NCHW order is expected
NCHW_ORDER = {"flatten", "reshape", "squeeze"}

#: case id -> (model factory, expected TFLite op in the float artifact)
CASES: dict[str, tuple[Callable[[np.random.Generator], onnx.ModelProto], str]] = {
    "conv": (
        _with(
            lambda r: [_w(r, "w", 16, 8, 3, 3), _w(r, "b", 16, scale=0.1)],
            op="Conv",
            out_shape=[1, 16, 10, 10],
            inputs=["$", "w", "b"],
            pads=[1, 1, 1, 1],
        ),
        "CONV_2D",
    ),
    "conv_stride2_pad": (
        _with(
            lambda r: [_w(r, "w", 16, 8, 3, 3)],
            op="Conv",
            out_shape=[1, 16, 5, 5],
            inputs=["$", "w"],
            pads=[1, 1, 1, 1],
            strides=[2, 2],
        ),
        "CONV_2D",
    ),
    "depthwise": (
        _with(
            lambda r: [_w(r, "w", 16, 1, 3, 3), _w(r, "b", 16, scale=0.1)],
            op="Conv",
            out_shape=[1, 16, 10, 10],
            inputs=["$", "w", "b"],
            pads=[1, 1, 1, 1],
            group=8,
        ),
        "DEPTHWISE_CONV_2D",
    ),
    "conv_transpose": (
        _with(
            lambda r: [_w(r, "w", 8, 4, 2, 2), _w(r, "b", 4, scale=0.1)],
            op="ConvTranspose",
            out_shape=[1, 4, 20, 20],
            inputs=["$", "w", "b"],
            strides=[2, 2],
        ),
        "TRANSPOSE_CONV",
    ),
    "gemm": (
        _with(
            lambda r: [_w(r, "w", 6, 16), _w(r, "b", 6, scale=0.1)],
            op="Gemm",
            out_shape=[1, 6],
            inputs=["$", "w", "b"],
            in_shape=[1, 16],
            transB=1,
        ),
        "FULLY_CONNECTED",
    ),
    "matmul": (
        _with(lambda r: [_w(r, "w", 16, 6)], op="MatMul", out_shape=[1, 6], inputs=["$", "w"], in_shape=[1, 16]),
        "FULLY_CONNECTED",
    ),
    "add": (_single("Add", X4, inputs=["$", "x"]), "ADD"),
    "sub_const": (_with(lambda r: [_w(r, "k", 8, 1, 1)], op="Sub", out_shape=X4, inputs=["$", "k"]), "SUB"),
    "mul": (_single("Mul", X4, inputs=["$", "x"]), "MUL"),
    "max": (_single("Max", X4, inputs=["$", "x"]), "MAXIMUM"),
    "min": (_single("Min", X4, inputs=["$", "x"]), "MINIMUM"),
    "averagepool": (_single("AveragePool", [1, 8, 5, 5], kernel_shape=[2, 2], strides=[2, 2]), "AVERAGE_POOL_2D"),
    "maxpool_same": (_single("MaxPool", [1, 8, 5, 5], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1]), "MAX_POOL_2D"),
    "globalaveragepool": (_single("GlobalAveragePool", [1, 8, 1, 1]), "MEAN"),
    "reducemean": (_single("ReduceMean", [1, 8], axes=[2, 3], keepdims=0), "MEAN"),
    "reshape": (
        _with(lambda r: [_i64("shape", [1, 8, 100])], op="Reshape", out_shape=[1, 8, 100], inputs=["$", "shape"]),
        "RESHAPE",
    ),
    "flatten": (_single("Flatten", [1, 800]), "RESHAPE"),
    "squeeze": (_with(lambda r: [_i64("axes", [0])], op="Squeeze", out_shape=[8, 10, 10], inputs=["$", "axes"]), "RESHAPE"),
    "softmax": (_single("Softmax", [1, 16], in_shape=[1, 16], axis=-1), "SOFTMAX"),
    "softmax_channels": (_single("Softmax", X4, axis=1), "SOFTMAX"),
    "sigmoid": (_single("Sigmoid", X4), "LOGISTIC"),
    "tanh": (_single("Tanh", X4), "TANH"),
    "relu": (_single("Relu", X4, inputs=["p"], extra_nodes=[helper.make_node("LeakyRelu", ["h"], ["p"], alpha=0.5)]), "RELU"),
    "relu6": (
        _with(
            lambda r: [_f("lo", 0.0), _f("hi", 6.0)],
            op="Clip",
            out_shape=X4,
            inputs=["p", "lo", "hi"],
            extra_nodes=[helper.make_node("LeakyRelu", ["h"], ["p"], alpha=0.5)],
        ),
        "RELU6",
    ),
    "relu_n1_to_1": (
        _with(
            lambda r: [_f("lo", -1.0), _f("hi", 1.0)],
            op="Clip",
            out_shape=X4,
            inputs=["p", "lo", "hi"],
            extra_nodes=[helper.make_node("LeakyRelu", ["h"], ["p"], alpha=0.5)],
        ),
        "RELU_N1_TO_1",
    ),
    "leakyrelu": (_single("LeakyRelu", X4, alpha=0.2), "LEAKY_RELU"),
    "prelu": (
        _with(
            lambda r: [_f("slope", np.linspace(0.05, 0.4, 8).reshape(8, 1, 1))], op="PRelu", out_shape=X4, inputs=["$", "slope"]
        ),
        "PRELU",
    ),
    # MediaPipe's detectors: a per-channel slope of rank 4 with negative entries (an int8 slope after quantisation)
    "prelu_rank4_slope": (
        _with(
            lambda r: [_f("slope", np.linspace(-0.4, 0.9, 8).reshape(1, 8, 1, 1))],
            op="PRelu",
            out_shape=X4,
            inputs=["$", "slope"],
        ),
        "PRELU",
    ),
    "hardswish": (_single("HardSwish", X4), "HARD_SWISH"),
    "hardswish_between_convs": (_between_convs("HardSwish"), "HARD_SWISH"),
    "tanh_between_convs": (_between_convs("Tanh"), "TANH"),
    "sigmoid_between_convs": (_between_convs("Sigmoid"), "LOGISTIC"),
    "leakyrelu_between_convs": (_between_convs("LeakyRelu", alpha=0.2), "LEAKY_RELU"),
    "relu_between_convs": (_between_convs("Relu"), "CONV_2D"),
    "concat": (_single("Concat", [1, 16, 10, 10], inputs=["$", "x"], axis=1), "CONCATENATION"),
    "pad": (
        _with(lambda r: [_i64("pads", [0, 0, 1, 2, 0, 0, 2, 1])], op="Pad", out_shape=[1, 8, 13, 13], inputs=["$", "pads"]),
        "PAD",
    ),
    "resize_nearest": (
        _with(
            lambda r: [_f("scales", [1, 1, 2, 2])],
            op="Resize",
            out_shape=[1, 8, 20, 20],
            inputs=["$", "", "scales"],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        ),
        "RESIZE_NEAREST_NEIGHBOR",
    ),
    "resize_bilinear": (
        _with(
            lambda r: [_f("scales", [1, 1, 2, 2])],
            op="Resize",
            out_shape=[1, 8, 20, 20],
            inputs=["$", "", "scales"],
            mode="linear",
            coordinate_transformation_mode="half_pixel",
        ),
        "RESIZE_BILINEAR",
    ),
    "transpose": (_single("Transpose", [1, 10, 10, 8], perm=[0, 2, 3, 1]), "CONV_2D"),
    "slice": (
        _with(
            lambda r: [_i64("st", [1, 2]), _i64("en", [7, 9]), _i64("ax", [1, 3]), _i64("sp", [2, 1])],
            op="Slice",
            out_shape=[1, 3, 10, 7],
            inputs=["$", "st", "en", "ax", "sp"],
        ),
        "STRIDED_SLICE",
    ),
    "split": (
        _with(lambda r: [_i64("sizes", [4, 4])], op="Split", out_shape=[1, 4, 10, 10], inputs=["$", "sizes"], axis=1, outputs=2),
        "SPLIT",
    ),
    "pack": (
        _with(
            lambda r: [_i64("a0", [0])],
            op="Concat",
            out_shape=[2, 1, 8, 10, 10],
            inputs=["u1", "u2"],
            axis=0,
            extra_nodes=[helper.make_node("Unsqueeze", ["h", "a0"], ["u1"]), helper.make_node("Unsqueeze", ["x", "a0"], ["u2"])],
        ),
        "PACK",
    ),
}


def build(case: str, seed: int = 0) -> onnx.ModelProto:
    """The float model of `case`."""
    model = CASES[case][0](np.random.default_rng(seed))
    return model


def feeds_for(model: onnx.ModelProto, count: int, seed: int = 1) -> list[dict[str, np.ndarray]]:
    """`count` random float feeds for the model's inputs."""
    rng = np.random.default_rng(seed)
    feeds = []
    for _ in range(count):
        feed = {}
        for vi in model.graph.input:
            shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
            feed[vi.name] = rng.uniform(-2, 2, shape).astype(np.float32)
        feeds.append(feed)
    return feeds


def quantized(model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]]) -> onnx.ModelProto:
    """int8 QDQ (int8 activations, per-channel int8 weights) by edgecc's own quantiser."""
    from edgecc.quantization import QuantOptions, QuantScheme, quantize_model

    scheme = QuantScheme(activation_type="int8", weight_type="int8", symmetric_weights=True, per_channel=True)
    options = QuantOptions(mode="static", method="minmax", holdout=0.0, per_layer_report=False, optimize=False)
    result, _ = quantize_model(model, scheme, feeds, options, name="test")
    return result
