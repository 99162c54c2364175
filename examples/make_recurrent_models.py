"""Trains the two recurrent example models the tests check against TFLite Micro (tests/test_recurrent_ops.py):

- examples/lstm_digits_int8.tflite: scikit-learn's 8x8 digits read row by row (8 steps of 8 pixels) by two
  stacked Keras LSTMs, a dense layer and a softmax, converted to full int8 by the TFLite converter (which fuses
  each LSTM into one UNIDIRECTIONAL_SEQUENCE_LSTM);
- examples/svdf_digits_int8.tflite: a streaming keyword-spotting network shaped as TFLite Micro's keyword
  benchmark (SVDF -> SVDF -> FULLY_CONNECTED -> SOFTMAX), fed one row of a digit per invoke, its state carrying
  the earlier rows; trained in float with Keras, then quantized here as TFLite quantizes SVDF (int8 input, feature
  weights and output, int16 time weights and state, int32 bias), since no converter writes SVDF from Keras.

    .venv/bin/python examples/make_recurrent_models.py

Also writes examples/recurrent_digits_samples.npz (held-out digits, float32 rows in [0, 1], with labels). Needs
tensorflow and scikit-learn and, for the LSTM, Keras 2 (tf-keras), all in `pip install -e .[test]`: Keras 3's
LSTM converts to a WHILE loop, not the fused operator.
"""
from pathlib import Path

import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits

HERE = Path(__file__).resolve().parent
ROWS, COLS, CLASSES = 8, 8, 10


def digits():
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)  # [N, 8 rows, 8 pixels] in [0, 1]
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], d.target[order].astype(np.int64)
    return x[:1500], y[:1500], x[1500:], y[1500:]


def representative(x: np.ndarray):
    return lambda: ([s[None]] for s in x[:200])


def make_lstm(x_train, y_train, x_test, y_test) -> bytes:
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    layers = [keras.layers.LSTM(24, return_sequences=True), keras.layers.LSTM(16), keras.layers.Dense(CLASSES),
              keras.layers.Softmax()]
    model = keras.Sequential([keras.Input((ROWS, COLS)), *layers])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=30, batch_size=32, verbose=0)
    print(f"LSTM float accuracy {model.evaluate(x_test, y_test, verbose=0)[1]:.3f}")
    # the same layers at batch 1, the static shape TFLite's fused LSTM wants
    conv = tf.lite.TFLiteConverter.from_keras_model(keras.Sequential([keras.Input((ROWS, COLS), batch_size=1),
                                                                      *layers]))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative(x_train)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


# --- SVDF ---------------------------------------------------------------------------------------------------

FILTERS, MEMORY, RANK = 32, ROWS, 1  # units = FILTERS / RANK


