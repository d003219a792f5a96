"""edgecc's int8 TFLite vs TensorFlow's own converter, from the same float model and the same calibration data.

Models (real, float, with their original framework here):
  * mini_xception : the Keras gender mini-Xception (samples/models, MIT), 1x64x64x1 face crops
  * kws_dnn_s     : Arm's KWS DNN-S frozen GraphDef (samples/models, Apache-2.0) from its MFCC features (Reshape:0)
Data: calibration and held-out sets are distinct: random crops/flips/brightness of the face images in
../shared/models/_samples/face (or, without them, jittered copies of the repository's reference face), and MFCCs
computed by the KWS graph's own DecodeWav/AudioSpectrogram/Mfcc ops from the repository's four reference wavs with
random gain, time shift and noise.
Per model, both paths produce a full-int8 TFLite (int8 inputs/outputs):
  * tf     : tf.lite.TFLiteConverter (Keras model / frozen graph), Optimize.DEFAULT, representative dataset,
             TFLITE_BUILTINS_INT8, int8 io
  * edgecc : `edgecc convert` then `edgecc compile --target ethos-u55-128 --calibration ...` (the partition's .tflite,
             before Vela)
Printed: TFLite-interpreter CPU latency (1 thread, interleaved, median; goal edgecc/tf <= 1.05), file size (goal
<= 1.0), agreement with the float model on held-out inputs (top-1 agreement and SQNR; goal edgecc >= tf), and
Vela's estimated inferences/s on ethos-u55-128 for both (goal edgecc >= tf).
Run: .venv/bin/python benchmarks/tflite_emitter.py [--samples 64] [--runs 300] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGECC_SHARED_MODELS", REPO.parent / "shared" / "models"))
SAMPLES = REPO / "samples" / "models"
EDGECC = REPO / ".venv" / "bin" / "edgecc"
ACCELERATOR = "ethos-u55-128"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def _face_sets(samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Calibration and held-out 1x64x64x1 inputs, preprocessed as the model expects ((x/255-0.5)*2)."""
    from quantize import _crops, _images

    faces = _images(SHARED / "_samples" / "face")
    if faces:
        calib, held = _crops(faces, samples, 64, 11, gray=True), _crops(faces, samples, 64, 12, gray=True)

        def prep(c: np.ndarray) -> np.ndarray:
            return ((c / 255 - 0.5) * 2)[:, None].astype(np.float32)

        return prep(calib), prep(held)
    base = np.load(SAMPLES / "keras_gender_mini_xception" / "ref" / "aligned_angelina_jolie.npz")["in__input"]
    rng = np.random.default_rng(11)

    def jitter(count: int) -> np.ndarray:
        out = []
        for _ in range(count):
            image = np.roll(base, tuple(rng.integers(-6, 7, 2)), axis=(1, 2)) * rng.uniform(0.7, 1.1) + rng.normal(
                0, 0.05, base.shape
            )
            out.append(np.clip(image[:, :, ::-1] if rng.random() < 0.5 else image, -1, 1))
        return np.stack(out).astype(np.float32)

    return jitter(samples), jitter(samples)


