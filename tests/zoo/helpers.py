"""Small real models and zoo files for the zoo tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.conftest import make_conv_onnx


def make_slow_cnn(path: Path, *, layers: int = 40, seed: int = 0) -> None:
    """The conftest CNN plus an input-dependent chain of 768x768 MatMuls (an expensive extra output): same name, slower model."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = make_conv_onnx(None, batch=1, seed=seed)
    rng = np.random.default_rng(seed + 1)
    graph = model.graph
    graph.node.append(helper.make_node("Flatten", ["x"], ["flat_x"], name="extra_flatten"))
    previous = "flat_x"
    for index in range(layers):
        weight = numpy_helper.from_array((rng.standard_normal((768, 768)) / 28).astype(np.float32), f"extra.w{index}")
        graph.initializer.append(weight)
        graph.node.append(helper.make_node("MatMul", [previous, weight.name], [f"extra_mm{index}"], name=f"extra_mm{index}"))
        graph.node.append(helper.make_node("Tanh", [f"extra_mm{index}"], [f"extra_t{index}"], name=f"extra_tanh{index}"))
        previous = f"extra_t{index}"
    graph.output.append(helper.make_tensor_value_info(previous, TensorProto.FLOAT, [1, 768]))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def write_zoo(
    folder: Path, models: dict[str, str], *, targets: tuple[str, ...] = ("cpu", "hisilicon-npu"), runs: int = 10, repeats: int = 5
) -> Path:
    """A zoo file over `models` (name -> file in `folder`)."""
    lines = [
        "[zoo]",
        'name = "test"',
        f"targets = [{', '.join(repr(t).replace(chr(39), chr(34)) for t in targets)}]",
        f"runs = {runs}",
        f"repeats = {repeats}",
        "samples = 4",
        "",
    ]
    for name, file in models.items():
        lines += ["[[model]]", f'name = "{name}"', f'files = ["{file}"]', ""]
    path = folder / "zoo.toml"
    path.write_text("\n".join(lines))
    return path
