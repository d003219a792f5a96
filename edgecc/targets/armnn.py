"""`armnn`, `armnn-cpuacc`, `armnn-gpuacc`: Arm NN (the Arm NN SDK) running edgecc-written TFLite files.

Arm NN's backends: CpuRef (reference, the only one built for x86-64 in Debian), CpuAcc (Neon, Arm CPUs)
and GpuAcc (OpenCL, Mali GPUs). Debian ships Arm NN 20.08 (`python3-pyarmnn libarmnn-cpuref-backend22
libarmnntfliteparser22`) for the system Python only, without an ONNX parser, so the artifact is TFLite.
Operator support is the Arm NN 20.08 TfLite parser's operator list (docs/01_01_parsers.dox "TensorFlow Lite
parser supported operators"; tests/targets/test_armnn.py checks every op edgecc places against the
`TfLiteParser::Parse<Op>` functions in the installed libarmnnTfLiteParser). Known limits designed for:
Arm NN 20.08 aborts the process (SIGABRT, an assertion in GetBiasTypeFromWeightsType) on per-channel int8
FullyConnected weights (per-channel convolutions load) and rejects FullyConnected without a bias tensor, so
int8 uses per-tensor symmetric weights and the writer always writes biases; and pyarmnn runs in a subprocess
of the system Python (`armnn_worker.py`), so that a crash becomes an edgecc error naming the signal, never a dead edgecc.

Precisions: fp32 (float TFLite) and int8 (int8 symmetric activations, int8 symmetric per-tensor
weights, int8 io). Activations are symmetric (zero point 0) because Arm NN 20.08 pads quantised tensors with
the raw value 0, not the zero point (TfLiteParser::ParsePad never sets PadDescriptor::m_PadValue): with
asymmetric activations every PAD after a ReLU is 128 steps off (tests/targets/test_armnn.py shows it). compile
verifies the TFLite with the TFLite interpreter against onnxruntime, then (the vendor step) runs it with Arm NN
on the same samples and compares with onnxruntime again (int8: <= 1 quantisation step on >= 99.9 % of elements,
<= 2 everywhere; fp32: max abs <= 1e-4 of the output range).

Where Arm NN is: EDGECC_ARMNN_PYTHON names the Python that has pyarmnn (a path that does not exist means
"no Arm NN"); default /usr/bin/python3. Without pyarmnn, compile's vendor step exits 6 with the apt hint
(unless --no-vendor-compile), and the runner falls back to the TFLite interpreter, saying so in the
manifest's `execution` and in the log. A backend Arm NN lacks here (CpuAcc, GpuAcc on x86-64) is exit 6
at compile (vendor step) and a TFLite-interpreter fallback for runs of bundles built with --no-vendor-compile.

Cost parameters (public specs): CpuAcc = Cortex-A76 class cluster (4 cores x 2 128-bit Neon FMA pipes at
2.4 GHz; Arm Compute Library sustains ~25 % -> 40 GMAC/s fp32, int8 dot-product x4 -> 160 GMAC/s); Arm NN
loads the network once and each EnqueueWorkload costs ~50 us; tensors stay in host memory.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecc.errors import MissingDependencyError, NumericsError, UnsupportedError
from edgecc.quantization import QuantScheme
from edgecc.targets import constraints as c
from edgecc.targets.api import Check, CostModel, EmitOptions, Memory, NodeView
from edgecc.targets.tflite.rules import QDQ_OPS, activation_types, in_table, tflite_op, vendor_ops
from edgecc.targets.tflite.target import TfliteTarget, VendorResult

if TYPE_CHECKING:
    import numpy as np
    import onnx

__all__ = ["ARMNN", "PARSED", "TARGETS", "ArmnnRunner", "ArmnnTarget", "armnn_python", "pyarmnn_available"]

log = logging.getLogger(__name__)

PYTHON_ENV = "EDGECC_ARMNN_PYTHON"
APT_HINT = (
    "apt install python3-pyarmnn libarmnn-cpuref-backend22 libarmnntfliteparser22 (Debian/Ubuntu), or set "
    "EDGECC_ARMNN_PYTHON to a Python that imports pyarmnn"
)
WORKER = Path(__file__).with_name("armnn_worker.py")

#: TFLite builtins the Arm NN 20.08 TfLite parser converts (TfLiteParser::Parse<Op> in libarmnnTfLiteParser.so.22)
PARSED = (
    "ADD",
    "AVERAGE_POOL_2D",
    "BATCH_TO_SPACE_ND",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEQUANTIZE",
    "DIV",
    "EXP",
    "FULLY_CONNECTED",
    "HARD_SWISH",
    "L2_NORMALIZATION",
    "LEAKY_RELU",
    "LOGISTIC",
    "MAXIMUM",
    "MAX_POOL_2D",
    "MEAN",
    "MINIMUM",
    "MUL",
    "NEG",
    "PACK",
    "PAD",
    "QUANTIZE",
    "RELU",
    "RELU6",
    "RESHAPE",
    "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR",
    "SLICE",
    "SOFTMAX",
    "SPACE_TO_BATCH_ND",
    "SPLIT",
    "SPLIT_V",
    "SQUEEZE",
    "STRIDED_SLICE",
    "SUB",
    "TANH",
    "TRANSPOSE",
    "TRANSPOSE_CONV",
    "UNPACK",
)


def armnn_python() -> str | None:
    """The Python interpreter that runs the Arm NN worker, or None when it does not exist."""
    path = os.environ.get(PYTHON_ENV, "/usr/bin/python3")
    return path if path and Path(path).is_file() and os.access(path, os.X_OK) else None


@functools.lru_cache(maxsize=8)
def _probe(python: str) -> str:
    try:
        proc = subprocess.run([python, "-c", "import pyarmnn"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{python} could not start: {exc}"
    return "" if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["import failed"])[-1]


def pyarmnn_available() -> bool:
    """True when the Arm NN Python (EDGECC_ARMNN_PYTHON or /usr/bin/python3) imports pyarmnn."""
    python = armnn_python()
    return python is not None and not _probe(python)


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


class _Worker:
    """One armnn_worker.py process serving run requests for one model and backend."""

    def __init__(self, artifact: Path, backend: str, name: str) -> None:
        python = armnn_python()
        if python is None or _probe(python):
            raise MissingDependencyError("pyarmnn", feature=f"running {name} with Arm NN")
        self.name, self.backend = name, backend
        self.tmp = tempfile.TemporaryDirectory(prefix="edgecc-armnn-")
        self.proc = subprocess.Popen(
            [python, str(WORKER), str(artifact), backend],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        hello = self._read()
        if not hello.get("ok"):
            self.close()
            if hello.get("kind") == "backend":
                error = MissingDependencyError(f"Arm NN {backend} backend", feature=f"running {name}")
                error.message = f"Arm NN has no {backend} backend here: {hello['error']}"
                error.hint = "run on an Arm device with that backend, or compile for 'armnn' (CpuRef)"
                raise error
            raise UnsupportedError(f"Arm NN cannot load {name}: {hello['error']}")
        self.inputs = hello["inputs"]
        self.outputs = hello["outputs"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line:
            return json.loads(line)
        code = self.proc.wait(timeout=60)
        stderr = self.proc.stderr.read() if self.proc.stderr else ""
        last = [ln for ln in stderr.strip().splitlines() if "Skipped" not in ln][-1:] or ["no message"]
        if code < 0:
            raise UnsupportedError(
                f"Arm NN crashed on {self.name} ({_signal_name(code)} in the Arm NN worker): {last[0][:300]}",
                hint="Arm NN 20.08 aborts on per-channel int8 FullyConnected weights; edgecc's armnn targets quantise per tensor",
            )
        raise UnsupportedError(f"the Arm NN worker for {self.name} exited with status {code}: {last[0][:300]}")

    def run(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import numpy as np

        assert self.proc.stdin is not None
        paths = {}
        for index, (name, value) in enumerate(arrays.items()):
            paths[name] = os.path.join(self.tmp.name, f"in_{index}.npy")
            np.save(paths[name], np.ascontiguousarray(value), allow_pickle=False)
        try:
            self.proc.stdin.write(json.dumps({"inputs": paths, "outdir": self.tmp.name}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        reply = self._read()
        if not reply.get("ok"):
            raise UnsupportedError(f"Arm NN failed to run {self.name}: {reply['error']}")
        return {name: np.load(path, allow_pickle=False) for name, path in reply["outputs"].items()}

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.tmp.cleanup()


class ArmnnRunner:
    """Runs an edgecc TFLite file with Arm NN (float io, ONNX names and layout, like the TFLite runner)."""

    def __init__(self, artifact: Path, *, name: str, backend: str = "CpuRef") -> None:
        import numpy as np

        from edgecc.targets.tflite import TfliteRunner

        self.name = name
        self._np = np
        codec = TfliteRunner(artifact, name=name)  # the io description ("edgecc" metadata) and its tensor names
        self.inputs, self.outputs = codec.inputs, codec.outputs
        self.meta = codec.meta
        tensor_names = {d["index"]: d["name"] for d in codec.interpreter.get_tensor_details()}
        self._in = [(e, tensor_names[e["tensor"]]) for e in self.meta["inputs"]]
        self._out = [(e, tensor_names[e["tensor"]]) for e in self.meta["outputs"]]
        self.worker = _Worker(Path(artifact), backend, name)

    def output_steps(self) -> dict[str, float | None]:
        """Each output's quantisation step in ONNX units (None for float outputs; 1 where the
        ONNX output is an integer tensor)."""
        return {
            e["name"]: 1.0 if e.get("onnx_dtype") in ("int8", "uint8") else e.get("step") if self.meta.get("quantized") else None
            for e, _ in self._out
        }

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Outputs (ONNX layout and dtype) for feeds keyed by ONNX input names, with the TFLite runner's host conversions."""
        from edgecc.targets.tflite.runner import from_tflite, to_tflite

        np = self._np
        missing = [e["name"] for e, _ in self._in if e["name"] not in feeds]
        if missing:
            from edgecc.errors import UsageError

            raise UsageError(f"inputs do not match {self.name}: missing {', '.join(missing)}")
        raw = self.worker.run({tensor: to_tflite(np, np.asarray(feeds[e["name"]]), e) for e, tensor in self._in})
        wanted = set(outputs) if outputs is not None else None
        return {e["name"]: from_tflite(np, raw[tensor], e) for e, tensor in self._out if wanted is None or e["name"] in wanted}

    def close(self) -> None:
        """Stop the worker process."""
        self.worker.close()

    def __del__(self) -> None:
        worker = getattr(self, "worker", None)
        if worker is not None:
            worker.close()


