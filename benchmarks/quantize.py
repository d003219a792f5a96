"""Quantisation accuracy, speed and size: edgecc vs onnxruntime's quantize_static (default settings), side by side.

Models: the real float models converted with `edgecc convert` (ResNet-20 CIFAR-10 from samples/, the Keras
mini-Xception (depthwise separable) from samples/, Caffe LeNet and MTCNN P-Net from ../shared/models when present) and
the digits conv nets trained like the tests' (one with a depthwise block, one plain).
Calibration/held-out inputs: distinct random crops/jitters of the real sample images in ../shared/models/_samples
(preprocessed as each model expects), or the digits training/test splits.
Per model: output SQNR (dB, concatenated outputs) and top-1 agreement with the float model on held-out inputs for
  * ort      : onnxruntime.quantization.quantize_static defaults (QDQ, MinMax, per-tensor, int8/int8)
  * edgecc   : edgecc's default static int8 (99.999-percentile ranges, per-channel int8 weights, uint8 activations)
  * edgecc+  : edgecc with --cle --bias-correction
plus onnxruntime CPU latency of the edgecc int8 model / float (1 thread, median) and int8 bytes / float bytes.
Goals: edgecc >= ort on every model; edgecc+ > ort on the depthwise models; latency ratio <= 0.6 on conv nets;
size ratio <= 0.3.
Run: .venv/bin/python benchmarks/quantize.py [--samples 64] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGECC_SHARED_MODELS", REPO.parent / "shared" / "models"))
sys.path.insert(0, str(REPO))


def _images(folder: Path) -> list[np.ndarray]:
    import cv2

    images = []
    for path in sorted(folder.glob("*")):
        if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                images.append(image[:, :, ::-1])  # RGB
    return images


def _crops(images: list[np.ndarray], count: int, size: int, seed: int, gray: bool = False) -> np.ndarray:
    """`count` random crops (scale 0.3-1, flips, brightness jitter) of the images, resized to size x size, uint8 HWC."""
    import cv2

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        image = images[rng.integers(len(images))]
        h, w = image.shape[:2]
        side = int(min(h, w) * rng.uniform(0.3, 1.0))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = cv2.resize(image[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = np.clip(crop.astype(np.float32) * rng.uniform(0.7, 1.3), 0, 255)
        if gray:
            crop = cv2.cvtColor(crop.astype(np.uint8), cv2.COLOR_RGB2GRAY)[:, :, None]
        out.append(crop.astype(np.float32))
    return np.stack(out)


def _convert(args: list[str], out: Path) -> Path | None:
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "edgecc"), "convert", *args, "-o", str(out), "-q", "--no-verify"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        result = subprocess.run(
            [str(REPO / ".venv" / "bin" / "edgecc"), "convert", *args, "-o", str(out), "-q"],
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        print(f"skip {out.name}: convert failed: {result.stderr.strip()[-200:]}", file=sys.stderr)
        return None
    return out


def models(tmp: Path, samples: int) -> list[tuple[str, Path, str, np.ndarray, np.ndarray, bool]]:
    """(name, onnx path, input name, calibration [S,...], held-out [S,...], depthwise)."""
    found = []
    imagenet = _images(SHARED / "_samples" / "imagenet") + _images(SHARED / "_samples" / "face")
    faces = _images(SHARED / "_samples" / "face")
    mnist = _images(SHARED / "_samples" / "mnist")
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    if imagenet:
        path = _convert(
            [
                "samples/pytorch/resnet20.py:resnet20",
                "samples/models/resnet20_cifar10/resnet20-12fca82f.th",
                "--input",
                "input:1x3x32x32",
            ],
            tmp / "resnet20.onnx",
        )
        if path:

            def prep(c: np.ndarray) -> np.ndarray:
                return ((c / 255 - mean) / std).transpose(0, 3, 1, 2)[:, None].astype(np.float32)

            found.append(
                ("resnet20", path, "input", prep(_crops(imagenet, samples, 32, 1)), prep(_crops(imagenet, samples, 32, 2)), False)
            )
    if faces:
        path = _convert(["samples/models/keras_gender_mini_xception/gender_mini_XCEPTION.21-0.95.hdf5"], tmp / "xception.onnx")
        if path:
            import onnx

            name = onnx.load(str(path)).graph.input[0].name

            def prep(c: np.ndarray) -> np.ndarray:
                return ((c / 255 - 0.5) * 2)[:, None].astype(np.float32)

            found.append(
                (
                    "mini_xception",
                    path,
                    name,
                    prep(_crops(faces, samples, 64, 3, gray=True)),
                    prep(_crops(faces, samples, 64, 4, gray=True)),
                    True,
                )
            )
        path = _convert(
            [
                "samples/models/caffe_mtcnn_pnet/det1.prototxt",
                "samples/models/caffe_mtcnn_pnet/det1.caffemodel",
                "--input",
                "data:1x3x48x48",
            ],
            tmp / "pnet.onnx",
        )
        if path:

            def prep(c: np.ndarray) -> np.ndarray:
                return ((c - 127.5) / 128).transpose(0, 3, 1, 2)[:, None].astype(np.float32)

            found.append(
                ("mtcnn_pnet", path, "data", prep(_crops(faces, samples, 48, 5)), prep(_crops(faces, samples, 48, 6)), False)
            )
    lenet = SHARED / "caffe" / "lenet_mnist"
    if mnist and (lenet / "lenet.prototxt").exists():
        path = _convert(
            [str(lenet / "lenet.prototxt"), str(lenet / "lenet_iter_10000.caffemodel"), "--input", "data:1x1x28x28"],
            tmp / "lenet.onnx",
        )
        if path:

            def prep(c: np.ndarray) -> np.ndarray:
                return (255 - c if c.mean() > 127 else c)[:, None].transpose(0, 1, 4, 2, 3).astype(np.float32) / 256

            found.append(
                (
                    "lenet_mnist",
                    path,
                    "data",
                    prep(_crops(mnist, samples, 28, 7, gray=True)),
                    prep(_crops(mnist, samples, 28, 8, gray=True)),
                    False,
                )
            )
    from tests.quantization.models import digits_data, train_digits

    x, _ = digits_data()
    for name, depthwise in (("digits_dw", True), ("digits_plain", False)):
        path = tmp / f"{name}.onnx"
        train_digits(path, depthwise=depthwise)
        found.append((name, path, "x", x[:samples][:, None], x[1400 : 1400 + samples][:, None], depthwise))
    return found


def _outputs(path_or_model, feeds: list[dict]) -> list[np.ndarray]:
    from edgecc.ortrun import OrtRunner

    runner = OrtRunner(path_or_model)
    return [np.concatenate([np.asarray(v).ravel() for v in runner.run(f).values()]) for f in feeds]


def _score(
    reference: list[np.ndarray], candidate: list[np.ndarray], float_first: list[np.ndarray], cand_first: list[np.ndarray]
) -> dict:
    ref, cand = np.concatenate(reference), np.concatenate(candidate)
    sqnr = 20 * np.log10(np.linalg.norm(ref) / max(np.linalg.norm(ref - cand), 1e-30))
    top1 = float(np.mean([a.argmax() == b.argmax() for a, b in zip(float_first, cand_first)]))
    return {"sqnr_db": round(float(sqnr), 2), "top1": round(top1, 4)}


def _latency(path: Path, feed: dict, repeat: int = 200) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(10):
        session.run(None, feed)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    from edgecc.quantization.core import QuantOptions, quantize_model
    from edgecc.quantization.scheme import QuantScheme

    logging_root = __import__("logging").getLogger()
    logging_root.setLevel("ERROR")
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecc-bench-") as tmp_text:
        tmp = Path(tmp_text)
        for name, path, input_name, calib, held, depthwise in models(tmp, args.samples):
            calib_feeds = [{input_name: c} for c in calib]
            held_feeds = [{input_name: h} for h in held]
            reference = _outputs(path, held_feeds)
            from edgecc.ortrun import OrtRunner

            def first(p, held_feeds=held_feeds):
                return [np.asarray(next(iter(OrtRunner(p).run(f).values()))).ravel() for f in held_feeds]

            float_first = first(path)

            class Reader(CalibrationDataReader):
                def __init__(self, feeds: list[dict] = calib_feeds) -> None:
                    self.items = iter(feeds)

                def get_next(self):
                    return next(self.items, None)

            ort_path = tmp / f"{name}_ort.onnx"
            quantize_static(str(path), str(ort_path), Reader())
            result = {
                "model": name,
                "depthwise": depthwise,
                "ort": _score(reference, _outputs(ort_path, held_feeds), float_first, first(ort_path)),
            }
            result["ort_latency_ratio"] = round(_latency(ort_path, held_feeds[0]) / _latency(path, held_feeds[0]), 3)
            model = onnx.load(str(path))
            # every calibration sample calibrates (held-out inputs are separate): holdout=0
            for label, options in (
                ("edgecc", QuantOptions(holdout=0.0, per_layer_report=False)),
                ("edgecc+", QuantOptions(holdout=0.0, per_layer_report=False, cle=True, bias_correction=True)),
            ):
                quantized, _ = quantize_model(model, QuantScheme(), calib_feeds, options)
                out = tmp / f"{name}_{label}.onnx"
                onnx.save(quantized, str(out))
                result[label] = _score(reference, _outputs(out, held_feeds), float_first, first(out))
                if label == "edgecc":
                    result["size_ratio"] = round(out.stat().st_size / path.stat().st_size, 3)
                    t_float, t_int8 = _latency(path, held_feeds[0]), _latency(out, held_feeds[0])
                    result["latency_ms"] = {"float": round(t_float * 1e3, 4), "int8": round(t_int8 * 1e3, 4)}
                    result["latency_ratio"] = round(t_int8 / t_float, 3)
            result["goal_accuracy"] = (
                result["edgecc"]["sqnr_db"] >= result["ort"]["sqnr_db"] and result["edgecc"]["top1"] >= result["ort"]["top1"]
            )
            result["goal_plus_strictly_better"] = result["edgecc+"]["sqnr_db"] > result["ort"]["sqnr_db"]
            rows.append(result)
            print(
                f"{name:14s} SQNR dB ort {result['ort']['sqnr_db']:7.2f}  edgecc {result['edgecc']['sqnr_db']:7.2f}  "
                f"edgecc+ {result['edgecc+']['sqnr_db']:7.2f} | top-1 ort {result['ort']['top1']:.3f} "
                f"edgecc {result['edgecc']['top1']:.3f} edgecc+ {result['edgecc+']['top1']:.3f} | "
                f"latency x{result['latency_ratio']:.2f} (ort x{result['ort_latency_ratio']:.2f}, "
                f"float {result['latency_ms']['float']:.3f} ms) size x{result['size_ratio']:.2f}",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
