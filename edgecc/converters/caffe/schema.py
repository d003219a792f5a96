"""edgecc's own protobuf schema for the subset of Caffe's NetParameter it reads.

The descriptor is built here in Python (no protoc, no generated code), with the
field numbers of BVLC caffe's `src/caffe/proto/caffe.proto` and, for the SSD
layers (Permute, PriorBox, DetectionOutput, Normalize), of weiliu89/caffe's
`ssd` branch. Layer types that are not in those files use numbers of the forks
that introduced them (noted beside each). Only field names matter for
prototxt text; numbers matter for binary caffemodels.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ENUMS", "FIELD_TABLE", "V1_TYPES", "Blob", "CaffeNet", "NetInput", "TrainedLayer", "messages", "sniff"]

# (name, number, label, type, type_name or default) where label is "o" optional, "r" repeated, "p" repeated packed.
# type: a scalar type name, "msg:Name" for a message, "enum:Scope.Name" for an enum.
Field = tuple[str, int, str, str, Any]

ENUMS: dict[str, list[tuple[str, int]]] = {
    "Phase": [("TRAIN", 0), ("TEST", 1)],
    "ParamSpec.DimCheckMode": [("STRICT", 0), ("PERMISSIVE", 1)],
    "FillerParameter.VarianceNorm": [("FAN_IN", 0), ("FAN_OUT", 1), ("AVERAGE", 2)],
    "ConvolutionParameter.Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)],
    "PoolingParameter.PoolMethod": [("MAX", 0), ("AVE", 1), ("STOCHASTIC", 2)],
    "PoolingParameter.Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)],
    "PoolingParameter.RoundMode": [("CEIL", 0), ("FLOOR", 1)],
    "EltwiseParameter.EltwiseOp": [("PROD", 0), ("SUM", 1), ("MAX", 2)],
    "LRNParameter.NormRegion": [("ACROSS_CHANNELS", 0), ("WITHIN_CHANNEL", 1)],
    "LRNParameter.Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)],
    "ReLUParameter.Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)],
    "SigmoidParameter.Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)],
    "TanHParameter.Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)],
    "SoftmaxParameter.Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)],
    "ReductionParameter.ReductionOp": [("SUM", 1), ("ASUM", 2), ("SUMSQ", 3), ("MEAN", 4)],
    "LossParameter.NormalizationMode": [("FULL", 0), ("VALID", 1), ("BATCH_SIZE", 2), ("NONE", 3)],
    "PriorBoxParameter.CodeType": [("CORNER", 1), ("CENTER_SIZE", 2), ("CORNER_SIZE", 3)],
    "DataParameter.DB": [("LEVELDB", 0), ("LMDB", 1)],
    "V1LayerParameter.LayerType": [
        ("NONE", 0),
        ("ABSVAL", 35),
        ("ACCURACY", 1),
        ("ARGMAX", 30),
        ("BNLL", 2),
        ("CONCAT", 3),
        ("CONTRASTIVE_LOSS", 37),
        ("CONVOLUTION", 4),
        ("DATA", 5),
        ("DECONVOLUTION", 39),
        ("DROPOUT", 6),
        ("DUMMY_DATA", 32),
        ("EUCLIDEAN_LOSS", 7),
        ("ELTWISE", 25),
        ("EXP", 38),
        ("FLATTEN", 8),
        ("HDF5_DATA", 9),
        ("HDF5_OUTPUT", 10),
        ("HINGE_LOSS", 28),
        ("IM2COL", 11),
        ("IMAGE_DATA", 12),
        ("INFOGAIN_LOSS", 13),
        ("INNER_PRODUCT", 14),
        ("LRN", 15),
        ("MEMORY_DATA", 29),
        ("MULTINOMIAL_LOGISTIC_LOSS", 16),
        ("MVN", 34),
        ("POOLING", 17),
        ("POWER", 26),
        ("RELU", 18),
        ("SIGMOID", 19),
        ("SIGMOID_CROSS_ENTROPY_LOSS", 27),
        ("SILENCE", 36),
        ("SOFTMAX", 20),
        ("SOFTMAX_LOSS", 21),
        ("SPLIT", 22),
        ("SLICE", 33),
        ("TANH", 23),
        ("WINDOW_DATA", 24),
        ("THRESHOLD", 31),
    ],
    "V1LayerParameter.DimCheckMode": [("STRICT", 0), ("PERMISSIVE", 1)],
}


def _ENGINE(scope: str, number: int) -> Field:
    return ("engine", number, "o", f"enum:{scope}.Engine", None)


# Layer-type parameter messages shared by LayerParameter and V1LayerParameter: name -> (field in LayerParameter, number)
MESSAGES: dict[str, list[Field]] = {
    "BlobShape": [("dim", 1, "p", "int64", None)],
    "BlobProto": [
        ("shape", 7, "o", "msg:BlobShape", None),
        ("data", 5, "p", "float", None),
        ("diff", 6, "p", "float", None),
        ("double_data", 8, "p", "double", None),
        ("double_diff", 9, "p", "double", None),
        ("num", 1, "o", "int32", 0),
        ("channels", 2, "o", "int32", 0),
        ("height", 3, "o", "int32", 0),
        ("width", 4, "o", "int32", 0),
    ],
    "NetState": [("phase", 1, "o", "enum:Phase", "TEST"), ("level", 2, "o", "int32", 0), ("stage", 3, "r", "string", None)],
    "NetStateRule": [
        ("phase", 1, "o", "enum:Phase", None),
        ("min_level", 2, "o", "int32", None),
        ("max_level", 3, "o", "int32", None),
        ("stage", 4, "r", "string", None),
        ("not_stage", 5, "r", "string", None),
    ],
    "ParamSpec": [
        ("name", 1, "o", "string", None),
        ("share_mode", 2, "o", "enum:ParamSpec.DimCheckMode", None),
        ("lr_mult", 3, "o", "float", 1.0),
        ("decay_mult", 4, "o", "float", 1.0),
    ],
    "FillerParameter": [
        ("type", 1, "o", "string", "constant"),
        ("value", 2, "o", "float", 0.0),
        ("min", 3, "o", "float", 0.0),
        ("max", 4, "o", "float", 1.0),
        ("mean", 5, "o", "float", 0.0),
        ("std", 6, "o", "float", 1.0),
        ("sparse", 7, "o", "int32", -1),
        ("variance_norm", 8, "o", "enum:FillerParameter.VarianceNorm", "FAN_IN"),
    ],
    "TransformationParameter": [
        ("scale", 1, "o", "float", 1.0),
        ("mirror", 2, "o", "bool", False),
        ("crop_size", 3, "o", "uint32", 0),
        ("mean_file", 4, "o", "string", None),
        ("mean_value", 5, "r", "float", None),
        ("force_color", 6, "o", "bool", False),
        ("force_gray", 7, "o", "bool", False),
    ],
    "LossParameter": [
        ("ignore_label", 1, "o", "int32", None),
        ("normalization", 3, "o", "enum:LossParameter.NormalizationMode", "VALID"),
        ("normalize", 2, "o", "bool", None),
    ],
    "AccuracyParameter": [("top_k", 1, "o", "uint32", 1), ("axis", 2, "o", "int32", 1), ("ignore_label", 3, "o", "int32", None)],
    "ArgMaxParameter": [("out_max_val", 1, "o", "bool", False), ("top_k", 2, "o", "uint32", 1), ("axis", 3, "o", "int32", None)],
    "ConcatParameter": [("axis", 2, "o", "int32", 1), ("concat_dim", 1, "o", "uint32", 1)],
    "BatchNormParameter": [
        ("use_global_stats", 1, "o", "bool", None),
        ("moving_average_fraction", 2, "o", "float", 0.999),
        ("eps", 3, "o", "float", 1e-5),
    ],
    "BiasParameter": [
        ("axis", 1, "o", "int32", 1),
        ("num_axes", 2, "o", "int32", 1),
        ("filler", 3, "o", "msg:FillerParameter", None),
    ],
    "ConvolutionParameter": [
        ("num_output", 1, "o", "uint32", None),
        ("bias_term", 2, "o", "bool", True),
        ("pad", 3, "r", "uint32", None),
        ("kernel_size", 4, "r", "uint32", None),
        ("stride", 6, "r", "uint32", None),
        ("dilation", 18, "r", "uint32", None),
        ("pad_h", 9, "o", "uint32", 0),
        ("pad_w", 10, "o", "uint32", 0),
        ("kernel_h", 11, "o", "uint32", None),
        ("kernel_w", 12, "o", "uint32", None),
        ("stride_h", 13, "o", "uint32", None),
        ("stride_w", 14, "o", "uint32", None),
        ("group", 5, "o", "uint32", 1),
        ("weight_filler", 7, "o", "msg:FillerParameter", None),
        ("bias_filler", 8, "o", "msg:FillerParameter", None),
        _ENGINE("ConvolutionParameter", 15),
        ("axis", 16, "o", "int32", 1),
        ("force_nd_im2col", 17, "o", "bool", False),
    ],
    "CropParameter": [("axis", 1, "o", "int32", 2), ("offset", 2, "r", "uint32", None)],
    "DataParameter": [
        ("source", 1, "o", "string", None),
        ("batch_size", 4, "o", "uint32", None),
        ("rand_skip", 7, "o", "uint32", 0),
        ("backend", 8, "o", "enum:DataParameter.DB", "LEVELDB"),
        ("scale", 2, "o", "float", 1.0),
        ("mean_file", 3, "o", "string", None),
        ("crop_size", 5, "o", "uint32", 0),
        ("mirror", 6, "o", "bool", False),
    ],
    "DropoutParameter": [("dropout_ratio", 1, "o", "float", 0.5), ("scale_train", 2, "o", "bool", True)],
    "EltwiseParameter": [
        ("operation", 1, "o", "enum:EltwiseParameter.EltwiseOp", "SUM"),
        ("coeff", 2, "r", "float", None),
        ("stable_prod_grad", 3, "o", "bool", True),
    ],
    "ELUParameter": [("alpha", 1, "o", "float", 1.0)],
    "ExpParameter": [("base", 1, "o", "float", -1.0), ("scale", 2, "o", "float", 1.0), ("shift", 3, "o", "float", 0.0)],
    "FlattenParameter": [("axis", 1, "o", "int32", 1), ("end_axis", 2, "o", "int32", -1)],
    "InnerProductParameter": [
        ("num_output", 1, "o", "uint32", None),
        ("bias_term", 2, "o", "bool", True),
        ("weight_filler", 3, "o", "msg:FillerParameter", None),
        ("bias_filler", 4, "o", "msg:FillerParameter", None),
        ("axis", 5, "o", "int32", 1),
        ("transpose", 6, "o", "bool", False),
    ],
    "InputParameter": [("shape", 1, "r", "msg:BlobShape", None)],
    "LogParameter": [("base", 1, "o", "float", -1.0), ("scale", 2, "o", "float", 1.0), ("shift", 3, "o", "float", 0.0)],
    "LRNParameter": [
        ("local_size", 1, "o", "uint32", 5),
        ("alpha", 2, "o", "float", 1.0),
        ("beta", 3, "o", "float", 0.75),
        ("norm_region", 4, "o", "enum:LRNParameter.NormRegion", "ACROSS_CHANNELS"),
        ("k", 5, "o", "float", 1.0),
        _ENGINE("LRNParameter", 6),
    ],
    "MVNParameter": [
        ("normalize_variance", 1, "o", "bool", True),
        ("across_channels", 2, "o", "bool", False),
        ("eps", 3, "o", "float", 1e-9),
    ],
    "NormalizeParameter": [
        ("across_spatial", 1, "o", "bool", True),
        ("scale_filler", 2, "o", "msg:FillerParameter", None),
        ("channel_shared", 3, "o", "bool", True),
        ("eps", 4, "o", "float", 1e-10),
    ],
    "PermuteParameter": [("order", 1, "r", "uint32", None)],
    "PoolingParameter": [
        ("pool", 1, "o", "enum:PoolingParameter.PoolMethod", "MAX"),
        ("pad", 4, "o", "uint32", 0),
        ("pad_h", 9, "o", "uint32", 0),
        ("pad_w", 10, "o", "uint32", 0),
        ("kernel_size", 2, "o", "uint32", None),
        ("kernel_h", 5, "o", "uint32", None),
        ("kernel_w", 6, "o", "uint32", None),
        ("stride", 3, "o", "uint32", 1),
        ("stride_h", 7, "o", "uint32", None),
        ("stride_w", 8, "o", "uint32", None),
        _ENGINE("PoolingParameter", 11),
        ("global_pooling", 12, "o", "bool", False),
        ("round_mode", 13, "o", "enum:PoolingParameter.RoundMode", "CEIL"),
    ],
    "PowerParameter": [("power", 1, "o", "float", 1.0), ("scale", 2, "o", "float", 1.0), ("shift", 3, "o", "float", 0.0)],
    "PReLUParameter": [("filler", 1, "o", "msg:FillerParameter", None), ("channel_shared", 2, "o", "bool", False)],
    "PriorBoxParameter": [
        ("min_size", 1, "r", "float", None),
        ("max_size", 2, "r", "float", None),
        ("aspect_ratio", 3, "r", "float", None),
        ("flip", 4, "o", "bool", True),
        ("clip", 5, "o", "bool", False),
        ("variance", 6, "r", "float", None),
        ("img_size", 7, "o", "uint32", None),
        ("img_h", 8, "o", "uint32", None),
        ("img_w", 9, "o", "uint32", None),
        ("step", 10, "o", "float", None),
        ("step_h", 11, "o", "float", None),
        ("step_w", 12, "o", "float", None),
        ("offset", 13, "o", "float", 0.5),
    ],
    "NonMaximumSuppressionParameter": [
        ("nms_threshold", 1, "o", "float", 0.3),
        ("top_k", 2, "o", "int32", None),
        ("eta", 3, "o", "float", 1.0),
    ],
    "SaveOutputParameter": [
        ("output_directory", 1, "o", "string", None),
        ("output_name_prefix", 2, "o", "string", None),
        ("output_format", 3, "o", "string", None),
        ("label_map_file", 4, "o", "string", None),
        ("name_size_file", 5, "o", "string", None),
        ("num_test_image", 6, "o", "uint32", None),
    ],
    "DetectionOutputParameter": [
        ("num_classes", 1, "o", "uint32", None),
        ("share_location", 2, "o", "bool", True),
        ("background_label_id", 3, "o", "int32", 0),
        ("nms_param", 4, "o", "msg:NonMaximumSuppressionParameter", None),
        ("save_output_param", 5, "o", "msg:SaveOutputParameter", None),
        ("code_type", 6, "o", "enum:PriorBoxParameter.CodeType", "CORNER"),
        ("variance_encoded_in_target", 8, "o", "bool", False),
        ("keep_top_k", 7, "o", "int32", -1),
        ("confidence_threshold", 9, "o", "float", None),
        ("visualize", 10, "o", "bool", False),
        ("visualize_threshold", 11, "o", "float", None),
        ("save_file", 12, "o", "string", None),
    ],
    "ReductionParameter": [
        ("operation", 1, "o", "enum:ReductionParameter.ReductionOp", "SUM"),
        ("axis", 2, "o", "int32", 0),
        ("coeff", 3, "o", "float", 1.0),
    ],
    "ReLUParameter": [("negative_slope", 1, "o", "float", 0.0), _ENGINE("ReLUParameter", 2)],
    "ReshapeParameter": [
        ("shape", 1, "o", "msg:BlobShape", None),
        ("axis", 2, "o", "int32", 0),
        ("num_axes", 3, "o", "int32", -1),
    ],
    "ScaleParameter": [
        ("axis", 1, "o", "int32", 1),
        ("num_axes", 2, "o", "int32", 1),
        ("filler", 3, "o", "msg:FillerParameter", None),
        ("bias_term", 4, "o", "bool", False),
        ("bias_filler", 5, "o", "msg:FillerParameter", None),
    ],
    "SigmoidParameter": [_ENGINE("SigmoidParameter", 1)],
    "SoftmaxParameter": [_ENGINE("SoftmaxParameter", 1), ("axis", 2, "o", "int32", 1)],
    "SliceParameter": [("axis", 3, "o", "int32", 1), ("slice_point", 2, "r", "uint32", None), ("slice_dim", 1, "o", "uint32", 1)],
    "TanHParameter": [_ENGINE("TanHParameter", 1)],
    "ThresholdParameter": [("threshold", 1, "o", "float", 0.0)],
    "TileParameter": [("axis", 1, "o", "int32", 1), ("tiles", 2, "o", "int32", None)],
    # Not in BVLC: ShuffleNet's caffe (farmingyard/ShuffleNet), PSPNet's Interp (hszhao/PSPNet), YOLO-style Upsample.
    "ShuffleChannelParameter": [("group", 1, "o", "uint32", 1)],
    "InterpParameter": [
        ("height", 1, "o", "int32", 0),
        ("width", 2, "o", "int32", 0),
        ("zoom_factor", 3, "o", "int32", 1),
        ("shrink_factor", 4, "o", "int32", 1),
        ("pad_beg", 5, "o", "int32", 0),
        ("pad_end", 6, "o", "int32", 0),
    ],
    "UpsampleParameter": [("scale", 1, "o", "uint32", 2)],
}

# LayerParameter.<name>_param fields: (field name, message, number in LayerParameter, number in V1LayerParameter or None)
PARAM_FIELDS: list[tuple[str, str, int, int | None]] = [
    ("transform_param", "TransformationParameter", 100, 36),
    ("loss_param", "LossParameter", 101, 42),
    ("accuracy_param", "AccuracyParameter", 102, 27),
    ("argmax_param", "ArgMaxParameter", 103, 23),
    ("batch_norm_param", "BatchNormParameter", 139, None),
    ("bias_param", "BiasParameter", 141, None),
    ("concat_param", "ConcatParameter", 104, 9),
    ("convolution_param", "ConvolutionParameter", 106, 10),
    ("crop_param", "CropParameter", 144, None),
    ("data_param", "DataParameter", 107, 11),
    ("dropout_param", "DropoutParameter", 108, 12),
    ("eltwise_param", "EltwiseParameter", 110, 24),
    ("elu_param", "ELUParameter", 140, None),
    ("exp_param", "ExpParameter", 111, 41),
    ("flatten_param", "FlattenParameter", 135, None),
    ("inner_product_param", "InnerProductParameter", 117, 17),
    ("input_param", "InputParameter", 143, None),
    ("log_param", "LogParameter", 134, None),
    ("lrn_param", "LRNParameter", 118, 18),
    ("mvn_param", "MVNParameter", 120, 34),
    ("norm_param", "NormalizeParameter", 206, None),  # SSD
    ("permute_param", "PermuteParameter", 202, None),  # SSD
    ("pooling_param", "PoolingParameter", 121, 19),
    ("power_param", "PowerParameter", 122, 21),
    ("prelu_param", "PReLUParameter", 131, None),
    ("prior_box_param", "PriorBoxParameter", 203, None),  # SSD
    ("detection_output_param", "DetectionOutputParameter", 204, None),  # SSD
    ("reduction_param", "ReductionParameter", 136, None),
    ("relu_param", "ReLUParameter", 123, 30),
    ("reshape_param", "ReshapeParameter", 133, None),
    ("scale_param", "ScaleParameter", 142, None),
    ("sigmoid_param", "SigmoidParameter", 124, 38),
    ("softmax_param", "SoftmaxParameter", 125, 39),
    ("slice_param", "SliceParameter", 126, 31),
    ("tanh_param", "TanHParameter", 127, 37),
    ("threshold_param", "ThresholdParameter", 128, 25),
    ("tile_param", "TileParameter", 138, None),
    ("shuffle_channel_param", "ShuffleChannelParameter", 164, None),  # farmingyard/ShuffleNet
    ("interp_param", "InterpParameter", 2210, None),  # PSPNet uses 143, which BVLC gave to input_param
    ("upsample_param", "UpsampleParameter", 2211, None),
]

MESSAGES["LayerParameter"] = [
    ("name", 1, "o", "string", None),
    ("type", 2, "o", "string", None),
    ("bottom", 3, "r", "string", None),
    ("top", 4, "r", "string", None),
    ("phase", 10, "o", "enum:Phase", None),
    ("loss_weight", 5, "r", "float", None),
    ("param", 6, "r", "msg:ParamSpec", None),
    ("blobs", 7, "r", "msg:BlobProto", None),
    ("propagate_down", 11, "r", "bool", None),
    ("include", 8, "r", "msg:NetStateRule", None),
    ("exclude", 9, "r", "msg:NetStateRule", None),
] + [(name, number, "o", f"msg:{message}", None) for name, message, number, _ in PARAM_FIELDS]

MESSAGES["V1LayerParameter"] = [
    ("bottom", 2, "r", "string", None),
    ("top", 3, "r", "string", None),
    ("name", 4, "o", "string", None),
    ("include", 32, "r", "msg:NetStateRule", None),
    ("exclude", 33, "r", "msg:NetStateRule", None),
    ("type", 5, "o", "enum:V1LayerParameter.LayerType", None),
    ("blobs", 6, "r", "msg:BlobProto", None),
    ("param", 1001, "r", "string", None),
    ("blob_share_mode", 1002, "r", "enum:V1LayerParameter.DimCheckMode", None),
    ("blobs_lr", 7, "r", "float", None),
    ("weight_decay", 8, "r", "float", None),
    ("loss_weight", 35, "r", "float", None),
] + [(name, v1, "o", f"msg:{message}", None) for name, message, _, v1 in PARAM_FIELDS if v1 is not None]

MESSAGES["NetParameter"] = [
    ("name", 1, "o", "string", None),
    ("input", 3, "r", "string", None),
    ("input_shape", 8, "r", "msg:BlobShape", None),
    ("input_dim", 4, "r", "int32", None),
    ("force_backward", 5, "o", "bool", False),
    ("state", 6, "o", "msg:NetState", None),
    ("debug_info", 7, "o", "bool", False),
    ("layer", 100, "r", "msg:LayerParameter", None),
    ("layers", 2, "r", "msg:V1LayerParameter", None),
]

#: every message's fields, for docs and tests
FIELD_TABLE = MESSAGES

_SCALARS = {
    "double": 1,
    "float": 2,
    "int64": 3,
    "uint64": 4,
    "int32": 5,
    "bool": 8,
    "string": 9,
    "bytes": 12,
    "uint32": 13,
}
_PACKAGE = "edgecc_caffe"


def _default_text(kind: str, default: Any) -> str:
    if kind == "bool":
        return "true" if default else "false"
    if kind in ("float", "double"):
        return repr(float(default))
    return str(default)


def _file_descriptor() -> Any:
    from google.protobuf import descriptor_pb2

    fdp = descriptor_pb2.FileDescriptorProto(name="edgecc_caffe.proto", package=_PACKAGE, syntax="proto2")
    protos: dict[str, Any] = {}
    for name in MESSAGES:
        protos[name] = fdp.message_type.add(name=name)
    for scoped, values in ENUMS.items():
        scope, _, enum_name = scoped.rpartition(".")
        owner = protos[scope].enum_type if scope else fdp.enum_type
        enum = owner.add(name=enum_name)
        for value_name, number in values:
            enum.value.add(name=value_name, number=number)
    for name, fields in MESSAGES.items():
        for field_name, number, label, kind, extra in fields:
            field = protos[name].field.add(name=field_name, number=number)
            field.label = 3 if label in ("r", "p") else 1
            if label == "p":
                field.options.packed = True
            if kind.startswith("msg:"):
                field.type = 11
                field.type_name = f".{_PACKAGE}.{kind[4:]}"
            elif kind.startswith("enum:"):
                field.type = 14
                field.type_name = f".{_PACKAGE}.{kind[5:]}"
                if extra is not None:
                    field.default_value = str(extra)
            else:
                field.type = _SCALARS[kind]
                if extra is not None and label == "o":
                    field.default_value = _default_text(kind, extra)
    return fdp


@functools.lru_cache(maxsize=1)
def messages() -> dict[str, type]:
    """Message classes by name (NetParameter, LayerParameter, BlobProto, ...), built once."""
    from google.protobuf import descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    file_desc = pool.Add(_file_descriptor())
    del file_desc
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}")) for name in MESSAGES}


# --- recognising Caffe files -------------------------------------------------------------------------

#: V1LayerParameter.LayerType names -> the type strings of the current format
V1_TYPES: dict[str, str] = {
    "ABSVAL": "AbsVal",
    "ACCURACY": "Accuracy",
    "ARGMAX": "ArgMax",
    "BNLL": "BNLL",
    "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss",
    "CONVOLUTION": "Convolution",
    "DATA": "Data",
    "DECONVOLUTION": "Deconvolution",
    "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss",
    "ELTWISE": "Eltwise",
    "EXP": "Exp",
    "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data",
    "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss",
    "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss",
    "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN",
    "MEMORY_DATA": "MemoryData",
    "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN",
    "POOLING": "Pooling",
    "POWER": "Power",
    "RELU": "ReLU",
    "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss",
    "SILENCE": "Silence",
    "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss",
    "SPLIT": "Split",
    "SLICE": "Slice",
    "TANH": "TanH",
    "WINDOW_DATA": "WindowData",
    "THRESHOLD": "Threshold",
    "NONE": "",
}

_TEXT_HINT = re.compile(rb"^\s*(layers?\s*\{|input\s*:|input_shape\s*\{|input_dim\s*:|name\s*:\s*\")", re.MULTILINE)
_PROTOTXT_HINT = re.compile(rb"\btype\s*:|^\s*input\s*:", re.MULTILINE)
#: text protobufs of other frameworks: TensorFlow GraphDef (node, versions, library), Caffe2 NetDef (op, external_input)
_OTHER_HINT = re.compile(rb"^\s*(node\s*\{|versions\s*\{|library\s*\{|op\s*\{|external_input\s*:)", re.MULTILINE)


def sniff(path: str) -> str | None:
    """'prototxt', 'caffemodel' or None, from the first bytes of the file (cheap, no protobuf)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(65536)
    except OSError:
        return None
    if not head:
        return None
    suffix = Path(path).suffix.lower()
    text = b"\x00" not in head[:4096]
    if text and _TEXT_HINT.search(head) and not _OTHER_HINT.search(head) and _PROTOTXT_HINT.search(head):
        return "prototxt"
    if suffix == ".caffemodel":
        return "caffemodel"
    if suffix == ".prototxt" and text:
        return "prototxt"
    return None