def _armnn_ops() -> dict[str, tuple[Check, ...]]:
    in_parser = in_table(
        PARSED,
        name="in_parser",
        missing="the Arm NN 20.08 TfLite parser does not convert",
        rule="The TFLite operator the node becomes is one the Arm NN 20.08 TfLite parser converts.",
    )
    extra = {op: (c.constant_weights, *_DEFECTS.get(op, ())) for op in ("Conv", "ConvTranspose", "Gemm")}
    return vendor_ops(PARSED, in_parser, vendor="Arm NN", extra={**_DEFECTS, **extra})


def fc_weights_per_tensor(view: NodeView) -> tuple[bool, str]:
    """FullyConnected weights are quantised per tensor (Arm NN 20.08 aborts on per-channel int8 FullyConnected weights)."""
    if tflite_op(view) != "FULLY_CONNECTED":
        return True, ""
    weights = view.quant(1)
    if weights is not None and weights["per_channel"]:
        return False, "its weights are quantised per channel: Arm NN 20.08 aborts on those (GetBiasTypeFromWeightsType)"
    return True, ""


def pad_zero_point_zero(view: NodeView) -> tuple[bool, str]:
    """A quantised tensor is padded only when its zero point is 0 (Arm NN 20.08 pads with raw 0, not the zero point)."""
    data = view.quant(0)
    if data is not None and any(z != 0 for z in data["zero_points"]):
        return False, f"its input's zero point is {data['zero_points'][0]}: Arm NN 20.08 would pad with 0 instead"
    return True, ""


