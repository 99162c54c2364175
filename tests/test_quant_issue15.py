"""Power-of-two quantization, issue 15: the driver's typed options and result, the graph input's zero point,
adaptive rounding (AdaRound), the selection rule, cross-validation on the calibration data, batched
calibration, and the bench's confidence intervals."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.oracles import assert_rescales_are_shifts

tf = pytest.importorskip("tensorflow")
L = tf.keras.layers


def edgeq(*args):
    return subprocess.run([sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def offset_model(tmp_path_factory):
    """A small float CNN whose input, like kws's MFCCs, is far from symmetric (about -20..3), read by a
    padded convolution; calibration and evaluation inputs."""
    tf.keras.utils.set_random_seed(5)
    inp = tf.keras.Input((12, 10, 1), batch_size=1)
    h = L.Conv2D(8, 3, padding="same", activation="relu")(inp)
    h = L.DepthwiseConv2D(3, padding="same", activation="relu")(h)
    out = L.Dense(4)(L.Flatten()(L.MaxPool2D(2)(L.Conv2D(8, 1, activation="relu")(h))))
    root = tmp_path_factory.mktemp("offset")
    path = root / "offset.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(inp, out)).convert())
    rng = np.random.default_rng(0)

    def inputs(n):
        x = rng.normal(0.0, 1.0, (n, 12, 10, 1))
        x[:, :, 0] = rng.uniform(-20, -12, (n, 12, 1))  # one column far below the rest, as MFCC's first
        return x.astype(np.float32)

    np.savez(root / "calib.npz", x=inputs(32))
    np.savez(root / "eval.npz", x=inputs(40))
    return path, root


def test_input_zero_point_builds_bit_exact(offset_model, tmp_path):
    """With --input-scale power-of-two, the input gets an asymmetric power-of-two grid (zero point beside 2^-n)
    whose error at the first layer's output is below the symmetric grid's; every scale stays a power of two, no
    multiplier reaches the C, and the host C (padding included) matches the numpy executor bit for bit.
    --no-input-zero-point keeps it symmetric."""
    from edgeq.frontends.tflite import load_tflite_file
    from edgeq.quant.driver import QuantOptions, quantize

    path, root = offset_model
    graph = load_tflite_file(path)
    with_zp = quantize(graph, root / "calib.npz", QuantOptions(equalization="off", input_scale="power-of-two"),
                       echo=lambda *_: None)
    without = quantize(graph, root / "calib.npz", QuantOptions(equalization="off", input_zero_point=False),
                       echo=lambda *_: None)
    q_in = with_zp.graph.t(with_zp.graph.inputs[0]).quant
    assert with_zp.summary.input_zero_point == q_in.zp != 0 and without.summary.input_zero_point == 0
    assert with_zp.tensors[graph.inputs[0]]["exponent"] > without.tensors[graph.inputs[0]]["exponent"]
    assert with_zp.summary.output_sqnr_db > without.summary.output_sqnr_db
    out = tmp_path / "build"
    proc = edgeq("build", path, "--board", "host", "--calib", root / "calib.npz", "--equalization", "off",
                 "--input-scale", "power-of-two", "-o", out)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["inputs"][0]["zero_point"] == [q_in.zp]
    for t in manifest["tensors"]:
        if t["dtype"] == "int8":
            assert all(np.log2(s) == round(np.log2(s)) for s in t["scale"]), t["name"]
    assert "_out_mult" not in (out / "offset_weights.c").read_text()
    proc = edgeq("validate", out, "--data", root / "eval.npz")
    assert proc.returncode == 0 and "40 of 40 samples bit-exact" in proc.stdout, proc.stdout + proc.stderr


def test_input_step_pairs_rescale_by_a_shift_in_tflite():
    """input_step_pair moves a scale by at most 2^-10 of itself, and a fitted input's scale times its readers'
    weight scale 2^-n r is a power of two to within 2^-33: TFLite's QuantizeMultiplier makes exactly 2^30 of
    it, a shift. A +1 on r's mantissa breaks both."""
    from edgeq.lowering.fixedpoint import quantize_multiplier
    from edgeq.quant.pot import input_reciprocal, input_step_pair

    rng = np.random.default_rng(3)
    for target in np.exp(rng.uniform(np.log(1e-4), np.log(1e3), 300)):
        step, r = input_step_pair(float(target))
        assert abs(step / target - 1) <= 2.0 ** -10 and input_reciprocal(step) == r
        for n in (0, 5, 9):  # the layer's weight exponent; output exponent 4
            product = np.float64(np.float32(step)) * np.float64(np.float32(r * 2.0 ** -n)) / 2.0 ** -4
            assert abs(product / 2.0 ** round(np.log2(product)) - 1) < 2.0 ** -33
            assert quantize_multiplier(float(product))[0] == 1 << 30
        if r != 1.0:
            off = np.float64(np.float32(step)) * np.nextafter(np.float32(r), np.float32(2))
            assert quantize_multiplier(float(off))[0] != 1 << 30


