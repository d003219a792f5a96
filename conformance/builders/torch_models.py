"""Builder of the `source = "torch"` entries: timm and torchvision architectures with seeded random weights.

An entry's `build` table says what to build:

```toml
build = { arch = "resnet18", size = 128 }                  # timm.create_model / torchvision.models.get_model name
build = { arch = "googlenet", size = 96, kwargs = { aux_logits = false } }   # further constructor arguments
build = { arch = "lraspp_mobilenet_v3_large", size = 128, key = "out" }      # the model returns a dict: keep one tensor
```

(optional: `lib` = "timm" | "torchvision", default the entry's family; `height`/`width` for a non-square input;
`seed`, default 0; `batchnorm` = "measured" | "plain", see below). Every format starts from the same generated,
self-contained `model.py`, whose `make()` builds the architecture under `torch.manual_seed(seed)` without downloading
anything (`pretrained=False`, `weights=None`, `weights_backbone=None`) and returns the same weights on every call:

- weights the architecture initialises to all zeros (ViT's classifier) get N(0, 1/fan_in) and LayerScale factors
  initialised to one tiny constant get U(0.5, 1.5), so no output is constant and no block is switched off;
- BatchNorm running statistics are randomised as CONTRACT.md says, mean ~ N(0, 0.1) and var ~ U(0.5, 1.5), but in
  units of each layer's own input ("measured", the default): one float64 pass of 4 N(0, 1) images measures each
  BatchNorm's input as it arrives through the already randomised layers before it, and sets mean + N(0, 0.1) * std
  and var * U(0.5, 1.5). With the plain distributions ("plain") the activations of most mobile networks (depthwise
  convolutions initialised for fan-out, hard-swish) fade layer by layer, and their outputs differ between the samples
  by 1e-7 of their size: a conversion that dropped the whole backbone would still match.

The entry's format decides what the user holds:

- `factory`: that `model.py` itself, converted as `model.py:make --input x:1x3xHxW`;
- `torchscript`: `model.pt`, `torch.jit.trace` of the module, converted with `--input x:1x3xHxW`;
- `pt2`: `model.pt2`, `torch.export.export` + `torch.export.save`, which carries its input shape.

The reference is what torch computes with the file the user holds (the imported `model.py`, the loaded TorchScript
archive or exported program), one sample at a time. A traced or exported file that disagrees with the eager module,
or a model whose float32 outputs differ from its float64 ones by more than 1e-4 (relative L2: a reference that
rounding alone moves), is a build failure.
"""

from __future__ import annotations

import importlib.util
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from conformance.builders import save_npz

__all__ = ["build", "model_source"]

SAMPLES = 8
INPUT = "x"

_HEADER = '''"""{lib} {arch} with seeded random weights (edgecc conformance zoo).

`make()` returns the same eval-mode module on every call. It builds the architecture under torch.manual_seed({seed})
without downloading anything and then, drawing from the same seeded generator,
- gives weights the architecture initialises to all zeros (a ViT classifier) N(0, 1/fan_in), and LayerScale factors
  initialised to a tiny constant U(0.5, 1.5), so that no block is switched off;
{bn_doc}
"""

{imports}

SHAPE = {shape!r}
'''

_WAKE = '''

def wake_parameters(model: torch.nn.Module) -> None:
    """All-zero weights get N(0, 1/fan_in); parameters holding one tiny constant (LayerScale) get U(0.5, 1.5)."""
    with torch.no_grad():
        for weight in model.parameters():
            if weight.dim() >= 2 and not weight.any():
                weight.normal_(0.0, weight[0].numel() ** -0.5)
            elif weight.numel() > 1 and 0 < weight.abs().max() <= 1e-3 and bool((weight == weight.flatten()[0]).all()):
                weight.uniform_(0.5, 1.5)
'''

_BN_MEASURED_DOC = """\
- randomises every BatchNorm's running statistics in units of the statistics of its own input, measured on a batch
  of 4 N(0, 1) images (in float64) as it reaches the layer through the already randomised layers before it:
  mean + N(0, 0.1) * std and var * U(0.5, 1.5). (Plain N(0, 0.1) / U(0.5, 1.5) statistics let the activations of
  most mobile networks fade layer by layer until the outputs hardly depend on the input.)"""

