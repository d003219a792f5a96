"""Open each TensorFlow-family artefact into a `Source`: what tf2onnx needs and what the reference runs.

One loader per format, registered in `LOADERS`; every failure to read a file is
an InvalidInputError naming the format that was tried. TF.js models are read by
edgecc's own reader (below); `describe_source` says what an opened source holds.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from edgecc.converters.options import ConvertOptions
from edgecc.converters.tensorflow import flatbuffer, rewrite, schema
from edgecc.converters.tensorflow.runtime import keras, quiet, tf
from edgecc.converters.tensorflow.schema import Source
from edgecc.errors import InvalidInputError, UnsupportedError, UnsupportedNode, UnsupportedOperator, UsageError
from edgecc.fileio import check_input_file, resolve_named_path
from edgecc.inputs import TensorInfo
from edgecc.registry import Registry

__all__ = [
    "DTYPE_BYTES",
    "LOADERS",
    "describe_source",
    "load",
    "load_tfjs_model",
    "custom_operator_error",
    "one_line",
    "read_manifest_weights",
    "signature_name",
    "tensor_name",
    "interpreter_from_bytes",
    "tflite_interpreter",
]

log = logging.getLogger(__name__)

#: format kind -> loader(path, options) -> Source
LOADERS: Registry[Callable[[str, ConvertOptions], Source]] = Registry("TensorFlow format")

DEFAULT_SIGNATURE = "serving_default"
_SKIP_SINKS = {
    "Const",
    "NoOp",
    "Assert",
    "SaveV2",
    "RestoreV2",
    "VarHandleOp",
    "VariableV2",
    "Placeholder",
    "PlaceholderWithDefault",
}


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's text on one line, shortened."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def tensor_name(name: str) -> str:
    """`node` -> `node:0` (TensorFlow tensor names carry the output index)."""
    return name if ":" in name and name.rsplit(":", 1)[1].isdigit() else f"{name}:0"


def signature_name(options: ConvertOptions) -> str:
    """The SavedModel signature asked for with --signature (default serving_default)."""
    return getattr(options, "signature", None) or DEFAULT_SIGNATURE


def _dims(shape: Any) -> tuple[int | str | None, ...] | None:
    try:
        dims = shape.as_list() if hasattr(shape, "as_list") else list(shape)
    except ValueError:  # unknown rank
        return None
    return tuple(None if d is None or (isinstance(d, int) and d < 0) else int(d) for d in dims)


def _spec_dims(spec_shape: Any, options: ConvertOptions, name: str) -> tuple[Any, str | None]:
    spec = options.input_spec(name)
    if spec is None:
        return spec_shape, None
    shape = spec.shape if spec.shape is not None else spec_shape
    return tuple(d if isinstance(d, int) else None for d in shape) if shape is not None else None, spec.dtype


# --- Keras -------------------------------------------------------------------------------------------


def _load_keras_model(path: str, kind: str) -> Any:
    k = keras()
    try:
        with quiet():
            return k.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 -- TensorFlow, Keras and tf2onnx raise errors of many types
        raise InvalidInputError(f"'{path}' cannot be read as a {schema.KIND_NAMES[kind]}: {one_line(exc)}", path=path) from None


def keras_source(model: Any, path: str, kind: str, options: ConvertOptions) -> Source:
    """A Source for an in-memory Keras model (also used by the TF.js layers reader)."""
    inputs: list[TensorInfo] = []
    for tensor in model.inputs:
        name = tensor.name.split(":")[0]
        shape, dtype = _spec_dims(tuple(tensor.shape), options, name)
        inputs.append(
            TensorInfo(
                name, tuple(shape) if shape is not None else None, dtype or str(getattr(tensor.dtype, "name", tensor.dtype))
            )
        )
    names = list(getattr(model, "output_names", None) or [])
    if len(names) != len(model.outputs):
        names = [t.name.split(":")[0] for t in model.outputs]
    unknown = [s.name for s in options.inputs if s.name not in {i.name for i in inputs}]
    if unknown:
        raise UsageError(
            f"--input names {', '.join(unknown)}, which the Keras model does not have",
            hint=f"its inputs: {', '.join(i.name for i in inputs)}",
        )
    return Source(kind, path, inputs, names, model)


@LOADERS.register(schema.KERAS)
def load_keras(path: str, options: ConvertOptions) -> Source:
    """A Keras v3 `.keras` archive (loaded with safe_mode: no lambda deserialisation)."""
    import zipfile

    from edgecc.archive import zip_errors

    check_input_file(path, what="Keras model")
    try:
        with zip_errors(path, schema.KIND_NAMES[schema.KERAS]), zipfile.ZipFile(path) as archive:
            bad = archive.testzip()  # every member read once: corrupt deflate data or an unknown method is exit 3
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInputError(
            f"'{path}' is a truncated or corrupt {schema.KIND_NAMES[schema.KERAS]} ({one_line(exc)})", path=path
        ) from None
    if bad is not None:
        raise InvalidInputError(
            f"'{path}' is a corrupt {schema.KIND_NAMES[schema.KERAS]} (member '{bad}' fails its CRC)", path=path
        )
    return keras_source(_load_keras_model(path, schema.KERAS), path, schema.KERAS, options)


@LOADERS.register(schema.KERAS_H5)
def load_keras_h5(path: str, options: ConvertOptions) -> Source:
    """A legacy Keras HDF5 model file."""
    check_input_file(path, what="Keras HDF5 model")
    return keras_source(_load_keras_model(path, schema.KERAS_H5), path, schema.KERAS_H5, options)


# --- SavedModel --------------------------------------------------------------------------------------


@LOADERS.register(schema.SAVED_MODEL)
def load_saved_model(path: str, options: ConvertOptions) -> Source:
    """A SavedModel directory; the signature comes from --signature (default serving_default)."""
    directory = Path(path).parent if Path(path).is_file() else Path(path)
    tfm = tf()
    try:
        with quiet():
            loaded = tfm.saved_model.load(str(directory))
    except Exception as exc:  # noqa: BLE001 -- TensorFlow, Keras and tf2onnx raise errors of many types
        raise InvalidInputError(
            f"'{directory}' cannot be read as a {schema.KIND_NAMES[schema.SAVED_MODEL]}: {one_line(exc)}", path=directory
        ) from None
    wanted = signature_name(options)
    signatures = dict(loaded.signatures)
    if wanted not in signatures:
        raise UsageError(
            f"SavedModel '{directory}' has no signature '{wanted}'",
            hint=f"choose one with --signature: {', '.join(sorted(signatures)) or 'the model has no signatures'}",
        )
    function = signatures[wanted]
    specs = function.structured_input_signature[1]
    inputs = []
    for name in sorted(specs):
        shape, dtype = _spec_dims(tuple(_dims(specs[name].shape) or ()), options, name)
        inputs.append(TensorInfo(name, shape, dtype or specs[name].dtype.name))
    outputs = sorted(function.structured_outputs)
    return Source(
        schema.SAVED_MODEL,
        str(directory),
        inputs,
        outputs,
        function,
        extra={"loaded": loaded, "signature": wanted, "signatures": sorted(signatures)},
    )


# --- frozen GraphDef ---------------------------------------------------------------------------------


def parse_graphdef(data: bytes, path: str) -> Any:
    """Parse GraphDef bytes; corrupt or truncated data is an InvalidInputError."""
    tfm = tf()
    graph_def = tfm.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 -- TensorFlow, Keras and tf2onnx raise errors of many types
        raise InvalidInputError(
            f"'{path}' is a truncated or corrupt {schema.KIND_NAMES[schema.GRAPHDEF]} ({one_line(exc)})", path=path
        ) from None
    if not graph_def.node:
        raise InvalidInputError(f"'{path}' is a {schema.KIND_NAMES[schema.GRAPHDEF]} without nodes", path=path)
    return graph_def


def graphdef_source(
    graph_def: Any, path: str, options: ConvertOptions, kind: str = schema.GRAPHDEF, default_outputs: Sequence[str] = ()
) -> Source:
    """Inputs (placeholders, or --input) and outputs (sinks, or --output) of a frozen graph."""
    tfm = tf()
    graph = tfm.Graph()
    try:
        with quiet(), graph.as_default():
            tfm.import_graph_def(graph_def, name="")
    except Exception as exc:  # noqa: BLE001 -- TensorFlow, Keras and tf2onnx raise errors of many types
        raise InvalidInputError(f"'{path}': the {schema.KIND_NAMES[kind]} does not import: {one_line(exc)}", path=path) from None
    if options.inputs:
        names = [tensor_name(s.name) for s in options.inputs]
    else:
        names = [tensor_name(n.name) for n in graph_def.node if n.op == "Placeholder"]
    inputs = []
    for name in names:
        try:
            tensor = graph.get_tensor_by_name(name)
        except (KeyError, ValueError):
            raise UsageError(f"--input '{name}' is not a tensor of {path}") from None
        spec = options.input_spec(name) or options.input_spec(name.rsplit(":", 1)[0])
        shape = _dims(tensor.shape)
        if spec is not None and spec.shape is not None:
            if shape is not None and (
                len(shape) != len(spec.shape)
                or any(isinstance(h, int) and isinstance(w, int) and h != w for h, w in zip(shape, spec.shape))
            ):
                fixed = "x".join("?" if d is None else str(d) for d in shape)
                raise UsageError(
                    f"--input '{spec.text()}' conflicts with the graph, where {name} ({tensor.op.type}) is fixed to {fixed}",
                    hint="give the graph's shape, or fix only its unknown (?) dimensions",
                )
            shape = tuple(d if isinstance(d, int) else None for d in spec.shape)
        dtype = spec.dtype if spec is not None and spec.dtype else tensor.dtype.name
        inputs.append(TensorInfo(name, shape, "object" if dtype == "string" else dtype))
    if options.outputs:
        outputs = [tensor_name(n) for n in options.outputs]
    elif default_outputs:
        outputs = [tensor_name(n) for n in default_outputs]
    else:
        consumed = {i.lstrip("^").split(":")[0] for n in graph_def.node for i in n.input}
        outputs = [tensor_name(n.name) for n in graph_def.node if n.name not in consumed and n.op not in _SKIP_SINKS]
    for name in outputs:
        try:
            graph.get_tensor_by_name(name)
        except (KeyError, ValueError):
            raise UsageError(f"--output '{name}' is not a tensor of {path}") from None
    if not outputs:
        raise InvalidInputError(f"'{path}': the {schema.KIND_NAMES[kind]} has no output (no sink node)", path=path)
    return Source(kind, path, inputs, outputs, graph_def, extra={"graph": graph})


@LOADERS.register(schema.GRAPHDEF)
def load_graphdef(path: str, options: ConvertOptions) -> Source:
    """A frozen GraphDef `.pb`: placeholders in and sinks out unless --input/--output say otherwise."""
    data = check_input_file(path, what="TensorFlow GraphDef").read_bytes()
    return graphdef_source(parse_graphdef(data, path), path, options)


# --- TFLite ------------------------------------------------------------------------------------------


def interpreter_from_bytes(data: bytes, *, delegates: bool = True) -> Any:
    """A TFLite interpreter over flatbuffer bytes with its tensors allocated (errors propagate).

    `delegates`: TFLite's default delegate (XNNPACK, op resolver AUTO), as users run the model; False: TFLite's
    own builtin kernels (BUILTIN_WITHOUT_DEFAULT_DELEGATES).
    """
    tfm = tf()
    with quiet():
        resolvers = tfm.lite.experimental.OpResolverType
        chosen = resolvers.AUTO if delegates else resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        interpreter = tfm.lite.Interpreter(model_content=data, num_threads=1, experimental_op_resolver_type=chosen)
        interpreter.allocate_tensors()
    return interpreter


def tflite_interpreter(path: str, *, delegates: bool = True) -> Any:
    """A TFLite interpreter over `path` with its tensors allocated; bad files are InvalidInputError.

    `delegates` keeps TFLite's default CPU delegate (XNNPACK), as users run the model; without it the
    interpreter lists the model's own operators.
    """
    data = check_input_file(path, what="TFLite model").read_bytes()
    flatbuffer.read(data, path)  # a file the schema cannot parse is reported as such (exit 3)
    try:
        return interpreter_from_bytes(data, delegates=delegates)
    except Exception as exc:  # noqa: BLE001 -- TensorFlow, Keras and tf2onnx raise errors of many types
        raise InvalidInputError(f"the TFLite interpreter cannot load '{path}' ({one_line(exc)})", path=path) from None


def _resized_shapes(data: bytes, wanted: Mapping[int, tuple[int, ...]]) -> dict[int, tuple[int, ...]]:
    """Every tensor's shape once the inputs `wanted` (tensor index -> shape) are resized (TFLite's own kernels).

    The model is invoked once on zeros: tensors whose shape is computed (RESHAPE to a SHAPE-derived size) get
    their size only then.
    """
    import numpy as np

    interpreter = interpreter_from_bytes(data, delegates=False)
    with quiet():
        for index, shape in wanted.items():
            interpreter.resize_tensor_input(index, list(shape), strict=False)
        interpreter.allocate_tensors()
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], dtype=detail["dtype"]))
        interpreter.invoke()
        return {int(d["index"]): tuple(int(x) for x in d["shape"]) for d in interpreter.get_tensor_details()}


@LOADERS.register(schema.TFLITE)
def load_tflite(path: str, options: ConvertOptions) -> Source:
    """A TFLite flatbuffer (float, fp16 weights, dynamic-range, int8/uint8 full-integer), read by edgecc itself.

    No interpreter is built here: the file is parsed (`flatbuffer.read`, exit 3 when it cannot be), rewritten
    into what tf2onnx converts (`rewrite.prepare`; `--input` fixes shapes) and the rewritten bytes are what
    `export_tflite` converts. The reference interpreter is made on first use (runner.py).
    """
    data = check_input_file(path, what="TFLite model").read_bytes()
    model = flatbuffer.read(data, path)
    main = model.main
    signatures = {int(i): model.signature(main, int(i)) for i in main.inputs}
    original_inputs = [int(i) for i in main.inputs]
    outputs = [model.tensor_name(main, int(i)) for i in main.outputs]
    notes = rewrite.prepare(model)
    if options.inputs:
        custom = custom_operator_error(model)
        if custom is not None:
            raise custom
        notes += rewrite.static_inputs(model, options.inputs, _resized_shapes)
    inputs = []
    for index in original_inputs:  # state inputs (resource variables) have defaults: not the reference's inputs
        name, dtype = model.tensor_name(main, index), model.dtype(main, index)
        spec = options.input_spec(name)
        if spec is not None and spec.dtype and spec.dtype != dtype:
            raise UsageError(f"--input '{spec.text()}' asks for {spec.dtype}, the TFLite input '{name}' is {dtype}")
        shape = model.signature(main, index)
        inputs.append(TensorInfo(name, tuple(None if d < 0 else d for d in shape), dtype))
    for note in notes:
        log.info("%s: %s", path, note)
    return Source(
        schema.TFLITE,
        path,
        inputs,
        outputs,
        path,
        extra={
            "flatbuffer": model,
            "original": data,
            "converted": model.serialize() if notes else data,
            "notes": notes,
            "dynamic_inputs": {model.tensor_name(main, i): s for i, s in signatures.items() if any(d < 0 for d in s)},
        },
    )


# --- TF.js -------------------------------------------------------------------------------------------
# edgecc's own TF.js reader: `model.json` (layers or graph model) + little-endian binary weight shards.
#
# No tensorflowjs dependency. Weights may be stored as float32/int32/bool or quantised
# (`quantization: {dtype: uint8|uint16, scale, min}` -> q * scale + min, or
# `{dtype: float16}`). Every shard path, size and weight extent is checked before any
# array is made; layers models are rebuilt with Keras, graph models become a frozen
# GraphDef whose Const nodes take the weights.

#: stored dtype -> (numpy dtype, bytes per element)
DTYPE_BYTES: dict[str, tuple[str, int]] = {
    "float32": ("<f4", 4),
    "int32": ("<i4", 4),
    "bool": ("u1", 1),
    "uint8": ("u1", 1),
    "uint16": ("<u2", 2),
    "float16": ("<f2", 2),
    "int8": ("i1", 1),
}

_MAX_JSON_BYTES = 256 * 1024 * 1024


def _fail(json_path: Path, message: str) -> InvalidInputError:
    return InvalidInputError(f"TF.js model '{json_path}': {message}", path=json_path)


def _shard_path(json_path: Path, name: Any) -> Path:
    """A shard file inside model.json's folder: absolute paths, '..' and links that leave it are refused."""
    return resolve_named_path(json_path.parent, name, named_in=json_path, what="weight shard")


