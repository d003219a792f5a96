"""`hisilicon-npu`: a HiSilicon Kirin NPU class accelerator (HiAI Foundation DDK), int8/fp16, own memory.

Operator constraints follow the HiAI DDK "Operator Specifications" (Huawei developer documentation,
HiAI Foundation, IR operator list for Kirin 970/980/990): Convolution 2-D with constant weights,
kernel 1..15, stride 1..7, dilation allowed only with stride 1 (we require 1), group 1 or depthwise;
pooling 2-D with window 1..15 (global pooling separately); FullyConnection (Gemm without transA);
activations Relu/Relu6(Clip)/Sigmoid/Tanh/LeakyRelu/PRelu; eltwise Add/Mul/Sub; Concat/Reshape/
Flatten/Transpose (rank <= 4); Softmax on the channel/last axis; batch 1; static shapes. Ops outside
the list (Erf, Sin/Cos, Mod, TopK, NonZero, Loop, ...) fall back to the CPU.

Cost parameters (public specs): Kirin 970 NPU 1.92 TFLOPS fp16 (HiSilicon launch, IFA 2017) =
960 GMAC/s fp16 peak; int8 counted at 2x; ~25 % sustained -> 240 / 480 GMAC/s. The NPU has its own
buffers reached by DMA over the SoC interconnect: ~8 GB/s with ~30 us setup per transfer; a model
execution through the HiAI runtime costs ~500 us of launch/context switch.
"""

from __future__ import annotations

from edgecc.quantization import QuantScheme
from edgecc.targets import constraints as c
from edgecc.targets.api import CostModel, Memory, Target

__all__ = ["TARGET", "TARGETS"]

_CONV = (
    c.conv_2d,
    c.constant_weights,
    c.group_is_one_or_depthwise,
    c.kernel_range(1, 15),
    c.stride_range(1, 7),
    c.dilation_one,
    c.max_channels(2048),
)
_POOL = (c.pool_2d, c.kernel_range(1, 15), c.stride_range(1, 7))

TARGET = Target(
    name="hisilicon-npu",
    description="HiSilicon Kirin NPU class accelerator (HiAI DDK), int8/fp16, own memory reached by DMA",
    precisions=("int8", "fp16"),
    memory=Memory(kind="dma", bandwidth_gbps=8.0, setup_us=30.0),
    cost=CostModel(launch_us=500.0, gmacs={"fp16": 240.0, "int8": 480.0}, memory_gbps=20.0, op_overhead_us=1.0),
    ops={
        "Conv": _CONV,
        "MaxPool": (*_POOL, c.no_ceil_mode),
        "AveragePool": (*_POOL, c.no_ceil_mode),
        "GlobalAveragePool": (c.pool_2d,),
        "GlobalMaxPool": (c.pool_2d,),
        "Gemm": (c.constant_weights, c.gemm_no_transpose_a),
        "BatchNormalization": (c.constant_weights,),
        "Softmax": (c.axis_channel_or_last,),
        "Relu": (),
        "Sigmoid": (),
        "Tanh": (),
        "LeakyRelu": (),
        "PRelu": (c.constant_weights,),
        "Clip": (c.constant_weights,),
        "Add": (),
        "Mul": (),
        "Sub": (),
        **{op: () for op in c.SHAPE_OPS},
        **{op: () for op in c.QDQ_OPS},  # already-quantised models keep their scales
    },
    generic=(c.static_shapes, c.float_or_quantized_tensors, c.max_rank(4), c.batch_one),
    quant_scheme=QuantScheme(
        precision="int8", activation_type="uint8", weight_type="int8", symmetric_weights=True, per_channel=True
    ),
    references=(
        "Huawei HiAI Foundation DDK operator specifications (developer.huawei.com/consumer/en/doc/hiai-References)",
        "HiSilicon Kirin 970 NPU announcement, IFA 2017 (1.92 TFLOPS FP16)",
    ),
)

#: the targets this module declares (edgecc.targets.BUILTIN_MODULES)
TARGETS = {TARGET.name: TARGET}
