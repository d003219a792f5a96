"""SSD detection layers (weiliu89/caffe): PriorBox and DetectionOutput."""

from __future__ import annotations

import math

import numpy as np

from edgecc.converters.caffe.graph import LAYERS, LayerContext, LayerError, Shape

__all__ = ["prior_boxes"]

#: marks a dimension only known at run time (the number of detections)
DYNAMIC = -1


def prior_boxes(param: object, layer_hw: tuple[int, int], image_hw: tuple[int, int]) -> np.ndarray:
    """PriorBoxLayer::Forward_cpu: (1, 2, H*W*num_priors*4) boxes then variances."""
    p = param
    min_sizes = [float(v) for v in p.min_size]  # type: ignore[attr-defined]
    max_sizes = [float(v) for v in p.max_size]  # type: ignore[attr-defined]
    if not min_sizes or any(v <= 0 for v in min_sizes):
        raise LayerError("PriorBox needs positive min_size values")
    if max_sizes and len(max_sizes) != len(min_sizes):
        raise LayerError(f"{len(max_sizes)} max_size for {len(min_sizes)} min_size values")
    if any(mx <= mn for mn, mx in zip(min_sizes, max_sizes)):
        raise LayerError("max_size must be larger than min_size")
    ratios = [1.0]
    for ratio in (float(v) for v in p.aspect_ratio):  # type: ignore[attr-defined]
        if any(abs(ratio - r) < 1e-6 for r in ratios):
            continue
        ratios.append(ratio)
        if p.flip:  # type: ignore[attr-defined]
            ratios.append(1.0 / ratio)
    has = p.HasField  # type: ignore[attr-defined]
    if has("img_h") or has("img_w"):
        img_h, img_w = int(p.img_h), int(p.img_w)  # type: ignore[attr-defined]
    elif has("img_size"):
        img_h = img_w = int(p.img_size)  # type: ignore[attr-defined]
    else:
        img_h, img_w = image_hw
    layer_h, layer_w = layer_hw
    if has("step_h") or has("step_w"):
        step_h, step_w = float(p.step_h), float(p.step_w)  # type: ignore[attr-defined]
    elif has("step"):
        step_h = step_w = float(p.step)  # type: ignore[attr-defined]
    else:
        step_h, step_w = img_h / layer_h, img_w / layer_w
    offset = float(p.offset)  # type: ignore[attr-defined]
    boxes: list[list[float]] = []
    for h in range(layer_h):
        for w in range(layer_w):
            center_x, center_y = (w + offset) * step_w, (h + offset) * step_h
            for index, min_size in enumerate(min_sizes):
                sizes = [(min_size, min_size)]
                if max_sizes:
                    side = math.sqrt(min_size * max_sizes[index])
                    sizes.append((side, side))
                sizes += [(min_size * math.sqrt(r), min_size / math.sqrt(r)) for r in ratios if abs(r - 1.0) >= 1e-6]
                for box_w, box_h in sizes:
                    boxes.append(
                        [
                            (center_x - box_w / 2.0) / img_w,
                            (center_y - box_h / 2.0) / img_h,
                            (center_x + box_w / 2.0) / img_w,
                            (center_y + box_h / 2.0) / img_h,
                        ]
                    )
    coords = np.asarray(boxes, dtype=np.float32).reshape(-1)
    if p.clip:  # type: ignore[attr-defined]
        coords = np.clip(coords, 0.0, 1.0)
    variance = [float(v) for v in p.variance]  # type: ignore[attr-defined]
    if not variance:
        variance = [0.1]
    if len(variance) not in (1, 4) or any(v <= 0 for v in variance):
        raise LayerError(f"variance {variance} must be one or four positive values")
    variances = np.tile(np.asarray(variance * (4 // len(variance)), dtype=np.float32), len(boxes))
    return np.stack([coords, variances])[None].astype(np.float32)


@LAYERS.register("PriorBox")
def prior_box(ctx: LayerContext) -> list[Shape]:
    """SSD PriorBox (min/max sizes, aspect ratios, flip, clip, steps, offset, variances) -> constant boxes."""
    feature = ctx.shape(0)
    if len(feature) != 4:
        raise LayerError(f"PriorBox over a rank-{len(feature)} input")
    image = ctx.shape(1) if len(ctx.inputs) > 1 else None
    if image is not None and len(image) != 4:
        raise LayerError(f"PriorBox image bottom of rank {len(image)}")
    param = ctx.layer.prior_box_param
    if image is None and not (param.HasField("img_size") or param.HasField("img_h")):
        raise LayerError("PriorBox needs the image as second bottom or img_size/img_h/img_w")
    priors = prior_boxes(param, (feature[2], feature[3]), (image[2], image[3]) if image else (0, 0))
    ctx.node("Identity", [ctx.const("priors", priors)], ctx.outputs)
    return [priors.shape]


def _decode(ctx: LayerContext, loc: str, prior: str, priors: int, code_type: int, encoded: bool) -> str:
    """DecodeBBox for every prior: (priors, 4) boxes as xmin, ymin, xmax, ymax."""
    table = ctx.node("Reshape", [prior, ctx.ints("prior_shape", [2, priors, 4])])[0]
    box = ctx.node("Gather", [table, ctx.ints("zero", [0])], axis=0)[0]
    box = ctx.node("Reshape", [box, ctx.ints("box_shape", [priors, 4])])[0]
    delta = loc
    if not encoded:
        variance = ctx.node("Gather", [table, ctx.ints("one", [1])], axis=0)[0]
        variance = ctx.node("Reshape", [variance, ctx.ints("var_shape", [priors, 4])])[0]
        delta = ctx.node("Mul", [loc, variance])[0]
    starts, ends = ctx.ints("lo", [0]), ctx.ints("hi", [2])
    ends2 = ctx.ints("end", [4])
    axis = ctx.ints("axis", [1])
    box_min = ctx.node("Slice", [box, starts, ends, axis])[0]
    box_max = ctx.node("Slice", [box, ends, ends2, axis])[0]
    delta_lo = ctx.node("Slice", [delta, starts, ends, axis])[0]
    delta_hi = ctx.node("Slice", [delta, ends, ends2, axis])[0]
    if code_type == 1:  # CORNER
        new_min = ctx.node("Add", [box_min, delta_lo])[0]
        new_max = ctx.node("Add", [box_max, delta_hi])[0]
        return ctx.node("Concat", [new_min, new_max], axis=1)[0]
    size = ctx.node("Sub", [box_max, box_min])[0]
    if code_type == 3:  # CORNER_SIZE
        new_min = ctx.node("Add", [box_min, ctx.node("Mul", [delta_lo, size])[0]])[0]
        new_max = ctx.node("Add", [box_max, ctx.node("Mul", [delta_hi, size])[0]])[0]
        return ctx.node("Concat", [new_min, new_max], axis=1)[0]
    half = ctx.const("half", 0.5)
    center = ctx.node("Mul", [ctx.node("Add", [box_min, box_max])[0], half])[0]
    new_center = ctx.node("Add", [ctx.node("Mul", [delta_lo, size])[0], center])[0]
    new_half = ctx.node("Mul", [ctx.node("Mul", [ctx.node("Exp", [delta_hi])[0], size])[0], half])[0]
    new_min = ctx.node("Sub", [new_center, new_half])[0]
    new_max = ctx.node("Add", [new_center, new_half])[0]
    return ctx.node("Concat", [new_min, new_max], axis=1)[0]


@LAYERS.register("DetectionOutput")
def detection_output(ctx: LayerContext) -> list[Shape]:
    """SSD DetectionOutput (decode, per-class top_k + NMS, keep_top_k) -> NonMaxSuppression subgraph, \
rows [image, label, score, box]."""
    param = ctx.layer.detection_output_param
    if len(ctx.inputs) < 3:
        raise LayerError("DetectionOutput needs loc, conf and prior bottoms")
    loc_shape, conf_shape, prior_shape = ctx.shape(0), ctx.shape(1), ctx.shape(2)
    if loc_shape[0] != 1:
        raise LayerError(f"batch {loc_shape[0]} (edgecc converts DetectionOutput for one image)")
    if not param.share_location:
        raise LayerError("share_location: false")
    nms = param.nms_param
    if abs(float(nms.eta) - 1.0) > 1e-6:
        raise LayerError(f"adaptive NMS (eta {nms.eta})")
    if param.code_type not in (1, 2, 3):
        raise LayerError(f"code_type {param.code_type}")
    classes = int(param.num_classes)
    priors = int(np.prod(prior_shape)) // 8
    if int(np.prod(loc_shape)) != priors * 4 or int(np.prod(conf_shape)) != priors * classes:
        raise LayerError(f"loc {loc_shape} / conf {conf_shape} do not match {priors} priors and {classes} classes")
    loc = ctx.node("Reshape", [ctx.inputs[0], ctx.ints("loc_shape", [priors, 4])])[0]
    boxes = _decode(ctx, loc, ctx.inputs[2], priors, int(param.code_type), bool(param.variance_encoded_in_target))
    labels = [c for c in range(classes) if c != int(param.background_label_id)]
    if not labels:
        raise LayerError("no class besides the background")
    conf = ctx.node("Reshape", [ctx.inputs[1], ctx.ints("conf_shape", [priors, classes])])[0]
    scores = ctx.node("Transpose", [conf], perm=[1, 0])[0]
    scores = ctx.node("Gather", [scores, ctx.ints("labels", labels)], axis=0)[0]  # (C', P)
    top_k = int(nms.top_k) if nms.HasField("top_k") and int(nms.top_k) > 0 else priors
    top_k = min(top_k, priors)
    # SSD keeps the top_k scores of each class before NMS: each class becomes a batch entry of its own boxes
    class_scores, class_index = ctx.node("TopK", [scores, ctx.ints("top_k", [top_k])], 2, axis=1)
    # SSD's overlap treats an inverted box (xmax < xmin) as empty; onnxruntime would reorder its corners
    low = ctx.node("Slice", [boxes, ctx.ints("c0", [0]), ctx.ints("c2", [2]), ctx.ints("c_axis", [1])])[0]
    high = ctx.node("Slice", [boxes, ctx.ints("c2b", [2]), ctx.ints("c4", [4]), ctx.ints("c_axis2", [1])])[0]
    nms_boxes = ctx.node("Concat", [low, ctx.node("Max", [high, low])[0]], axis=1)[0]
    class_boxes = ctx.node("Gather", [nms_boxes, class_index], axis=0)[0]  # (C', K, 4)
    nms_scores = ctx.node("Unsqueeze", [class_scores, ctx.ints("axis1", [1])])[0]  # (C', 1, K)
    nms_inputs = [class_boxes, nms_scores, ctx.ints("max_out", [top_k]), ctx.const("iou", [float(nms.nms_threshold)])]
    if param.HasField("confidence_threshold"):
        nms_inputs.append(ctx.const("score_threshold", [float(param.confidence_threshold)]))
    selected = ctx.node("NonMaxSuppression", nms_inputs)[0]  # (M, 3): class row, 0, position in top_k
    rows = ctx.node("Gather", [selected, ctx.ints("col0", [0, 2])], axis=1)[0]
    score = ctx.node("GatherND", [class_scores, rows])[0]  # (M,)
    original = ctx.node("GatherND", [class_index, rows])[0]
    class_row = ctx.node("Gather", [selected, ctx.ints("col_class", [0])], axis=1)[0]
    class_row = ctx.node("Reshape", [class_row, ctx.ints("flat", [-1])])[0]
    label = ctx.node("Cast", [ctx.node("Gather", [ctx.ints("label_ids", labels), class_row], axis=0)[0]], to=1)[0]
    count = ctx.node("Shape", [score])[0]
    keep_top_k = int(param.keep_top_k)
    if keep_top_k > -1:
        kept = ctx.node("Min", [count, ctx.ints("keep_top_k", [keep_top_k])])[0]
        _, best = ctx.node("TopK", [score, kept], 2, axis=0)
        score = ctx.node("Gather", [score, best], axis=0)[0]
        original = ctx.node("Gather", [original, best], axis=0)[0]
        label = ctx.node("Gather", [label, best], axis=0)[0]
        count = kept
    # SSD writes detections by label (ascending), each label's by score (descending): sort on label*(1+2S) + (S - score)
    spread = ctx.node("ReduceMax", [ctx.node("Abs", [score])[0]], keepdims=1)[0]
    spread = ctx.node("Add", [spread, ctx.const("tiny", [1e-3])])[0]
    scale = ctx.node("Add", [ctx.node("Mul", [spread, ctx.const("two", [2.0])])[0], ctx.const("one_f", [1.0])])[0]
    key = ctx.node("Add", [ctx.node("Mul", [label, scale])[0], ctx.node("Sub", [spread, score])[0]])[0]
    _, order = ctx.node("TopK", [key, count], 2, axis=0, largest=0, sorted=1)
    score = ctx.node("Gather", [score, order], axis=0)[0]
    label = ctx.node("Gather", [label, order], axis=0)[0]
    box = ctx.node("Gather", [boxes, ctx.node("Gather", [original, order], axis=0)[0]], axis=0)[0]  # (M, 4)
    column = ctx.ints("column", [-1, 1])
    image = ctx.node("Mul", [ctx.node("Reshape", [score, column])[0], ctx.const("zero_f", [0.0])])[0]
    rows7 = ctx.node(
        "Concat", [image, ctx.node("Reshape", [label, column])[0], ctx.node("Reshape", [score, column])[0], box], axis=1
    )[0]
    # no detection: SSD writes one row [0, -1, -1, -1, -1, -1, -1]
    fake = ctx.const("empty_row", [[0.0] + [-1.0] * 6])
    padded = ctx.node("Concat", [rows7, fake], axis=0)[0]
    length = ctx.node("Max", [count, ctx.ints("one_row", [1])])[0]
    sliced = ctx.node("Slice", [padded, ctx.ints("start", [0]), length, ctx.ints("axis0", [0])])[0]
    ctx.node("Reshape", [sliced, ctx.ints("out_shape", [1, 1, -1, 7])], ctx.outputs)
    return [(1, 1, DYNAMIC, 7)]
