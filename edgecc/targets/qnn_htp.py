"""`qnn-htp`: the Qualcomm Hexagon NPU (HTP) as targeted by SNPE/QNN, int8/int16 QDQ, memory shared via rpcmem.

Operator constraints follow the Qualcomm AI Engine Direct (QNN) SDK documentation, "HTP backend
op definition supplement" and onnxruntime's QNN execution provider op builders
(onnxruntime/core/providers/qnn/builder/op_builder_factory.cc, docs/execution-providers/QNN-ExecutionProvider.md):
quantised (QDQ) uint8/int8/uint16/int16 activations with int8 weights, static shapes, rank <= 4 for
convolution-class ops (rank <= 5 elsewhere), Conv 2-D with constant weights (group 1 or depthwise),
pooling 2-D, MatMul/Gemm, elementwise math, Softmax/LayerNormalization on the last axis, Resize
(nearest/linear), Concat/Reshape/Transpose/Split/Slice/Pad. Ops outside the op builder list
(e.g. Erf standalone, Mod, NonZero, Loop, TopK with k > 256) fall back to the CPU.

Cost parameters (public specs): Snapdragon 8 Gen 1 Hexagon HTP, ~13 TOPS int8 (Qualcomm product
brief) = 6,500 GMAC/s peak; ~15 % sustained through QNN -> 1,000 GMAC/s int8 (int16: half).
Tensors are exchanged through rpcmem/ION buffers shared with the CPU (zero copy; cache maintenance
~30 us per buffer); a FastRPC graph execute costs ~300 us.

Execution here: when the `onnxruntime-qnn` plug-in (pip extra `edgecc[qnn]`) is importable, the
runner registers it with `onnxruntime.register_execution_provider_library` and runs the partition on
the HTP backend (simulated on x86 Linux) with CPU fallback disabled; otherwise the QDQ int8 artifact
runs under onnxruntime's CPU provider, which emulates the integer numerics.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecc.quantization import QuantScheme
from edgecc.targets import constraints as c
from edgecc.targets.api import CostModel, EmitOptions, Emitted, Memory, Target

if TYPE_CHECKING:
    import numpy as np
    import onnx

__all__ = ["TARGET", "TARGETS", "QnnHtpTarget", "qnn_available"]

log = logging.getLogger(__name__)
_REGISTERED: list[Any] = []


def qnn_available() -> bool:
    """True when the onnxruntime-qnn plug-in can be imported (EDGECC_QNN_PATH may name a folder holding it)."""
    extra = os.environ.get("EDGECC_QNN_PATH")
    if extra and extra not in sys.path:
        sys.path.append(extra)
    return importlib.util.find_spec("onnxruntime_qnn") is not None


@contextlib.contextmanager
def _native_stdout_to_stderr() -> Iterator[None]:
    """QNN's native libraries print to file descriptor 1; keep stdout clean for `--json`."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _qnn_devices() -> tuple[Any, str]:
    """Register the QNN plug-in with onnxruntime once; its EP devices and the HTP backend library."""
    import onnxruntime as ort
    import onnxruntime_qnn

    if not _REGISTERED:
        try:
            ort.register_execution_provider_library("QNNExecutionProvider", onnxruntime_qnn.get_library_path())
        except Exception as exc:  # noqa: BLE001 -- already registered in this process by someone else
            log.debug("register_execution_provider_library: %s", exc)
        _REGISTERED.append(True)
    devices = [d for d in ort.get_ep_devices() if d.ep_name == "QNNExecutionProvider"]
    return devices, onnxruntime_qnn.get_qnn_htp_path()


def _htp_options(extra: Mapping[str, str] = {}) -> Any:
    import onnxruntime as ort

    devices, backend = _qnn_devices()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    for key, value in extra.items():
        options.add_session_config_entry(key, value)
    options.add_provider_for_devices(devices, {"backend_path": backend})
    return options


class _HtpRunner:
    """An onnxruntime session on the QNN HTP backend (CPU fallback disabled)."""

    def __init__(self, artifact: Path, name: str) -> None:
        import onnxruntime as ort

        from edgecc.errors import UnsupportedError
        from edgecc.inputs import TensorInfo
        from edgecc.ortrun import ort_type_to_dtype

        self.name = name
        try:
            with _native_stdout_to_stderr():
                self.session = ort.InferenceSession(str(artifact), sess_options=_htp_options())
        except Exception as exc:  # noqa: BLE001 -- onnxruntime and plug-ins raise errors of many types
            raise UnsupportedError(f"the QNN HTP backend cannot run {name}: {' '.join(str(exc).split())[:300]}") from None
        self.inputs = [TensorInfo(i.name, tuple(i.shape), ort_type_to_dtype(i.type)) for i in self.session.get_inputs()]
        self.outputs = [TensorInfo(o.name, tuple(o.shape), ort_type_to_dtype(o.type)) for o in self.session.get_outputs()]

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        names = list(outputs) if outputs is not None else [o.name for o in self.outputs]
        with _native_stdout_to_stderr():
            values = self.session.run(names, dict(feeds))
        return dict(zip(names, values))


