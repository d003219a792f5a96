"""`edgecc zoo run|report|compare` end to end: failures recorded, resume, reports, regressions, Ray = local."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import make_conv_onnx, make_mlp_onnx, run_edgecc
from tests.zoo.helpers import make_slow_cnn, write_zoo


def _statuses(out: Path) -> dict[str, tuple[str, int | None, str | None]]:
    run = json.loads((out / "run.json").read_text())
    result = {}
    for entry in run["pairs"]:
        doc = json.loads((out / "results" / f"{entry['id']}.json").read_text())
        failure = doc["failure"] or {}
        result[entry["id"]] = (doc["status"], failure.get("exit_code"), failure.get("stage"))
    return result


@pytest.fixture(scope="module")
def zoo_a(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Zoo A (a good CNN, a second good model, a broken file) run with two local workers."""
    folder = tmp_path_factory.mktemp("zoo_a")
    make_conv_onnx(folder / "cnn.onnx", batch=1)
    make_conv_onnx(folder / "other.onnx", batch=1, seed=3)
    (folder / "broken.onnx").write_bytes(b"\x08\x07this is not an onnx model")
    zoo = write_zoo(folder, {"cnn": "cnn.onnx", "other": "other.onnx", "broken": "broken.onnx"})
    out = folder / "results"
    result = run_edgecc("zoo", "run", zoo, "-o", out, "--workers", "2")
    assert result.returncode == 0, result.stderr
    return zoo, out


def test_zoo_run_continues_past_a_broken_model(zoo_a: tuple[Path, Path]) -> None:
    _, out = zoo_a
    statuses = _statuses(out)
    assert statuses["cnn@cpu"] == ("ok", None, None) and statuses["cnn@hisilicon-npu"] == ("ok", None, None)
    assert statuses["broken@cpu"] == ("failed", 3, "convert") and statuses["broken@hisilicon-npu"] == ("failed", 3, "convert")
    broken = json.loads((out / "results" / "broken@cpu.json").read_text())
    assert "broken.onnx" in broken["failure"]["message"]
    good = json.loads((out / "results" / "cnn@hisilicon-npu.json").read_text())
    assert good["schema_version"] == 2 and good["kind"] == "edgecc.zoo.pair"
    assert [s["stage"] for s in good["stages"] if s["status"] == "ok"] == [
        "convert",
        "optimize",
        "prepare",
        "quantize",
        "compile",
        "verify",
        "bench",
    ]
    assert (out / good["files"]["bundle"]).is_file() and (out / good["files"]["quantized"]).is_file()
    record = good["record"]
    assert record["accuracy"]["cosine_min"] > 0.99 and record["latency"]["estimated"]["speedup_vs_cpu"] > 0
    assert 0 < record["latency"]["measured"]["p50_ms"] <= record["latency"]["measured"]["p99_ms"]
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temporaries


