"""Trains the demo model: a small CNN on scikit-learn's 8x8 digits, converted to full-int8 TFLite.

    .venv/bin/python examples/make_digits_cnn.py

Writes examples/digits_cnn_int8.tflite and examples/digits_samples.npz (held-out digits, float32 in
[0, 1], with labels). Needs tensorflow and scikit-learn (`pip install -e .[test]`).
"""
from pathlib import Path

import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits

HERE = Path(__file__).resolve().parent


def main() -> None:
    tf.keras.utils.set_random_seed(0)
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]  # 8x8x1 in [0, 1]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    x_train, y_train, x_test, y_test = x[:1500], y[:1500], x[1500:], y[1500:]

    model = tf.keras.Sequential([
        tf.keras.Input((8, 8, 1)),
        tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        tf.keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6"),
        tf.keras.layers.Conv2D(16, 1, activation="relu"),
        tf.keras.layers.MaxPooling2D(2),
        tf.keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        tf.keras.layers.AveragePooling2D(4),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(10),
        tf.keras.layers.Softmax(),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=30, batch_size=32, verbose=0)
    _, acc = model.evaluate(x_test, y_test, verbose=0)
    print(f"float accuracy on {len(x_test)} held-out digits: {acc:.3f}")

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x_train[i:i + 1]] for i in range(200))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    (HERE / "digits_cnn_int8.tflite").write_bytes(conv.convert())
    np.savez_compressed(HERE / "digits_samples.npz", x=x_test[:16], y=y_test[:16])
    print("wrote examples/digits_cnn_int8.tflite and examples/digits_samples.npz")


if __name__ == "__main__":
    main()
