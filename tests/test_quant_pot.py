"""Power-of-two quantization: every scale an exact power of two, the C bit-exact with the numpy
executor, and accuracy close to the float model."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from tests.models import branchy_model, digits_cnn, digits_data
from tests.oracles import assert_rescales_are_shifts

tf = pytest.importorskip("tensorflow")
L = tf.keras.layers


@pytest.fixture(scope="module")
def digits_float(tmp_path_factory):
    """A small CNN trained on scikit-learn's digits, as a float TFLite file, with calib/eval sets."""
    x, y = digits_data()
    model = digits_cnn(epochs=15)
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
    model = branchy_model()
    root = tmp_path_factory.mktemp("branchy")
    path = root / "branchy.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    rng = np.random.default_rng(0)
    np.savez(root / "calib.npz", x=rng.uniform(0, 1, (32, 8, 8, 1)).astype(np.float32))
    np.savez(root / "eval.npz", x=rng.uniform(0, 1, (40, 8, 8, 1)).astype(np.float32))
    return path, root


def test_pot_rescales_by_shifts_only(branchy_float, tmp_path):
    """Convolutions, ADD and MUL of a power-of-two build requantize by a shift: no multiplier array reaches
    the C, and the host C (built with ASan/UBSan) matches the numpy executor bit for bit on ADD, MUL, MEAN,
    concatenation."""
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


def test_shifts_round_as_litert_rounds_power_of_two_multipliers():
    """The convolution/MUL shift equals TFLite's MultiplyByQuantizedMultiplier for 2^-k (Q31 0.5, then a
    rounding divide: two roundings) and the fully connected/ADD shift its RoundingDivideByPOT, on every
    int32 near zero and on random ones, for every shift; they differ from each other, so each is needed."""
    from edgeq.lowering.fixedpoint import (
        multiply_by_quantized_multiplier, rounding_divide_by_pot, rounding_shift, tflite_rounding_shift,
    )
    rng = np.random.default_rng(0)
    x = np.concatenate([np.arange(-5000, 5000), rng.integers(-2**31, 2**31, 20000)])
    for k in range(1, 32):
        np.testing.assert_array_equal(tflite_rounding_shift(x, k), multiply_by_quantized_multiplier(x, 1 << 30, 1 - k))
        np.testing.assert_array_equal(rounding_shift(x, k), rounding_divide_by_pot(x, k))
    assert not np.array_equal(tflite_rounding_shift(x, 3), rounding_shift(x, 3))
    small = np.arange(-2**20, 2**20)  # a left shift (multiplier >= 1) is exact while it does not overflow
    for k in range(-8, 1):
        np.testing.assert_array_equal(tflite_rounding_shift(small, k), multiply_by_quantized_multiplier(small, 1 << 30, 1 - k))


def edgeq(*args):
    return subprocess.run([sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True)


def test_pot_build_is_power_of_two_and_bit_exact(digits_float, tmp_path):
    path, root = digits_float
    out = tmp_path / "pot"
    proc = edgeq("build", path, "--board", "host", "--calib", root / "calib.npz", "-o", out)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["quant"] == "pot"
    assert_rescales_are_shifts(out)
    # host C == numpy integer executor, bit for bit (validate compares them)
    proc = edgeq("validate", out, "--data", root / "eval.npz")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bit-exact" in proc.stdout


def test_pot_accuracy_close_to_float(digits_float, tmp_path):
    from edgeq.frontends.tflite import load_tflite_file
    from edgeq.lowering import lower_graph
    from edgeq.quant.driver import quantize
    from edgeq.quant.executor import run_float_graph, run_int

    path, root = digits_float
    graph = load_tflite_file(path)
    qgraph = quantize(graph, root / "calib.npz").graph
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
    html = (tmp_path / "q" / "quant_report.html").read_text()
    assert html.count("<img") >= 3 and "data:image/png;base64," in html
    assert all(name in html for name in report["tensors"])
    assert "weight rounding: gptq" in html and "quantized as MEAN: average_pool_2d" in html


def test_float_model_without_calibration_is_refused(digits_float, tmp_path):
    path, _ = digits_float
    proc = edgeq("build", path, "-o", tmp_path / "o")
    assert proc.returncode == 1 and "--calib" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("bad, needle", [
    (np.full((4, 8, 8, 1), np.nan, np.float32), "NaN"),
    (np.zeros((0, 8, 8, 1), np.float32), "no samples"),
    (np.zeros((4, 9, 9, 1), np.float32), "shape"),
])
def test_bad_calibration_data_is_refused(digits_float, tmp_path, bad, needle):
    path, _ = digits_float
    np.savez(tmp_path / "bad.npz", x=bad)
    proc = edgeq("quantize", path, "--calib", tmp_path / "bad.npz", "-o", tmp_path / "q")
    assert proc.returncode == 1 and needle in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "q").exists()