def test_zoo_resume_skips_done_pairs_and_force_redoes_them(zoo_a: tuple[Path, Path], tmp_path: Path) -> None:
    zoo, out = zoo_a
    copy = tmp_path / "results"
    shutil.copytree(out, copy)
    before = {p: p.read_bytes() for p in (copy / "results").glob("*.json")}
    resumed = run_edgecc("zoo", "run", zoo, "-o", copy, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.json()["counts"] == {"ok": 4, "failed": 2, "resumed": 6}
    assert {p: p.read_bytes() for p in (copy / "results").glob("*.json")} == before
    (zoo.parent / "other.onnx").write_bytes((zoo.parent / "cnn.onnx").read_bytes())  # a changed model is redone, the rest resumed
    changed = run_edgecc("zoo", "run", zoo, "-o", copy, "--json")
    assert changed.json()["counts"]["resumed"] == 4
    assert [p["id"] for p in changed.json()["pairs"] if not p["resumed"]] == ["other@cpu", "other@hisilicon-npu"]


def test_zoo_report_writes_tables_and_charts(zoo_a: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = zoo_a
    report = tmp_path / "report"
    result = run_edgecc("zoo", "report", out, "-o", report)
    assert result.returncode == 0, result.stderr
    markdown = (report / "report.md").read_text()
    assert (
        "| cnn | hisilicon-npu | ok |" in markdown and "FAILED convert (exit 3)" in markdown and "estimated" in markdown.lower()
    )
    assert "<table>" in (report / "report.html").read_text()
    # the "on target" column: the share of the MACs the accelerator runs, from the bundle's manifest ("CPU-only": none)
    from edgecc.pipeline.offload import share_cell

    header = next(line for line in markdown.splitlines() if line.startswith("| model | target |"))
    column = [c.strip() for c in header.strip("|").split("|")].index("on target")
    row = next(line for line in markdown.splitlines() if line.startswith("| cnn | hisilicon-npu | ok |"))
    run = json.loads((out / "run.json").read_text())
    pair = next(e["id"] for e in run["pairs"] if e["id"].startswith("cnn") and "hisilicon" in e["id"])
    record = json.loads((out / "results" / f"{pair}.json").read_text())["record"]
    assert record["offload"]["target"] == "hisilicon-npu"
    assert [c.strip() for c in row.strip("|").split("|")][column] == share_cell(record["offload"])
    for chart in ("latency.png", "latency_measured.png", "accuracy.png"):
        assert (report / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_zoo_compare_flags_injected_regressions_not_a_rerun(zoo_a: tuple[Path, Path], tmp_path: Path) -> None:
    zoo, out = zoo_a
    # a re-run of the same configuration: nothing flagged
    rerun = tmp_path / "rerun"
    assert run_edgecc("zoo", "run", zoo, "-o", rerun, "--workers", "2").returncode == 0
    same = run_edgecc("zoo", "compare", rerun, "--baseline", out, "--json")
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.json()["regressions"] == 0 and same.json()["compared"] == 6
    # a slower "cnn" (an expensive extra branch) and "other" now broken: latency and status regressions
    folder = tmp_path / "zoo_b"
    folder.mkdir()
    make_slow_cnn(folder / "cnn.onnx")
    (folder / "other.onnx").write_bytes(b"")
    shutil.copy(zoo.parent / "broken.onnx", folder / "broken.onnx")
    zoo_b = write_zoo(folder, {"cnn": "cnn.onnx", "other": "other.onnx", "broken": "broken.onnx"})
    slower = tmp_path / "slower"
    assert run_edgecc("zoo", "run", zoo_b, "-o", slower, "--workers", "2").returncode == 0
    result = run_edgecc("zoo", "compare", slower, "--baseline", out, "--json")
    assert result.returncode == 5, result.stderr
    flagged = {(f["pair"], f["check"]) for f in result.json()["findings"] if f["regression"]}
    # the estimate is deterministic; the measurement stands out of the noise by the statistical test, on both targets
    assert ("cnn@cpu", "latency:estimated") in flagged and ("cnn@hisilicon-npu", "latency:estimated") in flagged
    assert {("cnn@cpu", "latency:measured"), ("cnn@hisilicon-npu", "latency:measured")} <= flagged, result.json()["findings"]
    assert ("other@cpu", "status") in flagged and ("other@hisilicon-npu", "status") in flagged
    assert not any(pair.startswith("broken") for pair, _ in flagged)  # failing before and now: not a regression
    # an accuracy drop edited into a copy of the results
    edited = tmp_path / "edited"
    shutil.copytree(out, edited)
    path = edited / "results" / "cnn@hisilicon-npu.json"
    document = json.loads(path.read_text())
    document["record"]["accuracy"]["cosine_min"] = float(document["record"]["accuracy"]["cosine_min"]) - 0.05
    path.write_text(json.dumps(document))
    drop = run_edgecc("zoo", "compare", edited, "--baseline", out)
    assert drop.returncode == 5
    assert "cnn@hisilicon-npu accuracy:cosine_min" in drop.stderr


def test_zoo_compare_rerun_baseline_on_a_busy_machine(tmp_path: Path, cpu_load: list) -> None:
    # two zoo runs of one MLP, then the same MLP with every layer twice; all of it while a busy loop per core runs
    for name, layers in (("zoo_a", 6), ("zoo_b", 12)):
        (tmp_path / name).mkdir()
        make_mlp_onnx(tmp_path / name / "mlp.onnx", layers=layers)
        write_zoo(tmp_path / name, {"mlp": "mlp.onnx"}, targets=("cpu",), runs=3, repeats=20)
    runs = {}
    for label, zoo in (("base", "zoo_a"), ("again", "zoo_a"), ("doubled", "zoo_b")):
        runs[label] = tmp_path / label
        assert run_edgecc("zoo", "run", tmp_path / zoo / "zoo.toml", "-o", runs[label]).returncode == 0
    same = run_edgecc("zoo", "compare", runs["again"], "--baseline", runs["base"], "--rerun-baseline", "--json")
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.json()["rerun_baseline"] == ["mlp@cpu"] and same.json()["regressions"] == 0
    slow = run_edgecc("zoo", "compare", runs["doubled"], "--baseline", runs["base"], "--rerun-baseline", "--json")
    assert slow.returncode == 5, slow.stderr
    finding = next(f for f in slow.json()["findings"] if f["check"] == "latency:measured")
    assert finding["regression"] and finding["threshold"]["paired"] and finding["threshold"]["ratio"] > 1.5, finding
    assert all(proc.poll() is None for proc in cpu_load)


def test_zoo_compare_baseline_of_another_schema_version_is_exit_3(zoo_a: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = zoo_a
    baseline = tmp_path / "baseline"
    shutil.copytree(out, baseline)
    run = json.loads((baseline / "run.json").read_text())
    run["schema_version"] = 3
    (baseline / "run.json").write_text(json.dumps(run))
    result = run_edgecc("zoo", "compare", out, "--baseline", baseline)
    assert result.returncode == 3 and "schema version 3" in result.stderr and "run.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_zoo_ray_gives_the_local_result_set(zoo_a: tuple[Path, Path], tmp_path: Path) -> None:
    zoo, out = zoo_a
    ray_out = tmp_path / "ray"
    result = run_edgecc("zoo", "run", zoo, "-o", ray_out, "--ray", "--workers", "2", "--json", timeout=240)
    assert result.returncode == 0, result.stderr
    assert result.json()["backend"] == "ray"

    def files(root: Path) -> set[str]:
        return {
            p.relative_to(root).as_posix()
            for sub in ("results", "models", "pairs")
            for p in (root / sub).rglob("*")
            if p.is_file()
        }

    assert files(ray_out) == files(out)
    assert _statuses(ray_out) == _statuses(out)
    for name in files(out):
        if name.startswith("results/") and "broken" not in name:
            local, remote = (json.loads((root / name).read_text()) for root in (out, ray_out))
            assert local["record"]["accuracy"] == remote["record"]["accuracy"]  # deterministic numerics, only timings differ
            assert local["record"]["latency"]["estimated"] == remote["record"]["latency"]["estimated"]