def _wav_bytes(samples: np.ndarray, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(np.clip(samples, -32768, 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def _kws_graph() -> tuple[object, object]:
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((SAMPLES / "tf_kws_dnn_s" / "DNN_S.pb").read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    return graph, tf.compat.v1.Session(graph=graph)


def _kws_sets(samples: int) -> tuple[np.ndarray, np.ndarray]:
    """MFCC features (1x250) made by the KWS graph's own audio front end from augmented reference wavs."""
    graph, session = _kws_graph()
    waves = []
    for path in sorted((SAMPLES / "tf_kws_dnn_s" / "ref").glob("*.npz")):
        data = np.load(path)["in__wav_data"].tobytes()
        with wave.open(io.BytesIO(data)) as handle:
            waves.append(np.frombuffer(handle.readframes(handle.getnframes()), "<i2").astype(np.float32))

    def features(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(samples):
            base = waves[rng.integers(len(waves))]
            audio = np.roll(base, int(rng.integers(-1600, 1601))) * rng.uniform(0.5, 1.5) + rng.normal(
                0, rng.uniform(5, 200), base.shape
            )
            out.append(session.run("Reshape:0", {"wav_data:0": _wav_bytes(audio)}))
        return np.stack(out).astype(np.float32)

    return features(21), features(22)


def _edgecc(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EDGECC), *map(str, args)], capture_output=True, text=True, check=False)


def _edgecc_tflite(tmp: Path, name: str, convert_args: list[str], calib: np.ndarray) -> tuple[Path, dict]:
    """`edgecc convert` + `edgecc compile --target ethos-u55-128`: the NPU partition's TFLite and its Vela estimates."""
    import onnx

    onnx_path = tmp / f"{name}.onnx"
    result = _edgecc(
        "convert", *[str(REPO / a) if a.startswith("samples/") else a for a in convert_args], "--no-verify", "-q", "-o", onnx_path
    )
    if result.returncode:
        raise SystemExit(f"edgecc convert {name} failed: {result.stderr.strip()}")
    input_name = onnx.load(str(onnx_path)).graph.input[0].name
    folder = tmp / f"{name}_calib"
    folder.mkdir()
    for index, sample in enumerate(calib):
        np.save(folder / f"{index:04d}.npy", sample)
    bundle = tmp / f"{name}.edgecc"
    result = _edgecc(
        "compile", onnx_path, "--target", ACCELERATOR, "--calibration", f"{input_name}={folder}", "-o", bundle, "--json"
    )
    if result.returncode:
        raise SystemExit(f"edgecc compile {name} failed: {result.stderr.strip()}")
    manifest = json.loads((bundle / "manifest.json").read_text())
    npu = [p for p in manifest["partitions"] if p["device"] == ACCELERATOR]
    if len(manifest["partitions"]) != 1 or len(npu) != 1:
        print(
            f"note: {name}: edgecc placed {len(manifest['partitions'])} partitions; comparing the NPU partition", file=sys.stderr
        )
    part = npu[0]
    return bundle / part["artifact"], part.get("vendor", {}).get("estimates", {})


def _tf_tflite(tmp: Path, name: str, calib: np.ndarray) -> Path:
    import tensorflow as tf

    if name == "mini_xception":
        import keras

        model = keras.models.load_model(
            SAMPLES / "keras_gender_mini_xception" / "gender_mini_XCEPTION.21-0.95.hdf5", compile=False
        )
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    else:
        converter = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
            str(SAMPLES / "tf_kws_dnn_s" / "DNN_S.pb"),
            input_arrays=["Reshape"],
            output_arrays=["labels_softmax"],
            input_shapes={"Reshape": [1, 250]},
        )
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([sample] for sample in calib)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path = tmp / f"{name}_tf.tflite"
    path.write_bytes(converter.convert())
    return path


def _float_outputs(name: str, inputs: np.ndarray) -> list[np.ndarray]:
    if name == "mini_xception":
        import keras

        model = keras.models.load_model(
            SAMPLES / "keras_gender_mini_xception" / "gender_mini_XCEPTION.21-0.95.hdf5", compile=False
        )
        return [np.asarray(model(x, training=False)).ravel() for x in inputs]
    _, session = _kws_graph()
    return [session.run("labels_softmax:0", {"Reshape:0": x}).ravel() for x in inputs]


class _Plain:
    """A TFLite file with int8 io run directly (TensorFlow's files: same layout as the float model)."""

    def __init__(self, path: Path) -> None:
        from edgecc.targets.tflite.runner import interpreter_class

        self.interpreter = interpreter_class()(model_path=str(path), num_threads=1)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def feed(self, x: np.ndarray) -> None:
        scale, zero = self.input["quantization"]
        self.interpreter.set_tensor(
            self.input["index"], np.clip(np.round(x / scale) + zero, -128, 127).astype(self.input["dtype"])
        )

    def run(self, x: np.ndarray) -> np.ndarray:
        self.feed(x)
        self.interpreter.invoke()
        scale, zero = self.output["quantization"]
        return ((self.interpreter.get_tensor(self.output["index"]).astype(np.float32) - zero) * scale).ravel()


def _edgecc_runner(path: Path) -> object:
    from edgecc.targets.tflite import TfliteRunner

    return TfliteRunner(path, name=path.name, num_threads=1)


def _agreement(reference: list[np.ndarray], candidate: list[np.ndarray]) -> dict:
    ref, cand = np.concatenate(reference), np.concatenate(candidate)
    sqnr = 20 * np.log10(np.linalg.norm(ref) / max(np.linalg.norm(ref - cand), 1e-30))
    top1 = float(np.mean([a.argmax() == b.argmax() for a, b in zip(reference, candidate)]))
    return {"top1_agreement": round(top1, 4), "sqnr_db": round(float(sqnr), 2)}


def _latencies(a: _Plain, b: _Plain, x: np.ndarray, runs: int) -> tuple[float, float]:
    """Median invoke() time of two interpreters, interleaved in blocks so that machine noise hits both alike."""
    a.feed(x)
    b.feed(x)
    for interp in (a, b):
        for _ in range(20):
            interp.interpreter.invoke()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(max(1, runs // 10)):
        for interp, sink in ((a, times[0]), (b, times[1])):
            for _ in range(10):
                start = time.perf_counter()
                interp.interpreter.invoke()
                sink.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def _vela_fps(path: Path, out: Path) -> float | None:
    from edgecc.targets.vela import run_vela

    return run_vela(path, out, accelerator=ACCELERATOR).estimates.get("inferences_per_second")


MODELS = {
    "mini_xception": (
        ["samples/models/keras_gender_mini_xception/gender_mini_XCEPTION.21-0.95.hdf5", "--input", "input_1:1x64x64x1"],
        _face_sets,
    ),
    "kws_dnn_s": (["samples/models/tf_kws_dnn_s/DNN_S.pb", "--input", "Reshape:0:1x250"], _kws_sets),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecc-tflite-bench-") as tmp_text:
        tmp = Path(tmp_text)
        for name, (convert_args, data) in MODELS.items():
            calib, held = data(args.samples)
            ours, ours_estimates = _edgecc_tflite(tmp, name, convert_args, calib)
            theirs = _tf_tflite(tmp, name, calib)
            reference = _float_outputs(name, held)
            runner = _edgecc_runner(ours)
            input_name = runner.inputs[0].name
            ours_out = [np.concatenate([np.asarray(v).ravel() for v in runner.run({input_name: x}).values()]) for x in held]
            tf_plain = _Plain(theirs)
            theirs_out = [tf_plain.run(x) for x in held]
            ours_plain = _Plain(ours)
            ours_plain_input = held[0] if tuple(ours_plain.input["shape"]) == held[0].shape else held[0].transpose(0, 2, 3, 1)
            t_ours, t_tf = _latencies(ours_plain, tf_plain, ours_plain_input, args.runs)
            tf_fps = _vela_fps(theirs, tmp / f"{name}_tf_vela")
            row = {
                "model": name,
                "latency_ms": {"edgecc": round(t_ours * 1e3, 4), "tf": round(t_tf * 1e3, 4)},
                "latency_ratio": round(t_ours / t_tf, 3),
                "bytes": {"edgecc": ours.stat().st_size, "tf": theirs.stat().st_size},
                "size_ratio": round(ours.stat().st_size / theirs.stat().st_size, 3),
                "agreement": {"edgecc": _agreement(reference, ours_out), "tf": _agreement(reference, theirs_out)},
                "vela_inferences_per_second": {"edgecc": ours_estimates.get("inferences_per_second"), "tf": tf_fps},
            }
            rows.append(row)
            agree = row["agreement"]
            fps = row["vela_inferences_per_second"]
            print(
                f"{name:14s} latency {row['latency_ms']['edgecc']:.3f} / {row['latency_ms']['tf']:.3f} ms = "
                f"{row['latency_ratio']:.3f} (goal <= 1.05) | size {row['bytes']['edgecc']} / {row['bytes']['tf']} B = "
                f"{row['size_ratio']:.3f} (goal <= 1.0) | "
                f"top-1 agreement {agree['edgecc']['top1_agreement']:.3f} vs tf {agree['tf']['top1_agreement']:.3f}, "
                f"SQNR {agree['edgecc']['sqnr_db']:.1f} vs {agree['tf']['sqnr_db']:.1f} dB | "
                f"Vela {ACCELERATOR} inf/s {fps['edgecc']} vs {fps['tf']}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
