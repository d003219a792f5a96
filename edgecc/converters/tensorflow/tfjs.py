"""edgecc's own TF.js reader: `model.json` (layers or graph model) + little-endian binary weight shards.

No tensorflowjs dependency. Weights may be stored as float32/int32/bool or quantised
(`quantization: {dtype: uint8|uint16, scale, min}` -> q * scale + min, or
`{dtype: float16}`). Every shard path, size and weight extent is checked before any
array is made; layers models are rebuilt with Keras, graph models become a frozen
GraphDef whose Const nodes take the weights.
"""

from __future__ import annotations

import json
import math
from pathlib import Path, PurePosixPath
from typing import Any

from edgecc.converters.options import ConvertOptions
from edgecc.converters.tensorflow import formats
from edgecc.converters.tensorflow.loading import Source, graphdef_source, keras_source, one_line
from edgecc.converters.tensorflow.runtime import keras, quiet, tf
from edgecc.errors import InvalidInputError, UnsupportedError
from edgecc.fileio import check_input_file

__all__ = ["DTYPE_BYTES", "load_tfjs_model", "read_manifest_weights"]

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
    """A shard file next to model.json; absolute paths and '..' are refused."""
    if not isinstance(name, str) or not name:
        raise _fail(json_path, f"weightsManifest names a shard that is not a file name: {name!r}")
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or "\\" in name:
        raise _fail(json_path, f"shard path '{name}' leaves the model directory")
    return json_path.parent / Path(*pure.parts)


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
                raise _fail(json_path, f"weight shards of group {group_index} ({', '.join(map(str, group['paths']))}) hold "
                                       f"{len(data)} bytes; weight '{name}' needs bytes {offset}..{end}")
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
            raise _fail(json_path, f"weight shards of group {group_index} ({', '.join(map(str, group['paths']))}) hold "
                                   f"{len(data)} bytes, the manifest describes {offset}")
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
    source = keras_source(model, str(json_path), formats.TFJS, options)
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
        json_format.ParseDict({k: v for k, v in topology.items() if k in ("node", "versions", "library")}, graph_def,
                              ignore_unknown_fields=True)
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
    source = graphdef_source(graph_def, str(json_path), options, kind=formats.TFJS, default_outputs=outputs)
    source.extra["tfjs_format"] = "graph"
    return source


def load_tfjs_model(path: str, options: ConvertOptions) -> Source:
    """Read model.json and its shards into a Keras (layers) or GraphDef (graph) Source."""
    json_path = formats.tfjs_json_path(Path(path))
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
        raise UnsupportedError(f"TF.js model '{json_path}' has format '{kind}', edgecc reads layers-model and graph-model",
                               path=json_path)
    source.extra["weights_summary"] = summary
    return source
