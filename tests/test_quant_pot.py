"""Power-of-two quantization: every scale an exact power of two, the C bit-exact with the numpy
executor, and accuracy close to the float model."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
L = tf.keras.layers


@pytest.fixture(scope="module")
def digits_float(tmp_path_factory):
    """A small CNN trained on scikit-learn's digits, as a float TFLite file, with calib/eval sets."""
    from sklearn.datasets import load_digits

    tf.keras.utils.set_random_seed(0)
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    y = d.target
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
    model.fit(x[:1400], y[:1400], epochs=15, batch_size=32, verbose=0)
    root = tmp_path_factory.mktemp("pot")
    path = root / "digits_float.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    np.savez(root / "calib.npz", x=x[1400:1464])
    np.savez(root / "eval.npz", x=x[1500:], y=y[1500:])
    return path, root


@pytest.fixture(scope="module")
def branchy_float(tmp_path_factory):
    """A float model with every rescaling kernel a power-of-two graph uses: residual ADD, MUL, concatenation
    of differently scaled tensors, MEAN, standalone activations, fully connected."""
    tf.keras.utils.set_random_seed(1)
    x = tf.keras.Input((8, 8, 1), batch_size=1)
    a = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    b = L.DepthwiseConv2D(3, padding="same")(a)
    r = L.Add()([a, b])
    m = L.Multiply()([r, L.Conv2D(8, 1, activation="sigmoid")(a)])
    c = L.Concatenate()([L.LeakyReLU(0.1)(m), L.Conv2D(4, 1)(x)])
    h = L.Activation("tanh")(L.Conv2D(12, 3, strides=2, padding="same")(c))
    y = L.Dense(10)(L.GlobalAveragePooling2D()(L.ReLU()(h)))
    model = tf.keras.Model(x, y)
    root = tmp_path_factory.mktemp("branchy")
    path = root / "branchy.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    rng = np.random.default_rng(0)
    np.savez(root / "calib.npz", x=rng.uniform(0, 1, (32, 8, 8, 1)).astype(np.float32))
    np.savez(root / "eval.npz", x=rng.uniform(0, 1, (40, 8, 8, 1)).astype(np.float32))
    return path, root


def test_pot_rescales_by_shifts_only(branchy_float, tmp_path):
    """Every requantization of a power-of-two build is a shift: no multiplier reaches the C, and the host
    C (built with ASan/UBSan) matches the numpy executor bit for bit on ADD, MUL, MEAN, concatenation."""
    path, root = branchy_float
    out = tmp_path / "branchy"
    proc = edgeq("build", path, "--board", "host", "--calib", root / "calib.npz", "-o", out)
    assert proc.returncode == 0, proc.stderr
    kernels = {layer["kernel"] for layer in json.loads((out / "model.json").read_text())["layers"]}
    assert {"add_s8", "mul_s8", "mean_s8", "concat_s8", "conv_s8", "depthwise_conv_s8"} <= kernels, kernels
    weights = (out / "branchy_weights.c").read_text()
    assert "_out_shift" in weights and "_out_mult" not in weights
    model_c = (out / "branchy.c").read_text()
    assert ".out_mult = 0," in model_c and ".in0_mult = 0," in model_c
    proc = edgeq("validate", out, "--data", root / "eval.npz")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bit-exact" in proc.stdout


def edgeq(*args):
    return subprocess.run([sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True)


def test_pot_build_is_power_of_two_and_bit_exact(digits_float, tmp_path):
    path, root = digits_float
    out = tmp_path / "pot"
    proc = edgeq("build", path, "--board", "host", "--calib", root / "calib.npz", "-o", out)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["quant"] == "pot"
    for t in manifest["tensors"]:
        if t["dtype"] == "int8":
            for s in t["scale"]:
                assert s > 0 and np.log2(s) == round(np.log2(s)), (t["name"], s)
    # host C == numpy integer executor, bit for bit (validate compares them)
    proc = edgeq("validate", out, "--data", root / "eval.npz")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bit-exact" in proc.stdout


def test_pot_accuracy_close_to_float(digits_float, tmp_path):
    from edgeq.build import quantize
    from edgeq.frontends.tflite import load_tflite_file
    from edgeq.quant.executor import lower_graph, run_float_graph, run_int

    path, root = digits_float
    graph = load_tflite_file(path)
    qgraph, _ = quantize(graph, root / "calib.npz")
    calls = lower_graph(qgraph)
    data = np.load(root / "eval.npz")
    tq = qgraph.t(qgraph.inputs[0]).quant
    agree = 0
    for x in data["x"]:
        x = x.reshape(graph.t(graph.inputs[0]).shape)
        f = run_float_graph(graph, [x])[graph.outputs[0]]
        xq = np.clip(np.round(x / tq.s) + tq.zp, -128, 127).astype(np.int8)
        agree += int(run_int(qgraph, [xq], calls)[qgraph.outputs[0]].argmax() == f.argmax())
    assert agree / len(data["x"]) >= 0.95


def test_quantize_command_writes_a_report(digits_float, tmp_path):
    path, root = digits_float
    proc = edgeq("quantize", path, "--calib", root / "calib.npz", "-o", tmp_path / "q")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "q" / "quant_report.json").read_text())
    sqnr = [t["sqnr_db"] for t in report["tensors"].values() if t["kind"] == "activation" and t["sqnr_db"]]
    assert sqnr and min(sqnr) > 10


def test_float_model_without_calibration_is_refused(digits_float, tmp_path):
    path, _ = digits_float
    proc = edgeq("build", path, "-o", tmp_path / "o")
    assert proc.returncode == 1 and "--calib" in proc.stderr and "Traceback" not in proc.stderr
