"""Builder of the `source = "keras"` entries: keras.applications architectures with seeded random weights.

An entry's `build` table says what to build:

```toml
build = { arch = "MobileNetV2", size = 96, classes = 10 }   # a keras.applications function, square input, classes
```

(optional: `seed`, default 0; `floor`, the BatchNorm variance floor, default per architecture (ARCHS); `activation`,
the classifier activation, default none: the model ends in logits, which say more than a softmax of random weights,
nearly uniform or one-hot). The architecture is built with `weights=None`
under `keras.utils.set_random_seed(seed)`; every BatchNormalization layer gets moving mean ~ N(0, 0.1) and variance
~ U(0.5, 1.5) (layer order), with gamma and beta calibrated on seeded images that are not the samples so that the
signal neither dies nor explodes (see `_calibrate`). Every format entry of an architecture holds the same weights;
the format decides what the user holds:

- `keras`: `model.keras` (`model.save`); `h5`: `model.h5` (legacy HDF5, `model.save`);
- `savedmodel`: `saved_model/` (`model.export`, a TF SavedModel with a `serving_default` signature);
- `tflite`: `model.tflite` (`tf.lite.TFLiteConverter.from_keras_model`, float);
- `tflite-int8`: `model_int8.tflite`, full-integer int8 with int8 input and output, calibrated on the 8 samples.

Samples are 8 images of `1xHxWx3` (smooth random blobs plus pixel noise: white noise alone looks the same to every
deep layer), in the range the architecture's preprocessing expects: pixels 0..255 for models with built-in
preprocessing, [-1, 1] for the "tf" mode, N(0, 1) for the "torch" mode; for `tflite-int8` they are those floats
quantised with the input's scale and zero point (int8). The reference is the original runtime: the Keras model for
keras/h5, the loaded SavedModel's serving_default, the TFLite interpreter for tflite (int8 outputs stay int8).
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
from typing import Any

import numpy as np

from conformance.builders import save_npz

__all__ = ["build", "make_model", "make_samples", "ARCHS"]

SAMPLES = 8

#: keras.applications function -> (the input range its preprocessing expects, the BatchNorm variance floor: see _calibrate;
#: plain ReLU stacks need a higher one, lest their outputs turn chaotic)
ARCHS = {
    "MobileNet": ("unit", 0.3),
    "MobileNetV2": ("unit", 0.3),
    "MobileNetV3Small": ("pixels", 0.1),
    "MobileNetV3Large": ("pixels", 0.1),
    "EfficientNetB0": ("pixels", 0.1),
    "EfficientNetV2B0": ("pixels", 0.1),
    "NASNetMobile": ("unit", 0.1),
    "DenseNet121": ("normal", 0.1),
}

FILES = {
    "keras": "model.keras",
    "h5": "model.h5",
    "savedmodel": "saved_model",
    "tflite": "model.tflite",
    "tflite-int8": "model_int8.tflite",
}


def _calibrate(model: Any, images: np.ndarray, seed: int, floor: float) -> None:
    """Randomise BatchNorm statistics (mean ~ N(0, 0.1), var ~ U(0.5, 1.5)) keeping the signal alive.

    Keras' initialisers shrink the signal layer after layer (a depthwise kernel is scaled by all its channels), so with
    random statistics alone every output is the same constant. One training-mode pass over calibration images
    (dropout off, momentum 0) records each BatchNorm's batch mean mu and variance s2 (floored at `floor` times the
    layer's mean variance: unfloored, channels that barely vary are blown up and the outputs turn chaotic); gamma and
    beta are then set so that inference with the random statistics normalises as that pass did:
    gamma' = gamma * sqrt(var + eps) / sqrt(s2 + eps), beta' = beta - gamma' * (mu - mean) / sqrt(var + eps).
    """
    import keras

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    drops = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    momentum, rates = [n.momentum for n in norms], [d.rate for d in drops]
    for layer in norms:
        layer.momentum = 0.0
    for layer in drops:
        layer.rate = 0.0
    model(images, training=True)
    for layer, value in zip(norms, momentum):
        layer.momentum = value
    for layer, value in zip(drops, rates):
        layer.rate = value
    rng = np.random.default_rng(seed)
    for layer in norms:
        mu, s2 = np.asarray(layer.moving_mean, np.float64), np.asarray(layer.moving_variance, np.float64)
        s2 = s2 + floor * s2.mean()
        mean, var = rng.normal(0.0, 0.1, mu.shape), rng.uniform(0.5, 1.5, mu.shape)
        eps = float(layer.epsilon)
        if layer.gamma is not None and layer.beta is not None:
            gamma, beta = np.asarray(layer.gamma, np.float64), np.asarray(layer.beta, np.float64)
            layer.gamma.assign((gamma * np.sqrt(var + eps) / np.sqrt(s2 + eps)).astype(np.float32))
            layer.beta.assign((beta - gamma * (mu - mean) / np.sqrt(s2 + eps)).astype(np.float32))
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(var.astype(np.float32))


def make_model(
    arch: str, size: int, classes: int, seed: int = 0, activation: str | None = None, floor: float | None = None
) -> Any:
    """keras.applications `arch` (weights=None) with seeded weights and randomised BatchNorm statistics."""
    import keras

    if arch not in ARCHS:
        raise ValueError(f"unknown keras.applications architecture '{arch}' (known: {', '.join(ARCHS)})")
    keras.backend.clear_session()  # fresh layer names: the input is "input_layer" on every build
    keras.utils.set_random_seed(seed)
    constructor = getattr(keras.applications, arch)
    model = constructor(weights=None, input_shape=(size, size, 3), classes=classes, classifier_activation=activation)
    floor = ARCHS[arch][1] if floor is None else floor
    _calibrate(model, make_samples(arch, size, seed + 1)[:, 0], seed, floor)  # calibration images: not the samples
    return model


def make_samples(arch: str, size: int, seed: int = 0, count: int = SAMPLES) -> np.ndarray:
    """`count` float32 images of shape 1xSIZExSIZEx3 in the range `arch` expects: smooth random blobs plus pixel noise."""
    rng = np.random.default_rng(seed + 1)
    grid = rng.standard_normal((count, 6, 6, 3))
    index = np.linspace(0, 5, size)
    lo = np.floor(index).astype(int).clip(0, 4)
    frac = (index - lo)[None, :, None, None]
    rows = grid[:, lo] * (1 - frac) + grid[:, lo + 1] * frac
    frac = frac.transpose(0, 2, 1, 3)
    images = rows[:, :, lo] * (1 - frac) + rows[:, :, lo + 1] * frac
    images = images / images.std(axis=(1, 2, 3), keepdims=True) + 0.3 * rng.standard_normal(images.shape)
    images = (images / images.std(axis=(1, 2, 3), keepdims=True))[:, None].astype(np.float32)
    kind = ARCHS[arch][0]
    if kind == "pixels":
        return np.clip(127.5 + 50.0 * images, 0.0, 255.0)
    if kind == "unit":
        return np.clip(images / 2.5, -1.0, 1.0)
    return images


def _tflite(model: Any, samples: np.ndarray, int8: bool) -> bytes:
    """The Keras model as a TFLite flatbuffer: float, or full-integer int8 calibrated on the samples."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:

        def representative():
            for sample in samples:
                yield [sample]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def _run_tflite(path: Path, samples: np.ndarray, int8: bool) -> tuple[list[str], list[str], np.ndarray, list[np.ndarray]]:
    """Input names, output names, the samples as fed and the interpreter's outputs (sample axis first)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1:
        raise ValueError(f"{path.name} has {len(inputs)} inputs, expected 1")
    feed = samples
    if int8:
        scale, zero = inputs[0]["quantization"]
        if not scale:
            raise ValueError(f"{path.name}: the int8 input has no quantisation parameters")
        feed = np.clip(np.round(samples / scale) + zero, -128, 127).astype(np.int8)
    runs = []
    for sample in feed:
        interpreter.set_tensor(inputs[0]["index"], sample)
        interpreter.invoke()
        runs.append([interpreter.get_tensor(d["index"]).copy() for d in outputs])
    results = [np.stack([run[i] for run in runs]) for i in range(len(outputs))]
    return [inputs[0]["name"]], [d["name"] for d in outputs], feed, results


def build(entry: dict, out: Path, cache: Path) -> dict:
    """Write the entry's Keras, SavedModel or TFLite file, samples.npz and reference.npz into `out`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    spec = entry.get("build", {})
    arch, size = spec["arch"], int(spec.get("size", 224))
    classes, seed = int(spec.get("classes", 1000)), int(spec.get("seed", 0))
    activation, floor = spec.get("activation"), spec.get("floor")
    fmt = entry["format"]
    if fmt not in FILES:
        raise ValueError(f"the keras builder makes {', '.join(FILES)} entries, not '{fmt}'")
    model = make_model(arch, size, classes, seed, activation, None if floor is None else float(floor))
    samples = make_samples(arch, size, seed)
    name = FILES[fmt]
    runtime = f"keras {keras.__version__} (TensorFlow {tf.__version__})"

    if fmt in ("keras", "h5"):
        model.save(str(out / name))
        inputs = [t._keras_history[0].name for t in model.inputs]  # the InputLayer name, as a loaded file has it
        outputs = list(model.output_names)
        runs = [model(sample, training=False) for sample in samples]
        runs = [[np.asarray(r) for r in (run if isinstance(run, (list, tuple)) else [run])] for run in runs]
        results = [np.stack([run[i] for run in runs]) for i in range(len(outputs))]
        feeds = {inputs[0]: samples}
    elif fmt == "savedmodel":
        model.export(str(out / name), format="tf_saved_model", verbose=False)
        function = tf.saved_model.load(str(out / name)).signatures["serving_default"]
        specs = function.structured_input_signature[1]
        inputs = sorted(specs)
        if len(inputs) != 1:
            raise ValueError(f"serving_default has {len(inputs)} inputs, expected 1")
        runs = [function(**{inputs[0]: tf.constant(sample)}) for sample in samples]
        outputs = sorted(runs[0])
        results = [np.stack([run[key].numpy() for run in runs]) for key in outputs]
        feeds = {inputs[0]: samples}
        runtime = f"TensorFlow {tf.__version__} (tf.saved_model.load, serving_default)"
    else:
        int8 = fmt == "tflite-int8"
        (out / name).write_bytes(_tflite(model, samples, int8))
        inputs, outputs, fed, results = _run_tflite(out / name, samples, int8)
        feeds = {inputs[0]: fed}
        runtime = f"ai-edge-litert {importlib.metadata.version('ai-edge-litert')} Interpreter (TensorFlow {tf.__version__})"

    save_npz(out / "samples.npz", feeds)
    save_npz(out / "reference.npz", {str(i): r for i, r in enumerate(results)})
    return {
        "files": [name],
        "convert_args": [],
        "inputs": inputs,
        "outputs": outputs,
        "runtime": runtime,
        "origin": f"keras {keras.__version__} keras.applications.{arch}(weights=None, input_shape=({size}, {size}, 3), "
        f"classes={classes}, classifier_activation={activation!r}), seeded weights (seed {seed}), "
        "randomised BatchNorm statistics",
    }