def read_manifest_weights(json_path: Path, manifest: Any) -> dict[str, Any]:
    """Weight name -> float32/int32/bool numpy array, with every size checked against the shards."""
    import numpy as np

    if not isinstance(manifest, list):
        raise _fail(json_path, "weightsManifest is not a list")
    weights: dict[str, Any] = {}
    for group_index, group in enumerate(manifest):
        if not isinstance(group, dict) or not isinstance(group.get("paths"), list) or not isinstance(group.get("weights"), list):
            raise _fail(json_path, f"weightsManifest group {group_index} lacks 'paths' or 'weights'")
        chunks = []
        for name in group["paths"]:
            shard = _shard_path(json_path, name)
            if not shard.is_file():
                raise _fail(json_path, f"weight shard '{name}' is missing (expected {shard})")
            chunks.append(check_input_file(shard, what="TF.js weight shard").read_bytes())
        data = b"".join(chunks)
        offset = 0
        for entry in group["weights"]:
            try:
                name, shape = str(entry["name"]), [int(d) for d in entry["shape"]]
                dtype = str(entry.get("dtype", "float32"))
                quant = entry.get("quantization") or {}
            except (KeyError, TypeError, ValueError):
                raise _fail(json_path, f"weight entry {entry!r:.80} lacks a name, shape or dtype") from None
            if any(d < 0 for d in shape):
                raise _fail(json_path, f"weight '{name}' has a negative dimension {shape}")
            stored = str(quant.get("dtype", dtype)) if isinstance(quant, dict) else dtype
            if stored not in DTYPE_BYTES or dtype not in DTYPE_BYTES:
                raise UnsupportedError(f"TF.js weight '{name}' has dtype {stored}, which edgecc cannot read", path=json_path)
            np_dtype, size = DTYPE_BYTES[stored]
            count = math.prod(shape)
            end = offset + count * size
            if end > len(data):
                raise _fail(
                    json_path,
                    f"weight shards of group {group_index} ({', '.join(map(str, group['paths']))}) hold "
                    f"{len(data)} bytes; weight '{name}' needs bytes {offset}..{end}",
                )
            raw = np.frombuffer(data, dtype=np_dtype, count=count, offset=offset).reshape(shape)
            offset = end
            if stored in ("uint8", "uint16") and stored != dtype:
                try:
                    scale, low = float(quant["scale"]), float(quant["min"])
                except (KeyError, TypeError, ValueError):
                    raise _fail(json_path, f"quantised weight '{name}' lacks scale/min") from None
                value = (raw.astype(np.float32) * np.float32(scale) + np.float32(low)).astype(np.float32)
            elif stored == "float16":
                value = raw.astype(np.float32)
            else:
                value = raw.astype(np.dtype(DTYPE_BYTES[dtype][0]).newbyteorder("=")) if dtype != "bool" else raw.astype(bool)
            if name in weights:
                raise _fail(json_path, f"weight '{name}' appears twice in weightsManifest")
            weights[name] = value
        if offset != len(data):
            raise _fail(
                json_path,
                f"weight shards of group {group_index} ({', '.join(map(str, group['paths']))}) hold "
                f"{len(data)} bytes, the manifest describes {offset}",
            )
    return weights


