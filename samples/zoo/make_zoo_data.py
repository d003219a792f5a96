"""Write the zoo's calibration and labelled evaluation data from the reference inputs shipped in samples/models.

`python samples/zoo/make_zoo_data.py [OUT_DIR]` (default samples/zoo/data) writes, per model, `<name>_eval.npz`
(an array per ONNX input with a leading sample axis, and int `labels` where the true class is known) and, for the
ResNet-20, `resnet20_calib/` (one .npz per sample). Augmented samples (flips, shifts, noise) keep the reference
image's true label.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

MODELS = Path(__file__).resolve().parents[1] / "models"
CIFAR10_CAT = 3
KWS_LABELS = {"silence_1000ms": 0, "kws_silence": 0, "yes_1000ms": 2, "no_1000ms": 3}  # _silence_, _unknown_, yes, no, ...
GENDER_WOMAN = 0


def _ref(path: str, key: str) -> np.ndarray:
    with np.load(MODELS / path, allow_pickle=False) as data:
        return data[key]


def _augment(image: np.ndarray, count: int, seed: int, axes: tuple[int, int]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = []
    for index in range(count):
        sample = np.flip(image, axis=axes[1]) if index % 2 else image
        sample = np.roll(sample, shift=(int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), axis=axes)
        out.append(sample + rng.normal(0.0, 0.05, sample.shape))
    return np.concatenate(out).astype(np.float32)


def main() -> None:
    """Write every data file."""
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir", nargs="?", default=str(Path(__file__).resolve().parent / "data"))
    out = Path(parser.parse_args().out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cat = _ref("resnet20_cifar10/ref/cat_32x32.npz", "in__input")
    calibration = out / "resnet20_calib"
    calibration.mkdir(exist_ok=True)
    for index, sample in enumerate(_augment(cat, 16, 0, (2, 3))):
        np.savez(calibration / f"sample_{index:02d}.npz", input=sample[None])
    evaluation = _augment(cat, 8, 1, (2, 3))
    np.savez(out / "resnet20_eval.npz", input=evaluation, labels=np.full(len(evaluation), CIFAR10_CAT, np.int64))
    names = sorted(KWS_LABELS)
    features = np.concatenate([_ref(f"tf_kws_dnn_s/ref/{n}.npz", "in__Reshape:0") for n in names])
    np.savez(out / "kws_eval.npz", **{"Reshape:0": features}, labels=np.array([KWS_LABELS[n] for n in names], np.int64))
    face = _ref("keras_gender_mini_xception/ref/aligned_angelina_jolie.npz", "in__input")
    faces = np.concatenate([face, face[:, :, ::-1]]).astype(
        np.float32
    )  # the image and its mirror (the model is borderline on noise)
    np.savez(out / "gender_eval.npz", input_1=faces, labels=np.full(len(faces), GENDER_WOMAN, np.int64))
    images = np.concatenate(
        [_ref(f"tflite_mobilenet_v1_025_128_uint8/ref/{n}.npz", "in__input") for n in ("bird", "cat", "grace_hopper")]
    )
    np.savez(out / "mobilenet_eval.npz", input=images)
    print(f"wrote the zoo data to {out}")


if __name__ == "__main__":
    main()
