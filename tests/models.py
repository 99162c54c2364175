"""Float Keras models the tests train on real data (TensorFlow imported by the caller's importorskip)."""
from __future__ import annotations

import numpy as np


def digits_data() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits, [N, 8, 8, 1] float32 in [0, 1], and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32)[..., None], d.target


def digits_cnn(epochs: int):
    """A small CNN (conv, depthwise with ReLU6, pooling, dense, softmax) trained on the first 1400 digits."""
    import tensorflow as tf

    L = tf.keras.layers
    tf.keras.utils.set_random_seed(0)
    x, y = digits_data()
    model = tf.keras.Sequential([
        tf.keras.Input((8, 8, 1), batch_size=1),
        L.Conv2D(8, 3, padding="same", activation="relu"),
        L.DepthwiseConv2D(3, padding="same", activation="relu6"),
        L.Conv2D(16, 1, activation="relu"),
        L.MaxPooling2D(2),
        L.Conv2D(16, 3, padding="same"),
        L.AveragePooling2D(4),
        L.Flatten(),
        L.Dense(10),
        L.Softmax(),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[:1400], y[:1400], epochs=epochs, batch_size=32, verbose=0)
    return model


def branchy_model():
    """An untrained float model with every rescaling kernel a power-of-two graph uses: residual ADD, MUL
    by a sigmoid gate, LeakyReLU, concatenation of differently scaled tensors (a requantizing QUANTIZE),
    tanh, ReLU, global average pool (MEAN), fully connected."""
    import tensorflow as tf

    L = tf.keras.layers
    tf.keras.utils.set_random_seed(1)
    x = tf.keras.Input((8, 8, 1), batch_size=1)
    a = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    b = L.DepthwiseConv2D(3, padding="same")(a)
    r = L.Add()([a, b])
    m = L.Multiply()([r, L.Conv2D(8, 1, activation="sigmoid")(a)])
    c = L.Concatenate()([L.LeakyReLU(0.1)(m), L.Conv2D(4, 1)(x)])
    h = L.Activation("tanh")(L.Conv2D(12, 3, strides=2, padding="same")(c))
    y = L.Dense(10)(L.GlobalAveragePooling2D()(L.ReLU()(h)))
    return tf.keras.Model(x, y)