class QnnHtpTarget(Target):
    """qnn-htp: QDQ artifacts, plus an offline-compiled QNN context binary (EPContext model + .bin) when QNN is here."""

    def emit(
        self,
        model: onnx.ModelProto,
        precision: str,
        directory: Path,
        stem: str,
        calibration: Sequence[Mapping[str, np.ndarray]],
        options: EmitOptions | None = None,
    ) -> Emitted:
        emitted = super().emit(model, precision, directory, stem, calibration, options)
        if not qnn_available():
            log.info("onnxruntime-qnn is not installed: %s carries no QNN context binary", stem)
            return emitted
        import onnxruntime as ort

        from edgecc.errors import UnsupportedError

        context = directory / f"{stem}_ctx.onnx"
        try:
            with _native_stdout_to_stderr():
                options = _htp_options(
                    {"ep.context_enable": "1", "ep.context_file_path": str(context), "ep.context_embed_mode": "0"}
                )
                ort.InferenceSession(str(emitted.files[0]), sess_options=options)
        except Exception as exc:  # noqa: BLE001 -- onnxruntime and plug-ins raise errors of many types
            raise UnsupportedError(
                f"QNN could not compile partition {stem} for the HTP: {' '.join(str(exc).split())[:300]}"
            ) from None
        return Emitted([*emitted.files, context, *sorted(directory.glob(f"{stem}_ctx*.bin"))], emitted.info)

    def runner(self, artifact: Path, *, name: str) -> Any:
        if qnn_available():
            return _HtpRunner(artifact, name)
        return super().runner(artifact, name=name)

    def execution(self, precision: str) -> str:
        if qnn_available():
            return f"onnxruntime-qnn HTP backend (x86 simulator, CPU fallback disabled), {precision} QDQ"
        return f"onnxruntime CPU emulating HTP numerics ({precision} QDQ; install edgecc[qnn] for the HTP simulator)"


_CONV = (c.conv_2d, c.constant_weights, c.group_is_one_or_depthwise, c.kernel_range(1, 16), c.stride_range(1, 8), c.max_rank(4))
_POOL = (c.pool_2d, c.kernel_range(1, 16), c.stride_range(1, 8))
_ELEMENTWISE = (
    "Relu",
    "Sigmoid",
    "Tanh",
    "LeakyRelu",
    "Clip",
    "PRelu",
    "HardSwish",
    "HardSigmoid",
    "Elu",
    "Gelu",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Abs",
    "Exp",
    "Log",
    "Sqrt",
    "Neg",
    "Max",
    "Min",
    "Pow",
)

TARGET = QnnHtpTarget(
    name="qnn-htp",
    description="Qualcomm Hexagon NPU (HTP) via SNPE/QNN, int8/int16 QDQ, memory shared with the CPU (rpcmem)",
    precisions=("int8", "int16"),
    memory=Memory(kind="shared", sync_us=30.0),
    cost=CostModel(launch_us=300.0, gmacs={"int8": 1000.0, "int16": 500.0}, memory_gbps=25.0, op_overhead_us=1.0),
    ops={
        "Conv": _CONV,
        "ConvTranspose": _CONV,
        "MaxPool": (*_POOL, c.dilation_one),
        "AveragePool": _POOL,
        "GlobalAveragePool": (c.pool_2d,),
        "GlobalMaxPool": (c.pool_2d,),
        "Gemm": (c.constant_weights,),
        "MatMul": (),
        "BatchNormalization": (c.constant_weights,),
        "InstanceNormalization": (c.constant_weights,),
        "Softmax": (c.axis_last,),
        "LayerNormalization": (c.axis_last, c.constant_weights),
        "Resize": (c.mode_in("mode", ("nearest", "linear"), "nearest"),),
        "Split": (),
        "Slice": (),
        "Pad": (),
        "ReduceMean": (),
        "DepthToSpace": (),
        "SpaceToDepth": (),
        **{op: () for op in _ELEMENTWISE},
        **{op: () for op in c.SHAPE_OPS},
        **{op: () for op in c.QDQ_OPS},  # already-quantised models keep their scales
    },
    generic=(c.static_shapes, c.float_or_quantized_tensors, c.max_rank(5)),
    quant_scheme=QuantScheme(
        precision="int8", activation_type="uint8", weight_type="uint8", symmetric_weights=False, per_channel=False
    ),
    references=(
        "Qualcomm AI Engine Direct SDK: HTP backend op definition supplement (docs.qualcomm.com)",
        "onnxruntime QNN execution provider (onnxruntime.ai/docs/execution-providers/QNN-ExecutionProvider.html)",
        "Snapdragon 8 Gen 1 product brief (Hexagon processor)",
    ),
)

#: the targets this module declares (edgecc.targets.BUILTIN_MODULES)
TARGETS = {TARGET.name: TARGET}
