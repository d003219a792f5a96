"""Arm NN worker: runs one TFLite model with pyarmnn in a separate (system) Python process.

Started by `edgecc.targets.armnn` as `/usr/bin/python3 armnn_worker.py MODEL.tflite BACKEND[,BACKEND...]`
(the interpreter that has Debian's `python3-pyarmnn`). It is a standalone script: it imports only the
standard library, numpy and pyarmnn, never edgecc.

Protocol (JSON lines): pyarmnn and Arm NN print on file descriptor 1, so the worker keeps a private
duplicate of its original stdout for replies and points fd 1 at stderr before importing pyarmnn.
- after loading, it writes one line: {"ok": true, "inputs": [...], "outputs": [...], "backends": [...]}
  (each tensor: name, shape, dtype, scale, zero_point) or {"ok": false, "error": "..."};
- then, for each request line {"inputs": {name: path.npy}, "outdir": dir}, it runs the network and
  replies {"ok": true, "outputs": {name: path.npy}} (arrays saved with np.save, loaded with
  allow_pickle=False) or {"ok": false, "error": "..."}; an empty line or EOF ends it.
Arm NN aborts the whole process on some models (SIGABRT, e.g. per-channel int8 weights in 20.08):
the parent sees the signal in the exit status and reports it.
"""

from __future__ import annotations

import json
import os
import sys

_DTYPES = {
    "Float32": "float32",
    "QAsymmS8": "int8",
    "QAsymmU8": "uint8",
    "QSymmS8": "int8",
    "Signed32": "int32",
    "QSymmS16": "int16",
    "Float16": "float16",
    "Boolean": "bool",
}


def _reply(channel, message: dict) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def _data_type_names(ann) -> dict[int, str]:
    names = {}
    for attr in dir(ann):
        if attr.startswith("DataType_"):
            names[getattr(ann, attr)] = attr[len("DataType_") :]
    return names


def _describe(name: str, info, type_names: dict[int, str]) -> dict:
    kind = type_names.get(info.GetDataType(), str(info.GetDataType()))
    return {
        "name": name,
        "shape": list(info.GetShape()),
        "dtype": _DTYPES.get(kind, kind),
        "scale": float(info.GetQuantizationScale()),
        "zero_point": int(info.GetQuantizationOffset()),
    }


def main(argv: list[str]) -> int:
    """Load the model named in argv, then serve run requests from stdin."""
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    if len(argv) != 3:
        _reply(channel, {"ok": False, "error": "usage: armnn_worker.py MODEL.tflite BACKEND[,BACKEND...]"})
        return 2
    model, backends = argv[1], [b for b in argv[2].split(",") if b]
    try:
        import numpy as np
        import pyarmnn as ann
    except ImportError as exc:
        _reply(channel, {"ok": False, "error": f"cannot import pyarmnn/numpy in {sys.executable}: {exc}"})
        return 3
    try:
        parser = ann.ITfLiteParser()
        network = parser.CreateNetworkFromBinaryFile(model)
        runtime = ann.IRuntime(ann.CreationOptions())
        available = [str(b) for b in runtime.GetDeviceSpec().GetSupportedBackends()]
        missing = [b for b in backends if b not in available]
        if missing:
            _reply(
                channel,
                {
                    "ok": False,
                    "error": f"Arm NN backend(s) {', '.join(missing)} not available here (available: {', '.join(available)})",
                    "kind": "backend",
                    "available": available,
                },
            )
            return 4
        optimized, messages = ann.Optimize(
            network, [ann.BackendId(b) for b in backends], runtime.GetDeviceSpec(), ann.OptimizerOptions()
        )
        net_id, _ = runtime.LoadNetwork(optimized)
        graph = 0
        in_names = list(parser.GetSubgraphInputTensorNames(graph))
        out_names = list(parser.GetSubgraphOutputTensorNames(graph))
        in_bindings = [parser.GetNetworkInputBindingInfo(graph, n) for n in in_names]
        out_bindings = [parser.GetNetworkOutputBindingInfo(graph, n) for n in out_names]
    except Exception as exc:  # noqa: BLE001 -- pyarmnn raises RuntimeError and others; report them all
        _reply(channel, {"ok": False, "error": " ".join(f"{type(exc).__name__}: {exc}".split())})
        return 4
    type_names = _data_type_names(ann)
    _reply(
        channel,
        {
            "ok": True,
            "backends": backends,
            "available": available,
            "warnings": [str(m) for m in messages or []],
            "inputs": [_describe(n, b[1], type_names) for n, b in zip(in_names, in_bindings)],
            "outputs": [_describe(n, b[1], type_names) for n, b in zip(out_names, out_bindings)],
        },
    )
    for line in sys.stdin:
        if not line.strip():
            break
        try:
            request = json.loads(line)
            arrays = [np.load(request["inputs"][n], allow_pickle=False) for n in in_names]
            inputs = ann.make_input_tensors(in_bindings, arrays)
            outputs = ann.make_output_tensors(out_bindings)
            runtime.EnqueueWorkload(net_id, inputs, outputs)
            results = ann.workload_tensors_to_ndarray(outputs)
            paths = {}
            for index, (name, value) in enumerate(zip(out_names, results)):
                path = os.path.join(request["outdir"], f"out_{index}.npy")
                np.save(path, np.asarray(value).reshape(list(out_bindings[index][1].GetShape())), allow_pickle=False)
                paths[name] = path
            _reply(channel, {"ok": True, "outputs": paths})
        except Exception as exc:  # noqa: BLE001 -- keep serving; the parent turns this into an edgecc error
            _reply(channel, {"ok": False, "error": " ".join(f"{type(exc).__name__}: {exc}".split())})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
