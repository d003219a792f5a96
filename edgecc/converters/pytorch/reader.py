"""Load PyTorch artefacts safely: TorchScript, torch.export programs, Python factories, state dicts."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecc.converters.options import ConvertOptions
from edgecc.converters.pytorch import schema
from edgecc.converters.pytorch.schema import LoadedModule
from edgecc.errors import InvalidInputError, UnsupportedError, UsageError
from edgecc.fileio import check_input_file
from edgecc.inputs import InputSpec, TensorInfo

if TYPE_CHECKING:
    import torch

__all__ = ["describe_torch_save", "load", "load_state_dict_file"]

log = logging.getLogger(__name__)

_CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "weights")


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        from edgecc.errors import MissingDependencyError

        raise MissingDependencyError("torch", feature="the PyTorch frontend", extra="torch") from None
    return torch


def _torch_dtype(name: str) -> torch.dtype:
    torch = _torch()
    return getattr(torch, name if name != "bool" else "bool")


def _example(info: TensorInfo, seed: int) -> torch.Tensor:
    torch = _torch()
    generator = torch.Generator().manual_seed(seed)
    shape = tuple(d if isinstance(d, int) else 2 for d in info.shape or ())
    dtype = _torch_dtype(info.dtype)
    if dtype.is_floating_point:
        return torch.randn(shape, generator=generator).to(dtype)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=generator).bool()
    return torch.randint(0, 10, shape, generator=generator).to(dtype)


def _bind_specs(arg_names: Sequence[str], specs: Sequence[InputSpec], source: str) -> list[TensorInfo]:
    """Match `--input` specs to forward() arguments, by name or else by position."""
    if not specs:
        args = ", ".join(arg_names) or "x"
        raise UsageError(
            f"{source} carries no input shapes",
            hint=f"give them with --input, e.g. --input {arg_names[0] if arg_names else 'x'}:1x3x224x224 (forward takes: {args})",
        )
    names = [s.name for s in specs]
    if set(names) <= set(arg_names) and len(names) == len(arg_names):
        ordered = [next(s for s in specs if s.name == a) for a in arg_names]
    elif len(specs) == len(arg_names) or not arg_names:
        ordered = list(specs)
    else:
        raise UsageError(
            f"{source}: forward takes {len(arg_names)} input(s) ({', '.join(arg_names)}), "
            f"--input gives {len(specs)} ({', '.join(names)})"
        )
    infos = []
    for spec in ordered:
        if spec.shape is None:
            raise UsageError(
                f"--input '{spec.text()}' needs dimensions for a PyTorch model", hint=f"e.g. {spec.name}:1x3x224x224"
            )
        infos.append(TensorInfo(spec.name, spec.shape, spec.dtype or "float32"))
    return infos


def _dynamic_dims(infos: Sequence[TensorInfo]) -> dict[str, dict[int, str]]:
    return {i.name: {axis: d for axis, d in enumerate(i.shape or ()) if not isinstance(d, int)} for i in infos}


def _guard_torch_errors(path: Path, what: str, exc: Exception) -> InvalidInputError:
    message = " ".join(str(exc).split())[:300]
    return InvalidInputError(
        f"'{path}' is not a readable {what}: {message}", path=path, hint="the file is truncated, corrupt or of another format"
    )


def _load_torchscript(path: Path, specs: Sequence[InputSpec]) -> LoadedModule:
    torch = _torch()
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 -- torch.jit.load has no single error type; all become InvalidInputError
        raise _guard_torch_errors(path, "TorchScript archive", exc) from None
    module.eval()
    arguments = [a.name for a in module.forward.schema.arguments[1:]]
    infos = _bind_specs(arguments, specs, f"TorchScript archive '{path}'")
    examples = tuple(_example(info, i) for i, info in enumerate(infos))
    return LoadedModule(schema.TORCHSCRIPT, module, infos, examples, _dynamic_dims(infos))


def _check_pt2_is_pickle_free(path: Path) -> None:
    """Refuse .pt2 archives whose payloads torch.export.load would unpickle."""
    torch = _torch()
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
            inner = {m.split("/", 1)[1]: m for m in members if "/" in m}
            if "archive_format" not in inner:
                raise InvalidInputError(
                    f"'{path}' is an old-style torch.export archive, whose weights are pickled; "
                    "edgecc does not unpickle model files",
                    path=path,
                    hint="re-save it with torch.export.save on torch >= 2.8",
                )
            for key, member in inner.items():
                if key.endswith("_config.json") and key.startswith("data/"):
                    config = json.loads(archive.read(member)).get("config", {})
                    for fqn, meta in config.items():
                        pickled = meta.get("use_pickle") or not str(meta.get("path_name", "")).startswith(("weight_", "tensor_"))
                        if pickled:
                            raise UnsupportedError(
                                f"'{path}' stores '{fqn}' as a pickled object; edgecc does not unpickle model files",
                                path=path,
                                hint="export a model whose weights and constants are plain tensors",
                            )
            for key, member in inner.items():
                if key.startswith("data/sample_inputs/"):
                    import io

                    torch.load(io.BytesIO(archive.read(member)), weights_only=True, map_location="cpu")
    except (InvalidInputError, UnsupportedError):
        raise
    except Exception as exc:  # noqa: BLE001 -- zipfile, json and torch.load errors of a corrupt archive
        raise _guard_torch_errors(path, "torch.export archive", exc) from None


def _load_exported_program(path: Path, specs: Sequence[InputSpec]) -> LoadedModule:
    torch = _torch()
    _check_pt2_is_pickle_free(path)
    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001 -- torch.export.load has no single error type; all become InvalidInputError
        raise _guard_torch_errors(path, "torch.export archive", exc) from None
    user_inputs = list(program.graph_signature.user_inputs)
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    infos: list[TensorInfo] = []
    for index, name in enumerate(user_inputs):
        value = placeholders[name].meta.get("val")
        if value is None or not hasattr(value, "shape"):
            raise UnsupportedError(f"'{path}': input '{name}' is not a tensor", path=path)
        shape = tuple(int(d) if isinstance(d, int) or str(d).isdigit() else str(d) for d in value.shape)
        dtype = str(value.dtype).replace("torch.", "")
        spec = specs[index] if index < len(specs) else None
        onnx_name = spec.name if spec else name
        if spec is not None and spec.shape is not None:
            conflicting = len(shape) != len(spec.shape) or any(
                isinstance(have, int) and isinstance(want, int) and have != want for have, want in zip(shape, spec.shape)
            )
            if conflicting:
                raise UsageError(
                    f"'{path}' was exported for input {name}:{'x'.join(map(str, shape))}; --input asks for {spec.text()}",
                    hint="re-export with torch.export dynamic shapes, or leave --input out",
                )
        infos.append(TensorInfo(onnx_name, shape, dtype))
    if len(specs) > len(user_inputs):
        raise UsageError(f"'{path}' takes {len(user_inputs)} input(s); --input gives {len(specs)}")
    examples = tuple(_example(info, i) for i, info in enumerate(infos))
    return LoadedModule(schema.EXPORTED_PROGRAM, program, infos, examples, {})


def _import_factory(spec_text: str) -> Any:
    split = schema.split_factory(spec_text)
    assert split is not None
    file, function = split
    check_input_file(file, what="Python file")
    module_name = f"edgecc_user_{abs(hash(str(file.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise InvalidInputError(f"cannot import '{file}'", path=file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 -- the user's module may raise anything; reported with its type
        raise InvalidInputError(f"importing '{file}' failed: {type(exc).__name__}: {exc}", path=file) from None
    factory = getattr(module, function, None)
    if not callable(factory):
        available = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise UsageError(f"'{file}' has no function '{function}' (callables: {', '.join(available) or 'none'})")
    return factory


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a state dict or checkpoint file, loaded with `weights_only=True`."""
    torch = _torch()
    path = check_input_file(path, what="weights file")
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- torch.load has no single error type (UnpicklingError, RuntimeError, ...)
        text = " ".join(str(exc).split())
        if "weights_only" in text or "Unsupported global" in text or "UnpicklingError" in type(exc).__name__:
            raise InvalidInputError(
                f"'{path}' holds Python objects besides tensors; edgecc loads weights only with weights_only=True",
                path=path,
                hint="save model.state_dict() instead of the whole model, or export with torch.export.save",
            ) from None
        raise _guard_torch_errors(path, "PyTorch weights file", exc) from None
    return _tensors_of(loaded, path)


