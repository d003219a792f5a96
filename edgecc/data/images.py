"""Image folders as sample data: decode, resize and centre-crop, scale, normalise, lay out as the model's input."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgecc.errors import InvalidInputError, UsageError
from edgecc.inputs import TensorInfo

if TYPE_CHECKING:
    import numpy as np

__all__ = ["IMAGE_SUFFIXES", "ImageOptions", "image_samples", "parse_size", "to_float_list"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp")


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


def _image_layout(info: TensorInfo, options: ImageOptions, path: Path) -> tuple[str, int, int, int]:
    """(layout, channels, height, width) of an image input."""
    if info.shape is None or len(info.shape) != 4:
        raise InvalidInputError(
            f"images in '{path}' need a 4-D image input, but input '{info.name}' has shape {info.shape_text()}",
            path=path,
            hint="give .npz/.npy data instead",
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


def _read_image(file: Path, channels: int, height: int, width: int, options: ImageOptions) -> "np.ndarray":
    import numpy as np

    from edgecc.fileio import read_bytes

    try:
        import cv2
    except ImportError:
        from edgecc.errors import MissingDependencyError

        raise MissingDependencyError(
            "reading images needs OpenCV", hint="pip install 'edgecc[quantize]' (opencv-python-headless)"
        ) from None
    data = np.frombuffer(read_bytes(file, what="image"), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR)
    if image is None:
        raise InvalidInputError(f"image '{file}' cannot be decoded (corrupt or not an image)", path=file)
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


def image_samples(files: Sequence[Path], info: TensorInfo, options: ImageOptions, folder: Path) -> list[dict[str, "np.ndarray"]]:
    """One sample per image file for input `info` (batch 1, the input's float dtype)."""
    import numpy as np

    layout, channels, height, width = _image_layout(info, options, folder)
    samples = []
    for file in files:
        image = _read_image(file, channels, height, width, options)
        tensor = image.transpose(2, 0, 1) if layout == "nchw" else image
        samples.append(
            {info.name: np.ascontiguousarray(tensor[None]).astype(info.dtype if info.dtype.startswith("float") else "float32")}
        )
    return samples