_BN_MEASURED = '''

def randomise_batchnorm(model: torch.nn.Module) -> None:
    """Set every BatchNorm's statistics to those of its input on N(0, 1) images, randomised, layer after layer."""
    kinds = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
    layers = [m for m in model.modules() if isinstance(m, kinds)]
    if not layers:
        return

    def measure(layer: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0]
        dims = [d for d in range(x.dim()) if d != 1]
        var, mean = torch.var_mean(x, dim=dims, unbiased=False)
        std = var.sqrt()
        layer.running_mean.copy_(mean + torch.randn_like(std) * 0.1 * std)
        layer.running_var.copy_(var * (torch.rand_like(std) + 0.5))
        handles.pop(layer).remove()  # measured once, on the first call

    model.eval().double()
    handles = {layer: layer.register_forward_pre_hook(measure) for layer in layers}
    with torch.no_grad():
        model(torch.randn((4, *SHAPE[1:]), dtype=torch.float64))
    for handle in handles.values():
        handle.remove()
    model.float()
'''

_BN_PLAIN_DOC = "- gives every BatchNorm running mean ~ N(0, 0.1) and var ~ U(0.5, 1.5)."

_BN_PLAIN = '''

def randomise_batchnorm(model: torch.nn.Module) -> None:
    """Give every BatchNorm running mean ~ N(0, 0.1) and var ~ U(0.5, 1.5), in module order."""
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
                layer.running_mean.copy_(torch.randn(layer.running_mean.shape) * 0.1)
                layer.running_var.copy_(torch.rand(layer.running_var.shape) + 0.5)
'''

_KEY = '''

class OnlyOutput(torch.nn.Module):
    """The model with its dict output reduced to the "{key}" tensor."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["{key}"]
'''

_MAKE = '''

def make() -> torch.nn.Module:
    """{lib} {arch} in eval mode, with the same seeded weights on every call."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed({seed})
        model = {constructor}
        wake_parameters(model)
        randomise_batchnorm(model)
    return {wrap}.eval()
'''

BATCHNORM = {"measured": (_BN_MEASURED_DOC, _BN_MEASURED), "plain": (_BN_PLAIN_DOC, _BN_PLAIN)}


def _python(value: Any) -> str:
    """A TOML value as Python source (TOML has no null: the string "none" stands for None)."""
    return "None" if value == "none" else repr(value)


def model_source(
    lib: str,
    arch: str,
    shape: tuple[int, ...],
    kwargs: dict[str, Any] | None = None,
    key: str | None = None,
    seed: int = 0,
    batchnorm: str = "measured",
) -> str:
    """The text of a self-contained model.py whose make() builds `arch` of `lib` with seeded, deterministic weights."""
    if lib not in ("timm", "torchvision"):
        raise ValueError(f"unknown torch model library '{lib}' (known: timm, torchvision)")
    if batchnorm not in BATCHNORM:
        raise ValueError(f"unknown batchnorm '{batchnorm}' (known: {', '.join(BATCHNORM)})")
    arguments = {"pretrained": False} if lib == "timm" else {"weights": None}
    if lib == "torchvision":
        import inspect

        import torchvision

        builder = torchvision.models.get_model_builder(arch)
        arguments.update({name: None for name in inspect.signature(builder).parameters if name.startswith("weights_")})
        # the public namespace users call it from: torchvision.models, or its segmentation, video, ... subpackage
        namespace = next(
            f"torchvision.models{suffix}"
            for suffix in ("", ".segmentation", ".detection", ".video", ".optical_flow", ".quantization")
            if getattr(importlib.import_module(f"torchvision.models{suffix}"), arch, None) is builder
        )
    arguments.update(kwargs or {})
    call = ", ".join(f"{name}={_python(value)}" for name, value in arguments.items())
    constructor = f'timm.create_model("{arch}", {call})' if lib == "timm" else f"{namespace}.{arch}({call})"
    bn_doc, bn_code = BATCHNORM[batchnorm]
    imports = "\n".join(f"import {name}" for name in sorted({"torch", lib}))
    text = _HEADER.format(lib=lib, arch=arch, seed=seed, bn_doc=bn_doc, shape=tuple(shape), imports=imports) + _WAKE + bn_code
    wrap = "model"
    if key is not None:
        text += _KEY.format(key=key)
        wrap = "OnlyOutput(model)"
    return text + _MAKE.format(lib=lib, arch=arch, seed=seed, constructor=constructor, wrap=wrap)


def _import_file(path: Path) -> types.ModuleType:
    """Import a Python file under a name of its own (as edgecc does with file.py:function)."""
    name = f"conformance_torch_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _exec_source(text: str) -> types.ModuleType:
    """Run generated model.py text as a module, without writing it next to a model file."""
    module = types.ModuleType("conformance_torch_model")
    exec(compile(text, "model.py", "exec"), module.__dict__)
    return module