#: operators Arm NN 20.08 gets wrong in some forms (found by running it; tests/targets/test_armnn.py shows each)
_DEFECTS: dict[str, tuple[Check, ...]] = {
    "Gemm": (fc_weights_per_tensor,),
    "MatMul": (fc_weights_per_tensor,),
    "Pad": (pad_zero_point_zero,),
}


@dataclass
class ArmnnTarget(TfliteTarget):
    """Arm NN on one backend: TFLite (fp32 or per-tensor int8) run through pyarmnn in a subprocess."""

    backend: str = "CpuRef"

    def vendor_step(
        self,
        tflite: Path,
        precision: str,
        options: EmitOptions,
        report: Mapping[str, Any],
        converted: onnx.ModelProto,
        float_model: onnx.ModelProto | None = None,
    ) -> VendorResult:
        """Run the TFLite with Arm NN on the partition's samples and compare with onnxruntime (exit 5 when off)."""
        stem = tflite.stem
        if not options.vendor_compile:
            return VendorResult(
                info={
                    "backend": self.backend,
                    "armnn": "not run (--no-vendor-compile)",
                    "summary": f"{precision} TFLite for Arm NN {self.backend}; Arm NN not run (--no-vendor-compile)",
                }
            )
        if not pyarmnn_available():
            raise _missing(stem, self.name)
        runner = ArmnnRunner(tflite, name=tflite.name, backend=self.backend)
        try:
            from edgecc.ortrun import OrtRunner
            from edgecc.targets.tflite.check import integer_layers

            reference = OrtRunner(converted, name=f"{stem} (onnxruntime)")
            results = [(reference.run(dict(feed)), runner.run(dict(feed))) for feed in options.feeds]
            steps = runner.output_steps()
            floats = None
            if float_model is not None:
                float_runner = OrtRunner(float_model, name=f"{stem} (float)")
                floats = [float_runner.run(dict(feed)) for feed in options.feeds]
        finally:
            runner.close()
        verification = _armnn_report(results, steps, reference.int8_kernels, integer_layers(converted), floats)
        if not verification["passed"]:
            raise NumericsError(
                f"Arm NN {self.backend} output of partition {stem} differs from onnxruntime beyond {precision} tolerance",
                report=verification,
                hint="compare with --precision fp32, or report the model to edgecc",
            )
        return VendorResult(
            info={
                "backend": self.backend,
                "armnn_verification": verification,
                "summary": (
                    f"Arm NN {self.backend} ran the {precision} TFLite: "
                    + ", ".join(
                        f"{o['name']} " + (f"max {o['max_steps']} step(s)" if "max_steps" in o else f"max abs {o['max_abs']:.3g}")
                        for o in verification["outputs"]
                    )
                ),
            }
        )

    def runner(self, artifact: Path, *, name: str) -> Any:
        if pyarmnn_available():
            try:
                return ArmnnRunner(artifact, name=name, backend=self.backend)
            except MissingDependencyError:
                log.warning("Arm NN has no %s backend here: running %s with the TFLite interpreter", self.backend, name)
        else:
            log.warning("pyarmnn is not installed: running %s with the TFLite interpreter instead of Arm NN", name)
        return super().runner(artifact, name=name)

    def execution(self, precision: str) -> str:
        if not pyarmnn_available():
            return f"TFLite interpreter ({precision} TFLite; pyarmnn is not installed here, so Arm NN {self.backend} did not run)"
        if self.backend != "CpuRef":
            return (
                f"Arm NN {self.backend} where available, else the TFLite interpreter "
                f"({precision} TFLite; only CpuRef exists on x86-64)"
            )
        return f"Arm NN 20.08 {self.backend} via pyarmnn in a system-Python subprocess ({precision} TFLite)"


