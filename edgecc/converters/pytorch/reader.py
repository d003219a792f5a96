"""Load PyTorch artefacts safely: TorchScript, torch.export programs, Python factories, state dicts."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
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


def _dynamic_dims(infos: Sequence[TensorInfo]) -> dict[str, dict[int, str]]:
    return {i.name: {axis: d for axis, d in enumerate(i.shape or ()) if not isinstance(d, int)} for i in infos}


def _guard_torch_errors(path: Path, what: str, exc: Exception) -> InvalidInputError:
    message = " ".join(str(exc).split())[:300]
    return InvalidInputError(
        f"'{path}' is not a readable {what}: {message}", path=path, hint="the file is truncated, corrupt or of another format"
    )


def _probe(loaded: LoadedModule) -> LoadedModule:
    """Run the model once on its example inputs: the output names, and a clear error if it rejects the inputs."""
    torch = _torch()
    from edgecc.converters.pytorch.diagnose import forward_error
    from edgecc.converters.pytorch.outputs import output_names

    try:
        with torch.no_grad():
            result = loaded.forward(loaded.example_inputs)
    except Exception as exc:  # noqa: BLE001 -- the model's own code may raise anything on inputs it does not accept
        raise forward_error(exc, loaded.inputs, loaded.source) from None
    loaded.output_names = output_names(result)
    if not loaded.output_names:
        raise UnsupportedError(f"{loaded.source} returns no tensors ({type(result).__name__})")
    return loaded


def _load_torchscript(path: Path, specs: Sequence[InputSpec], args: dict[str, Any]) -> LoadedModule:
    from edgecc.converters.pytorch.bind import bind, script_parameters

    torch = _torch()
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 -- torch.jit.load has no single error type; all become InvalidInputError
        raise _guard_torch_errors(path, "TorchScript archive", exc) from None
    module.eval()
    source = f"TorchScript archive '{path}'"
    binding, infos = bind(script_parameters(module), specs, args, source)
    examples = tuple(_example(info, i) for i, info in enumerate(infos))
    return _probe(LoadedModule(schema.TORCHSCRIPT, module, infos, examples, _dynamic_dims(infos), binding, source=source))


def _check_members_readable(path: Path, archive: zipfile.ZipFile) -> None:
    """Every member stored or deflated, and its data intact (CRC), before torch's own reader sees it."""
    from edgecc.archive import zip_errors

    for info in archive.infolist():
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise InvalidInputError(
                f"'{path}': member '{info.filename}' uses compression method {info.compress_type}; "
                "torch archives are stored or deflated",
                path=path,
                hint="the file is corrupt or was repacked by another tool",
            )
    with zip_errors(path, "torch.export archive"):
        bad = archive.testzip()
    if bad is not None:
        raise InvalidInputError(f"'{path}': member '{bad}' fails its CRC (corrupt archive)", path=path)


def _check_pt2_is_pickle_free(path: Path) -> None:
    """Refuse .pt2 archives whose payloads torch.export.load would unpickle."""
    torch = _torch()
    try:
        with zipfile.ZipFile(path) as archive:
            _check_members_readable(path, archive)
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


def _program_parameters(program: Any) -> list[Any]:
    """forward()'s parameters as the program recorded them: tensors, and constants with their traced value."""
    from edgecc.converters.pytorch.bind import Parameter

    keywords: set[str] = set()
    try:
        in_spec = program.module_call_graph[0].signature.in_spec
        if in_spec.num_children == 2 and in_spec.children_specs[1].context:
            keywords = set(in_spec.children_specs[1].context)
    except (AttributeError, IndexError, TypeError):  # an older in_spec layout: every input positional
        keywords = set()
    params = []
    for spec in program.graph_signature.input_specs:
        if spec.kind.name != "USER_INPUT":
            continue
        arg = spec.arg
        if type(arg).__name__ == "ConstantArgument":
            value = arg.value
            params.append(
                Parameter(
                    arg.name, keyword_only=arg.name in keywords, required=False, type_name=type(value).__name__, default=value
                )
            )
        else:
            params.append(Parameter(arg.name, keyword_only=arg.name in keywords, type_name="Tensor"))
    return params


@contextlib.contextmanager
def _inductor_cache_in_scratch() -> Iterator[None]:
    """While the block runs, torch's inductor cache (which torch.export.load may create under $TMPDIR) is a temporary
    folder removed after, unless the user chose one (TORCHINDUCTOR_CACHE_DIR): a failed or finished load leaves
    nothing behind."""
    if "TORCHINDUCTOR_CACHE_DIR" in os.environ:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="edgecc-inductor-") as folder:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = folder
        try:
            yield
        finally:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)


