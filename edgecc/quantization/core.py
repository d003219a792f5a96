"""`quantize_model`: static int8/int16 (QDQ or QOperator) with calibration, dynamic, fp16; CLE, bias correction, accuracy goal."""

from __future__ import annotations

import copy
import logging
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecc.errors import InvalidInputError, UnsupportedError, UsageError
from edgecc.logs import quiet_root_records
from edgecc.quantization.calibrate import METHODS, collect_statistics, select_range
from edgecc.quantization.report import QuantReport, layer_sqnr, output_metrics
from edgecc.quantization.scheme import QuantScheme

if TYPE_CHECKING:
    import numpy as np
    import onnx

__all__ = [
    "FORMATS",
    "FP16_SENSITIVE_OPS",
    "MODES",
    "QUANTIZATION_OPSET",
    "QuantOptions",
    "quantize_model",
    "raise_to_quantization_opset",
]

log = logging.getLogger(__name__)

MODES = ("static", "dynamic", "fp16")
FORMATS = ("qdq", "qoperator")
GOAL_METRICS = ("cosine", "top1", "sqnr")
FP16_SENSITIVE_OPS = ("Softmax", "LayerNormalization", "Resize", "ReduceMean", "Pow", "Sqrt", "Exp", "Log")
WEIGHT_OPS = ("Conv", "Gemm", "MatMul", "ConvTranspose")

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class QuantOptions:
    """Everything besides the scheme that `quantize_model` needs (frozen: unknown keys are rejected)."""

    mode: str = "static"
    method: str = "percentile"
    percentile: float = 99.999
    quant_format: str = "qdq"
    exclude_nodes: tuple[str, ...] = ()
    exclude_op_types: tuple[str, ...] = ()
    cle: bool = False
    bias_correction: bool = False
    accuracy_goal: float | None = None
    goal_metric: str = "cosine"
    repair_budget: int = 8
    holdout: float = 0.2
    keep_io_float32: bool = True
    fp32_ops: tuple[str, ...] = ()
    per_layer_report: bool = True
    optimize: bool = True  # fold BatchNorm/affine ops and clean up first (edgecc's -O2 passes), as quantisers expect
    # a compile partition an integer accelerator runs whole: it may have no weights (Add/Mul/Resize only), latent ops
    # (Resize, MaxPool, Transpose, ...) are quantised even when their input is a float graph input, and a node excluded
    # (kept in float, on the CPU) reads its inputs as they cross the boundary, dequantised
    accelerator_partition: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"--mode must be one of {', '.join(MODES)}, not '{self.mode}'")
        if self.method not in METHODS:
            raise UsageError(f"--method must be one of {', '.join(METHODS)}, not '{self.method}'")
        if self.quant_format not in FORMATS:
            raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not '{self.quant_format}'")
        if self.goal_metric not in GOAL_METRICS:
            raise UsageError(f"--goal-metric must be one of {', '.join(GOAL_METRICS)}, not '{self.goal_metric}'")
        if not 0 < self.percentile <= 100:
            raise UsageError("--percentile must be in (0, 100]")
        if not 0 <= self.holdout < 1:
            raise UsageError("--holdout must be in [0, 1)")


def _qtype(name: str):
    from onnxruntime.quantization import QuantType

    return {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8, "int16": QuantType.QInt16}[name]


def model_size(model: onnx.ModelProto) -> int:
    """Serialized size in bytes."""
    return model.ByteSize()


