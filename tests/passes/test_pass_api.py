"""The pass API: PassResult, the manager's check of modified=False claims, quiet_loggers, the shared rule helpers."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import onnx
import onnx_ir as ir
import pytest

from edgecc.passes import Pass as PassEntry
from edgecc.passes import PassContext, PassResult, load_passes, manager
from edgecc.passes.manager import PassClaimError, quiet_loggers, run_passes
from edgecc.passes.rules import rule_variants
from edgecc.registry import Registry
from tests.passes.helpers import const, make_model, node, ops, rand


def _identity_relu() -> onnx.ModelProto:
    return make_model(
        [node("Identity", ["x"], ["i"]), node("Relu", ["i"], ["r"]), node("Add", ["r", "b"], ["y"])],
        [("x", [2, 3])],
        [("y", [2, 3])],
        [const("b", rand((2, 3)))],
    )


def _bypass_identity(model: ir.Model) -> int:
    identity = next(n for n in model.graph if n.op_type == "Identity")
    identity.outputs[0].replace_all_uses_with(identity.inputs[0])
    model.graph.remove(identity, safe=True)
    return 1


def _registry_with(monkeypatch: pytest.MonkeyPatch, *passes: tuple[str, object]) -> None:
    """Make run_passes see the real passes plus `passes` (name, function), without touching the global registry."""
    registry: Registry[PassEntry] = Registry("pass")
    for name, entry in load_passes().items():
        registry.register(name, entry)
    for name, func in passes:
        registry.register(name, PassEntry(name, "cleanup", "A pass made up by a test.", func))  # type: ignore[arg-type]
    monkeypatch.setattr(manager, "load_passes", lambda: registry)


# --- PassResult ------------------------------------------------------------------------------------------------


def test_pass_result_is_frozen_and_keeps_its_claims_consistent() -> None:
    model = ir.from_proto(_identity_relu())
    result = PassResult(model, modified=True, rewrites=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.modified = False  # type: ignore[misc]
    assert PassResult(model, False).rewrites == 0
    with pytest.raises(ValueError, match="must say it modified"):
        PassResult(model, modified=False, rewrites=1)
    with pytest.raises(ValueError):
        PassResult(model, modified=True, rewrites=-1)
    assert PassResult.counted(model, 0) == PassResult(model, False, 0)
    assert PassResult.counted(model, 3) == PassResult(model, True, 3)


def test_pass_result_takes_onnx_ir_and_onnxscript_results_through() -> None:
    from onnx_ir.passes.common import RemoveUnusedNodesPass
    from onnxscript.optimizer import fold_constants

    proto = make_model(
        [
            node("Relu", ["x"], ["y"]),
            node("Sigmoid", ["x"], ["dead"]),
            node("Mul", ["two", "three"], ["six"]),
            node("Add", ["y", "six"], ["z"]),
        ],
        [("x", [2])],
        [("z", [2])],
        [const("two", 2.0), const("three", 3.0)],
    )
    model = ir.from_proto(proto)
    folded = PassResult.from_ir(fold_constants(model))  # onnxscript's FoldConstantsResult
    assert folded.modified and folded.model is model and folded.rewrites == 0
    removed = PassResult.from_ir(RemoveUnusedNodesPass()(model), rewrites=1)
    assert removed.modified and removed.rewrites == 1
    again = PassResult.from_ir(RemoveUnusedNodesPass()(model))
    assert not again.modified
    assert PassResult.from_ir(ir.passes.PassResult(model, False), rewrites=2).modified  # a counted rewrite is a change
    back = removed.to_ir()
    assert isinstance(back, ir.passes.PassResult) and back.model is model and back.modified


def test_every_registered_pass_returns_a_pass_result_and_keeps_unmodified_models_as_they_were() -> None:
    """Run each pass directly, twice: its result type, and that modified=False left the nodes and initializers alone."""
    from tests.passes.test_manager import _kitchen_sink

    for name, entry in load_passes().items():
        model = ir.from_proto(_kitchen_sink())
        for _ in range(2):
            nodes, initializers = list(model.graph.all_nodes()), list(model.graph.initializers)
            result = entry.run(model, PassContext())
            assert isinstance(result, PassResult), f"{name} returned {type(result).__name__}"
            assert result.rewrites >= 0 and (result.modified or not result.rewrites), name
            if not result.modified:
                assert result.model is model, f"{name} returned another model but says it did not modify it"
                assert list(result.model.graph.all_nodes()) == nodes, f"{name} changed the nodes but says it did not"
                assert set(result.model.graph.initializers) == set(initializers), f"{name} changed the initializers"
            model = result.model


# --- the manager's check of the claims -------------------------------------------------------------------------


def test_manager_catches_a_pass_that_changes_the_nodes_but_says_it_did_not(monkeypatch: pytest.MonkeyPatch) -> None:
    def liar(model: ir.Model, context: PassContext) -> PassResult:
        _bypass_identity(model)
        return PassResult(model, modified=False)

    _registry_with(monkeypatch, ("liar", liar))
    with pytest.raises(PassClaimError, match="pass liar said it did not modify the model but changed the nodes"):
        run_passes(_identity_relu(), ["liar"])


def test_manager_catches_other_false_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    def new_model(model: ir.Model, context: PassContext) -> PassResult:
        return PassResult(ir.from_proto(ir.to_proto(model)), modified=False)

    def new_initializer(model: ir.Model, context: PassContext) -> PassResult:
        model.graph.register_initializer(ir.Value(name="extra", const_value=ir.tensor(np.ones(2, np.float32), name="extra")))
        return PassResult(model, modified=False)

    def new_output(model: ir.Model, context: PassContext) -> PassResult:
        model.graph.outputs.append(next(n for n in model.graph if n.op_type == "Relu").outputs[0])
        return PassResult(model, modified=False)

    def count_only(model: ir.Model, context: PassContext) -> int:
        return _bypass_identity(model)

    _registry_with(
        monkeypatch,
        ("new-model", new_model),
        ("new-initializer", new_initializer),
        ("new-output", new_output),
        ("count-only", count_only),
    )
    for name, words in [
        ("new-model", "returned another model"),
        ("new-initializer", "changed the initializers"),
        ("new-output", "changed the graph outputs"),
        ("count-only", "returned int, not a PassResult"),
    ]:
        with pytest.raises(PassClaimError, match=words):
            run_passes(_identity_relu(), [name])


def test_manager_accepts_an_honest_pass_and_records_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def honest(model: ir.Model, context: PassContext) -> PassResult:
        return PassResult.counted(model, _bypass_identity(model))

    def rebuilt(model: ir.Model, context: PassContext) -> PassResult:  # a pass that returns a new model, like normalize-opset
        return PassResult(ir.from_proto(ir.to_proto(model)), modified=True)

    _registry_with(monkeypatch, ("honest", honest), ("rebuilt", rebuilt))
    result, report = run_passes(_identity_relu(), ["honest"], max_iterations=1)
    assert ops(result) == {"Add": 1, "Relu": 1}
    (record,) = report.passes
    assert (record.runs, record.rewrites, record.nodes_removed, record.nodes_added) == (1, 1, 1, 0)
    result, report = run_passes(_identity_relu(), ["rebuilt"], max_iterations=2)
    assert ops(result) == ops(_identity_relu()) and report.iterations == 2 and not report.reached_fixed_point


# --- logging ---------------------------------------------------------------------------------------------------


def test_quiet_loggers_raises_named_loggers_and_restores_them() -> None:
    first, second = logging.getLogger("edgecc.test.first"), logging.getLogger("edgecc.test.second")
    first.setLevel(logging.WARNING)
    second.setLevel(logging.CRITICAL)
    try:
        with quiet_loggers("edgecc.test.first", "edgecc.test.second"):
            assert first.level == logging.ERROR and second.level == logging.CRITICAL  # never lowered
        assert first.level == logging.WARNING and second.level == logging.CRITICAL
        with pytest.raises(RuntimeError), quiet_loggers("edgecc.test.first", level=logging.CRITICAL):
            raise RuntimeError("restored on errors too")
        assert first.level == logging.WARNING
    finally:
        first.setLevel(logging.NOTSET)
        second.setLevel(logging.NOTSET)


def test_quiet_loggers_refuses_the_root_logger() -> None:
    levels = (logging.getLogger().level, logging.getLogger("onnx_ir").level)
    for name in ("", "root"):
        with pytest.raises(ValueError, match="root"), quiet_loggers("onnx_ir", name):
            pass
    assert (logging.getLogger().level, logging.getLogger("onnx_ir").level) == levels


def test_run_passes_quiets_onnx_ir_and_onnxscript_only_while_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, int] = {}

    def probe(model: ir.Model, context: PassContext) -> PassResult:
        seen.update({name: logging.getLogger(name).level for name in ("onnx_ir", "onnxscript", "")})
        return PassResult(model, modified=False)

    _registry_with(monkeypatch, ("probe", probe))
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in ("onnx_ir", "onnxscript")}
    root_state = (root.level, list(root.handlers))
    run_passes(_identity_relu(), ["probe"])
    assert seen["onnx_ir"] >= logging.ERROR and seen["onnxscript"] >= logging.ERROR
    assert seen[""] == root_state[0], "the root logger must not change"
    assert {name: logging.getLogger(name).level for name in levels} == levels
    assert (root.level, list(root.handlers)) == root_state


# --- shared rule helpers ---------------------------------------------------------------------------------------


def test_rule_variants_names_each_combination_first_choice_slowest() -> None:
    from onnxscript.rewriter import pattern

    class Base(pattern.RewriteRuleClassBase):
        producer = "Conv"
        combine = "Mul"

        def pattern(self, op, x, k):  # noqa: ANN001, ANN202
            return getattr(op, self.combine)(getattr(op, self.producer)(x), k)

        def rewrite(self, op, x, k):  # noqa: ANN001, ANN202
            return getattr(op, self.producer)(x)

    rules = rule_variants(Base, "Fold{combine}Into{producer}", producer=("Conv", "Gemm"), combine=("Mul", "Add"))
    assert [r.name for r in rules] == ["FoldMulIntoConv", "FoldAddIntoConv", "FoldMulIntoGemm", "FoldAddIntoGemm"]