def _missing(stem: str, name: str) -> MissingDependencyError:
    error = MissingDependencyError("pyarmnn", feature=f"running partition {stem} with Arm NN ({name})")
    error.hint = APT_HINT
    return error


def _armnn_report(
    results: Sequence[tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray]]],
    steps: Mapping[str, float | None],
    reference_kernels: str,
    layers: int = 0,
    floats: Sequence[Mapping[str, np.ndarray]] | None = None,
) -> dict[str, Any]:
    from edgecc.targets.tflite.check import agreement_report

    report = agreement_report(
        [got for _, got in results],
        [ref for ref, _ in results],
        steps,
        reference_kernels=reference_kernels,
        integer_layers=layers,
        float_outputs=floats,
    )
    return {"reference": "onnxruntime on the partition's ONNX", "candidate": "Arm NN", "samples": len(results), **report}


def _target(name: str, backend: str) -> ArmnnTarget:
    return ArmnnTarget(
        name=name,
        description=f"Arm NN 20.08 {backend} backend (TfLite parser), fp32/int8 TFLite run through pyarmnn",
        precisions=("int8", "fp32"),
        memory=Memory(kind="host"),
        cost=CostModel(launch_us=50.0, gmacs={"fp32": 40.0, "int8": 160.0}, memory_gbps=10.0, op_overhead_us=2.0),
        ops={**_armnn_ops(), **QDQ_OPS},
        generic=(c.static_shapes, activation_types, c.max_rank(4)),
        quant_scheme=QuantScheme(
            precision="int8",
            activation_type="int8",
            weight_type="int8",
            symmetric_activations=True,
            symmetric_weights=True,
            per_channel=False,
        ),
        requires_calibration=True,
        references=(
            "Arm NN 20.08 TfLite parser supported operators (github.com/ARM-software/armnn, docs/01_01_parsers.dox)",
            "Debian python3-pyarmnn 20.08 (packages.debian.org/bookworm/python3-pyarmnn)",
            "Arm Cortex-A76 software optimization guide (Neon throughput)",
        ),
        io_type="int8",
        always_bias=True,
        flat_fully_connected=True,  # Arm NN 20.08's parser ignores keep_num_dims ("TensorShape ... does not match")
        backend=backend,
    )


#: the targets this module declares (edgecc.targets.BUILTIN_MODULES): Arm NN on each backend
TARGETS: dict[str, Callable[[], ArmnnTarget]] = {
    name: functools.partial(_target, name, backend)
    for name, backend in (("armnn", "CpuRef"), ("armnn-cpuacc", "CpuAcc"), ("armnn-gpuacc", "GpuAcc"))
}
ARMNN = TARGETS["armnn"]  # `armnn`: the CpuRef backend (runs here)