class Svdf(tf.keras.layers.Layer):
    """TFLite's SVDF over a whole sequence [N, T, I] -> [N, T, U]: each filter's feature dot product, then a
    filter over its last MEMORY values (zeros before the start), summed over the rank, plus bias, RELU."""

    def __init__(self, filters: int, **kw):
        super().__init__(**kw)
        self.filters = filters

    def build(self, shape):
        self.feature = self.add_weight(shape=(shape[-1], self.filters), initializer="glorot_uniform")
        self.time = self.add_weight(shape=(MEMORY, self.filters), initializer="glorot_uniform")
        self.bias = self.add_weight(shape=(self.filters // RANK,), initializer="zeros")

    def call(self, x):
        f = tf.matmul(x, self.feature)  # [N, T, F]
        padded = tf.pad(f, [[0, 0], [MEMORY - 1, 0], [0, 0]])
        windows = tf.stack([padded[:, k:k + x.shape[1]] for k in range(MEMORY)], axis=2)  # [N, T, M, F]
        out = tf.reduce_sum(windows * self.time, axis=2)
        return tf.nn.relu(out + self.bias)


def train_svdf(x_train, y_train, x_test, y_test):
    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((ROWS, COLS))
    h1 = Svdf(FILTERS)(inp)
    h2 = Svdf(FILTERS)(h1)
    logits = tf.keras.layers.Dense(CLASSES)(h2[:, -1])
    model = tf.keras.Model(inp, logits)
    model.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=40, batch_size=32, verbose=0)
    print(f"SVDF float accuracy {model.evaluate(x_test, y_test, verbose=0)[1]:.3f}")
    return model, tf.keras.Model(inp, [h1, h2, logits])


def _scale(values: np.ndarray, bits: int) -> float:
    return float(np.abs(values).max()) / (2 ** (bits - 1) - 1)


def _affine(values: np.ndarray) -> tuple[float, int]:
    lo, hi = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    scale = (hi - lo) / 255.0
    return scale, int(np.clip(round(-128 - lo / scale), -128, 127))


def quantize_svdf(model, probe, x_calib) -> bytes:
    """TFLite's SVDF quantization: per-tensor symmetric int8 feature weights and int16 time weights, the state
    int16 symmetric over the feature values seen, the bias in state scale x time weight scale."""
    from tests.tflite_builder import Op, T, build

    h1, h2, logits = (v.numpy() for v in probe(x_calib))
    s_in, zp_in = 1.0 / 255.0, -128  # pixels in [0, 1]
    layers = [w for w in model.layers if isinstance(w, Svdf)]
    x = T((1, COLS), "int8", s_in, zp_in)
    op_list, prev, prev_scale, acts = [], x, s_in, [h1, h2]
    for layer, act in zip(layers, acts):
        wf, wt, b = (v.numpy() for v in (layer.feature, layer.time, layer.bias))
        features = np.asarray(x_calib @ wf if layer is layers[0] else h1 @ wf)
        s_wf, s_wt, s_state = _scale(wf, 8), _scale(wt, 16), _scale(features, 16)
        s_out, zp_out = _affine(act)
        feat = T((FILTERS, wf.shape[0]), "int8", s_wf, 0, np.round(wf.T / s_wf).astype(np.int8))
        time = T((FILTERS, MEMORY), "int16", s_wt, 0, np.round(wt.T / s_wt).astype(np.int16))
        bias = T((FILTERS // RANK,), "int32", s_state * s_wt, 0, np.round(b / (s_state * s_wt)).astype(np.int32))
        state = T((1, MEMORY * FILTERS), "int16", s_state, 0, variable=True)
        out = T((1, FILTERS // RANK), "int8", s_out, zp_out)
        op_list.append(Op("SVDF", [prev, feat, time, bias, state], [out], "SVDFOptions",
                          {"rank": RANK, "fusedActivationFunction": 1}, version=3))
        prev, prev_scale = out, s_out
    dense = model.layers[-1]
    w, b = dense.kernel.numpy(), dense.bias.numpy()
    s_w = _scale(w, 8)
    s_logit, zp_logit = _affine(logits)
    y = T((1, CLASSES), "int8", s_logit, zp_logit)
    op_list.append(Op("FULLY_CONNECTED", [prev, T((CLASSES, w.shape[0]), "int8", s_w, 0,
                                                   np.round(w.T / s_w).astype(np.int8)),
                                          T((CLASSES,), "int32", prev_scale * s_w, 0,
                                            np.round(b / (prev_scale * s_w)).astype(np.int32))],
                      [y], "FullyConnectedOptions", {}, version=4))
    op_list.append(Op("SOFTMAX", [y], [T((1, CLASSES), "int8", 1.0 / 256, -128)], "SoftmaxOptions", {"beta": 1.0},
                      version=2))
    return build(op_list)


def main() -> None:
    import sys

    sys.path.insert(0, str(HERE.parent))
    x_train, y_train, x_test, y_test = digits()
    (HERE / "lstm_digits_int8.tflite").write_bytes(make_lstm(x_train, y_train, x_test, y_test))
    model, probe = train_svdf(x_train, y_train, x_test, y_test)
    (HERE / "svdf_digits_int8.tflite").write_bytes(quantize_svdf(model, probe, x_train[:300]))
    np.savez_compressed(HERE / "recurrent_digits_samples.npz", x=x_test[:64], y=y_test[:64])
    print("wrote examples/lstm_digits_int8.tflite, svdf_digits_int8.tflite, recurrent_digits_samples.npz")


if __name__ == "__main__":
    main()
