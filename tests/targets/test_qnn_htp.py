"""qnn-htp: with onnxruntime-qnn (extra `edgecc[qnn]`, or EDGECC_QNN_PATH) partitions run on the HTP simulator and
carry a QNN context binary; without it the bundle says it emulated the HTP's numerics with QDQ on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgecc.targets.qnn_htp import qnn_available
from tests.targets.helpers import mixed_model, run_cmd


def test_qnn_htp_bundle_runs_on_the_htp_backend_or_says_it_emulates(tmp_path: Path) -> None:
    model = mixed_model(tmp_path / "mixed.onnx")
    out = tmp_path / "mixed.edgecc"
    result = run_cmd("compile", model, "--target", "qnn-htp", "-o", out, "--json")
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)  # native QNN chatter must not reach stdout
    manifest = json.loads((out / "manifest.json").read_text())
    htp = [p for p in manifest["partitions"] if p["device"] == "qnn-htp"]
    assert len(htp) == 2 and manifest["verification"]["passed"]
    if qnn_available():
        for part in htp:
            names = [f["path"] for f in part["files"]]
            assert any(n.endswith("_ctx.onnx") for n in names) and any(n.endswith(".bin") for n in names)
            assert part["execution"].startswith("onnxruntime-qnn HTP backend")
        # the offline-compiled context model runs on the HTP backend and agrees with the QDQ partition
        from edgecc.targets.qnn_htp import _HtpRunner

        part = htp[1]
        ctx = next(out / f["path"] for f in part["files"] if f["path"].endswith("_ctx.onnx"))
        qdq = _HtpRunner(out / part["artifact"], "qdq")
        compiled = _HtpRunner(ctx, "ctx")
        feed = {
            i.name: np.random.default_rng(0).standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
            for i in qdq.inputs
        }
        a, b = qdq.run(feed), compiled.run(feed)
        for name in a:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-5)
    else:
        for part in htp:
            assert [f["path"] for f in part["files"]] == [part["artifact"]]
            assert "emulating HTP numerics" in part["execution"] and "edgecc[qnn]" in part["execution"]
