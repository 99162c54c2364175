"""Per-operator checks: single-op and small multi-op models made with TensorFlow, each run through
TFLite Micro, edgeq's numpy executor and edgeq's generated C (sanitized), compared bit for bit.

The cases are a declarative plan: one entry per parameter combination TFLite allows for the op.
"""
from __future__ import annotations

import pytest

from tests.oracles import check_model, convert_int8

tf = pytest.importorskip("tensorflow")
L = tf.keras.layers
K = tf.keras.ops


def unary(layer_fn, shape=(6, 7, 5)):
    """Model applying layer_fn to a Reshape of the input, so activations stay standalone ops."""
    def build():
        x = tf.keras.Input(shape, batch_size=1)
        return tf.keras.Model(x, layer_fn(L.Reshape(shape)(x))), [shape]
    return build


def seq(shape, *layers):
    def build():
        x = tf.keras.Input(shape, batch_size=1)
        y = x
        for layer in layers:
            y = layer(y)
        return tf.keras.Model(x, y), [shape]
    return build


def two_inputs(shape_a, shape_b, fn):
    def build():
        a = tf.keras.Input(shape_a, batch_size=1)
        b = tf.keras.Input(shape_b, batch_size=1)
        return tf.keras.Model([a, b], fn(a, b)), [shape_a, shape_b]
    return build


CONV = {
    f"conv_k{k}_s{s}_{pad}_{act}": seq((11, 9, 3), L.Conv2D(6, k, strides=s, padding=pad, activation=act))
    for k, s, pad, act in [(1, 1, "valid", None), (3, 1, "same", "relu"), (3, 2, "same", "relu6"),
                           (5, 2, "valid", None), ((2, 4), (2, 1), "same", None), (3, 3, "valid", "relu")]
}
CONV.update({
    "conv_dilated_same": seq((12, 12, 3), L.Conv2D(4, 3, dilation_rate=2, padding="same")),
    "conv_dilated_valid": seq((12, 10, 3), L.Conv2D(4, 3, dilation_rate=(2, 3), padding="valid", activation="relu")),
    "conv_grouped": seq((8, 8, 8), L.Conv2D(6, 3, groups=2, padding="same", activation="relu6")),
    "conv_no_bias": seq((7, 7, 4), L.Conv2D(5, 3, use_bias=False, padding="same")),
    "conv_tanh_range": seq((7, 7, 4), L.Conv2D(5, 3, activation="tanh")),  # fused tanh becomes a TANH op
})
DEPTHWISE = {
    f"dw_m{m}_s{s}_{pad}_{act}": seq((10, 9, 4), L.DepthwiseConv2D(k, strides=s, depth_multiplier=m, padding=pad,
                                                                   activation=act))
    for k, m, s, pad, act in [(3, 1, 1, "same", "relu6"), (3, 2, 2, "same", None), (5, 3, 1, "valid", "relu"),
                              ((3, 1), 1, (1, 2), "valid", None)]
}
DEPTHWISE["dw_dilated"] = seq((12, 12, 3), L.DepthwiseConv2D(3, dilation_rate=2, padding="same"))
DENSE = {
    "dense_relu": seq((37,), L.Dense(9, activation="relu")),
    "dense_no_bias": seq((16,), L.Dense(5, use_bias=False)),
    "dense_chain": seq((20,), L.Dense(12, activation="relu6"), L.Dense(4)),
    "dense_rows": seq((3, 10), L.Dense(6)),  # keep_num_dims / several rows
    "dense_flatten": seq((4, 4, 3), L.Flatten(), L.Dense(7)),
}
POOL = {
    "avgpool_2_valid": seq((8, 9, 3), L.AveragePooling2D(2)),
    "avgpool_3s2_same": seq((9, 9, 4), L.AveragePooling2D(3, strides=2, padding="same")),
    "avgpool_global": seq((7, 5, 6), L.AveragePooling2D((7, 5))),
    "maxpool_2_valid": seq((8, 8, 3), L.MaxPooling2D(2)),
    "maxpool_3s2_same": seq((9, 7, 4), L.MaxPooling2D(3, strides=2, padding="same")),
    "mean_spatial": seq((6, 5, 8), L.GlobalAveragePooling2D()),
    "mean_spatial_keepdims": seq((6, 5, 8), L.GlobalAveragePooling2D(keepdims=True)),
    "mean_channels": seq((6, 5, 8), L.Lambda(lambda t: tf.reduce_mean(t, axis=-1, keepdims=True))),
    "mean_width": seq((6, 5, 8), L.Lambda(lambda t: tf.reduce_mean(t, axis=2))),
}
ELEMENTWISE = {
    "add_same_shape": two_inputs((5, 6, 4), (5, 6, 4), lambda a, b: L.Add()([a, b])),
    "add_broadcast_width": two_inputs((5, 6, 4), (5, 1, 4), lambda a, b: K.add(a, b)),
    "add_broadcast_rows": two_inputs((5, 1, 4), (1, 6, 1), lambda a, b: K.add(a, b)),
    "add_relu_residual": seq((6, 6, 4), lambda x: L.ReLU()(L.Add()([x, L.Conv2D(4, 3, padding="same")(x)]))),
    "mul_same_shape": two_inputs((5, 6, 4), (5, 6, 4), lambda a, b: L.Multiply()([a, b])),
    "mul_broadcast": two_inputs((4, 5, 3), (4, 1, 3), lambda a, b: K.multiply(a, b)),
    "pad_zero": seq((5, 6, 3), L.ZeroPadding2D(((1, 2), (3, 0)))),
    "concat_channels": seq((6, 6, 3), lambda x: L.Concatenate()([L.Conv2D(2, 1)(x), L.Conv2D(3, 1)(x)])),
    "concat_width": seq((6, 6, 3), lambda x: L.Concatenate(axis=2)([x, L.Conv2D(3, 1)(x)])),
    "squeeze": seq((6, 6, 3), L.Conv2D(4, 6), L.Lambda(lambda y: tf.squeeze(y, axis=[1, 2]))),
}
ACTIVATIONS = {
    "relu": unary(L.ReLU()),
    "relu6": unary(L.ReLU(6.0)),
    "leaky_relu": unary(L.LeakyReLU(negative_slope=0.1)),
    "logistic": unary(L.Activation("sigmoid")),
    "tanh": unary(L.Activation("tanh")),
    "hard_swish": unary(L.Activation("hard_swish")),
    "softmax_rows": unary(L.Softmax(), shape=(3, 11)),
    "softmax_wide": seq((40,), L.Dense(300), L.Softmax()),
}
CASES = {**CONV, **DEPTHWISE, **DENSE, **POOL, **ELEMENTWISE, **ACTIVATIONS}
# Input ranges change scales, and with them the multipliers and shifts the kernels see.
RANGES = {"unit": 1.0, "wide": 12.0}