def _inverted_residual(h, expand, out, stride, name):
    inp = h
    h = L.ReLU(6.0)(L.BatchNormalization(name=f"{name}_expand_bn")(L.Conv2D(expand, 1, use_bias=False,
                                                                           name=f"{name}_expand")(h)))
    h = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(h)
    h = L.ReLU(6.0)(L.BatchNormalization()(h))
    h = L.BatchNormalization(name=f"{name}_project_bn")(L.Conv2D(out, 1, use_bias=False)(h))
    return L.Add()([inp, h]) if stride == 1 and inp.shape[-1] == out else h


def test_equalization_and_bias_correction_repair_uneven_channels(tmp_path):
    """MobileNetV2-style blocks (1x1 expand, depthwise, ReLU6, linear 1x1 project, residual) trained on
    digits. Block a's project layer then gets per-channel output scales spread over 100x (and block b's
    expand layer the inverse), which leaves the float function unchanged, as batch-norm folding does in
    real MobileNets. Plain per-tensor power-of-two quantization loses accuracy; equalization plus bias
    correction bring it back to within one point of float."""
    from edgeq.frontends.tflite import load_tflite_file
    from edgeq.quant.driver import QuantOptions, quantize
    from edgeq.quant.pot import paired_outputs

    tf.keras.utils.set_random_seed(0)
    x, y = digits_data()
    inp = tf.keras.Input((8, 8, 1), batch_size=1)
    h = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(16, 3, padding="same", use_bias=False)(inp)))
    h = _inverted_residual(h, 48, 24, 1, "a")
    h = _inverted_residual(h, 72, 24, 2, "b")
    h = _inverted_residual(h, 72, 24, 1, "c")
    model = tf.keras.Model(inp, L.Dense(10)(L.GlobalAveragePooling2D()(h)))
    model.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:1400], y[:1400], epochs=20, batch_size=32, verbose=0)
    spread = np.exp(np.random.default_rng(0).uniform(np.log(0.01), 0.0, 24)).astype(np.float32)
    bn = model.get_layer("a_project_bn")
    gamma, beta, mean, var = bn.get_weights()
    bn.set_weights([gamma * spread, beta * spread, mean, var])
    expand = model.get_layer("b_expand")
    expand.set_weights([expand.get_weights()[0] / spread.reshape(1, 1, -1, 1)])
    path = tmp_path / "mnv2.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    np.savez(tmp_path / "calib.npz", x=x[1400:1464])

    graph = load_tflite_file(path)
    ratios = []
    for op in graph.ops:
        w = graph.t(op.inputs[1]).data if op.kind == "CONV_2D" else None
        if w is not None:
            r = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
            ratios.append(r.max() / r.min())
    assert max(ratios) > 50, ratios
    x_eval, y_eval = load_calibration_like(x[1500:], graph), y[1500:]

    def accuracy(equalization, bias_correction, rounding="nearest"):
        q = quantize(graph, tmp_path / "calib.npz", QuantOptions(equalization, bias_correction, rounding),
                     echo=lambda *a: None).graph
        f, out = paired_outputs(graph, q, x_eval)
        return 100 * np.mean(f.argmax(1) == y_eval), 100 * np.mean(out.argmax(1) == y_eval)

    float_acc, plain = accuracy("off", "off")
    _, repaired = accuracy("on", "empirical")
    assert float_acc > 85, float_acc
    assert plain < float_acc - 3, (float_acc, plain)
    assert repaired >= float_acc - 1, (float_acc, plain, repaired)
    _, default = accuracy("auto", "empirical", "gptq")  # the default sees the gain on the calibration data
    assert default >= float_acc - 1, (float_acc, plain, default)


def load_calibration_like(x: np.ndarray, graph) -> np.ndarray:
    return x.reshape((len(x), *graph.t(graph.inputs[0]).shape))


