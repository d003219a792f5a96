"""Totals, causes and the accepted-result comparison, on result documents shaped as the harness writes them."""

from __future__ import annotations

import copy

from conformance.report import accepted_document, causes_of, compare_accepted, totals, totals_markdown


def _results() -> dict:
    def ok(**extra):
        return {"outcome": "match", "exit": 0, **extra}

    return {
        "targets": ["cpu", "edgetpu"],
        "seconds": 1.0,
        "workers": 1,
        "entries": {
            "a": {
                "family": "timm",
                "format": "factory",
                "expect": "match",
                "stages": {"build": ok(), "convert": ok(), "optimize": ok(nodes={"converted": 9, "edgecc": 7}), "quantize": ok()},
                "compile": {
                    "cpu": ok(),
                    "edgetpu": {"outcome": "refused", "exit": 4, "message": "edgecc: error: unsupported op HardSwish"},
                },
            },
            "b": {
                "family": "keras",
                "format": "h5",
                "expect": "match",
                "stages": {"build": ok(), "convert": {"outcome": "crashed", "exit": 1, "message": "internal error: KeyError"}},
                "compile": {},
            },
            "c": {
                "family": "mediapipe",
                "format": "tflite",
                "expect": "refuse",
                "expect_detail": {"expect_exit": 4, "expect_names": ["CUSTOM"]},
                "stages": {"build": ok(), "convert": {"outcome": "refused", "exit": 4, "message": "error: op CUSTOM x"}},
                "compile": {},
            },
        },
    }


def test_totals_count_ok_and_each_outcome_per_stage_and_target():
    table = totals(_results())
    assert table["convert"] == {"total": 3, "ok": 2, "match": 1, "crashed": 1, "refused": 1}
    assert table["optimize"]["skipped"] == 1  # b stopped at convert; c expects a refusal and has no later stage
    assert table["compile@edgetpu"] == {"total": 2, "ok": 0, "refused": 1, "skipped": 1}
    assert "| compile@cpu | 1 | 2 |" in totals_markdown(table)


def test_an_expected_refusal_needs_its_exit_code_and_names():
    results = _results()
    assert "c:convert" in accepted_document(results)["ok"]
    results["entries"]["c"]["stages"]["convert"]["message"] = "error: op LSTM"
    assert "c:convert" not in accepted_document(results)["ok"]


def test_causes_classify_failures_by_pattern_stage_and_family():
    causes = [{"match": "HardSwish", "stage": "compile", "cause": "hard-swish unsupported", "issue": 21}]
    failures = {f["key"]: f for f in causes_of(_results(), causes)}
    assert failures["a:compile@edgetpu"]["cause"] == "hard-swish unsupported"
    assert failures["a:compile@edgetpu"]["issue"] == 21
    assert failures["b:convert"]["cause"] == "unclassified"
    assert "c:convert" not in failures  # refused as expected


def test_a_cause_can_be_limited_to_entries():
    causes = [
        {"match": "HardSwish", "entry": "b|z", "cause": "only b or z"},
        {"match": "HardSwish", "entry": "a", "cause": "entry a"},
    ]
    failures = {f["key"]: f for f in causes_of(_results(), causes)}
    assert failures["a:compile@edgetpu"]["cause"] == "entry a"


def test_a_result_ok_when_accepted_and_not_now_is_a_regression():
    accepted = accepted_document(_results())
    now = copy.deepcopy(_results())
    now["entries"]["a"]["compile"]["cpu"] = {"outcome": "wrong", "exit": 0, "message": "output 0: cosine 0.5"}
    now["entries"]["b"]["stages"]["convert"] = {"outcome": "match", "exit": 0}
    comparison = compare_accepted(now, accepted)
    assert comparison["regressions"] == ["a:compile@cpu"]
    assert "b:convert" in comparison["improvements"]
    assert compare_accepted(_results(), accepted)["regressions"] == []


def test_work_the_time_budget_left_undone_is_not_judged():
    results = _results()
    results["entries"]["a"]["not_run"] = ["compile@edgetpu"]
    results["entries"]["b"]["not_run"] = ["entry"]
    accepted = accepted_document(_results())
    keys = set(accepted_document(results)["outcomes"])
    assert "a:compile@edgetpu" not in keys and not any(k.startswith("b:") for k in keys)
    assert compare_accepted(results, accepted)["regressions"] == []
