"""TFLite import: float16 and hybrid weights become float, boundary conversions move to the caller,
and models edgeq cannot compile are refused with the reason."""
from __future__ import annotations

import numpy as np
import pytest

from edgeq.errors import EdgeqError
from edgeq.frontends.tflite import load_tflite
from edgeq.quant.executor import run_float_graph

tf = pytest.importorskip("tensorflow")
L = tf.keras.layers


def small_cnn():
    tf.keras.utils.set_random_seed(3)
    x = tf.keras.Input((8, 8, 2), batch_size=1)
    y = L.Conv2D(4, 3, padding="same", activation="relu")(x)
    y = L.DepthwiseConv2D(3, padding="same")(y)
    y = L.GlobalAveragePooling2D()(y)
    return tf.keras.Model(x, L.Dense(3)(y))


def litert_run(model: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def test_float16_weights_are_folded_to_float32():
    conv = tf.lite.TFLiteConverter.from_keras_model(small_cnn())
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    model = conv.convert()
    graph = load_tflite(model, "f16")
    assert all(op.kind != "DEQUANTIZE" for op in graph.ops)
    assert any("dequantized to float32" in n for n in graph.notes)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 8, 8, 2)).astype(np.float32)
    got = run_float_graph(graph, [x])[graph.outputs[0]]
    np.testing.assert_allclose(got, litert_run(model, x), rtol=1e-4, atol=1e-5)


def test_float_interface_of_an_int8_model_moves_to_the_caller():
    model = small_cnn()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([np.random.rand(1, 8, 8, 2).astype(np.float32)] for _ in range(8))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    # float32 interface: QUANTIZE after the input and DEQUANTIZE before the output
    graph = load_tflite(conv.convert(), "io")
    assert graph.t(graph.inputs[0]).dtype == "int8" and graph.t(graph.outputs[0]).dtype == "int8"
    assert [op.kind for op in graph.ops if op.kind in ("QUANTIZE", "DEQUANTIZE")] == []
    assert sum("moved to the caller" in n for n in graph.notes) == 2


def test_int16_operator_without_an_int16_kernel_is_named():
    """16x8 models import (issue 12); an operator edgeq runs in int8 only (here EXP, which TFLite Micro runs in
    float only) is refused by name."""
    from edgeq.lowering import lower_graph

    model = small_cnn()
    exp_layer = L.Lambda(lambda t: tf.exp(t))
    conv = tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(model.input, exp_layer(model.output)))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([np.random.rand(1, 8, 8, 2).astype(np.float32)] for _ in range(8))
    conv.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    graph = load_tflite(conv.convert(), "a16w8")
    with pytest.raises(EdgeqError, match=r"\(EXP\): tensor '.*' is int16"):
        lower_graph(graph)