def _leaves(value: Any) -> list[Any]:
    """The tensors of a module's output, in order (tensor, tuple, list or dict values)."""
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def _run(model: Any, sample: np.ndarray) -> list[np.ndarray]:
    """The outputs of one forward pass on one sample, as numpy arrays."""
    import torch

    with torch.no_grad():
        return [leaf.detach().cpu().numpy() for leaf in _leaves(model(torch.from_numpy(sample)))]


def _check_same(name: str, got: list[np.ndarray], want: list[np.ndarray]) -> None:
    """Raise when a traced/exported file computes other outputs than the eager module it came from."""
    if len(got) != len(want):
        raise ValueError(f"{name} returns {len(got)} outputs, the eager module {len(want)}")
    for index, (a, b) in enumerate(zip(got, want)):
        scale = 1.0 + float(np.abs(b).max(initial=0.0))
        if a.shape != b.shape or float(np.abs(a - b).max(initial=0.0)) > 1e-4 * scale:
            raise ValueError(f"{name} output {index} differs from the eager module's")


def _check_conditioned(model: Any, sample: np.ndarray) -> None:
    """Raise when float32 rounding alone moves the model's outputs (vs float64) by more than 1e-4 relative L2."""
    import copy

    want = [a.astype(np.float64) for a in _run(copy.deepcopy(model).double(), sample.astype(np.float64))]
    for index, (got, ref) in enumerate(zip(_run(model, sample), want)):
        error = float(np.linalg.norm(got - ref) / max(float(np.linalg.norm(ref)), 1e-30))
        if error > 1e-4:
            raise ValueError(f"output {index} is ill-conditioned: float32 differs from float64 by {error:.2g} relative L2")


def build(entry: dict, out: Path, cache: Path) -> dict:
    """Write the entry's model file (model.py, model.pt or model.pt2), samples.npz and reference.npz into `out`."""
    import torch

    spec = entry.get("build", {})
    lib = spec.get("lib", entry["family"])
    arch = spec["arch"]
    height = int(spec.get("height", spec.get("size", 224)))
    width = int(spec.get("width", spec.get("size", 224)))
    seed = int(spec.get("seed", 0))
    library = importlib.import_module(lib)
    shape = (1, 3, height, width)
    text = model_source(lib, arch, shape, spec.get("kwargs"), spec.get("key"), seed, spec.get("batchnorm", "measured"))
    samples = np.random.default_rng(seed).standard_normal((SAMPLES, *shape)).astype(np.float32)
    input_args = ["--input", f"{INPUT}:{'x'.join(map(str, shape))}"]

    fmt = entry["format"]
    if fmt == "factory":
        (out / "model.py").write_text(text)
        model = _import_file(out / "model.py").make()
        files, convert_args = ["model.py:make"], input_args
        _check_conditioned(model, samples[0])
    elif fmt in ("torchscript", "pt2"):
        eager = _exec_source(text).make()
        _check_conditioned(eager, samples[0])
        example = torch.from_numpy(samples[0])
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            if fmt == "torchscript":
                torch.jit.save(torch.jit.trace(eager, (example,), check_trace=False), str(out / "model.pt"))
                model = torch.jit.load(str(out / "model.pt"), map_location="cpu").eval()
                files, convert_args = ["model.pt"], input_args
            else:
                torch.export.save(torch.export.export(eager, (example,)), str(out / "model.pt2"))
                model = torch.export.load(str(out / "model.pt2")).module()
                files, convert_args = ["model.pt2"], []
        _check_same(files[0], _run(model, samples[0]), _run(eager, samples[0]))
    else:
        raise ValueError(f"the torch builder makes factory, torchscript and pt2 entries, not '{fmt}'")

    runs = [_run(model, sample) for sample in samples]
    outputs = ["logits"] if spec.get("key") is None else [str(spec["key"])]
    if len(runs[0]) != 1:
        outputs = [f"output_{i}" for i in range(len(runs[0]))]
    reference = {str(i): np.stack([run[i] for run in runs]) for i in range(len(outputs))}
    save_npz(out / "samples.npz", {INPUT: samples})
    save_npz(out / "reference.npz", reference)
    extra = "".join(f", {k}={v}" for k, v in sorted((spec.get("kwargs") or {}).items()))
    return {
        "files": files,
        "convert_args": convert_args,
        "inputs": [INPUT],
        "outputs": outputs,
        "runtime": f"torch {torch.__version__}",
        "origin": f"{lib} {library.__version__} {arch}{extra}, seeded weights (seed {seed}), randomised BatchNorm statistics",
    }
