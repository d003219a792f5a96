"""`cpu`: an Arm Cortex-A class application processor running onnxruntime (the fallback of every target).

Operators: everything onnxruntime's CPU execution provider implements (standard `ai.onnx`
domain, plus onnxruntime's `com.microsoft` contrib ops); shapes may be dynamic.

Cost parameters (public specs): Arm Cortex-A76 @ 2.4 GHz (Arm Cortex-A76 Technical Reference
Manual: two 128-bit NEON FMA pipes = 8 fp32 MACs/cycle/core; SDOT gives 4x that for int8), four big
cores -> 77 GMAC/s fp32 peak; we assume ~25 % sustained for convolution kernels (onnxruntime MLAS),
i.e. 20 GMAC/s fp32 and 60 GMAC/s int8. LPDDR4X-4266 dual channel: 34 GB/s peak, ~12 GB/s
sustained. Dispatch ~2 us per node, ~5 us to enter a session.
"""

from __future__ import annotations

from edgecc.quantization import QuantScheme
from edgecc.targets.api import CostModel, Memory, Target

__all__ = ["TARGET", "TARGETS"]

TARGET = Target(
    name="cpu",
    description="Arm Cortex-A class CPU running onnxruntime (fp32/int8); runs every standard ONNX operator",
    precisions=("fp32", "int8"),
    memory=Memory(kind="host"),
    cost=CostModel(launch_us=5.0, gmacs={"fp32": 20.0, "int8": 60.0}, memory_gbps=12.0, op_overhead_us=2.0),
    quant_scheme=QuantScheme(precision="int8", activation_type="uint8", weight_type="int8", per_channel=True),
    static_shapes=False,
    supports_any_op=True,
    domains=("", "ai.onnx", "com.microsoft"),
    references=(
        "Arm Cortex-A76 Technical Reference Manual (developer.arm.com/documentation/100798)",
        "onnxruntime CPU execution provider operator kernels (onnxruntime/docs/OperatorKernels.md)",
    ),
)

#: the targets this module declares (edgecc.targets.BUILTIN_MODULES)
TARGETS = {TARGET.name: TARGET}
