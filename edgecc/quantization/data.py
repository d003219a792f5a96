"""Calibration data: image folders, .npz/.npy folders, one .npz with a sample axis, `module:function`, or random."""

from __future__ import annotations

import importlib
import logging
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgecc.errors import InvalidInputError, UsageError
from edgecc.inputs import TensorInfo, concrete_shape, random_feeds

if TYPE_CHECKING:
    import numpy as np

__all__ = ["IMAGE_SUFFIXES", "ImageOptions", "check_feeds", "load_calibration"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp")
_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$")

Feed = dict[str, "np.ndarray"]


@dataclass(frozen=True)
class ImageOptions:
    """How images become input tensors: pixels / 255, minus mean, over std, in `layout`, resized and centre-cropped to `size`."""

    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    layout: str | None = None  # "nchw" | "nhwc"; None: guessed from the input shape
    size: tuple[int, int] | None = None  # (height, width); None: from the input shape
    bgr: bool = False

    def __post_init__(self) -> None:
        if self.layout not in (None, "nchw", "nhwc"):
            raise UsageError(f"--layout must be nchw or nhwc, not '{self.layout}'")
        if any(s == 0 for s in self.std):
            raise UsageError("--std values must not be 0")


def _natural_key(path: Path) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"([0-9]+)", path.name)]


def _natural_sorted(paths: Iterable[Path]) -> list[Path]:
    return sorted(paths, key=_natural_key)


def _load_arrays(path: Path) -> np.ndarray | dict[str, np.ndarray]:
    from edgecc.inputs import load_array_file  # the shared, pickle-free reader

    return load_array_file(path)


def _image_layout(info: TensorInfo, options: ImageOptions, path: Path) -> tuple[str, int, int, int]:
    """(layout, channels, height, width) of an image input."""
    if info.shape is None or len(info.shape) != 4:
        raise InvalidInputError(
            f"calibration images in '{path}' need a 4-D image input, but input '{info.name}' has shape {info.shape_text()}",
            path=path, hint="give .npz/.npy calibration data instead",
        )
    dims = [d if isinstance(d, int) and d > 0 else None for d in info.shape]
    layout = options.layout
    if layout is None:
        layout = "nhwc" if dims[3] in (1, 3, 4) and dims[1] not in (1, 3, 4) else "nchw"
    channels = dims[1] if layout == "nchw" else dims[3]
    height, width = (dims[2], dims[3]) if layout == "nchw" else (dims[1], dims[2])
    if options.size is not None:
        height, width = options.size
    if channels is None:
        channels = 3
    if height is None or width is None:
        raise UsageError(f"input '{info.name}' has dynamic height/width", hint="give --size HxW")
    if channels not in (1, 3):
        raise InvalidInputError(f"input '{info.name}' has {channels} channels; images give 1 or 3", path=path)
    return layout, channels, height, width


def _read_image(file: Path, channels: int, height: int, width: int, options: ImageOptions) -> np.ndarray:
    import numpy as np

    from edgecc.fileio import read_bytes

    try:
        import cv2
    except ImportError:
        from edgecc.errors import MissingDependencyError

        raise MissingDependencyError(
            "reading calibration images needs OpenCV", hint="pip install 'edgecc[caffe]' (opencv-python-headless)"
        ) from None
    data = np.frombuffer(read_bytes(file, what="calibration image"), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR)
    if image is None:
        raise InvalidInputError(f"calibration image '{file}' cannot be decoded (corrupt or not an image)", path=file)
    h, w = image.shape[:2]
    scale = max(height / h, width / w)
    new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    image = image[top : top + height, left : left + width]
    if image.ndim == 2:
        image = image[:, :, None]
    elif not options.bgr:
        image = image[:, :, ::-1]
    pixels = image.astype(np.float32) / 255.0
    mean = np.asarray(options.mean, dtype=np.float32)
    std = np.asarray(options.std, dtype=np.float32)
    for name, values in (("--mean", mean), ("--std", std)):
        if values.size not in (1, channels):
            raise UsageError(f"{name} has {values.size} values, the input has {channels} channels")
    return (pixels - mean) / std