def test_calibration_from_a_folder_of_images(digits_float, tmp_path):
    """--calib FOLDER: images resized to the input and scaled onto --input-range, in the input's layout."""
    from PIL import Image

    from edgeq.frontends.tflite import load_tflite_file
    from edgeq.quant.driver import QuantOptions, calibration_inputs

    path, root = digits_float
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(5):
        Image.fromarray(rng.integers(0, 256, (24, 16, 3), dtype=np.uint8)).save(folder / f"{k}.png")
    (folder / "notes.txt").write_text("not an image")
    graph = load_tflite_file(path)
    x = calibration_inputs(graph, folder, QuantOptions(input_range="-1,1"))
    assert x.shape == (5, 1, 8, 8, 1) and x.min() >= -1 and x.max() <= 1 and x.std() > 0.1
    crop = calibration_inputs(graph, folder, QuantOptions(input_range="0,1", resize="center-crop"))
    assert crop.shape == x.shape and not np.allclose(crop, (x + 1) / 2)
    proc = edgeq("quantize", path, "--calib", folder, "--input-range", "0,1", "-o", tmp_path / "q")
    assert proc.returncode == 0, proc.stderr
    (folder / "broken.png").write_bytes(b"\x89PNG garbage")
    proc = edgeq("quantize", path, "--calib", folder, "-o", tmp_path / "q2")
    assert proc.returncode == 1 and "broken.png" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_high_bias_absorption_keeps_the_function_and_shrinks_ranges(tmp_path):
    """A ReLU layer whose channels never clip on the data hands its bias to the next layer: same float
    outputs, smaller range of its own output, and the quantized model no worse."""
    from edgeq.frontends.tflite import load_tflite_file
    from edgeq.passes.bias_absorption import absorb_high_biases
    from edgeq.quant.driver import QuantOptions, quantize
    from edgeq.quant.calibration import collect_stats, load_calibration
    from edgeq.quant.executor import run_float_graph

    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential([tf.keras.Input((16,), batch_size=1), L.Dense(24, activation="relu"),
                                 L.Dense(24, activation="relu"), L.Dense(6)])
    w, b = model.layers[0].get_weights()
    model.layers[0].set_weights([w * 0.2, b + np.linspace(0.0, 6.0, 24, dtype=np.float32)])  # high biases
    path = tmp_path / "mlp.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(0).uniform(-1, 1, (64, 16)).astype(np.float32))
    graph = load_tflite_file(path)
    x = load_calibration(tmp_path / "calib.npz", graph)
    stats = collect_stats(graph, x)
    absorbed, moved = absorb_high_biases(graph, {n: s.channel_min for n, s in stats.items()})
    first = graph.ops[0]
    assert moved.get(first.name, 0) > 3, moved
    for sample in x[:8]:
        a, b2 = run_float_graph(graph, [sample], keep_all=True), run_float_graph(absorbed, [sample], keep_all=True)
        np.testing.assert_allclose(b2[graph.outputs[0]], a[graph.outputs[0]], rtol=1e-5, atol=1e-5)
        assert b2[first.outputs[0]].max() < a[first.outputs[0]].max() - 2
    plain = QuantOptions("off", "off", "nearest")
    with_absorption = quantize(graph, tmp_path / "calib.npz", plain, echo=lambda *a: None).summary
    without = quantize(graph, tmp_path / "calib.npz", replace(plain, bias_absorption=False), echo=lambda *a: None).summary
    assert with_absorption.high_bias_absorbed and not without.high_bias_absorbed
    assert with_absorption.output_sqnr_db >= without.output_sqnr_db - 0.5


