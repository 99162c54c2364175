"""Issue 12's acceptance models, bit-exact with TFLite Micro in numpy and in the generated C (ASan/UBSan):
a PyTorch MobileNetV2 converted by litert-torch (its NCHW input behind a TRANSPOSE), and a 16x8 keyword-spotting
model (convolutions, depthwise, fully connected, TANH and LOGISTIC gates, MEAN, SOFTMAX) from TensorFlow's 16x8
converter."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.oracles import check_model

pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_pytorch_mobilenet_v2_through_litert_torch():
    """examples/make_torch_mobilenet_v2.py: torchvision's MobileNetV2 -> litert-torch (PT2E int8) -> TFLite."""
    from edgeq.frontends.tflite import load_tflite

    data = (EXAMPLES / "mobilenet_v2_torch_int8.tflite").read_bytes()
    graph = load_tflite(data, "mobilenet_v2_torch")
    kinds = Counter(op.kind for op in graph.ops)
    assert graph.ops[0].kind == "TRANSPOSE" and graph.t(graph.inputs[0]).shape == (1, 3, 64, 64)
    assert kinds["DEPTHWISE_CONV_2D"] == 17 and kinds["ADD"] == 10 and "DEQUANTIZE" not in kinds, kinds
    check_model(data, n=4)


def _audio_model():
    import tensorflow as tf

    from tests.test_ops_coverage import convert_16x8

    L = tf.keras.layers
    tf.keras.utils.set_random_seed(0)
    x = tf.keras.Input((49, 10, 1), batch_size=1)  # MFCC frames, as MLPerf Tiny's keyword spotting takes
    a = L.Conv2D(16, (5, 3), strides=(2, 1), padding="same", activation="relu")(x)
    b = L.DepthwiseConv2D(3, padding="same", activation="relu")(a)
    c = L.Conv2D(24, 1, activation="tanh")(b)
    d = L.Conv2D(24, 1)(L.DepthwiseConv2D(3, padding="same")(c))
    gate = L.Conv2D(24, 1, activation="sigmoid")(c)
    p = L.GlobalAveragePooling2D()(L.Multiply()([d, gate]))
    y = L.Softmax()(L.Dense(12)(L.Dense(32, activation="tanh")(p)))
    return convert_16x8(tf.keras.Model(x, y), [(49, 10, 1)])


def test_16x8_audio_model():
    """40 inputs: half uniformly random int16 (saturating every layer), half features drawn as the converter's
    calibration data was and quantized to the input's scale."""
    from edgeq.frontends.tflite import load_tflite

    data = _audio_model()
    graph = load_tflite(data, "kws16")
    kinds = Counter(op.kind for op in graph.ops)
    assert {k: kinds[k] for k in ("TANH", "LOGISTIC", "SOFTMAX", "DEPTHWISE_CONV_2D")} == \
        {"TANH": 2, "LOGISTIC": 1, "SOFTMAX": 1, "DEPTHWISE_CONV_2D": 2}, kinds
    x = graph.t(graph.inputs[0])
    assert x.dtype == "int16"
    count = iter(range(40))

    def sample(graph, rng):
        if next(count) % 2:
            return [rng.integers(-32768, 32768, size=x.shape).astype(np.int16)]
        features = rng.uniform(-1, 1, size=x.shape) / float(x.quant.s)
        return [np.clip(np.round(features), -32768, 32767).astype(np.int16)]
    check_model(data, n=40, sample=sample)