def _match_weight(variable: Any, weights: dict[str, Any]) -> str | None:
    path = str(getattr(variable, "path", variable.name)).split(":")[0]
    if path in weights:
        return path
    parts = path.split("/")
    short = f"{parts[0]}/{parts[-1]}"
    return short if short in weights else None


def _layers_model(json_path: Path, document: dict[str, Any], weights: dict[str, Any], options: ConvertOptions) -> Source:
    topology = document.get("modelTopology")
    if not isinstance(topology, dict):
        raise _fail(json_path, "modelTopology is missing")
    config = topology.get("model_config", topology)
    k = keras()
    try:
        with quiet():
            model = k.models.model_from_json(json.dumps(config))
    except Exception as exc:  # noqa: BLE001 -- TensorFlow, Keras and tf2onnx raise errors of many types
        raise _fail(json_path, f"the Keras model in modelTopology cannot be built: {one_line(exc)}") from None
    missing, values = [], []
    for variable in model.weights:
        name = _match_weight(variable, weights)
        if name is None:
            missing.append(str(getattr(variable, "path", variable.name)))
            continue
        value = weights.pop(name)
        if tuple(value.shape) != tuple(variable.shape):
            raise _fail(json_path, f"weight '{name}' has shape {list(value.shape)}, layer needs {list(variable.shape)}")
        values.append((variable, value))
    if missing:
        raise _fail(json_path, f"no weights for {', '.join(missing)} in weightsManifest")
    for variable, value in values:
        variable.assign(value)
    source = keras_source(model, str(json_path), schema.TFJS, options)
    source.extra["tfjs_format"] = "layers"
    return source


