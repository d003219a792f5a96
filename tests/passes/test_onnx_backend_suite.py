"""Peer suite: the onnx backend node tests still pass after edgecc's -O3 pipeline."""

from __future__ import annotations

from tests.passes.onnx_backend_suite import NODE_TESTS, run_suite


def test_onnx_node_tests_survive_O3() -> None:  # noqa: N802 - the level's name
    assert (NODE_TESTS / ".complete").exists(), f"{NODE_TESTS} is missing: run `make install`"
    result = run_suite(every=4)
    assert result.passed_before > 300, result
    assert not result.optimizer_errors, result.optimizer_errors
    assert not result.regressions, result.regressions
    assert result.passed_after == result.passed_before