def test_error_compensating_rounding(digits_float, branchy_float, tmp_path):
    """--rounding gptq (the default) keeps the power-of-two scales, lowers each layer's output error against
    nearest rounding (per-channel and per-tensor scales), with per-tensor scales raises the models' output SQNR,
    and builds host C bit-exact with the executor; so does --rounding nearest."""
    from edgeq.frontends.tflite import load_tflite_file
    from edgeq.ir import ops
    from edgeq.lowering.conv import _float_patches
    from edgeq.quant.driver import QuantOptions, quantize
    from edgeq.quant.rounding import round_layer

    rng = np.random.default_rng(1)
    # correlated channels and neighbouring pixels, as in real feature maps (independent inputs leave GPTQ nothing)
    x = np.cumsum(np.cumsum(rng.normal(size=(40, 6, 6, 18)), axis=1), axis=2) @ rng.normal(size=(18, 18)) * 0.1
    patches = _float_patches(x, ops.Conv2D("c", [], []), (3, 3), (40, 4, 4, 18)).reshape(-1, 9, 18)
    layers = {"fc": (ops.FullyConnected("fc", [], []), (40, 12), (12, 6 * 6 * 18), 0,
                     lambda d: x.reshape(len(x), -1) @ d.T),
              "conv": (ops.Conv2D("conv", [], []), (40, 4, 4, 12), (12, 3, 3, 18), 0,
                       lambda d: patches.reshape(len(patches), -1) @ d.reshape(len(d), -1).T),
              "depthwise": (ops.DepthwiseConv2D("dw", [], []), (40, 4, 4, 18), (1, 3, 3, 18), 3,
                            lambda d: np.einsum("rkc,kc->rc", patches, d.reshape(9, 18)))}
    for name, (op, out_shape, shape, axis, linear) in layers.items():
        per = [1] * len(shape)
        per[axis] = -1
        w = rng.normal(size=shape) * rng.uniform(0.05, 2, shape[axis]).reshape(per)  # channels of unlike ranges
        for steps in (np.array([2.0 ** -5]), 2.0 ** -rng.integers(4, 8, shape[axis]).astype(float)):
            q_gptq = round_layer(op, w, steps, [x], out_shape).astype(float)
            q_nearest = np.clip(np.round(w / steps.reshape(per)), -127, 127)
            gptq_error, nearest_error = (np.sum(linear(w - q * steps.reshape(per)) ** 2) for q in (q_gptq, q_nearest))
            assert gptq_error < 0.8 * nearest_error, (name, steps.size, gptq_error, nearest_error)
    for path, root in (digits_float, branchy_float):
        graph = load_tflite_file(path)
        options = QuantOptions("off", "off", "nearest", weight_scales="per-tensor")
        nearest = quantize(graph, root / "calib.npz", options, echo=lambda *a: None)
        gptq = quantize(graph, root / "calib.npz", replace(options, rounding="gptq"), echo=lambda *a: None)
        assert gptq.summary.rounding == "gptq"
        assert gptq.summary.output_sqnr_db > nearest.summary.output_sqnr_db, \
            (nearest.summary.output_sqnr_db, gptq.summary.output_sqnr_db)
        for a, b in zip(nearest.graph.ops, gptq.graph.ops):
            if a.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
                np.testing.assert_array_equal(nearest.graph.t(a.inputs[1]).quant.scale,
                                              gptq.graph.t(b.inputs[1]).quant.scale)
    path, root = branchy_float
    out = tmp_path / "nearest"
    proc = edgeq("build", path, "--board", "host", "--calib", root / "calib.npz", "--rounding", "nearest", "-o", out)
    assert proc.returncode == 0, proc.stderr
    proc = edgeq("validate", out, "--data", root / "eval.npz")
    assert proc.returncode == 0 and "bit-exact" in proc.stdout, proc.stdout + proc.stderr


def test_global_average_pool_is_quantized_as_a_mean(digits_float):
    """The digits CNN's 4x4 global average pool becomes a MEAN (the same float function) whose output gets
    a finer power-of-two scale than its input; --no-pool-as-mean keeps the pool and its input's scale."""
    from edgeq.frontends.tflite import load_tflite_file
    from edgeq.ir import ops
    from edgeq.passes.global_pool import global_average_pools_to_means
    from edgeq.quant.driver import QuantOptions, quantize
    from edgeq.quant.executor import run_float_graph

    path, root = digits_float
    graph = load_tflite_file(path)
    pooled, names = global_average_pools_to_means(graph)
    assert len(names) == 1 and not any(isinstance(op, ops.AveragePool2D) for op in pooled.ops)
    x = np.load(root / "eval.npz")["x"][:16].reshape(-1, *graph.t(graph.inputs[0]).shape)
    for s in x:
        np.testing.assert_allclose(run_float_graph(pooled, [s])[graph.outputs[0]],
                                   run_float_graph(graph, [s])[graph.outputs[0]], rtol=1e-5, atol=1e-6)
    result = quantize(graph, root / "calib.npz", QuantOptions("off", "off", "nearest"), echo=lambda *a: None)
    q = result.graph
    mean = next(op for op in q.ops if isinstance(op, ops.Mean))
    assert result.summary.global_pools_as_means == names
    assert q.t(mean.outputs[0]).quant.s < q.t(mean.inputs[0]).quant.s
    kept = quantize(graph, root / "calib.npz", QuantOptions("off", "off", "nearest", pool_as_mean=False),
                    echo=lambda *a: None).graph
    pool = next(op for op in kept.ops if isinstance(op, ops.AveragePool2D))
    assert kept.t(pool.outputs[0]).quant.s == kept.t(pool.inputs[0]).quant.s