def _graph_model(json_path: Path, document: dict[str, Any], weights: dict[str, Any], options: ConvertOptions) -> Source:
    tfm = tf()
    from google.protobuf import json_format

    topology = document.get("modelTopology")
    if not isinstance(topology, dict) or not isinstance(topology.get("node"), list):
        raise _fail(json_path, "modelTopology holds no graph nodes")
    graph_def = tfm.compat.v1.GraphDef()
    try:
        json_format.ParseDict(
            {k: v for k, v in topology.items() if k in ("node", "versions", "library")}, graph_def, ignore_unknown_fields=True
        )
    except json_format.ParseError as exc:
        raise _fail(json_path, f"modelTopology is not a GraphDef: {one_line(exc)}") from None
    for node in graph_def.node:
        if node.name in weights:
            value = weights.pop(node.name)
            node.attr["value"].tensor.CopyFrom(tfm.make_tensor_proto(value, dtype=node.attr["dtype"].type or None))
    empty = [n.name for n in graph_def.node if n.op == "Const" and not n.attr["value"].HasField("tensor")]
    if empty:
        raise _fail(json_path, f"no weights for Const node(s) {', '.join(empty)}")
    outputs: list[str] = []
    signature = document.get("signature") or topology.get("signature") or {}
    if isinstance(signature, dict) and isinstance(signature.get("outputs"), dict):
        outputs = [str(v.get("name", k)) if isinstance(v, dict) else str(k) for k, v in signature["outputs"].items()]
    source = graphdef_source(graph_def, str(json_path), options, kind=schema.TFJS, default_outputs=outputs)
    source.extra["tfjs_format"] = "graph"
    return source