def _check_float_weights(model: onnx.ModelProto, name: str) -> None:
    """Exit 3 when no float initializer or Constant (other than Q/DQ scales) feeds a node: nothing to quantise."""
    import onnx

    float_types = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE)
    tensors = [(t.name, t) for t in model.graph.initializer]
    tensors += [(n.output[0], a.t) for n in model.graph.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"]
    floats = {name for name, t in tensors if t.data_type in float_types and math.prod(t.dims) > 1}
    used = {i for n in model.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear") for i in n.input}
    if not floats & used:
        raise InvalidInputError(f"'{name}' has no float weights to quantise (is it already quantised?)", path=name)


def _prepared(model: onnx.ModelProto) -> onnx.ModelProto:
    """Shape-inferred copy with every node named (names are how layers are reported and excluded)."""
    from edgecc.onnxutil import infer_shapes, name_unnamed_nodes

    model = name_unnamed_nodes(copy.deepcopy(model))
    return infer_shapes(model)


#: the ai.onnx opset int8 models are written at, at least: per-channel weights need DequantizeLinear's `axis` (13)
QUANTIZATION_OPSET = 13


def raise_to_quantization_opset(model: onnx.ModelProto, name: str) -> tuple[onnx.ModelProto, int | None]:
    """The model raised to `QUANTIZATION_OPSET` and the opset it had, when it is below it; else (model, None)."""
    from edgecc.onnxutil import default_opset
    from edgecc.opset import convert_opset

    current = default_opset(model)
    if not current or current >= QUANTIZATION_OPSET:
        return model, None
    return convert_opset(model, QUANTIZATION_OPSET, path=name), current


def _optimized(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model after edgecc's level-2 passes (BatchNorm folding, cleanup); unchanged if a pass fails."""
    from edgecc.errors import EdgeccError
    from edgecc.passes import LEVELS, run_passes

    try:
        optimized, _ = run_passes(model, list(LEVELS[2]))
    except EdgeccError as exc:
        log.warning("optimisation before quantisation skipped: %s", exc.one_line())
        return model
    return optimized


def _batch_rows(model: onnx.ModelProto, feeds: Sequence[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """Samples of a dynamic-batch model given as batches, one sample per batch row (the quantiser's unit of a sample).

    A feed is split when every graph input has a dynamic first dimension and all its arrays share a leading size > 1;
    ranges and the held-out report are then computed per row, as for samples given one by one.
    """
    from edgecc.onnxutil import graph_inputs

    inputs = graph_inputs(model)
    if not inputs or any(i.shape is None or not i.shape or isinstance(i.shape[0], int) and i.shape[0] >= 0 for i in inputs):
        return list(feeds)
    rows: list[dict[str, np.ndarray]] = []
    for feed in feeds:
        sizes = {value.shape[0] if value.ndim else 0 for value in feed.values()}
        count = sizes.pop() if len(sizes) == 1 else 0
        if count > 1:
            rows.extend({k: v[i : i + 1] for k, v in feed.items()} for i in range(count))
        else:
            rows.append(feed)
    return rows


def _split(feeds: Sequence[dict[str, np.ndarray]], holdout: float) -> tuple[list, list, str | None]:
    feeds = list(feeds)
    if len(feeds) >= 4 and holdout > 0:
        count = max(1, round(len(feeds) * holdout))
        return feeds[:-count], feeds[-count:], None
    return feeds, feeds, "too few samples to hold some out: the report is measured on the calibration samples"


def _excluded(model: onnx.ModelProto, options: QuantOptions) -> list[str]:
    names = {n.name for n in model.graph.node}
    op_types = {n.op_type for n in model.graph.node}
    wanted = set(options.exclude_nodes) | set(options.exclude_op_types)
    unknown = sorted(w for w in wanted if w not in names and w not in op_types)
    if unknown:
        raise UsageError(f"--exclude names neither nodes nor op types of the model: {', '.join(unknown)}")
    return [n.name for n in model.graph.node if n.name in wanted or n.op_type in wanted]


#: 8-bit output quantisation fixed by convention: (scale, int8 zero point, uint8 zero point). TFLite's integer kernels
#: assume these (1/256 for probabilities, 1/128 for tanh), so integer runtimes and onnxruntime's QDQ agree exactly
FIXED_OUTPUT_QUANTIZATION: dict[str, tuple[float, int, int]] = {
    "Softmax": (1 / 256, -128, 0),
    "Sigmoid": (1 / 256, -128, 0),
    "Tanh": (1 / 128, 0, 128),
}


def fixed_output_overrides(model: onnx.ModelProto, activation_type: str) -> dict[str, list[dict[str, Any]]]:
    """onnxruntime TensorQuantOverrides fixing the scale/zero point of Softmax, Sigmoid and Tanh outputs (8-bit only)."""
    import numpy as np

    if activation_type not in ("int8", "uint8"):
        return {}
    dtype = np.int8 if activation_type == "int8" else np.uint8
    overrides = {}
    for node in model.graph.node:
        if node.op_type in FIXED_OUTPUT_QUANTIZATION:
            scale, zero_int8, zero_uint8 = FIXED_OUTPUT_QUANTIZATION[node.op_type]
            zero = zero_int8 if activation_type == "int8" else zero_uint8
            overrides[node.output[0]] = [{"scale": np.array(scale, np.float32), "zero_point": np.array(zero, dtype)}]
    return overrides


def _ort_quantize(
    model: onnx.ModelProto,
    scheme: QuantScheme,
    options: QuantOptions,
    ranges: Mapping[str, tuple[float, float]],
    exclude: Sequence[str],
) -> onnx.ModelProto:
    """Insert Q/DQ (or QLinear ops) with onnxruntime's quantiser and our ranges."""
    import numpy as np
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData
    from onnxruntime.quantization.onnx_quantizer import ONNXQuantizer
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.quant_utils import QuantizationMode
    from onnxruntime.quantization.quantize import update_opset_version
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    activation, weight = _qtype(scheme.activation_type), _qtype(scheme.weight_type)
    extra = {
        "ActivationSymmetric": scheme.symmetric_activations,
        "WeightSymmetric": scheme.symmetric_weights,
        # removing Relu relies on Q clamping; excluded (float) nodes are fed the float tensor in front of Q (see
        # _float_inputs_for), which must then be the activation's output, so keep activations when excluding
        "QDQKeepRemovableActivations": bool(exclude),
        "ForceQuantizeNoInputCheck": options.accelerator_partition,
    }
    if scheme.activation_type == "int16":
        extra["UseQDQContribOps"] = True
    if not scheme.symmetric_activations:
        fixed = {
            name: spec for name, spec in fixed_output_overrides(model, scheme.activation_type).items() if name not in exclude
        }
        if fixed:
            extra["TensorQuantOverrides"] = fixed
    tensors = TensorsData(CalibrationMethod.MinMax, {k: (np.float32(lo), np.float32(hi)) for k, (lo, hi) in ranges.items()})
    work = copy.deepcopy(model)
    try:
        with quiet_root_records("onnxruntime"):  # onnxruntime.quantization warns through the root logger
            work = update_opset_version(work, weight, activation)
            if options.quant_format == "qoperator":
                op_types = list(QLinearOpsRegistry.keys())
                quantizer = ONNXQuantizer(
                    work,
                    scheme.per_channel,
                    False,
                    QuantizationMode.QLinearOps,
                    True,
                    weight,
                    activation,
                    tensors,
                    [],
                    list(exclude),
                    op_types,
                    extra,
                )
            else:
                op_types = set(QLinearOpsRegistry.keys()) | set(QDQRegistry.keys())
                if options.accelerator_partition:  # the integer accelerator runs every op: HardSwish, Erf, ... too
                    op_types |= {n.op_type for n in work.graph.node if n.domain in ("", "ai.onnx")}
                op_types = sorted(op_types)
                quantizer = QDQQuantizer(
                    work, scheme.per_channel, False, weight, activation, tensors, [], list(exclude), op_types, extra
                )
            quantizer.quantize_model()
    except Exception as exc:  # noqa: BLE001 -- onnxruntime's quantiser raises plain ValueError/AssertionError
        raise UnsupportedError(
            f"onnxruntime's quantiser failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        ) from None
    result = quantizer.model.model
    if options.quant_format == "qdq" and exclude and not options.accelerator_partition:
        _float_inputs_for(result, set(exclude))  # (on an accelerator, a node kept in float reads the int8 boundary)
    if options.quant_format == "qdq" and options.accelerator_partition:
        _quantize_float_inputs(result, scheme, ranges)
    return toposort(result)


def _quantize_float_inputs(model: onnx.ModelProto, scheme: QuantScheme, ranges: Mapping[str, tuple[float, float]]) -> None:
    """Put QuantizeLinear -> DequantizeLinear (calibrated range) between each float graph input and the nodes that read
    it without quantising it: onnxruntime's quantiser leaves such an input float when only a Relu, Resize or other
    latent op reads it, and an integer accelerator partition must start quantised."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper
    from onnxruntime.quantization.quant_utils import compute_scale_zp, get_qmin_qmax_for_qType

    graph = model.graph
    qtype = _qtype(scheme.activation_type)
    qmin, qmax = get_qmin_qmax_for_qType(qtype.tensor_type, symmetric=scheme.symmetric_activations)
    domain = "com.microsoft" if scheme.activation_type == "int16" else ""
    initializers = {t.name for t in graph.initializer}
    added: list[onnx.NodeProto] = []
    for value in graph.input:
        if value.name in initializers or value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT or value.name not in ranges:
            continue
        readers = [n for n in graph.node if value.name in n.input and n.op_type != "QuantizeLinear"]
        if not readers:
            continue
        low, high = ranges[value.name]
        zero_point, scale = compute_scale_zp(
            np.float32(min(low, 0.0)), np.float32(max(high, 0.0)), qmin, qmax, symmetric=scheme.symmetric_activations
        )
        stem = f"{value.name}_partition_input"
        graph.initializer.extend(
            [
                numpy_helper.from_array(np.asarray(scale, dtype=np.float32), f"{stem}_scale"),
                numpy_helper.from_array(
                    np.asarray(zero_point, dtype=helper.tensor_dtype_to_np_dtype(qtype.tensor_type)), f"{stem}_zero_point"
                ),
            ]
        )
        params = [f"{stem}_scale", f"{stem}_zero_point"]
        added += [
            helper.make_node(
                "QuantizeLinear", [value.name, *params], [f"{stem}_q"], name=f"{stem}_QuantizeLinear", domain=domain
            ),
            helper.make_node(
                "DequantizeLinear", [f"{stem}_q", *params], [f"{stem}_dq"], name=f"{stem}_DequantizeLinear", domain=domain
            ),
        ]
        for reader in readers:
            for index, name in enumerate(reader.input):
                if name == value.name:
                    reader.input[index] = f"{stem}_dq"
    graph.node.extend(added)


def compact_names(model: onnx.ModelProto, keep: set[str]) -> onnx.ModelProto:
    """Give the tensors and nodes the quantiser added short names (`q12`), keeping every name in `keep`.

    onnxruntime names them `<tensor>_QuantizeLinear_Output`, `<weight>_scale`, ...: on small models those strings
    are a large part of the file.
    """
    graph = model.graph
    keep = set(keep) | {i.name for i in graph.input} | {o.name for o in graph.output} | {""}
    renamed: dict[str, str] = {}

    def short(name: str) -> str:
        if name in keep:
            return name
        if name not in renamed:
            renamed[name] = f"q{len(renamed)}"
        return renamed[name]

    for tensor in graph.initializer:
        tensor.name = short(tensor.name)
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = short(name)
        for i, name in enumerate(node.output):
            node.output[i] = short(name)
        if node.name not in keep:
            node.name = short(node.name)
    for vi in list(graph.value_info):
        if vi.name in renamed:
            vi.name = renamed[vi.name]
    return model


def _float_inputs_for(model: onnx.ModelProto, nodes: set[str]) -> None:
    """Feed excluded nodes the float tensor in front of a Q/DQ pair instead of the DequantizeLinear output.

    Otherwise onnxruntime's session optimiser (WeightBiasQuantization) sees DQ -> Gemm/Conv with float weights and
    quantises those weights itself, undoing the exclusion.
    """
    q_input = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    dq_source = {
        n.output[0]: q_input[n.input[0]] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in q_input
    }
    for node in model.graph.node:
        if node.name in nodes:
            for i, name in enumerate(node.input):
                if name in dq_source:
                    node.input[i] = dq_source[name]


def _integer_io(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, dict[str, Any]]]:
    """Make graph inputs/outputs integer: drop the edge QuantizeLinear (inputs) and DequantizeLinear (outputs)."""
    import onnx

    model = copy.deepcopy(model)
    inits = {t.name: t for t in model.graph.initializer}
    params: dict[str, dict[str, Any]] = {}

    def qparams(node: onnx.NodeProto) -> tuple[float, int, int]:
        scale = float(onnx.numpy_helper.to_array(inits[node.input[1]]).ravel()[0])
        zp_tensor = inits.get(node.input[2]) if len(node.input) > 2 else None
        zp = int(onnx.numpy_helper.to_array(zp_tensor).ravel()[0]) if zp_tensor is not None else 0
        return scale, zp, zp_tensor.data_type if zp_tensor is not None else onnx.TensorProto.UINT8

    for graph_input in model.graph.input:
        users = [n for n in model.graph.node if graph_input.name in n.input]
        if len(users) != 1 or users[0].op_type != "QuantizeLinear":
            continue
        q = users[0]
        scale, zp, elem = qparams(q)
        for node in model.graph.node:
            for i, name in enumerate(node.input):
                if name == q.output[0]:
                    node.input[i] = graph_input.name
        model.graph.node.remove(q)
        graph_input.type.tensor_type.elem_type = elem
        params[graph_input.name] = {
            "direction": "input",
            "scale": scale,
            "zero_point": zp,
            "dtype": onnx.helper.tensor_dtype_to_np_dtype(elem).name,
        }
    for graph_output in model.graph.output:
        producers = [n for n in model.graph.node if graph_output.name in n.output]
        if len(producers) != 1 or producers[0].op_type != "DequantizeLinear":
            continue
        dq = producers[0]
        scale, zp, elem = qparams(dq)
        source = dq.input[0]
        model.graph.node.remove(dq)
        for node in model.graph.node:
            for i, name in enumerate(node.output):
                if name == source:
                    node.output[i] = graph_output.name
            for i, name in enumerate(node.input):
                if name == source:
                    node.input[i] = graph_output.name
        graph_output.type.tensor_type.elem_type = elem
        params[graph_output.name] = {
            "direction": "output",
            "scale": scale,
            "zero_point": zp,
            "dtype": onnx.helper.tensor_dtype_to_np_dtype(elem).name,
        }
    for name, p in params.items():
        model.metadata_props.append(
            onnx.StringStringEntryProto(key=f"edgecc.quant.{name}", value=f"scale={p['scale']!r};zero_point={p['zero_point']}")
        )
    return model, params


def toposort(model: onnx.ModelProto) -> onnx.ModelProto:
    """Order the main graph's nodes so that every input is produced before use (stable for already sorted graphs)."""
    graph = model.graph
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        rest = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):  # a cycle or an outer-scope name: keep the remaining order
            ordered.extend(rest)
            break
        pending = rest
    nodes = [copy.deepcopy(n) for n in ordered]
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def _run_all(model: onnx.ModelProto, feeds: Sequence[Mapping[str, np.ndarray]], name: str) -> list[dict[str, np.ndarray]]:
    from edgecc.ortrun import OrtRunner

    runner = OrtRunner(model, name=name)
    inputs = {i.name for i in runner.inputs}
    return [runner.run({k: v for k, v in feed.items() if k in inputs}) for feed in feeds]


def _goal_value(metrics: Sequence[Any], metric: str) -> float:
    if metric == "cosine":
        return min(m.cosine for m in metrics)
    if metric == "sqnr":
        return min(m.sqnr_db for m in metrics)
    values = [m.top1 for m in metrics if m.top1 is not None]
    if not values:
        raise UsageError("--goal-metric top1 needs classifier-like outputs ([N, C])", hint="use --goal-metric cosine")
    return min(values)


def _weight_nodes(model: onnx.ModelProto) -> list[str]:
    inits = {t.name for t in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type in WEIGHT_OPS and any(i in inits for i in n.input[1:2])]


def quantize_model(
    model: onnx.ModelProto,
    scheme: QuantScheme,
    calibration_feeds: Sequence[dict[str, np.ndarray]] | None,
    options: QuantOptions | None = None,
    *,
    name: str = "<model>",
    calibration_source: str = "",
    progress: Progress | None = None,
) -> tuple[onnx.ModelProto, QuantReport]:
    """Quantise `model` as `scheme` and `options` say; returns the new model and the report.

    `calibration_feeds`: checked samples (input name -> array), needed for static mode, CLE is data-free, and the
    report/accuracy goal use a held-out part (`options.holdout`). fp16 and dynamic modes use them only for the report.
    """
    options = options or QuantOptions(mode="fp16" if scheme.precision == "fp16" else "static")
    feeds = _batch_rows(model, calibration_feeds or [])
    if scheme.precision == "fp32":
        report = QuantReport(mode="fp32", scheme=scheme.describe(), size_before=model_size(model), size_after=model_size(model))
        report.notes.append("the scheme asks for fp32: the model is unchanged")
        return model, report
    mode = "fp16" if scheme.precision == "fp16" else options.mode
    if not options.accelerator_partition:
        _check_float_weights(model, name)
    float_model = _optimized(model) if options.optimize else model
    upgrade_note = None
    if mode != "fp16":
        float_model, raised_from = raise_to_quantization_opset(float_model, name)
        if raised_from is not None:
            upgrade_note = f"opset {raised_from} raised to {QUANTIZATION_OPSET} before quantising (per-channel Q/DQ needs it)"
    float_model = _prepared(float_model)
    exclude = _excluded(float_model, options)
    calib, held_out, note = _split(feeds, options.holdout) if feeds else ([], [], None)
    report = QuantReport(
        mode=mode,
        scheme=scheme.describe() if mode == "static" else mode,
        calibration=calibration_source,
        calibration_samples=len(calib),
        evaluation_samples=len(held_out),
        size_before=model_size(model),
        excluded=list(exclude),
    )
    report.settings = {
        "scheme": asdict(scheme),
        **{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(options).items()},
    }
    report.settings["mode"] = mode
    report.notes.extend(n for n in (upgrade_note, note) if n)
    if mode == "fp16":
        result = _fp16(float_model, options, exclude)
    elif mode == "dynamic":
        result = _dynamic(float_model, scheme, options, exclude)
    else:
        if not feeds:
            raise UsageError(
                "static quantisation needs calibration data",
                hint="give --calibration DIR|FILE.npz|module:function (or --mode dynamic)",
            )
        result, float_model = _static(float_model, scheme, options, exclude, calib, held_out, report, progress)
    result = toposort(result)
    if mode == "static":
        original = {t.name for t in float_model.graph.initializer} | {n.name for n in float_model.graph.node}
        original |= {o for n in float_model.graph.node for o in n.output}
        result = compact_names(result, original)
    if held_out:
        names = [o.name for o in float_model.graph.output]
        reference = _run_all(float_model, held_out, "float model")
        candidate = _run_all(result, held_out, "quantised model")
        report.outputs = output_metrics(reference, candidate, names)
        if options.per_layer_report and not report.layers:
            report.layers = layer_sqnr(
                float_model,
                result,
                held_out,
                quantized_nodes=set(_weight_nodes(float_model)) - set(report.float_layers) - set(exclude),
            )
    if scheme.integer_io and mode == "static" and options.quant_format == "qdq":
        result, report.io_quantization = _integer_io(result)
    elif scheme.integer_io and mode != "fp16":
        report.notes.append("integer inputs/outputs need static QDQ quantisation: the edges stay float")
    report.size_after = model_size(result)
    return result, report


def _fp16(model: onnx.ModelProto, options: QuantOptions, exclude: Sequence[str]) -> onnx.ModelProto:
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    block = list(dict.fromkeys(list(DEFAULT_OP_BLOCK_LIST) + list(options.fp32_ops)))
    try:
        return convert_float_to_float16(
            copy.deepcopy(model),
            keep_io_types=options.keep_io_float32,
            op_block_list=block,
            node_block_list=list(exclude) or None,
        )
    except Exception as exc:  # noqa: BLE001 -- onnxruntime / user code raise errors of many types
        raise UnsupportedError(f"fp16 conversion failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}") from None


def _dynamic(model: onnx.ModelProto, scheme: QuantScheme, options: QuantOptions, exclude: Sequence[str]) -> onnx.ModelProto:
    import onnx
    from onnxruntime.quantization import quantize_dynamic

    op_types = ["MatMul", "Gemm", "Conv", "Attention", "LSTM", "GRU", "Gather", "EmbedLayerNormalization"]
    with tempfile.TemporaryDirectory(prefix="edgecc-quant-") as tmp:
        out = Path(tmp) / "dynamic.onnx"
        try:
            with quiet_root_records("onnxruntime"):
                # ConvInteger on CPU takes uint8 weights only; MatMulInteger takes int8 or uint8
                quantize_dynamic(
                    copy.deepcopy(model),
                    out,
                    op_types_to_quantize=op_types,
                    per_channel=scheme.per_channel,
                    weight_type=_qtype("uint8" if any(n.op_type == "Conv" for n in model.graph.node) else scheme.weight_type),
                    nodes_to_exclude=list(exclude),
                    extra_options={"WeightSymmetric": scheme.symmetric_weights, "MatMulConstBOnly": True},
                )
        except Exception as exc:  # noqa: BLE001 -- onnxruntime / user code raise errors of many types
            raise UnsupportedError(
                f"dynamic quantisation failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            ) from None
        return onnx.load(str(out))


def _static(
    model: onnx.ModelProto,
    scheme: QuantScheme,
    options: QuantOptions,
    exclude: list[str],
    calib: list,
    held_out: list,
    report: QuantReport,
    progress: Progress | None,
) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    from edgecc.quantization.equalize import correct_bias, equalize_cross_layer

    if options.cle:
        model, pairs = equalize_cross_layer(model)
        report.equalized_pairs = pairs
        if not pairs:
            report.notes.append("--cle found no Conv/Gemm pairs joined through ReLU-like activations")
    histograms = options.method != "minmax"
    stats = collect_statistics(model, calib, histograms=histograms, progress=progress)
    bits = 16 if scheme.activation_type == "int16" else 8
    outputs = {o.name for o in model.graph.output}
    # graph outputs keep their full range: clipping logits/boxes costs more than the finer step gains
    ranges = {
        name: select_range(
            s,
            "minmax" if name in outputs else options.method,
            symmetric=scheme.symmetric_activations,
            bits=bits,
            percentile=options.percentile,
        )
        for name, s in stats.items()
    }
    if options.bias_correction:
        model, corrected = correct_bias(model, stats, scheme, skip=set(exclude))
        report.bias_corrected = corrected
    quantized = _ort_quantize(model, scheme, options, ranges, exclude)
    if options.accuracy_goal is None:
        return quantized, model
    names = [o.name for o in model.graph.output]
    reference = _run_all(model, held_out, "float model")
    kept: list[str] = []
    drops: dict[str, float] = {}
    candidates = set(_weight_nodes(model)) - set(exclude)
    history = []
    stalled = False
    while True:
        metrics = output_metrics(reference, _run_all(quantized, held_out, "quantised model"), names)
        value = _goal_value(metrics, options.goal_metric)
        history.append({"float_layers": list(kept), "value": value})
        layers = layer_sqnr(model, quantized, held_out, quantized_nodes=candidates - set(kept))
        if value >= options.accuracy_goal or len(kept) >= options.repair_budget:
            break
        stalled = _stalled(history, options.accuracy_goal)
        if stalled:
            break
        ranked = sorted((x for x in layers if x.node in candidates and x.node not in kept), key=lambda x: -x.drop_db)
        if not ranked:
            break
        kept.append(ranked[0].node)
        drops[ranked[0].node] = float(ranked[0].drop_db)
        log.info("accuracy goal: returning %s to float (SQNR drop %.1f dB)", ranked[0].node, ranked[0].drop_db)
        quantized = _ort_quantize(model, scheme, options, ranges, exclude + kept)
    report.layers = layers
    report.float_layers = kept
    report.goal = {
        "metric": options.goal_metric,
        "target": options.accuracy_goal,
        "value": value,
        "met": value >= options.accuracy_goal,
        "budget": options.repair_budget,
        "history": history,
        "drops_db": drops,
        "stalled": stalled,
    }
    if value < options.accuracy_goal:
        why = (
            f"it stopped converging (the last {STALL_WINDOW} layers closed under {STALL_PROGRESS:.0%} of the gap: the error is "
            "spread over the model)"
            if stalled
            else f"budget {options.repair_budget}"
        )
        report.notes.append(f"accuracy goal not met after returning {len(kept)} layer(s) to float ({why})")
    return quantized, model


#: accuracy-goal repair stops when the last STALL_WINDOW layers returned to float closed less than STALL_PROGRESS of the
#: gap to the goal (seeded ShuffleNetV2 on Ethos-U's scheme: cosine 0.968 -> 0.965 -> 0.969 -> 0.970 for 3 layers)
STALL_WINDOW = 3
STALL_PROGRESS = 0.1


def _stalled(history: Sequence[Mapping[str, Any]], goal: float) -> bool:
    """True when the goal value improved by less than STALL_PROGRESS of the gap over the last STALL_WINDOW steps."""
    if len(history) <= STALL_WINDOW:
        return False
    before, now = history[-1 - STALL_WINDOW]["value"], history[-1]["value"]
    return now - before < STALL_PROGRESS * (goal - before)
