"""Pretrained models shipped inside PyPI packages (source = "package"): MediaPipe's .tflite, RapidOCR's PP-OCR .onnx.

The wheel is fetched by `pip download --no-deps --only-binary=:all: PKG==VER` into `<cache>/pip` (never installed;
a wheel already there with the pinned sha256 is not fetched again) and one member is extracted into `out`. The
entry's `build` table pins both files:

    build = { package = "mediapipe", version = "0.10.14",
              wheel = "mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
              wheel_sha256 = "...", member = "mediapipe/modules/palm_detection/palm_detection_lite.tflite",
              sha256 = "...", range = [0.0, 1.0] }

optional: `shapes = { x = [1, 3, 320, 320] }` fixes dynamic input dimensions (and becomes `--input x:1x3x320x320`),
`channels = "bgr"` (the package feeds OpenCV's BGR images). The wheel's tags (python, abi, platform) are passed
to pip, so the same wheel is fetched whatever the host.

Samples: the 8 real photographs of the shared sample folder (`$SHARED_MODELS/_samples/face` and `imagenet`,
default `<repo>/../shared/models`), resized to the input's size and scaled to `range`; where they are missing,
seeded U(range) noise. References: the TFLite interpreter (ai-edge-litert, XNNPACK as MediaPipe runs it) for
.tflite members, onnxruntime (CPU) for .onnx members.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

SAMPLES = 8
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_SAMPLE_FOLDERS = ("face", "imagenet")


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pip_tags(wheel: str) -> list[str]:
    """pip flags that select exactly this wheel's tags (none for a pure py3-none-any wheel)."""
    if not wheel.endswith(".whl") or wheel.count("-") < 4:
        raise ValueError(f"build.wheel must be a wheel file name (name-version-python-abi-platform.whl), got {wheel!r}")
    python, abi, platform = wheel[: -len(".whl")].split("-")[-3:]
    if platform == "any":
        return []
    flags: list[str] = []
    for tag in platform.split("."):
        flags += ["--platform", tag]
    implementation, version = python[:2], python[2:]
    flags += ["--implementation", implementation, "--python-version", version]
    for tag in abi.split("."):
        flags += ["--abi", tag]
    return flags


def fetch_wheel(build: dict, cache: Path) -> Path:
    """The pinned wheel in `<cache>/pip`, pip-downloaded when absent or not matching `wheel_sha256`."""
    for key in ("package", "version", "wheel", "wheel_sha256"):
        if key not in build:
            raise ValueError(f"build has no '{key}' (package, version, wheel, wheel_sha256, member, sha256)")
    folder = cache / "pip"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / build["wheel"]
    if wheel.is_file() and sha256_of(wheel) == build["wheel_sha256"]:
        return wheel
    spec = f"{build['package']}=={build['version']}"
    with tempfile.TemporaryDirectory(prefix=".download-", dir=folder) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check"]
        command += [*_pip_tags(build["wheel"]), spec, "-d", tmp]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        got = Path(tmp) / build["wheel"]
        if done.returncode != 0 or not got.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"pip download {spec} did not give {build['wheel']} (exit {done.returncode}): {' | '.join(tail)}")
        digest = sha256_of(got)
        if digest != build["wheel_sha256"]:
            raise ValueError(f"sha256 mismatch for {build['wheel']}: got {digest}, the entry pins {build['wheel_sha256']}")
        os.replace(got, wheel)  # atomic: concurrent builds never see a partial wheel
    return wheel


def extract_member(wheel: Path, member: str, sha256: str, out: Path) -> Path:
    """Extract one archive member into `out` (by its base name), checking its sha256; paths escaping `out` refused."""
    parts = PurePosixPath(member).parts
    if not parts or member.startswith(("/", "\\")) or ".." in parts or "\\" in member or ":" in member:
        raise ValueError(f"build.member {member!r} is not a plain relative path inside the archive")
    target = (out / parts[-1]).resolve()
    if target.parent != out.resolve():
        raise ValueError(f"build.member {member!r} would be written outside {out}")
    with zipfile.ZipFile(wheel) as archive:
        if member not in archive.namelist():
            raise ValueError(f"{wheel.name} has no member {member!r}")
        data = archive.read(member)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ValueError(f"sha256 mismatch for {member} of {wheel.name}: got {digest}, the entry pins {sha256}")
    target.write_bytes(data)
    return target