def test_fitted_input_scale_builds_bit_exact_and_exports(offset_model, tmp_path):
    """By default the input's grid may take a scale that is no power of two, fitted to its range: here it errs
    less than every power-of-two grid, the first layer's weight scales carry its mantissa's reciprocal so the C
    still rescales by shifts alone (no multiplier), the host C matches the numpy executor bit for bit, and the
    TFLite export runs in LiteRT's reference kernels bit-exact with edgeq's executor."""
    from ai_edge_litert import interpreter as lr

    from edgeq.export import to_tflite
    from edgeq.frontends.tflite import load_tflite_file
    from edgeq.lowering import lower_graph
    from edgeq.quant.driver import QuantOptions, quantize
    from edgeq.quant.executor import run_int
    from edgeq.quant.pot import quantize_sample

    path, root = offset_model
    graph = load_tflite_file(path)
    fitted = quantize(graph, root / "calib.npz", QuantOptions(equalization="off"), echo=lambda *_: None)
    pot = quantize(graph, root / "calib.npz", QuantOptions(equalization="off", input_scale="power-of-two"),
                   echo=lambda *_: None)
    q_in = fitted.graph.t(fitted.graph.inputs[0]).quant
    assert np.log2(q_in.s) != round(np.log2(q_in.s)) and fitted.tensors[graph.inputs[0]]["scale"] == q_in.s
    assert fitted.summary.output_sqnr_db > pot.summary.output_sqnr_db
    first = next(op for op in fitted.graph.ops if op.inputs[0] == fitted.graph.inputs[0])
    products = np.float64(q_in.s) * fitted.graph.t(first.inputs[1]).quant.scale.astype(np.float64)
    assert np.all(np.abs(products / 2.0 ** np.round(np.log2(products)) - 1) < 2.0 ** -33)

    proc = edgeq("quantize", path, "--calib", root / "calib.npz", "--equalization", "off", "-o", tmp_path / "q")
    lines = {line.split()[0]: line.split()[2] for line in proc.stdout.splitlines()[1:-1]}
    assert proc.returncode == 0 and lines[graph.inputs[0]] == f"{float(q_in.s):.6g}", proc.stdout
    reciprocal = float(lines[first.inputs[1]].split("*")[1])
    assert reciprocal == pytest.approx(2.0 ** np.floor(np.log2(q_in.s)) / q_in.s, rel=1e-5)
    out = tmp_path / "build"
    proc = edgeq("build", path, "--board", "host", "--calib", root / "calib.npz", "--equalization", "off", "-o", out)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["inputs"][0]["scale"] == [pytest.approx(float(q_in.s), rel=1e-7)]
    assert manifest["inputs"][0]["zero_point"] == [q_in.zp]
    assert_rescales_are_shifts(out)
    proc = edgeq("validate", out, "--data", root / "eval.npz")
    assert proc.returncode == 0 and "40 of 40 samples bit-exact" in proc.stdout, proc.stdout + proc.stderr

    # the reference kernels: XNNPACK's requantize in float
    it = lr.Interpreter(model_content=to_tflite(fitted.graph), experimental_op_resolver_type=lr.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    (inp,), (outp,) = it.get_input_details(), it.get_output_details()
    assert inp["quantization"][0] == np.float32(q_in.s)
    calls = lower_graph(fitted.graph)
    for x in np.load(root / "eval.npz")["x"]:
        q = quantize_sample(x, q_in).reshape(inp["shape"])
        it.set_tensor(inp["index"], q)
        it.invoke()
        ours = run_int(fitted.graph, [q], calls)[fitted.graph.outputs[0]]
        assert np.array_equal(it.get_tensor(outp["index"]), ours.reshape(outp["shape"]))


def test_fitted_input_scale_with_int16_readers_builds_bit_exact(offset_model, tmp_path):
    """Mixed precision over a fitted input: the first layer, which reads the fitted input, writes int16 (a 16x8
    path whose rescale is TFLite's multiplier of the same product), and the host C still matches the numpy
    executor bit for bit."""
    path, root = offset_model
    out = tmp_path / "mixed"
    proc = edgeq("build", path, "--board", "host", "--calib", root / "calib.npz", "--equalization", "off",
                 "--mixed-precision", "--max-arena", 1 << 20, "-o", out)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "model.json").read_text())
    scale = manifest["inputs"][0]["scale"][0]
    assert np.log2(scale) != round(np.log2(scale))
    first = next(layer for layer in manifest["layers"] if manifest["inputs"][0]["name"] in layer["inputs"])
    dtypes = {t["name"]: t["dtype"] for t in manifest["tensors"]}
    assert dtypes[first["outputs"][0]] == "int16", first
    proc = edgeq("validate", out, "--data", root / "eval.npz")
    assert proc.returncode == 0 and "40 of 40 samples bit-exact" in proc.stdout, proc.stdout + proc.stderr


