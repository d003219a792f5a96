"""Numpy re-implementations of Caffe layers, written from Caffe's layer sources, for what OpenCV lacks or gets wrong."""

from __future__ import annotations

import math

import numpy as np


def pool_output_size(size: int, kernel: int, pad: int, stride: int, ceil: bool = True) -> int:
    """PoolingLayer::Reshape: ceil (or floor) rounding, then drop a last window that starts in the padding."""
    span = size + 2 * pad - kernel
    count = (math.ceil(span / stride) if ceil else span // stride) + 1
    if pad and (count - 1) * stride >= size + pad:
        count -= 1
    return count


def pool(
    x: np.ndarray, kernel: tuple[int, int], pad: tuple[int, int], stride: tuple[int, int], method: str, ceil: bool = True
) -> np.ndarray:
    """PoolingLayer::Forward_cpu for MAX and AVE, loop for loop."""
    n, c, h, w = x.shape
    oh = pool_output_size(h, kernel[0], pad[0], stride[0], ceil)
    ow = pool_output_size(w, kernel[1], pad[1], stride[1], ceil)
    out = np.zeros((n, c, oh, ow), dtype=np.float64)
    for ph in range(oh):
        for pw in range(ow):
            hstart, wstart = ph * stride[0] - pad[0], pw * stride[1] - pad[1]
            if method == "MAX":
                hend, wend = min(hstart + kernel[0], h), min(wstart + kernel[1], w)
                hstart, wstart = max(hstart, 0), max(wstart, 0)
                window = x[:, :, hstart:hend, wstart:wend]
                out[:, :, ph, pw] = window.max(axis=(2, 3)) if window.size else -np.finfo(np.float32).max
            else:
                hend, wend = min(hstart + kernel[0], h + pad[0]), min(wstart + kernel[1], w + pad[1])
                pool_size = (hend - hstart) * (wend - wstart)
                hstart, wstart = max(hstart, 0), max(wstart, 0)
                hend, wend = min(hend, h), min(wend, w)
                total = x[:, :, hstart:hend, wstart:wend].sum(axis=(2, 3)) if hend > hstart and wend > wstart else 0.0
                out[:, :, ph, pw] = total / pool_size
    return out.astype(np.float32)


def inner_product(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, axis: int = 1, transpose: bool = False
) -> np.ndarray:
    """InnerProductLayer::Forward_cpu: top = bottom * W^T (or bottom * W with transpose) + b."""
    outer = x.shape[:axis]
    flat = x.reshape(int(np.prod(outer)), -1).astype(np.float64)
    y = flat @ (weight if transpose else weight.T)
    if bias is not None:
        y = y + bias
    return y.reshape(*outer, -1).astype(np.float32)


def lrn_across(x: np.ndarray, size: int, alpha: float, beta: float, k: float) -> np.ndarray:
    """LRNLayer::CrossChannelForward_cpu: x / (k + alpha/size * sum of squares over `size` channels)^beta."""
    x64 = x.astype(np.float64)
    squares = x64**2
    pad = (size - 1) // 2
    padded = np.pad(squares, ((0, 0), (pad, size - 1 - pad), (0, 0), (0, 0)))
    window = sum(padded[:, i : i + x.shape[1]] for i in range(size))
    return (x64 / (k + alpha / size * window) ** beta).astype(np.float32)


def normalize(x: np.ndarray, scale: np.ndarray, across_spatial: bool, channel_shared: bool, eps: float = 1e-10) -> np.ndarray:
    """SSD's NormalizeLayer::Forward_cpu."""
    x64 = x.astype(np.float64)
    axes = (1, 2, 3) if across_spatial else (1,)
    norm = np.sqrt((x64**2).sum(axis=axes, keepdims=True) + eps)
    factor = scale.reshape(1) if channel_shared else scale.reshape(1, -1, 1, 1)
    return (x64 / norm * factor).astype(np.float32)


def scale_bias(x: np.ndarray, scale: np.ndarray | None, bias: np.ndarray | None, axis: int) -> np.ndarray:
    """ScaleLayer / BiasLayer: broadcast the parameter over x's axes [axis, axis + ndim)."""

    def expand(p: np.ndarray) -> np.ndarray:
        return p.reshape(p.shape + (1,) * (x.ndim - axis - p.ndim)) if p.ndim else p

    y = x.astype(np.float64)
    if scale is not None:
        y = y * expand(scale)
    if bias is not None:
        y = y + expand(bias)
    return y.astype(np.float32)


def interp_bilinear(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """PSPNet's caffe_cpu_interp2: bilinear with corners aligned (ratio (in-1)/(out-1), 0 for a 1-pixel output)."""

    def taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ratio = (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
        pos = ratio * np.arange(size_out)
        low = pos.astype(np.int64)
        step = (low < size_in - 1).astype(np.int64)
        return low, low + step, pos - low

    h0, h1, hl = taps(x.shape[2], height)
    w0, w1, wl = taps(x.shape[3], width)
    x64 = x.astype(np.float64)
    top = x64[:, :, h0][:, :, :, w0] * (1 - wl) + x64[:, :, h0][:, :, :, w1] * wl
    bottom = x64[:, :, h1][:, :, :, w0] * (1 - wl) + x64[:, :, h1][:, :, :, w1] * wl
    return (top * (1 - hl)[:, None] + bottom * hl[:, None]).astype(np.float32)


def argmax(x: np.ndarray, top_k: int = 1, out_max_val: bool = False, axis: int | None = None) -> np.ndarray:
    """ArgMaxLayer::Forward_cpu (indices as floats; values with out_max_val)."""
    if axis is not None:
        order = np.argsort(-x, axis=axis, kind="stable")
        index = np.take(order, np.arange(top_k), axis=axis)
        if out_max_val:
            return np.take_along_axis(x, index, axis=axis)
        return index.astype(np.float32)
    flat = x.reshape(x.shape[0], -1)
    index = np.argsort(-flat, axis=1, kind="stable")[:, :top_k]
    values = np.take_along_axis(flat, index, axis=1)
    if out_max_val:
        return np.stack([index.astype(np.float32), values], axis=1)
    return index.astype(np.float32)[:, None, :]


def prior_box(
    layer_hw: tuple[int, int],
    image_hw: tuple[int, int],
    min_sizes: list[float],
    max_sizes: list[float],
    aspect_ratios: list[float],
    flip: bool,
    clip: bool,
    variance: list[float],
    step_hw: tuple[float, float] | None = None,
    offset: float = 0.5,
) -> np.ndarray:
    """SSD's PriorBoxLayer::Forward_cpu, loop for loop (img_h/img_w given as image_hw)."""
    ratios = [1.0]
    for ar in aspect_ratios:
        if all(abs(ar - r) >= 1e-6 for r in ratios):
            ratios.append(ar)
            if flip:
                ratios.append(1.0 / ar)
    img_h, img_w = image_hw
    step_h, step_w = step_hw if step_hw else (img_h / layer_hw[0], img_w / layer_hw[1])
    top: list[float] = []
    for h in range(layer_hw[0]):
        for w in range(layer_hw[1]):
            cx, cy = (w + offset) * step_w, (h + offset) * step_h
            for s, min_size in enumerate(min_sizes):
                shapes = [(min_size, min_size)]
                if max_sizes:
                    shapes.append((math.sqrt(min_size * max_sizes[s]),) * 2)
                for ar in ratios:
                    if abs(ar - 1.0) < 1e-6:
                        continue
                    shapes.append((min_size * math.sqrt(ar), min_size / math.sqrt(ar)))
                for bw, bh in shapes:
                    top += [(cx - bw / 2.0) / img_w, (cy - bh / 2.0) / img_h, (cx + bw / 2.0) / img_w, (cy + bh / 2.0) / img_h]
    boxes = np.array(top, dtype=np.float64)
    if clip:
        boxes = np.clip(boxes, 0.0, 1.0)
    var = variance if len(variance) == 4 else [variance[0] if variance else 0.1] * 4
    return np.stack([boxes, np.tile(var, len(boxes) // 4)])[None].astype(np.float32)
