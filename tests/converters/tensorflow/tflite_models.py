"""TFLite files the flatbuffer tests need, made by TFLiteConverter and, where no converter writes them, by editing
the converter's flatbuffer with edgecc's reader (the inverse of a rewrite): custom operators, block-sparse
weights with DENSIFY, MediaPipe's Convolution2DTransposeBias, a dynamic batch, one-scale per-axis quantisation."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from edgecc.converters.tensorflow import flatbuffer
from edgecc.converters.tensorflow.sparse import sparsify
from tests.converters.tensorflow.nets import tf

__all__ = [
    "custom_ops",
    "dynamic_batch",
    "experimental_sparsity",
    "one_scale_per_axis",
    "sequence_lstm",
    "streaming_state",
    "sparse_conv",
    "transpose_conv_bias",
    "transpose_conv_numpy",
]


def _keras_tflite(model, path: Path, configure=None) -> Path:
    converter = tf().lite.TFLiteConverter.from_keras_model(model)
    if configure is not None:
        configure(converter)
    path.write_bytes(converter.convert())
    return path


def custom_ops(path: Path) -> Path:
    """Digamma twice and Erfinv once: TF ops without TFLite kernels, kept as custom ops by `allow_custom_ops`."""
    tfm = tf()

    @tfm.function(input_signature=[tfm.TensorSpec([1, 4], tfm.float32, name="x")])
    def function(x):
        a = tfm.math.digamma(x + 1.5)
        b = tfm.math.erfinv(tfm.tanh(a) * 0.5)
        return tfm.math.digamma(b * b + 2.0) + a

    converter = tfm.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], function)
    converter.allow_custom_ops = True
    path.write_bytes(converter.convert())
    return path


def experimental_sparsity(path: Path) -> Path:
    """A Dense layer whose weights are 80 % zero in 1x4 blocks, converted with Optimize.EXPERIMENTAL_SPARSITY
    (TFLite stores the weights sparse and reads them with DENSIFY)."""
    import keras

    keras.utils.set_random_seed(3)
    x = keras.Input((32,), batch_size=1, name="features")
    y = keras.layers.Dense(16, name="fc")(x)
    y = keras.layers.Dense(8, activation="tanh", name="fc2")(y)
    model = keras.Model(x, y)
    weights, bias = model.get_layer("fc").get_weights()
    mask = np.random.default_rng(3).random((32, 4)) < 0.2
    model.get_layer("fc").set_weights([weights * np.repeat(mask, 4, axis=1), bias + 0.1])
    return _keras_tflite(model, path, lambda c: setattr(c, "optimizations", [tf().lite.Optimize.EXPERIMENTAL_SPARSITY]))


def _conv_model(seed: int, *, transpose: bool = False, batch: int | None = 1):
    import keras

    keras.utils.set_random_seed(seed)
    x = keras.Input((6, 7, 4), batch_size=batch, name="image")
    if transpose:
        y = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="conv")(x)
        y = keras.layers.Conv2DTranspose(3, 3, strides=2, padding="same", name="up")(y)
    else:
        y = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(x)
        y = keras.layers.Conv2D(4, 1, name="pw")(y)
    model = keras.Model(x, y)
    for layer in model.layers[1:]:
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel, np.random.default_rng(seed).normal(0, 0.5, bias.shape).astype(np.float32)])
    return model


def _edit(path: Path, edit) -> Path:
    model = flatbuffer.read(path.read_bytes(), str(path))
    edit(model)
    path.write_bytes(model.serialize())
    return path


def sparse_conv(path: Path) -> Path:
    """A float conv model whose 1x1 conv weights are stored block-sparse (1x4 blocks) behind a DENSIFY op,
    written with `sparse.sparsify` (the inverse of edgecc's densify)."""
    module = flatbuffer.schema()
    _keras_tflite(_conv_model(5), path)

    def edit(model: flatbuffer.TFLiteModel) -> None:
        main = model.main
        op = next(
            o
            for o in main.operators
            if model.opcode_name(o.opcodeIndex)[0] == "CONV_2D" and tuple(model.signature(main, int(o.inputs[1])))[1:3] == (1, 1)
        )
        weights = int(op.inputs[1])
        dense = model.constant(main, weights).copy()  # OHWI 4x1x1x8
        dense[:, :, :, :4][np.random.default_rng(5).random(4) < 0.5] = 0.0  # whole zero blocks
        values, sparsity = sparsify(dense, block=(1, 1, 1, 4))
        sparse_index = model.add_tensor(main, "pw/sparse_weights", dense.shape, 0, values.astype("<f4").tobytes())
        main.tensors[sparse_index].sparsity = sparsity
        main.tensors[weights].buffer = 0
        densify = module.OperatorT()
        densify.opcodeIndex = model.opcode("DENSIFY")
        densify.inputs = np.asarray([sparse_index], dtype=np.int32)
        densify.outputs = np.asarray([weights], dtype=np.int32)
        densify.builtinOptionsType = module.BuiltinOptions.DensifyOptions
        densify.builtinOptions = module.DensifyOptionsT()
        main.operators.insert(0, densify)

    return _edit(path, edit)


def transpose_conv_bias(path: Path) -> tuple[Path, tuple[int, int]]:
    """Conv2D + Conv2DTranspose(stride 2, SAME, bias) whose TRANSPOSE_CONV (and its bias ADD, if TFLite kept one
    apart) is rewritten into MediaPipe's custom Convolution2DTransposeBias(input, weights, bias) with options
    {padding SAME, stride_w, stride_h}, as MediaPipe's models store it. Returns the path and the strides (h, w)."""
    module = flatbuffer.schema()
    _keras_tflite(_conv_model(7, transpose=True), path)
    strides = (2, 2)

    def edit(model: flatbuffer.TFLiteModel) -> None:
        main = model.main
        ops = list(main.operators)
        position, op = next((i, o) for i, o in enumerate(ops) if model.opcode_name(o.opcodeIndex)[0] == "TRANSPOSE_CONV")
        _, weights, x = (int(t) for t in op.inputs[:3])
        output = int(op.outputs[0])
        if len(op.inputs) > 3 and int(op.inputs[3]) >= 0:
            bias = int(op.inputs[3])
        else:  # the bias as a separate ADD after it
            add = next(o for o in ops if model.opcode_name(o.opcodeIndex)[0] == "ADD" and output in list(o.inputs))
            bias = next(int(t) for t in add.inputs if int(t) != output)
            output = int(add.outputs[0])
            ops.remove(add)
        custom = module.OperatorT()
        custom.opcodeIndex = model.opcode("CUSTOM", custom="Convolution2DTransposeBias")
        custom.inputs = np.asarray([x, weights, bias], dtype=np.int32)
        custom.outputs = np.asarray([output], dtype=np.int32)
        custom.customOptions = np.frombuffer(struct.pack("<iii", 1, strides[1], strides[0]), dtype=np.uint8).copy()
        ops[position] = custom
        main.operators = ops

    return _edit(path, edit), strides


def transpose_conv_numpy(x: np.ndarray, weights: np.ndarray, bias: np.ndarray, strides: tuple[int, int]) -> np.ndarray:
    """MediaPipe's Convolution2DTransposeBias in numpy: NHWC input, OHWI weights, SAME padding, output = input x stride."""
    n, h, w, _ = x.shape
    o, kh, kw, _ = weights.shape
    sh, sw = strides
    out_h, out_w = h * sh, w * sw
    pad_h = max((h - 1) * sh + kh - out_h, 0) // 2
    pad_w = max((w - 1) * sw + kw - out_w, 0) // 2
    full = np.zeros((n, (h - 1) * sh + kh, (w - 1) * sw + kw, o), dtype=np.float64)
    for i in range(h):
        for j in range(w):
            full[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :] += np.einsum("nc,ohwc->nhwo", x[:, i, j, :], weights)
    return (full[:, pad_h : pad_h + out_h, pad_w : pad_w + out_w, :] + bias).astype(np.float32)


def dynamic_batch(path: Path) -> Path:
    """A conv + flatten model with a dynamic batch (shape signature -1x6x7x4)."""
    import keras

    model = _conv_model(9, batch=None)
    flat = keras.layers.Flatten(name="flat")(model.output)
    return _keras_tflite(keras.Model(model.input, flat), path)


def one_scale_per_axis(int8_path: Path, path: Path) -> tuple[Path, str]:
    """A copy of a full-integer model in which one per-tensor quantised rank-2 activation claims quantized_dimension 3
    (past its rank; TFLite Micro ignores the axis of a one-scale tensor, the full interpreter refuses the file).
    Returns the path and the edited tensor's name."""
    model = flatbuffer.read(int8_path.read_bytes(), str(int8_path))
    main = model.main
    index = next(
        i
        for i, t in enumerate(main.tensors)
        if t.quantization is not None
        and t.quantization.scale is not None
        and len(t.quantization.scale) == 1
        and len(t.shape) == 2
        and model.buffer_data(main, i) is None
    )
    main.tensors[index].quantization.quantizedDimension = 3
    path.write_bytes(model.serialize())
    return path, model.tensor_name(main, index)


def sequence_lstm(path: Path, *, time_major: bool = False, cifg: bool = False, steps: int = 5) -> tuple[Path, object]:
    """A Keras LSTM's weights in TFLite's fused UNIDIRECTIONAL_SEQUENCE_LSTM (what TFLiteConverter writes for a
    tf.keras LSTM; Keras 3 layers convert to WHILE loops instead), written into a converter-made skeleton.

    `cifg` drops the input gate (coupled input/forget gate). Returns the path and the Keras LSTM model (batch-major
    sequence in, full sequence out) whose weights the file holds.
    """
    import keras

    module = flatbuffer.schema()
    keras.utils.set_random_seed(11)
    features, units = 3, 4
    x = keras.Input((steps, features), batch_size=1, name="sequence")
    reference = keras.Model(x, keras.layers.LSTM(units, return_sequences=True, name="lstm")(x))
    kernel, recurrent, bias = reference.get_layer("lstm").get_weights()
    bias = bias + np.random.default_rng(11).normal(0, 0.3, bias.shape).astype(np.float32)
    reference.get_layer("lstm").set_weights([kernel, recurrent, bias])
    shape = (steps, 1, features) if time_major else (1, steps, features)
    sequence = keras.Input(shape[1:], batch_size=shape[0], name="sequence")
    skeleton = keras.Model(sequence, keras.layers.Dense(units)(sequence))
    _keras_tflite(skeleton, path)

    def edit(model: flatbuffer.TFLiteModel) -> None:
        main = model.main
        inputs = [-1] * 24
        inputs[0] = int(main.inputs[0])
        for gate in range(4):
            if cifg and gate == 0:
                continue
            part = slice(gate * units, (gate + 1) * units)
            inputs[1 + gate] = model.add_tensor(
                main, f"lstm/input_w{gate}", (units, features), 0, kernel[:, part].T.astype("<f4").tobytes()
            )
            inputs[5 + gate] = model.add_tensor(
                main, f"lstm/recurrent_w{gate}", (units, units), 0, recurrent[:, part].T.astype("<f4").tobytes()
            )
            inputs[12 + gate] = model.add_tensor(main, f"lstm/bias{gate}", (units,), 0, bias[part].astype("<f4").tobytes())
        for slot, name in ((18, "output_state"), (19, "cell_state")):
            inputs[slot] = model.add_tensor(main, f"lstm/{name}", (1, units), 0)
            main.tensors[inputs[slot]].isVariable = True
        output = int(main.outputs[0])
        main.tensors[output].shape = np.asarray((*shape[:2], units), dtype=np.int32)
        main.tensors[output].shapeSignature = None
        main.tensors[output].name = b"lstm_sequence"
        options = module.UnidirectionalSequenceLSTMOptionsT(fusedActivationFunction=4, timeMajor=time_major)
        main.operators = [model.make_operator("UNIDIRECTIONAL_SEQUENCE_LSTM", inputs, [output], options)]

    return _edit(path, edit), reference


def streaming_state(path: Path) -> Path:
    """A streaming step with two resource variables (a running sum starting at 0.25 and a frame counter), converted
    with experimental_enable_resource_variables: VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE and CALL_ONCE."""
    tfm = tf()

    class Stream(tfm.Module):
        def __init__(self):
            super().__init__()
            self.running = tfm.Variable(tfm.fill([1, 4], 0.25), name="running")
            self.count = tfm.Variable(tfm.zeros([1]), name="count")

        @tfm.function(input_signature=[tfm.TensorSpec([1, 4], tfm.float32, name="frame")])
        def step(self, frame):
            mixed = tfm.tanh(frame * 0.7 + self.running * 0.9)
            self.running.assign(mixed)
            self.count.assign(self.count + 1.0)
            return {"mixed": mixed * self.count}

    module = Stream()
    converter = tfm.lite.TFLiteConverter.from_concrete_functions([module.step.get_concrete_function()], module)
    converter.experimental_enable_resource_variables = True
    path.write_bytes(converter.convert())
    return path