def test_adaround_keeps_the_scales_and_builds_bit_exact(offset_model, tmp_path):
    """--rounding adaround changes only which way weights round: the same power-of-two scales as nearest
    rounding, every weight within one step of nearest's, a lower output error on the calibration data, and a
    host build bit-exact with the executor."""
    from edgeq.frontends.tflite import load_tflite_file
    from edgeq.quant.driver import QuantOptions, quantize

    path, root = offset_model
    graph = load_tflite_file(path)
    plain = QuantOptions(equalization="off", bias_correction="off")
    nearest = quantize(graph, root / "calib.npz", QuantOptions("off", "off", "nearest"), echo=lambda *_: None)
    messages = []
    ada = quantize(graph, root / "calib.npz", QuantOptions("off", "off", "adaround"), echo=messages.append)
    assert plain.rounding == "auto" and ada.summary.rounding == "adaround"
    assert any("adaptive rounding: layer 1 of 4" in m for m in messages), messages
    changed = 0
    for a, b in zip(nearest.graph.ops, ada.graph.ops):
        if a.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            wa, wb = nearest.graph.t(a.inputs[1]), ada.graph.t(b.inputs[1])
            np.testing.assert_array_equal(wa.quant.scale, wb.quant.scale)
            assert np.abs(wa.data.astype(int) - wb.data.astype(int)).max() <= 1
            changed += int(np.sum(wa.data != wb.data))
    assert changed > 0
    assert ada.summary.output_sqnr_db > nearest.summary.output_sqnr_db, \
        (nearest.summary.output_sqnr_db, ada.summary.output_sqnr_db)
    out = tmp_path / "ada"
    proc = edgeq("build", path, "--board", "host", "--calib", root / "calib.npz", "--rounding", "adaround", "--equalization", "off", "-o", out)
    assert proc.returncode == 0, proc.stderr
    proc = edgeq("validate", out, "--data", root / "eval.npz")
    assert proc.returncode == 0 and "bit-exact" in proc.stdout, proc.stdout + proc.stderr