def _tensors_of(loaded: Any, path: Path) -> dict[str, torch.Tensor]:
    torch = _torch()
    if isinstance(loaded, dict):
        for key in _CHECKPOINT_KEYS:
            inner = loaded.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return dict(inner)
        tensors = {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise InvalidInputError(f"'{path}' holds no state dict (a mapping of names to tensors)", path=path)


def _strip_to_match(state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """Remove a wrapper prefix (`module.` from DataParallel, `model.`) when that makes the keys fit."""
    if set(state) & expected:
        return state
    for prefix in ("module.", "model.", "net."):
        if all(k.startswith(prefix) for k in state):
            stripped = {k[len(prefix) :]: v for k, v in state.items()}
            if set(stripped) & expected:
                return stripped
    return state


def _load_factory(paths: Sequence[str], specs: Sequence[InputSpec]) -> LoadedModule:
    torch = _torch()
    import inspect

    factory = _import_factory(paths[0])
    try:
        module = factory()
    except Exception as exc:  # noqa: BLE001 -- the user's factory may raise anything; reported with its type
        raise InvalidInputError(f"'{paths[0]}' raised {type(exc).__name__}: {exc}", path=paths[0]) from None
    if not isinstance(module, torch.nn.Module):
        raise UsageError(f"'{paths[0]}' returned {type(module).__name__}, expected a torch.nn.Module")
    if len(paths) > 1:
        state = load_state_dict_file(paths[1])
        expected = set(module.state_dict())
        state = _strip_to_match(state, expected)
        # BatchNorm's step counter is absent from checkpoints older than torch 0.4.1 and unused in eval
        missing = sorted(k for k in expected - set(state) if not k.endswith("num_batches_tracked"))
        unexpected = sorted(set(state) - expected)
        if missing or unexpected:
            raise InvalidInputError(
                f"weights '{paths[1]}' do not fit the architecture from '{paths[0]}': "
                + (f"missing {len(missing)} ({', '.join(missing[:5])}{'...' if len(missing) > 5 else ''}) " if missing else "")
                + (
                    f"unexpected {len(unexpected)} ({', '.join(unexpected[:5])}{'...' if len(unexpected) > 5 else ''})"
                    if unexpected
                    else ""
                ),
                path=paths[1],
            )
        try:
            module.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise InvalidInputError(
                f"weights '{paths[1]}' do not fit the architecture: {' '.join(str(exc).split())[:400]}", path=paths[1]
            ) from None
    module.eval()
    parameters = [
        p.name
        for p in inspect.signature(module.forward).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    infos = _bind_specs(parameters, specs, f"the module from '{paths[0]}'")
    examples = tuple(_example(info, i) for i, info in enumerate(infos))
    return LoadedModule(schema.FACTORY, module, infos, examples, _dynamic_dims(infos))


def describe_torch_save(path: str | Path) -> dict[str, Any]:
    """Tensor count, parameters and bytes of a state dict file."""
    state = load_state_dict_file(path)
    params = sum(int(t.numel()) for t in state.values())
    size = sum(int(t.numel()) * t.element_size() for t in state.values())
    prefixes = sorted({k.split(".")[0] for k in state})
    return {
        "kind": "state dict",
        "tensors": len(state),
        "parameters": params,
        "parameter_bytes": size,
        "top_level_keys": prefixes[:20],
    }


def load(paths: Sequence[str], options: ConvertOptions) -> LoadedModule:
    """Load any supported PyTorch artefact into a runnable module with named example inputs."""
    kind = schema.sniff(paths[0])
    if kind != schema.FACTORY:
        check_input_file(paths[0])
    if kind != schema.FACTORY and len(paths) > 1:
        raise UsageError(
            f"a weights file only goes with an architecture given as file.py:function (got '{paths[0]}', '{paths[1]}')"
        )
    if kind == schema.TORCHSCRIPT:
        return _load_torchscript(Path(paths[0]), options.inputs)
    if kind == schema.EXPORTED_PROGRAM:
        return _load_exported_program(Path(paths[0]), options.inputs)
    if kind == schema.FACTORY:
        return _load_factory(paths, options.inputs)
    if kind == schema.TORCH_SAVE:
        state = load_state_dict_file(paths[0])
        raise UsageError(
            f"'{paths[0]}' is a state dict ({len(state)} tensors) without an architecture",
            hint=f"give the architecture first: edgecc convert model.py:build_model {paths[0]} --input x:1x3x224x224",
        )
    raise InvalidInputError(f"'{paths[0]}' is not a PyTorch model file", path=paths[0])
