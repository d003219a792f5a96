"""numpy reference implementations of Caffe2 operators, written from the Caffe2 operator documentation.

No Caffe2 runtime can be installed here (see the helper report); these loops follow the
documented semantics directly (plain loops, no ONNX or onnxruntime involved).
"""

from __future__ import annotations

import math

import numpy as np


def conv2d(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), group=1
) -> np.ndarray:
    """NCHW convolution; pads are [t, l, b, r]; w is [M, C/group, kH, kW]."""
    n, _, h, wd = x.shape
    m, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    ekh, ekw = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    oh = (h + pads[0] + pads[2] - ekh) // stride[0] + 1
    ow = (wd + pads[1] + pads[3] - ekw) // stride[1] + 1
    y = np.zeros((n, m, oh, ow), np.float64)
    mg = m // group
    for g in range(group):
        for i in range(oh):
            for j in range(ow):
                patch = xp[
                    :,
                    g * cg : (g + 1) * cg,
                    i * stride[0] : i * stride[0] + ekh : dilation[0],
                    j * stride[1] : j * stride[1] + ekw : dilation[1],
                ]
                y[:, g * mg : (g + 1) * mg, i, j] = np.einsum("nchw,mchw->nm", patch, w[g * mg : (g + 1) * mg])
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y.astype(np.float32)


def conv_transpose2d(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride=(1, 1), pads=(0, 0, 0, 0), adj=(0, 0)
) -> np.ndarray:
    """NCHW transposed convolution (group 1); w is [C_in, C_out, kH, kW]; output (H-1)*s - pad_t - pad_b + k + adj."""
    n, _, h, wd = x.shape
    _, m, kh, kw = w.shape
    full = np.zeros((n, m, (h - 1) * stride[0] + kh + adj[0], (wd - 1) * stride[1] + kw + adj[1]), np.float64)
    for i in range(h):
        for j in range(wd):
            full[:, :, i * stride[0] : i * stride[0] + kh, j * stride[1] : j * stride[1] + kw] += np.einsum(
                "nc,cmhw->nmhw", x[:, :, i, j], w
            )
    y = full[:, :, pads[0] : full.shape[2] - pads[2], pads[1] : full.shape[3] - pads[3]]
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return y.astype(np.float32)


def pool_output_size(size: int, kernel: int, stride: int, head: int, tail: int, legacy: bool) -> tuple[int, int]:
    """Caffe2 ConvPoolOpBase::ComputeSizeAndPad: (output size, effective tail pad)."""
    if not legacy:
        return (size + head + tail - kernel) // stride + 1, tail
    out = math.ceil((size + 2 * head - kernel) / stride + 1)
    if head > 0 and (out - 1) * stride >= size + head:
        out -= 1
    standard = (size + 2 * head - kernel) // stride + 1
    return out, head + stride * (out - standard)


def pool2d(x: np.ndarray, kind: str, kernel, stride, pads=(0, 0, 0, 0), *, legacy=False, count_include_pad=False) -> np.ndarray:
    """NCHW max/average pooling as Caffe2 documents it: average divides by the window inside the image,
    or by kernel_h*kernel_w with count_include_pad."""
    n, c, h, w = x.shape
    oh, _ = pool_output_size(h, kernel[0], stride[0], pads[0], pads[2], legacy)
    ow, _ = pool_output_size(w, kernel[1], stride[1], pads[1], pads[3], legacy)
    y = np.zeros((n, c, oh, ow), np.float64)
    for i in range(oh):
        for j in range(ow):
            top, left = i * stride[0] - pads[0], j * stride[1] - pads[1]
            t0, l0, b0, r0 = max(top, 0), max(left, 0), min(top + kernel[0], h), min(left + kernel[1], w)
            window = x[:, :, t0:b0, l0:r0]
            if kind == "max":
                y[:, :, i, j] = window.max(axis=(2, 3))
            else:
                count = kernel[0] * kernel[1] if count_include_pad else (b0 - t0) * (r0 - l0)
                y[:, :, i, j] = window.sum(axis=(2, 3)) / count
    return y.astype(np.float32)


def fc(x: np.ndarray, w: np.ndarray, b: np.ndarray, axis=1, axis_w=1) -> np.ndarray:
    """Y = X_2d W_2d^T + b, X coerced to 2-D at axis, W at axis_w; Y has X.shape[:axis] + [N]."""
    x2 = x.reshape(int(np.prod(x.shape[:axis])), -1).astype(np.float64)
    w2 = w.reshape(int(np.prod(w.shape[:axis_w])), -1).astype(np.float64)
    return (x2 @ w2.T + b).reshape(x.shape[:axis] + (w2.shape[0],)).astype(np.float32)


def spatial_bn(x, scale, bias, mean, var, eps=1e-5, nhwc=False) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) * scale + bias per channel."""
    shape = (1, 1, 1, -1) if nhwc else (1, -1, 1, 1)

    def r(v: np.ndarray) -> np.ndarray:
        return v.reshape(shape).astype(np.float64)

    return ((x - r(mean)) / np.sqrt(r(var) + eps) * r(scale) + r(bias)).astype(np.float32)


def lrn(x, size, alpha, beta, bias) -> np.ndarray:
    """NCHW cross-channel LRN: x / (bias + alpha/size * sum_{window} x^2)^beta."""
    c = x.shape[1]
    sq = x.astype(np.float64) ** 2
    y = np.zeros_like(sq)
    half = (size - 1) // 2
    for ch in range(c):
        lo, hi = max(0, ch - half), min(c, ch + size - half)
        y[:, ch] = x[:, ch] / (bias + alpha / size * sq[:, lo:hi].sum(axis=1)) ** beta
    return y.astype(np.float32)


def softmax(x: np.ndarray, axis=1) -> np.ndarray:
    """Caffe2 Softmax: coerce to 2-D at axis, normalise each row."""
    x2 = x.reshape(int(np.prod(x.shape[:axis])), -1).astype(np.float64)
    e = np.exp(x2 - x2.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).reshape(x.shape).astype(np.float32)


def channel_shuffle(x: np.ndarray, group: int) -> np.ndarray:
    """NCHW: output channel k*group + g takes input channel g*(C/group) + k."""
    c = x.shape[1]
    y = np.empty_like(x)
    per = c // group
    for g in range(group):
        for k in range(per):
            y[:, k * group + g] = x[:, g * per + k]
    return y


def resize_nearest(x: np.ndarray, height_scale: float, width_scale: float) -> np.ndarray:
    """NCHW: out[y, x] = in[min(int(y / hs), H-1), min(int(x / ws), W-1)], out size int(H*hs) x int(W*ws)."""
    n, c, h, w = x.shape
    oh, ow = int(h * height_scale), int(w * width_scale)
    y = np.empty((n, c, oh, ow), x.dtype)
    for i in range(oh):
        for j in range(ow):
            y[:, :, i, j] = x[:, :, min(int(i / height_scale), h - 1), min(int(j / width_scale), w - 1)]
    return y


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Caffe2 Int8Quantize: clamp(nearbyint(x / scale) + zero_point, 0, 255) as uint8."""
    return np.clip(np.rint(x.astype(np.float64) / scale) + zero_point, 0, 255).astype(np.uint8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Caffe2 Int8Dequantize: (q - zero_point) * scale."""
    return ((q.astype(np.int32) - zero_point) * scale).astype(np.float32)
