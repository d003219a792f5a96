"""The pass registry, the -O levels, pipeline_for and run_passes (fixed point, report, determinism)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgecc.errors import UsageError
from edgecc.passes import LEVEL_ADDITIONS, LEVELS, PASSES, PassContext, load_passes, pipeline_for
from edgecc.passes.manager import run_passes
from tests.conftest import make_conv_onnx
from tests.passes.helpers import assert_same_outputs, const, make_model, node, ops, optimize, rand

HERE = Path(__file__).resolve().parent


def test_every_registered_pass_has_a_test() -> None:
    """A pass cannot land untested: its name must appear (quoted) in a test file here other than this one."""
    registry = load_passes()
    sources = "\n".join(p.read_text() for p in HERE.glob("test_*.py") if p.name != Path(__file__).name)
    untested = [name for name in registry.names() if not re.search(rf"[\"']{re.escape(name)}[\"']", sources)]
    assert not untested, f"passes without a test under tests/passes: {untested}"
    assert len(registry.names()) >= 15


def test_registry_entries_are_complete() -> None:
    registry = load_passes()
    for name, entry in registry.items():
        assert entry.name == name
        assert entry.family in {"cleanup", "fusion", "layout", "patterns"}, name
        assert entry.description and not entry.description.endswith(":"), name
        assert callable(entry.run)


def test_levels_only_name_registered_passes_and_grow() -> None:
    registry = load_passes()
    assert LEVELS[0] == ()
    for level, names in LEVELS.items():
        assert len(set(names)) == len(names), f"O{level} lists a pass twice"
        assert all(name in registry for name in names), f"O{level}: {[n for n in names if n not in registry]}"
    assert set(LEVELS[1]) <= set(LEVELS[2]) <= set(LEVELS[3])
    assert set(LEVELS[3]) == set(registry.names()), "every pass runs at O3"


#: the -O levels as they were written out in full before they were composed (copied once, here)
LITERAL_LEVELS = {
    0: (),
    1: (
        "constant-initializer-inputs",
        "lift-constants",
        "eliminate-identity",
        "fold-constants",
        "eliminate-dead-code",
        "dedup-initializers",
        "eliminate-common-subexpressions",
    ),
    2: (
        "constant-initializer-inputs",
        "lift-constants",
        "eliminate-identity",
        "fold-constants",
        "eliminate-dead-code",
        "dedup-initializers",
        "eliminate-common-subexpressions",
        "fold-measured-shapes",
        "fold-batchnorm",
        "fold-affine",
        "merge-parallel-convs",
        "div-to-mul",
        "matmul-add-to-gemm",
        "fold-pad",
        "collapse-reshapes",
        "merge-slices",
        "optimize-transposes",
    ),
    3: (
        "constant-initializer-inputs",
        "lift-constants",
        "eliminate-identity",
        "fold-constants",
        "eliminate-dead-code",
        "dedup-initializers",
        "eliminate-common-subexpressions",
        "fold-measured-shapes",
        "fold-batchnorm",
        "fold-affine",
        "merge-parallel-convs",
        "div-to-mul",
        "matmul-add-to-gemm",
        "fold-pad",
        "collapse-reshapes",
        "merge-slices",
        "optimize-transposes",
        "recognize-patterns",
        "annotate-activations",
        "normalize-opset",
        "infer-shapes",
    ),
}


def test_levels_are_composed_and_keep_the_literal_order() -> None:
    assert LEVELS == LITERAL_LEVELS
    assert all(isinstance(names, tuple) for names in LEVELS.values())
    assert len(LEVEL_ADDITIONS) == len(LEVELS)
    for level in range(1, len(LEVELS)):
        assert LEVELS[level] == LEVELS[level - 1] + LEVEL_ADDITIONS[level], f"O{level} is not O{level - 1} plus its additions"
        assert not set(LEVEL_ADDITIONS[level]) & set(LEVELS[level - 1]), f"O{level} adds a pass O{level - 1} already runs"


def test_pipeline_for_edits() -> None:
    assert pipeline_for(0) == []
    assert pipeline_for(2) == list(LEVELS[2])
    assert pipeline_for(1, ("fold-batchnorm", "-eliminate-common-subexpressions")) == [
        *[n for n in LEVELS[1] if n != "eliminate-common-subexpressions"],
        "fold-batchnorm",
    ]
    assert pipeline_for(1, ("+fold-pad", "fold-pad")) == [*LEVELS[1], "fold-pad"]  # added once
    assert pipeline_for(3, ("-infer-shapes",))[-1] != "infer-shapes"
    with pytest.raises(UsageError) as info:
        pipeline_for(2, ("fold-everything",))
    assert info.value.exit_code == 2 and "fold-everything" in info.value.message
    with pytest.raises(UsageError):
        pipeline_for(4)


def test_pass_context_is_frozen_and_rejects_unknown_settings() -> None:
    context = PassContext(opset=17)
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.opset = 18  # type: ignore[misc]
    with pytest.raises(TypeError):
        PassContext(fold_limit=3)  # type: ignore[call-arg]


def test_run_passes_with_no_pass_returns_the_model() -> None:
    model = make_conv_onnx()
    result, report = run_passes(model, [])
    assert result.SerializeToString() == model.SerializeToString()
    assert report.reached_fixed_point and report.iterations == 0 and report.nodes_before == report.nodes_after == 6


def _conv_identity_bn() -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    return make_model(
        [
            node("Conv", ["x", "w"], ["c"]),
            node("Identity", ["c"], ["i"]),  # hides the Conv from fold-batchnorm until eliminate-identity ran
            node("BatchNormalization", ["i", "s", "b", "m", "v"], ["y"]),
        ],
        [("x", [1, 3, 6, 6])],
        [("y", [1, 4, 4, 4])],
        [
            const("w", rand((4, 3, 3, 3))),
            const("s", rng.uniform(0.5, 1.5, 4)),
            const("b", rng.uniform(-1, 1, 4)),
            const("m", rng.uniform(-1, 1, 4)),
            const("v", rng.uniform(0.5, 1.5, 4)),
        ],
    )


def test_run_passes_iterates_to_a_fixed_point_and_reports() -> None:
    model = _conv_identity_bn()
    result, report = optimize(model, ["fold-batchnorm", "eliminate-identity"])
    assert ops(result) == {"Conv": 1}
    assert report.iterations == 3 and report.reached_fixed_point
    assert report.nodes_before == 3 and report.nodes_after == 1
    assert report.ops_before == {"BatchNormalization": 1, "Conv": 1, "Identity": 1} and report.ops_after == {"Conv": 1}
    records = {r.name: r for r in report.passes}
    assert list(records) == ["fold-batchnorm", "eliminate-identity"]
    assert records["fold-batchnorm"].runs == records["eliminate-identity"].runs == 3
    assert records["fold-batchnorm"].rewrites == 1 and records["eliminate-identity"].rewrites == 1
    assert records["eliminate-identity"].nodes_removed == 1
    assert records["fold-batchnorm"].nodes_removed >= 2 and records["fold-batchnorm"].nodes_added >= 1
    data = json.loads(json.dumps(report.to_dict()))
    assert data["pipeline"] == ["fold-batchnorm", "eliminate-identity"]
    assert [p["name"] for p in data["passes"]] == data["pipeline"]
    assert_same_outputs(model, result)


def test_run_passes_stops_at_max_iterations() -> None:
    model = _conv_identity_bn()
    result, report = optimize(model, ["fold-batchnorm", "eliminate-identity"], max_iterations=1)
    assert report.iterations == 1 and not report.reached_fixed_point
    assert ops(result) == {"BatchNormalization": 1, "Conv": 1}
    assert_same_outputs(model, result)


def _kitchen_sink(opset: int = 17) -> onnx.ModelProto:
    """Something for every -O3 pass: identities, constants, BN, affine, pad, transposes, reshapes, activations."""
    rng = np.random.default_rng(7)
    bn = [
        const(f"bn.{k}", v)
        for k, v in {
            "s": rng.uniform(0.5, 1.5, 8),
            "b": rng.uniform(-1, 1, 8),
            "m": rng.uniform(-1, 1, 8),
            "v": rng.uniform(0.5, 1.5, 8),
        }.items()
    ]
    nodes = [
        node("Identity", ["x"], ["xi"]),
        node("Pad", ["xi", "pads"], ["xp"]),
        node("Conv", ["xp", "w"], ["c"]),
        node("BatchNormalization", ["c", "bn.s", "bn.b", "bn.m", "bn.v"], ["bn"]),
        node("Mul", ["bn", "k"], ["aff"]),
        node("Relu", ["aff"], ["r"]),
        node("Transpose", ["r"], ["t"], perm=[0, 2, 3, 1]),
        node("Add", ["t", "bias_nhwc"], ["ta"]),
        node("Transpose", ["ta"], ["tb"], perm=[0, 3, 1, 2]),
        node("Relu", ["tb"], ["r2"]),
        node("Relu", ["tb"], ["r3"]),  # common subexpression
        node("Add", ["r2", "r3"], ["s"]),
        node("Add", ["s", "zero"], ["s0"]),
        node("Flatten", ["s0"], ["f"]),
        node("Reshape", ["f", "shape"], ["fr"]),
        node("Mul", ["two", "three"], ["six"]),  # constant subgraph
        node("MatMul", ["fr", "fc"], ["mm"]),
        node("Add", ["mm", "fcb"], ["g"]),
        node("Min", ["g", "six"], ["mn"]),
        node("Max", ["mn", "zero"], ["y"]),
        node("Sigmoid", ["x"], ["dead"]),
    ]
    inits = [
        const("pads", [0, 0, 1, 1, 0, 0, 1, 1], np.int64),
        const("w", rand((8, 3, 3, 3))),
        *bn,
        const("k", rng.uniform(0.5, 1.5, (1, 8, 1, 1))),
        const("bias_nhwc", rand((8,), 3)),
        const("zero", 0.0),
        const("shape", [-1, 8 * 6 * 6], np.int64),
        const("two", 2.0),
        const("three", 3.0),
        const("fc", rand((8 * 36, 5), 4)),
        const("fcb", rand((5,), 5)),
        const("unused", np.ones(3)),
    ]
    # converted models come shape-inferred (edgecc convert runs shape inference)
    return onnx.shape_inference.infer_shapes(make_model(nodes, [("x", [2, 3, 6, 6])], [("y", [2, 5])], inits, opset=opset))


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_levels_keep_numerics(level: int) -> None:
    model = _kitchen_sink()
    result, report = optimize(model, LEVELS[level])
    assert_same_outputs(model, result, seeds=(0, 1, 2))
    assert report.nodes_after <= report.nodes_before
    if level >= 1:
        assert "Identity" not in ops(result) and "Sigmoid" not in ops(result)
    if level >= 2:
        assert "BatchNormalization" not in ops(result) and "Pad" not in ops(result)
        assert "Transpose" not in ops(result)
        assert ops(result).get("Conv") == 1 and ops(result).get("Gemm") == 1
    if level == 3:
        assert "Clip" in ops(result)


def test_o3_is_deterministic() -> None:
    model = _kitchen_sink()
    first, _ = optimize(model, LEVELS[3])
    second, _ = optimize(model, LEVELS[3])
    assert first.SerializeToString() == second.SerializeToString()


def test_run_passes_leaves_its_input_alone() -> None:
    model = _kitchen_sink()
    before = model.SerializeToString()
    run_passes(model, LEVELS[3])
    assert model.SerializeToString() == before


def test_registry_lookup_of_unknown_pass_fails() -> None:
    load_passes()
    assert "fold-everything" not in PASSES
    with pytest.raises(KeyError):
        run_passes(make_conv_onnx(), ["fold-everything"])


def test_o3_is_idempotent_and_no_pass_reports_phantom_rewrites() -> None:
    optimized, _ = optimize(_kitchen_sink(), LEVELS[3])
    again, report = optimize(optimized, LEVELS[3])
    assert report.iterations == 1 and report.reached_fixed_point
    assert again.SerializeToString() == optimized.SerializeToString()
    for name in load_passes().names():
        _, single = optimize(optimized, [name])
        record = single.passes[0]
        assert (single.iterations, single.reached_fixed_point, record.rewrites, record.nodes_added, record.nodes_removed) == (
            1,
            True,
            0,
            0,
            0,
        ), f"{name} still changes an optimised model: {record}"
