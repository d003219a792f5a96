"""Open each TensorFlow-family artefact into a `Source`: what tf2onnx needs and what the reference runs.

One loader per format, registered in `LOADERS`; every failure to read a file is
an InvalidInputError naming the format that was tried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecc.converters.options import ConvertOptions
from edgecc.converters.tensorflow import formats
from edgecc.converters.tensorflow.runtime import keras, quiet, tf
from edgecc.errors import InvalidInputError, UsageError
from edgecc.fileio import check_input_file
from edgecc.inputs import TensorInfo
from edgecc.registry import Registry

__all__ = ["LOADERS", "Source", "load", "one_line", "signature_name", "tensor_name"]

log = logging.getLogger(__name__)

#: format kind -> loader(path, options) -> Source
LOADERS: Registry[Callable[[str, ConvertOptions], Source]] = Registry("TensorFlow format")

DEFAULT_SIGNATURE = "serving_default"
_SKIP_SINKS = {"Const", "NoOp", "Assert", "SaveV2", "RestoreV2", "VarHandleOp", "VariableV2", "Placeholder", "PlaceholderWithDefault"}


@dataclass
class Source:
    """A loaded model: its kind, the framework object(s), and its input/output signature."""

    kind: str
    path: str
    inputs: list[TensorInfo]
    outputs: list[str]
    model: Any = None  # keras.Model, the loaded SavedModel signature function, a GraphDef or the tflite path
    extra: dict[str, Any] = field(default_factory=dict)


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
        raise InvalidInputError(
            f"'{path}' cannot be read as a {formats.KIND_NAMES[kind]}: {one_line(exc)}", path=path
        ) from None


def keras_source(model: Any, path: str, kind: str, options: ConvertOptions) -> Source:
    """A Source for an in-memory Keras model (also used by the TF.js layers reader)."""
    inputs: list[TensorInfo] = []
    for tensor in model.inputs:
        name = tensor.name.split(":")[0]
        shape, dtype = _spec_dims(tuple(tensor.shape), options, name)
        inputs.append(TensorInfo(name, tuple(shape) if shape is not None else None, dtype or str(getattr(tensor.dtype, "name", tensor.dtype))))
    names = list(getattr(model, "output_names", None) or [])
    if len(names) != len(model.outputs):
        names = [t.name.split(":")[0] for t in model.outputs]
    unknown = [s.name for s in options.inputs if s.name not in {i.name for i in inputs}]
    if unknown:
        raise UsageError(f"--input names {', '.join(unknown)}, which the Keras model does not have",
                         hint=f"its inputs: {', '.join(i.name for i in inputs)}")
    return Source(kind, path, inputs, names, model)


@LOADERS.register(formats.KERAS)
def load_keras(path: str, options: ConvertOptions) -> Source:
    """A Keras v3 `.keras` archive (loaded with safe_mode: no lambda deserialisation)."""
    import zipfile

    check_input_file(path, what="Keras model")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInputError(f"'{path}' is a truncated or corrupt {formats.KIND_NAMES[formats.KERAS]} ({one_line(exc)})", path=path) from None
    if bad is not None:
        raise InvalidInputError(f"'{path}' is a corrupt {formats.KIND_NAMES[formats.KERAS]} (member '{bad}' fails its CRC)", path=path)
    return keras_source(_load_keras_model(path, formats.KERAS), path, formats.KERAS, options)


@LOADERS.register(formats.KERAS_H5)
def load_keras_h5(path: str, options: ConvertOptions) -> Source:
    """A legacy Keras HDF5 model file."""
    check_input_file(path, what="Keras HDF5 model")
    return keras_source(_load_keras_model(path, formats.KERAS_H5), path, formats.KERAS_H5, options)


# --- SavedModel --------------------------------------------------------------------------------------


@LOADERS.register(formats.SAVED_MODEL)
def load_saved_model(path: str, options: ConvertOptions) -> Source:
    """A SavedModel directory; the signature comes from --signature (default serving_default)."""
    directory = Path(path).parent if Path(path).is_file() else Path(path)
    tfm = tf()
    try:
        with quiet():
            loaded = tfm.saved_model.load(str(directory))
    except Exception as exc:  # noqa: BLE001 -- TensorFlow, Keras and tf2onnx raise errors of many types
        raise InvalidInputError(
            f"'{directory}' cannot be read as a {formats.KIND_NAMES[formats.SAVED_MODEL]}: {one_line(exc)}", path=directory
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
    return Source(formats.SAVED_MODEL, str(directory), inputs, outputs, function,
                  extra={"loaded": loaded, "signature": wanted, "signatures": sorted(signatures)})


# --- frozen GraphDef ---------------------------------------------------------------------------------


def parse_graphdef(data: bytes, path: str) -> Any:
    """Parse GraphDef bytes; corrupt or truncated data is an InvalidInputError."""
    tfm = tf()
    graph_def = tfm.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 -- TensorFlow, Keras and tf2onnx raise errors of many types
        raise InvalidInputError(
            f"'{path}' is a truncated or corrupt {formats.KIND_NAMES[formats.GRAPHDEF]} ({one_line(exc)})", path=path
        ) from None
    if not graph_def.node:
        raise InvalidInputError(f"'{path}' is a {formats.KIND_NAMES[formats.GRAPHDEF]} without nodes", path=path)
    return graph_def


def graphdef_source(graph_def: Any, path: str, options: ConvertOptions, kind: str = formats.GRAPHDEF,
                    default_outputs: Sequence[str] = ()) -> Source:
    """Inputs (placeholders, or --input) and outputs (sinks, or --output) of a frozen graph."""
    tfm = tf()
    graph = tfm.Graph()
    try:
        with quiet(), graph.as_default():
            tfm.import_graph_def(graph_def, name="")
    except Exception as exc:  # noqa: BLE001 -- TensorFlow, Keras and tf2onnx raise errors of many types
        raise InvalidInputError(f"'{path}': the {formats.KIND_NAMES[kind]} does not import: {one_line(exc)}", path=path) from None
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
        raise InvalidInputError(f"'{path}': the {formats.KIND_NAMES[kind]} has no output (no sink node)", path=path)
    return Source(kind, path, inputs, outputs, graph_def, extra={"graph": graph})


@LOADERS.register(formats.GRAPHDEF)
def load_graphdef(path: str, options: ConvertOptions) -> Source:
    """A frozen GraphDef `.pb`: placeholders in and sinks out unless --input/--output say otherwise."""
    data = check_input_file(path, what="TensorFlow GraphDef").read_bytes()
    return graphdef_source(parse_graphdef(data, path), path, options)


# --- TFLite ------------------------------------------------------------------------------------------


def tflite_interpreter(path: str, *, delegates: bool = True) -> Any:
    """A TFLite interpreter over `path` with its tensors allocated; bad files are InvalidInputError.

    `delegates` keeps TFLite's default CPU delegate (XNNPACK), as users run the model; without it the
    interpreter lists the model's own operators (for `inspect`).
    """
    data = check_input_file(path, what="TFLite model").read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise InvalidInputError(f"'{path}' is not a {formats.KIND_NAMES[formats.TFLITE]} (no TFL3 identifier)", path=path)
    tfm = tf()
    try:
        with quiet():
            resolvers = tfm.lite.experimental.OpResolverType
            resolver = resolvers.AUTO if delegates else resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            interpreter = tfm.lite.Interpreter(model_content=data, num_threads=1, experimental_op_resolver_type=resolver)
            interpreter.allocate_tensors()
    except Exception as exc:  # noqa: BLE001 -- TensorFlow, Keras and tf2onnx raise errors of many types
        raise InvalidInputError(
            f"'{path}' is a truncated or corrupt {formats.KIND_NAMES[formats.TFLITE]} ({one_line(exc)})", path=path
        ) from None
    return interpreter


@LOADERS.register(formats.TFLITE)
def load_tflite(path: str, options: ConvertOptions) -> Source:
    """A TFLite flatbuffer (float, fp16 weights, dynamic-range, int8/uint8 full-integer)."""
    interpreter = tflite_interpreter(path)
    inputs = []
    for detail in interpreter.get_input_details():
        signature = [int(d) for d in detail.get("shape_signature", detail["shape"])]
        shape, dtype = _spec_dims(tuple(None if d < 0 else d for d in signature), options, detail["name"])
        inputs.append(TensorInfo(detail["name"], shape, dtype or detail["dtype"].__name__))
    outputs = [d["name"] for d in interpreter.get_output_details()]
    return Source(formats.TFLITE, path, inputs, outputs, path, extra={"interpreter": interpreter})


@LOADERS.register(formats.TFJS)
def load_tfjs(path: str, options: ConvertOptions) -> Source:
    """A TF.js layers or graph model (model.json + weight shards), read by edgecc's own reader."""
    from edgecc.converters.tensorflow.tfjs import load_tfjs_model

    return load_tfjs_model(path, options)


def load(paths: Sequence[str], options: ConvertOptions) -> Source:
    """Detect the format of `paths[0]` and open it."""
    if len(paths) != 1:
        raise UsageError("TensorFlow models are one file or directory", hint="give only the model (no separate weights file)")
    kind = formats.sniff(paths[0])
    if kind is None:
        raise InvalidInputError(f"'{paths[0]}' is not a TensorFlow, Keras, TFLite or TF.js model", path=paths[0])
    return LOADERS.get(kind)(paths[0], options)