def _sample_images() -> list[Path]:
    """The 8 shared sample photographs, sorted; [] when the folder does not hold 8."""
    root = Path(os.environ.get("SHARED_MODELS") or Path(__file__).resolve().parents[3] / "shared" / "models") / "_samples"
    found = sorted(
        path
        for name in _SAMPLE_FOLDERS
        if (root / name).is_dir()
        for path in (root / name).iterdir()
        if path.suffix.lower() in _IMAGE_SUFFIXES
    )
    return found[:SAMPLES] if len(found) >= SAMPLES else []


def make_samples(shape: list[int], low: float, high: float, bgr: bool, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """8 float32 samples of `shape` (1xHxWx3 or 1x3xHxW) scaled to [low, high], and what they are."""
    nhwc = len(shape) == 4 and shape[0] == 1 and shape[3] == 3
    nchw = len(shape) == 4 and shape[0] == 1 and shape[1] == 3
    images = _sample_images() if nhwc or nchw else []
    if not images:
        noise = rng.uniform(low, high, size=(SAMPLES, *shape)).astype(np.float32)
        return noise, f"seeded U({low:g}, {high:g}) noise"
    from PIL import Image

    height, width = (shape[1], shape[2]) if nhwc else (shape[2], shape[3])
    arrays = []
    for path in images:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
        if bgr:
            pixels = pixels[:, :, ::-1]
        pixels = low + (high - low) * pixels / 255.0
        arrays.append(pixels[None] if nhwc else pixels.transpose(2, 0, 1)[None])
    names = ", ".join(f"{p.parent.name}/{p.name}" for p in images)
    order = "BGR" if bgr else "RGB"
    return np.stack(arrays).astype(np.float32), f"{len(images)} photographs ({names}), {order}, scaled to [{low:g}, {high:g}]"


def _interpreter_class() -> tuple[Any, Any, str]:
    """The TFLite interpreter class, its op-resolver enum, and the runtime's name."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        return Interpreter, OpResolverType, f"ai-edge-litert {metadata.version('ai-edge-litert')} TFLite interpreter (XNNPACK)"
    except ImportError:  # the interpreter TensorFlow ships
        import tensorflow as tf

        runtime = f"tensorflow {tf.__version__} tf.lite.Interpreter (XNNPACK)"
        return tf.lite.Interpreter, tf.lite.experimental.OpResolverType, runtime


def _run_tflite(model: Path, build: dict, samples: dict[str, np.ndarray] | None, rng: np.random.Generator, resolver: Any = None):
    """(samples, outputs per output index, input details, output details) of one interpreter; samples made when None."""
    interpreter_class, _, _ = _interpreter_class()
    kwargs = {"experimental_op_resolver_type": resolver} if resolver is not None else {}
    try:
        interpreter = interpreter_class(model_path=str(model), num_threads=2, **kwargs)
        details = interpreter.get_input_details()
        shapes = build.get("shapes", {})
        for detail in details:
            if detail["name"] in shapes:
                interpreter.resize_tensor_input(detail["index"], shapes[detail["name"]])
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as error:
        first = str(error).strip().splitlines()[0]
        raise RuntimeError(f"the TFLite interpreter cannot run {model.name}, so no reference: {first}") from error
    details = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    described = []
    if samples is None:
        samples = {}
        for detail in details:
            if detail["dtype"] != np.float32:
                kind = detail["dtype"].__name__
                raise ValueError(f"{model.name}: input {detail['name']} is {kind}; only float32 inputs are built")
            samples[detail["name"]], what = _input_samples(detail["shape"].tolist(), build, rng)
            described.append(what)
    results: list[list[np.ndarray]] = [[] for _ in outputs]
    for i in range(SAMPLES):
        for detail in details:
            interpreter.set_tensor(detail["index"], samples[detail["name"]][i])
        interpreter.invoke()
        for index, detail in enumerate(outputs):
            results[index].append(interpreter.get_tensor(detail["index"]).copy())
    return samples, results, details, outputs, described


def _tflite_reference(model: Path, build: dict, rng: np.random.Generator) -> dict[str, Any]:
    """Samples and TFLite interpreter outputs of a .tflite model, and the spread of the reference itself: the largest
    difference per output between XNNPACK (the reference) and TFLite's builtin kernels on the same samples (none
    where the builtin kernels cannot run the model)."""
    _, resolver, runtime = _interpreter_class()
    samples, results, details, outputs, described = _run_tflite(model, build, None, rng)
    try:
        _, builtin, _, _, _ = _run_tflite(model, build, samples, rng, resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    except RuntimeError:  # only XNNPACK runs it (MediaPipe's Convolution2DTransposeBias): no spread, the plain rule
        builtin = []
    spread = [
        float(max(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0) for a, b in zip(xnn, ref)))
        for xnn, ref in zip(results, builtin)
    ]
    return {
        "samples": samples,
        "results": results,
        "runtime": runtime,
        "described": described,
        "inputs": [d["name"] for d in details],
        "outputs": [d["name"] for d in outputs],
        "spread": spread,
    }


def _onnx_reference(model: Path, build: dict, rng: np.random.Generator) -> dict[str, Any]:
    """Samples and onnxruntime (CPU) outputs of a .onnx model."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    shapes = build.get("shapes", {})
    samples, described = {}, []
    for node in session.get_inputs():
        if node.type != "tensor(float)":
            raise ValueError(f"{model.name}: input {node.name} is {node.type}; only float inputs are built")
        shape = shapes.get(node.name, node.shape)
        if not all(isinstance(d, int) and d > 0 for d in shape):
            raise ValueError(f"{model.name}: input {node.name} has dynamic dims {node.shape}: give build.shapes.{node.name}")
        samples[node.name], what = _input_samples(list(shape), build, rng)
        described.append(what)
    names = [node.name for node in session.get_outputs()]
    results: list[list[np.ndarray]] = [[] for _ in names]
    for i in range(SAMPLES):
        got = session.run(names, {name: array[i] for name, array in samples.items()})
        for index, value in enumerate(got):
            results[index].append(np.asarray(value))
    return {
        "samples": samples,
        "results": results,
        "runtime": f"onnxruntime {ort.__version__} (CPUExecutionProvider)",
        "described": described,
        "inputs": list(samples),
        "outputs": names,
    }