def test_selection_rule_and_cross_validation_in_the_report(offset_model, tmp_path):
    """--equalization auto and --rounding auto (the defaults) keep the candidate with the higher output SQNR on
    the calibration data: equalization off and on with GPTQ, then GPTQ and nearest rounding on the equalization
    kept; each choice is said; --cv-folds K puts K held-out scores beside the in-sample ones in the JSON and as a
    plot in the HTML."""
    path, root = offset_model
    proc = edgeq("quantize", path, "--calib", root / "calib.npz", "--cv-folds", "2", "-o", tmp_path / "q")
    assert proc.returncode == 0, proc.stderr
    assert "keeping" in proc.stdout and "(higher SQNR)" in proc.stdout and "cross-validation (2 folds)" in proc.stdout
    assert "equalization: off" in proc.stdout and "rounding: gptq" in proc.stdout
    report = json.loads((tmp_path / "q" / "quant_report.json").read_text())
    summary, cv = report["summary"], report["cross_validation"]
    candidates = summary["candidates"]
    assert [(c["equalization"], c["rounding"]) for c in candidates][:2] == [(False, "gptq"), (True, "gptq")]
    first = max(candidates[:2], key=lambda c: c["output_sqnr_db"])
    assert candidates[2]["rounding"] == "nearest" and candidates[2]["equalization"] == first["equalization"]
    best = max([first, candidates[2]], key=lambda c: c["output_sqnr_db"])
    assert (summary["equalization"], summary["rounding"]) == (best["equalization"], best["rounding"])
    assert summary["output_sqnr_db"] == best["output_sqnr_db"] and "highest output SQNR" in summary["selection_rule"]
    assert cv["folds"] == 2 and len(cv["top1_agreement"]) == 2 and len(cv["output_sqnr_db"]) == 2
    assert cv["in_sample_output_sqnr_db"] == summary["output_sqnr_db"]
    html = (tmp_path / "q" / "quant_report.html").read_text()
    assert "Cross-validation on the calibration data" in html and "kept by the rule" in html
    proc = edgeq("quantize", path, "--calib", root / "calib.npz", "--cv-folds", "1", "-o", tmp_path / "q1")
    assert proc.returncode == 1 and "--cv-folds 1" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_options_are_refused_in_one_line():
    from edgeq.errors import EdgeqError
    from edgeq.quant.driver import QuantOptions

    with pytest.raises(EdgeqError, match="Unknown --rounding 'stochastic'; choose one of auto, gptq, adaround, nearest"):
        QuantOptions(rounding="stochastic").checked()
    assert QuantOptions(data_free=True, rounding="adaround").checked().rounding == "nearest"


def test_batched_calibration_equals_sample_by_sample(tmp_path):
    """Calibration runs the float graph 16 samples at a time: the same tensors as one at a time, on a graph
    with residual ADD, MUL, concatenation, MEAN and standalone activations; statistics shifted for high-bias
    absorption equal those of the absorbed graph run again."""
    from edgeq.frontends.tflite import load_tflite_file
    from edgeq.passes.bias_absorption import absorb_high_biases
    from edgeq.quant.calibration import collect_stats
    from edgeq.quant.executor import batches_exactly, run_float_batch, run_float_graph
    from tests.models import branchy_model

    path = tmp_path / "branchy.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(branchy_model()).convert())
    graph = load_tflite_file(path)
    x = np.random.default_rng(1).uniform(0, 1, (20, 1, 8, 8, 1)).astype(np.float32)
    assert batches_exactly(graph, x[0])
    batched = run_float_batch(graph, x, keep_all=True)
    for k in (0, 17):
        single = run_float_graph(graph, [x[k]], keep_all=True)
        for name, v in single.items():
            np.testing.assert_allclose(batched[name][k].reshape(v.shape), v, rtol=1e-5, atol=1e-6)

    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential([tf.keras.Input((16,), batch_size=1), L.Dense(24, activation="relu"), L.Dense(6)])
    w, b = model.layers[0].get_weights()
    model.layers[0].set_weights([w * 0.2, b + np.linspace(0.0, 6.0, 24, dtype=np.float32)])
    path = tmp_path / "mlp.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    graph = load_tflite_file(path)
    x = np.random.default_rng(0).uniform(-1, 1, (32, 1, 16)).astype(np.float32)
    stats = collect_stats(graph, x)
    first = graph.ops[0].outputs[0]
    absorbed, moved = absorb_high_biases(graph, {first: stats[first].channel_min})
    assert moved
    shifted = stats[first].shifted(np.maximum(stats[first].channel_min, 0.0))
    again = collect_stats(absorbed, x)[first]
    np.testing.assert_allclose(shifted.values, again.values, atol=1e-5)
    np.testing.assert_allclose(shifted.channel_mean, again.channel_mean, atol=1e-5)
    assert abs(shifted.max - again.max) < 1e-5 and abs(shifted.min - again.min) < 1e-5


def test_bench_intervals():
    """The bench's 95% intervals: Wilson's for agreement (200 samples: one sample is 0.5 point), Fisher's z
    for the anomaly score's r."""
    from edgeq.bench import fisher_r, wilson

    lo, hi = wilson(190, 200)
    assert abs(lo - 0.9103) < 1e-3 and abs(hi - 0.9727) < 1e-3
    lo, hi = wilson(200, 200)
    assert hi == pytest.approx(1.0) and abs(lo - 0.9812) < 1e-3
    lo, hi = fisher_r(0.9975, 200)
    assert lo < 0.9975 < hi < 1 and abs(lo - 0.9967) < 2e-4
