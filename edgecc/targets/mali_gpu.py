"""`mali-gpu`: an Arm Mali-G72 class GPU through the Arm Compute Library / Arm NN GpuAcc backend (fp16/fp32).

Operator constraints follow the Arm NN GpuAcc (CL) backend's supported-layer list and the
Arm Compute Library CL function documentation (github.com/ARM-software/armnn,
docs/05_01_parsers.dox "ONNX parser supported operators" and src/backends/cl/ClLayerSupport.cpp;
github.com/ARM-software/ComputeLibrary docs/user_guide/operator_list.dox): the Arm NN ONNX parser
accepts Conv (2-D, group 1 or depthwise), Gemm/MatMul, pooling (2-D), activations, Add/Mul,
BatchNormalization, Concat, Reshape/Flatten, Softmax (last axis); tensors up to rank 4; static shapes.

Cost parameters (public specs): Mali-G72 MP12 @ 850 MHz (Kirin 970): 3 execution engines x 4 fp32
FMA lanes per core -> 122 GMAC/s fp32 peak, fp16 twice that; ~40 % sustained -> 50 / 100 GMAC/s.
Memory is unified with the CPU (shared LPDDR4X, ~12 GB/s sustained): handing a tensor over costs a
cache synchronisation / buffer map (~20 us); launching a partition (clEnqueue + clFinish of a
command queue) ~100 us; ~8 us dispatch per kernel.
"""

from __future__ import annotations

from edgecc.quantization import QuantScheme
from edgecc.targets import constraints as c
from edgecc.targets.api import CostModel, Memory, Target

__all__ = ["TARGET", "TARGETS"]

_CONV = (c.conv_2d, c.constant_weights, c.group_is_one_or_depthwise, c.kernel_range(1, 11), c.stride_range(1, 4))
_POOL = (c.pool_2d, c.kernel_range(1, 16), c.stride_range(1, 8))
_ELEMENTWISE = ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "Clip", "PRelu", "Add", "Sub", "Mul", "Div", "Abs", "Exp", "Sqrt", "Neg")

TARGET = Target(
    name="mali-gpu",
    description="Arm Mali-G72 class GPU (Arm Compute Library / Arm NN GpuAcc), fp16/fp32, memory shared with the CPU",
    precisions=("fp16", "fp32"),
    memory=Memory(kind="shared", sync_us=20.0),
    cost=CostModel(launch_us=100.0, gmacs={"fp32": 50.0, "fp16": 100.0}, memory_gbps=12.0, op_overhead_us=8.0),
    ops={
        "Conv": _CONV,
        "MaxPool": (*_POOL, c.no_ceil_mode, c.dilation_one),
        "AveragePool": (*_POOL, c.no_ceil_mode),
        "GlobalAveragePool": (c.pool_2d,),
        "GlobalMaxPool": (c.pool_2d,),
        "Gemm": (c.constant_weights, c.gemm_no_transpose_a),
        "MatMul": (),
        "BatchNormalization": (c.constant_weights,),
        "Softmax": (c.axis_last,),
        **{op: () for op in _ELEMENTWISE},
        **{op: () for op in c.SHAPE_OPS},
    },
    generic=(c.static_shapes, c.float_tensors, c.max_rank(4)),
    quant_scheme=QuantScheme(precision="fp16"),
    references=(
        "Arm NN ONNX parser supported operators and ClLayerSupport (github.com/ARM-software/armnn)",
        "Arm Compute Library operator list (github.com/ARM-software/ComputeLibrary/docs/user_guide/operator_list.dox)",
        "Arm Mali-G72 product page (developer.arm.com/Processors/Mali-G72)",
    ),
)

#: the targets this module declares (edgecc.targets.BUILTIN_MODULES)
TARGETS = {TARGET.name: TARGET}