# --- a parsed net ---------------------------------------------------------------------------------------


@dataclass
class Blob:
    """One blob: its declared shape and its values (a float32 or float64 view, or a list for unpacked data)."""

    shape: tuple[int, ...]
    data: np.ndarray

    def array(self) -> np.ndarray:
        """The values as float32 in the declared shape (checked)."""
        import numpy as np

        count = int(np.prod(self.shape)) if self.shape else 1
        if self.data.size != count:
            raise ValueError(
                f"a blob of shape {'x'.join(map(str, self.shape)) or 'scalar'} holds {self.data.size} values instead of {count}"
            )
        return self.data.astype(np.float32, copy=False).reshape(self.shape)


@dataclass
class TrainedLayer:
    """A caffemodel layer: name, type and blobs."""

    name: str
    type: str
    blobs: list[Blob]


@dataclass(frozen=True)
class NetInput:
    """One network input: blob name and shape (None when the prototxt gives none)."""

    name: str
    shape: tuple[int, ...] | None


@dataclass
class CaffeNet:
    """A parsed network: its layers in the current format, inputs, and weights by layer name."""

    name: str
    prototxt: str
    caffemodel: str | None
    inputs: list[NetInput]
    layers: list[Any]  # LayerParameter messages (Input layers kept; they are skipped when building)
    weights: dict[str, list[Any]] = field(default_factory=dict)  # layer name -> Blob list
    weight_types: dict[str, str] = field(default_factory=dict)