def _image_feeds(files: Sequence[Path], inputs: Sequence[TensorInfo], options: ImageOptions, folder: Path) -> list[Feed]:
    import numpy as np

    if len(inputs) != 1:
        raise UsageError(f"calibration images need a single-input model, this one takes {', '.join(i.name for i in inputs)}")
    info = inputs[0]
    layout, channels, height, width = _image_layout(info, options, folder)
    feeds = []
    for file in files:
        image = _read_image(file, channels, height, width, options)
        tensor = image.transpose(2, 0, 1) if layout == "nchw" else image
        feeds.append({info.name: np.ascontiguousarray(tensor[None]).astype(info.dtype if info.dtype.startswith("float") else "float32")})
    return feeds


def _split_sample_axis(arrays: Mapping[str, np.ndarray], inputs: Sequence[TensorInfo], path: Path) -> list[Feed]:
    """One .npz whose arrays carry a leading sample axis -> one feed per sample."""
    by_name = {i.name: i for i in inputs}
    counts = set()
    per_name: dict[str, list[np.ndarray]] = {}
    for name, array in arrays.items():
        info = by_name.get(name)
        if info is None or info.shape is None:
            per_name[name] = [array]
            continue
        if array.ndim == len(info.shape) + 1:
            per_name[name] = [array[i] for i in range(array.shape[0])]
        elif array.ndim == len(info.shape):
            batch = info.shape[0] if isinstance(info.shape[0], int) and info.shape[0] > 0 else 1
            if array.shape[0] % batch:
                raise InvalidInputError(
                    f"calibration file '{path}': array '{name}' has {array.shape[0]} rows, not a multiple of the batch {batch}", path=path
                )
            per_name[name] = [array[i : i + batch] for i in range(0, array.shape[0], batch)]
        else:
            raise InvalidInputError(
                f"calibration file '{path}': array '{name}' has shape {'x'.join(map(str, array.shape))}, "
                f"input '{name}' expects {info.shape_text()} (plus an optional leading sample axis)", path=path,
            )
        counts.add(len(per_name[name]))
    if len(counts) > 1:
        raise InvalidInputError(f"calibration file '{path}': arrays hold different numbers of samples ({sorted(counts)})", path=path)
    count = counts.pop() if counts else 1
    return [{name: values[i if len(values) > 1 else 0] for name, values in per_name.items()} for i in range(count)]