@LOADERS.register(schema.TFJS)
def load_tfjs_model(path: str, options: ConvertOptions) -> Source:
    """Read model.json and its shards into a Keras (layers) or GraphDef (graph) Source."""
    json_path = schema.tfjs_json_path(Path(path))
    if json_path is None:
        raise InvalidInputError(f"'{path}' is not a TF.js model.json", path=path)
    check_input_file(json_path, what="TF.js model.json")
    if json_path.stat().st_size > _MAX_JSON_BYTES:
        raise _fail(json_path, "model.json is over 256 MiB")
    try:
        document = json.loads(json_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fail(json_path, f"not valid JSON ({one_line(exc)})") from None
    if not isinstance(document, dict):
        raise _fail(json_path, "the JSON document is not an object")
    weights = read_manifest_weights(json_path, document.get("weightsManifest", []))
    summary = f"{len(weights)} tensors, {sum(int(w.size) for w in weights.values())} values"
    kind = str(document.get("format", ""))
    topology = document.get("modelTopology")
    if kind == "graph-model" or (not kind and isinstance(topology, dict) and "node" in topology):
        source = _graph_model(json_path, document, weights, options)
    elif kind in ("layers-model", "") and isinstance(topology, dict):
        source = _layers_model(json_path, document, weights, options)
    else:
        raise UnsupportedError(
            f"TF.js model '{json_path}' has format '{kind}', edgecc reads layers-model and graph-model", path=json_path
        )
    source.extra["weights_summary"] = summary
    return source


def load(paths: Sequence[str], options: ConvertOptions) -> Source:
    """Detect the format of `paths[0]` and open it."""
    if len(paths) != 1:
        raise UsageError("TensorFlow models are one file or directory", hint="give only the model (no separate weights file)")
    kind = schema.sniff(paths[0])
    if kind is None:
        raise InvalidInputError(f"'{paths[0]}' is not a TensorFlow, Keras, TFLite or TF.js model", path=paths[0])
    return LOADERS.get(kind)(paths[0], options)


# --- what a source holds (edgecc inspect) ------------------------------------------------------------


def _histogram(names: list[str]) -> list[str]:
    return [f"{k} x{v}" for k, v in sorted(Counter(names).items())]


def _quant_text(row: dict[str, Any]) -> str:
    scales, zeros = row["scales"], row["zero_points"]
    if not scales:
        return "float" if row["dtype"].startswith("float") else "not quantised"
    if len(scales) == 1:
        return f"scale {scales[0]:.6g}, zero point {int(zeros[0]) if zeros else 0}"
    return f"per-channel (axis {row['quantized_dimension']}), {len(scales)} scales {min(scales):.3g}..{max(scales):.3g}"


def _tensor_text(row: dict[str, Any]) -> str:
    shape = "x".join(str(d) if d >= 0 else "?" for d in row["shape"])
    return f"{row['name']}: {shape or 'scalar'} {row['dtype']} ({_quant_text(row)})"


def custom_operator_error(model: flatbuffer.TFLiteModel) -> UnsupportedOperator | None:
    """Exit 4 naming every custom operator code and the nodes (output tensors) using it; None without any."""
    custom = model.custom_operators()
    if not custom:
        return None
    nodes = [UnsupportedNode(node, code, "custom TFLite operator") for code, names in custom.items() for node in names]
    return UnsupportedOperator(
        nodes,
        where="TFLite flatbuffer",
        path=model.path,
        hint=f"custom operators {', '.join(custom)} need the application's own kernels; "
        "cut the model before them, or export it without them",
    )


def tflite_tensors(model: flatbuffer.TFLiteModel) -> list[dict[str, Any]]:
    """Every tensor of the main subgraph: name, dtype, shape (-1 dynamic), quantisation, sparse or not."""
    main = model.main
    rows = []
    for index, tensor in enumerate(main.tensors):
        quant = tensor.quantization
        scales = [float(x) for x in (quant.scale if quant is not None and quant.scale is not None else [])]
        zeros = [int(x) for x in (quant.zeroPoint if quant is not None and quant.zeroPoint is not None else [])]
        rows.append(
            {
                "name": model.tensor_name(main, index),
                "dtype": model.dtype(main, index),
                "shape": list(model.signature(main, index)),
                "scales": scales,
                "zero_points": zeros,
                "quantized_dimension": int(quant.quantizedDimension or 0) if quant is not None else 0,
                "sparse": tensor.sparsity is not None,
            }
        )
    return rows


def _describe_tflite(source: Source) -> dict[str, Any]:
    model = flatbuffer.read(source.extra["original"], source.path)
    ops = model.operators()
    tensors = tflite_tensors(model)
    quantised = [t for t in tensors if t["scales"]]
    per_channel = [t for t in quantised if len(t["scales"]) > 1]
    dtypes = Counter(t["dtype"] for t in quantised)
    main = model.main
    details = {
        "kind": schema.KIND_NAMES[schema.TFLITE],
        "inputs": [_tensor_text(tensors[int(i)]) for i in main.inputs],
        "outputs": [_tensor_text(tensors[int(i)]) for i in main.outputs],
        "operators": _histogram([o.name for o in ops if o.subgraph == 0]),
        "tensors": len(tensors),
        "quantised tensors": f"{len(quantised)} ({', '.join(f'{k} x{v}' for k, v in sorted(dtypes.items())) or 'none'}), "
        f"{len(per_channel)} per-channel",
        "quantisation": [
            f"{t['name']}: {t['dtype']} "
            + (
                f"scale {t['scales'][0]:.6g} zero point {t['zero_points'][0] if t['zero_points'] else 0}"
                if len(t["scales"]) == 1
                else f"per-channel axis {t['quantized_dimension']}, {len(t['scales'])} scales"
            )
            for t in quantised
        ],
    }
    custom = model.custom_operators()
    if custom:
        details["custom operators"] = [f"{code}: {', '.join(nodes)}" for code, nodes in custom.items()]
    sparse_count = sum(t["sparse"] for t in tensors)
    if sparse_count:
        details["sparse tensors"] = sparse_count
    if len(model.model.subgraphs) > 1:
        details["subgraphs"] = len(model.model.subgraphs)
    if source.extra.get("notes"):
        details["rewrites for conversion"] = list(source.extra["notes"])
    return details


def _describe_keras(source: Source) -> dict[str, Any]:
    model = source.model
    return {
        "kind": schema.KIND_NAMES[source.kind],
        "inputs": [f"{i.name}: {i.shape_text()} {i.dtype}" for i in source.inputs],
        "outputs": list(source.outputs),
        "layers": _histogram([type(layer).__name__ for layer in model.layers]),
        "parameters": int(model.count_params()),
    }


def _describe_graph(source: Source, graph_def: Any) -> dict[str, Any]:
    return {
        "kind": schema.KIND_NAMES[source.kind],
        "inputs": [f"{i.name}: {i.shape_text()} {i.dtype}" for i in source.inputs],
        "outputs": list(source.outputs),
        "operators": _histogram([n.op for n in graph_def.node]),
        "nodes": len(graph_def.node),
    }


def describe_source(source: Source) -> dict[str, Any]:
    """A dict of rows for `edgecc inspect`."""
    if source.kind == schema.TFLITE:
        return _describe_tflite(source)
    if source.kind in (schema.KERAS, schema.KERAS_H5) or (
        source.kind == schema.TFJS and source.extra.get("tfjs_format") == "layers"
    ):
        details = _describe_keras(source)
    elif source.kind == schema.SAVED_MODEL:
        details = {
            "kind": schema.KIND_NAMES[source.kind],
            "signature": source.extra["signature"],
            "signatures": source.extra["signatures"],
            "inputs": [f"{i.name}: {i.shape_text()} {i.dtype}" for i in source.inputs],
            "outputs": list(source.outputs),
        }
    else:
        details = _describe_graph(source, source.model)
    if source.kind == schema.TFJS:
        details["kind"] = f"{schema.KIND_NAMES[schema.TFJS]} ({source.extra['tfjs_format']} model)"
        details["weights"] = source.extra.get("weights_summary", "")
    return details