def _input_samples(shape: list[int], build: dict, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """make_samples with the entry's range and channel order."""
    low, high = (float(v) for v in build.get("range", (0.0, 1.0)))
    if not low < high:
        raise ValueError(f"build.range must be [low, high] with low < high, got {build.get('range')}")
    return make_samples(shape, low, high, build.get("channels", "rgb") == "bgr", rng)


def build(entry: dict, out: Path, cache: Path) -> dict:
    """Fetch the pinned wheel, extract the model, write samples.npz and the original runtime's reference.npz."""
    spec = entry["build"]
    for key in ("member", "sha256"):
        if key not in spec:
            raise ValueError(f"build has no '{key}' (package, version, wheel, wheel_sha256, member, sha256)")
    wheel = fetch_wheel(spec, cache)
    model = extract_member(wheel, spec["member"], spec["sha256"], out)
    rng = np.random.default_rng(0)
    if model.suffix == ".tflite":
        try:
            made = _tflite_reference(model, spec, rng)
        except RuntimeError as error:
            if entry.get("expect") != "refuse":
                raise
            # a model edgecc must refuse (custom ops no runtime here has): judged by its exit code and message only
            made = {"samples": {}, "results": [], "runtime": f"none ({error})", "described": [], "inputs": [], "outputs": []}
    elif model.suffix == ".onnx":
        made = _onnx_reference(model, spec, rng)
    else:
        raise ValueError(f"build.member {spec['member']!r}: only .tflite and .onnx members are built")
    np.savez(out / "samples.npz", **made["samples"])
    np.savez(out / "reference.npz", **{str(i): np.stack(values) for i, values in enumerate(made["results"])})
    convert_args: list[str] = []
    for name, dims in spec.get("shapes", {}).items():
        convert_args += ["--input", f"{name}:{'x'.join(str(int(d)) for d in dims)}"]
    return {
        "files": [model.name],
        "convert_args": convert_args,
        "inputs": made["inputs"],
        "outputs": made["outputs"],
        "runtime": made["runtime"],
        "origin": f"{spec['package']}=={spec['version']} {spec['member']}; sha256 {spec['sha256']} "
        f"(wheel {spec['wheel']}, sha256 {spec['wheel_sha256']})",
        "samples": "; ".join(made["described"]),
        "reference_spread": made.get("spread", []),
    }