def _module_feeds(spec: str) -> list[Feed]:
    import numpy as np

    module_name, _, function_name = spec.partition(":")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInputError(f"calibration module '{module_name}' cannot be imported: {exc}") from None
    except Exception as exc:  # noqa: BLE001 -- user code
        raise InvalidInputError(f"calibration module '{module_name}' failed on import: {type(exc).__name__}: {exc}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise InvalidInputError(f"calibration module '{module_name}' has no function '{function_name}'")
    feeds: list[Feed] = []
    try:
        for index, item in enumerate(function()):
            if not isinstance(item, Mapping):
                raise InvalidInputError(f"calibration function '{spec}' yielded {type(item).__name__} at item {index}, expected a dict of arrays")
            feeds.append({str(k): np.asarray(v) for k, v in item.items()})
    except InvalidInputError:
        raise
    except Exception as exc:  # noqa: BLE001 -- user code
        raise InvalidInputError(f"calibration function '{spec}' failed: {type(exc).__name__}: {exc}") from None
    return feeds


def check_feeds(feeds: Sequence[Mapping[str, np.ndarray]], inputs: Sequence[TensorInfo], *, source: str) -> list[Feed]:
    """Check every sample's names, shapes and dtypes against the model inputs; cast float data to the input dtype."""
    import numpy as np

    names = [i.name for i in inputs]
    checked: list[Feed] = []
    for index, sample in enumerate(feeds):
        feed: Feed = {}
        for key, value in sample.items():
            if key == "":
                if len(inputs) != 1:
                    raise InvalidInputError(f"calibration data '{source}': a nameless .npy sample needs a single-input model (inputs: {', '.join(names)})", path=source)
                key = names[0]
            if key not in names:
                raise InvalidInputError(
                    f"calibration data '{source}' sample {index}: '{key}' is not a model input (inputs: {', '.join(names)})", path=source
                )
            feed[key] = value
        missing = [n for n in names if n not in feed]
        if missing:
            raise InvalidInputError(f"calibration data '{source}' sample {index} has no value for input(s) {', '.join(missing)}", path=source)
        for info in inputs:
            value = np.asarray(feed[info.name])
            want = np.dtype(info.dtype) if info.dtype != "bfloat16" else np.dtype("float32")
            if value.dtype.kind != want.kind and not (value.dtype.kind in "iu" and want.kind in "iu"):
                raise InvalidInputError(
                    f"calibration data '{source}' sample {index}: input '{info.name}' has dtype {value.dtype}, the model expects {info.dtype}",
                    path=source,
                )
            if info.shape is not None and (
                len(info.shape) != value.ndim or any(isinstance(d, int) and d > 0 and d != s for d, s in zip(info.shape, value.shape))
            ):
                raise InvalidInputError(
                    f"calibration data '{source}' sample {index}: input '{info.name}' has shape "
                    f"{'x'.join(map(str, value.shape)) or 'scalar'}, the model expects {info.shape_text()}",
                    path=source,
                )
            feed[info.name] = np.ascontiguousarray(value.astype(want, copy=False))
        checked.append(feed)
    return checked


def load_calibration(
    source: str,
    inputs: Sequence[TensorInfo],
    *,
    image_options: ImageOptions | None = None,
    max_samples: int | None = None,
    seed: int = 0,
    random_count: int = 16,
) -> tuple[list[Feed], str]:
    """Read calibration samples from `source`; returns (checked feeds, a description of the source).

    `source`: a directory of images, of .npz (one sample each, keys = input names) or of .npy files (single-input
    models); one .npz whose arrays carry a leading sample axis; a .npy (single input, leading sample axis);
    `module:function` (a Python function yielding feed dicts); or `random` (deterministic noise, with a warning).
    """
    image_options = image_options or ImageOptions()
    path = Path(source)
    if source == "random":
        for info in inputs:
            concrete_shape(info)
        feeds = random_feeds(inputs, seed=seed, count=random_count)
        return check_feeds(feeds, inputs, source="random"), f"random ({random_count} samples)"
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
        images = _natural_sorted(p for p in files if p.suffix.lower() in IMAGE_SUFFIXES)
        arrays = _natural_sorted(p for p in files if p.suffix.lower() in (".npz", ".npy"))
        if not images and not arrays:
            raise InvalidInputError(
                f"calibration directory '{path}' holds no images ({', '.join(IMAGE_SUFFIXES)}) and no .npz/.npy files", path=path
            )
        if images and arrays:
            raise InvalidInputError(f"calibration directory '{path}' mixes images and .npz/.npy files", path=path)
        if max_samples is not None:
            images, arrays = images[:max_samples], arrays[:max_samples]
        if images:
            return _image_feeds(images, inputs, image_options, path), f"{len(images)} images in {path}"
        feeds: list[Feed] = []
        for file in arrays:
            loaded = _load_arrays(file)
            feeds.append(loaded if isinstance(loaded, dict) else {"": loaded})
        return check_feeds(feeds, inputs, source=str(path)), f"{len(feeds)} files in {path}"
    if path.suffix.lower() in (".npz", ".npy"):
        loaded = _load_arrays(path)
        arrays_by_name = loaded if isinstance(loaded, dict) else {(inputs[0].name if len(inputs) == 1 else ""): loaded}
        if "" in arrays_by_name:
            raise InvalidInputError(f"calibration file '{path}' is a bare array but the model has {len(inputs)} inputs", path=path)
        feeds = _split_sample_axis(arrays_by_name, inputs, path)
        if max_samples is not None:
            feeds = feeds[:max_samples]
        return check_feeds(feeds, inputs, source=str(path)), f"{len(feeds)} samples in {path}"
    if _MODULE_RE.match(source):
        feeds = _module_feeds(source)
        if not feeds:
            raise InvalidInputError(f"calibration function '{source}' yielded no samples")
        if max_samples is not None:
            feeds = feeds[:max_samples]
        return check_feeds(feeds, inputs, source=source), f"{len(feeds)} samples from {source}"
    if not path.exists():
        raise UsageError(f"calibration data '{source}' does not exist", hint="give a directory, a .npz/.npy file, module:function or 'random'")
    raise InvalidInputError(
        f"calibration data '{source}' is not a directory, .npz/.npy file or module:function", path=source
    )


def to_float_list(text: str | None, option: str) -> tuple[float, ...] | None:
    """`0.485,0.456,0.406` -> floats (UsageError naming `option` otherwise)."""
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"{option} takes comma-separated numbers, not '{text}'") from None


def parse_size(text: str | None) -> tuple[int, int] | None:
    """`224` or `224x160` -> (height, width)."""
    if text is None:
        return None
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise UsageError(f"--size takes N or HxW, not '{text}'") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) <= 0:
        raise UsageError(f"--size takes N or HxW, not '{text}'")
    return values[0], values[1]