def _load_exported_program(path: Path, specs: Sequence[InputSpec], args: dict[str, Any]) -> LoadedModule:
    from edgecc.converters.pytorch.bind import Binding
    from edgecc.logs import captured_records

    torch = _torch()
    _check_pt2_is_pickle_free(path)
    try:
        with captured_records("torch.export") as records, _inductor_cache_in_scratch():
            # torch logs a traceback (WARNING) before raising its own error
            program = torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001 -- torch.export.load has no single error type; all become InvalidInputError
        logged = [r.exc_info[1] for r in records if r.exc_info and isinstance(r.exc_info[1], Exception)]
        cause: Exception = exc
        if logged:  # the real cause, which torch logged (silenced here) before raising a generic error
            cause = logged[-1]
        elif "warnings above" in str(exc):
            cause = RuntimeError("it holds no readable exported program (models/model.json)")
        raise _guard_torch_errors(path, "torch.export archive", cause) from None
    params = _program_parameters(program)
    tensors = [p for p in params if p.type_name == "Tensor"]
    constants = {p.name: p.default for p in params if p.type_name != "Tensor"}
    for name, value in args.items():
        if name not in constants:
            raise UsageError(
                f"--arg {name}: '{path}' has no non-tensor input of that name (it has: {', '.join(constants) or 'none'})"
            )
        if value != constants[name] or type(value) is not type(constants[name]):
            raise UsageError(
                f"'{path}' was exported with {name}={constants[name]!r}; --arg asks for {value!r}",
                hint="torch.export fixes non-tensor inputs at export time: re-export with the value you need",
            )
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    infos: list[TensorInfo] = []
    for index, param in enumerate(tensors):
        value = placeholders[param.name].meta.get("val") if param.name in placeholders else None
        if value is None or not hasattr(value, "shape"):
            raise UnsupportedError(f"'{path}': input '{param.name}' is not a tensor", path=path)
        shape = tuple(int(d) if isinstance(d, int) or str(d).isdigit() else str(d) for d in value.shape)
        dtype = str(value.dtype).replace("torch.", "")
        spec = specs[index] if index < len(specs) else None
        onnx_name = spec.name if spec else param.name
        if spec is not None and spec.shape is not None:
            conflicting = len(shape) != len(spec.shape) or any(
                isinstance(have, int) and isinstance(want, int) and have != want for have, want in zip(shape, spec.shape)
            )
            if conflicting:
                raise UsageError(
                    f"'{path}' was exported for input {param.name}:{'x'.join(map(str, shape))}; --input asks for {spec.text()}",
                    hint="re-export with torch.export dynamic shapes, or leave --input out",
                )
        infos.append(TensorInfo(onnx_name, shape, dtype))
    if len(specs) > len(tensors):
        raise UsageError(f"'{path}' takes {len(tensors)} input(s); --input gives {len(specs)}")
    examples = tuple(_example(info, i) for i, info in enumerate(infos))
    binding = Binding(params, [p.name for p in tensors], constants)
    source = f"torch.export archive '{path}'"
    return _probe(LoadedModule(schema.EXPORTED_PROGRAM, program, infos, examples, {}, binding, source=source))


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


def _load_factory(paths: Sequence[str], specs: Sequence[InputSpec], args: dict[str, Any]) -> LoadedModule:
    from edgecc.converters.pytorch.bind import bind, python_parameters

    torch = _torch()
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
    else:
        log.warning(
            "no weights file given: '%s' is converted with the weights its factory gives the module (its initial ones "
            "unless the factory loads some)",
            paths[0],
        )
    module.eval()
    source = f"the module from '{paths[0]}'"
    params, var_keyword = python_parameters(module.forward)
    binding, infos = bind(params, specs, args, source, var_keyword=var_keyword)
    examples = tuple(_example(info, i) for i, info in enumerate(infos))
    return _probe(LoadedModule(schema.FACTORY, module, infos, examples, _dynamic_dims(infos), binding, source=source))


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
    args = dict(options.args)
    if kind == schema.TORCHSCRIPT:
        return _load_torchscript(Path(paths[0]), options.inputs, args)
    if kind == schema.EXPORTED_PROGRAM:
        return _load_exported_program(Path(paths[0]), options.inputs, args)
    if kind == schema.FACTORY:
        return _load_factory(paths, options.inputs, args)
    if kind == schema.TORCH_SAVE:
        state = load_state_dict_file(paths[0])
        raise UsageError(
            f"'{paths[0]}' is a state dict ({len(state)} tensors) without an architecture",
            hint=f"give the architecture first: edgecc convert model.py:build_model {paths[0]} --input x:1x3x224x224",
        )
    raise InvalidInputError(f"'{paths[0]}' is not a PyTorch model file", path=paths[0])