# The wide range only matters for value-dependent kernels (activations, add, mul, mean).
PLAN = [(case, "unit") for case in sorted(CASES)] + [
    (case, "wide") for case in sorted(CASES) if case in ACTIVATIONS or case.startswith(("add", "mul", "mean"))]


@pytest.mark.parametrize("case,rng_name", PLAN)
def test_op_bit_exact(case, rng_name):
    tf.keras.utils.set_random_seed(1)
    model, shapes = CASES[case]()
    r = RANGES[rng_name]
    check_model(convert_int8(model, shapes, low=-r, high=r), n=12, seed=hash(case) % 1000)


def test_all_supported_ops_are_covered():
    """Every operator the frontend accepts appears in some case above, QUANTIZE (requantization) included."""
    from edgeq.frontends.tflite import SUPPORTED, load_tflite

    seen = set()
    for case in ("concat_channels", "squeeze", "relu", "hard_swish", "logistic", "tanh", "leaky_relu", "relu6",
                 "mean_spatial", "pad_zero", "mul_broadcast", "add_same_shape", "maxpool_2_valid",
                 "avgpool_2_valid", "dense_flatten", "dw_dilated", "conv_grouped", "softmax_rows"):
        model, shapes = CASES[case]()
        seen.update(op.kind for op in load_tflite(convert_int8(model, shapes, n_rep=4), case).ops)
    # QUANTIZE/DEQUANTIZE at the boundary are moved to the caller (an inner QUANTIZE is a requantization,
    # tested below); this TensorFlow emits RESHAPE for squeezes (SQUEEZE is tested below).
    from tests.test_ops_coverage import COVERED  # issue 12's operators, built directly with TFLite's schema
    from tests.test_recurrent_ops import COVERED as RECURRENT  # and its stateful ones

    missing = set(SUPPORTED) - seen - COVERED - RECURRENT
    assert missing <= {"QUANTIZE", "DEQUANTIZE", "SQUEEZE"}, missing


def rewrite_op(model: bytes, old: str, new: str, edit) -> bytes:
    """Replaces every `old` operator of a model by `new`, calling edit(op, subgraph, schema) on each, through
    TFLite's object API: for operators the converter emits only in rare graphs."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = getattr(schema.BuiltinOperator, new)
    code.version = 1
    m.operatorCodes.append(code)
    sub = m.subgraphs[0]
    for op in sub.operators:
        if m.operatorCodes[op.opcodeIndex].builtinCode == getattr(schema.BuiltinOperator, old):
            op.opcodeIndex = len(m.operatorCodes) - 1
            op.builtinOptionsType, op.builtinOptions = 0, None
            edit(op, sub, schema)
    b = flatbuffers.Builder(0)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def with_relu_as_requantize(model: bytes, scale_factor: float, zero_point: int) -> bytes:
    """RELU -> an int8 -> int8 QUANTIZE with a different output scale and zero point."""
    def edit(op, sub, schema):
        q = sub.tensors[op.outputs[0]].quantization
        q.scale = [float(q.scale[0]) * scale_factor]
        q.zeroPoint = [zero_point]
    return rewrite_op(model, "RELU", "QUANTIZE", edit)


def test_squeeze():
    """The converter writes squeezes as RESHAPE; a SQUEEZE op (TFLite's own) must import and run too."""
    from edgeq.frontends.tflite import load_tflite

    def edit(op, sub, schema):
        op.inputs = op.inputs[:1]
        op.builtinOptionsType = schema.BuiltinOptions.SqueezeOptions
        op.builtinOptions = schema.SqueezeOptionsT()
        op.builtinOptions.squeezeDims = [1, 2]
    tf.keras.utils.set_random_seed(2)
    model, shapes = CASES["squeeze"]()
    data = rewrite_op(convert_int8(model, shapes), "RESHAPE", "SQUEEZE", edit)
    assert "SQUEEZE" in [op.kind for op in load_tflite(data, "m").ops]
    check_model(data, n=12)


@pytest.mark.parametrize("scale_factor,zero_point", [(3.7, 5), (0.3, -20), (1.0, 0)])
def test_requantize(scale_factor, zero_point):
    from edgeq.frontends.tflite import load_tflite

    tf.keras.utils.set_random_seed(2)
    model, shapes = unary(L.ReLU())()
    data = with_relu_as_requantize(convert_int8(model, shapes, low=-4, high=4), scale_factor, zero_point)
    assert "QUANTIZE" in [op.kind for op in load_tflite(data, "m").ops]
    check_model(data, n=12)
