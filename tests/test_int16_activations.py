"""16x8 LOGISTIC, TANH, SOFTMAX, ABS, RSQRT and TRANSPOSE_CONV (int16 activations) against TFLite Micro: many
configurations side by side in one model (input scales that take TFLite's multiplier-free power-of-two path and
general ones; every int16 value through the element-wise ones), compared bit for bit in numpy and in the
generated C (ASan/UBSan)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.oracles import check_model
from tests.tflite_builder import Op, T, build

pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro")

OUT = 1 / 32768  # TFLite's required output scale for all three


def q16(shape, scale: float) -> T:
    return T(tuple(shape), "int16", scale, 0)


def _every_int16(parts: int):
    """Samples that, taken together, feed each input all 65,536 int16 values (in a random order) over `parts`
    samples, so that TFLite Micro's arena holds a dozen configurations."""
    perms: dict[str, np.ndarray] = {}
    count = iter(range(parts))

    def sample(graph, rng):
        k = next(count)
        for n in graph.inputs:
            perms.setdefault(n, rng.permutation(np.arange(-32768, 32768)).astype(np.int16))
        return [np.array_split(perms[n], parts)[k].reshape(graph.t(n).shape) for n in graph.inputs]
    return sample


def _random_int16(graph, rng):
    return [rng.integers(-32768, 32768, size=graph.t(n).shape).astype(np.int16) for n in graph.inputs]


# 2^-12 and 2^-11: the power-of-two paths (TANH takes both, LOGISTIC only 2^-12); the rest go through the
# 15-bit multiplier, from scales so small that the whole int16 range sits near 0 to ones that saturate.
SCALES = [2**-12, 2**-11, 2**-13, 2**-15, 2**-8, 0.0003, 0.001, 0.00123, 0.0071, 0.05, 0.37, 2.5]


@pytest.mark.parametrize("code", ["LOGISTIC", "TANH"])
def test_logistic_tanh_16x8(code):
    op_list = [Op(code, [q16((64, 256), s)], [q16((64, 256), OUT)], version=3) for s in SCALES]
    check_model(build(op_list), n=4, sample=_every_int16(4))


def test_softmax_16x8():
    cases = [((3, 10), 0.001, 1.0), ((2, 7, 33), 0.0003, 1.0), ((4, 1), 0.01, 1.0), ((1, 200), 1 / 4096, 2.0),
             ((5, 16), 0.05, 0.5), ((2, 3, 4, 5), 0.00002, 1.0), ((1, 1000), 0.002, 1.0), ((6, 64), 0.3, 0.1)]
    op_list = [Op("SOFTMAX", [q16(shape, s)], [q16(shape, OUT)], "SoftmaxOptions", {"beta": beta}, version=3)
               for shape, s, beta in cases]
    check_model(build(op_list), n=6, sample=_random_int16)


def test_softmax_16x8_tables_and_sigmoid_table():
    """The softmax tables as TFLite's gen_lut makes them (endpoints and monotonicity), and the sigmoid table
    equal to CMSIS-NN's copy of TFLite's when ../shared is present."""
    import re

    from edgeq.lowering import lut16
    from tests.oracles import shared_path

    exp_lut, recip_lut = lut16.softmax_luts()
    assert exp_lut[-1] == 32767 and recip_lut[0] == 32767 and recip_lut[-1] == 16384
    assert np.all(np.diff(exp_lut.astype(int)) >= 0) and np.all(np.diff(recip_lut.astype(int)) <= 0)
    text = shared_path("third_party/CMSIS-NN/Source/NNSupportFunctions/arm_nntables.c").read_text()
    body = re.search(r"sigmoid_table_uint16\[256\] = \{(.*?)\};", text, re.S).group(1)
    np.testing.assert_array_equal(lut16.SIGMOID_TABLE, [int(v) for v in body.split(",") if v.strip()])


@pytest.mark.parametrize("code,out_scale,message", [
    ("TANH", 1 / 16384, "scale 1/32768"), ("LOGISTIC", 1 / 32768, "too large"), ("SOFTMAX", 1 / 256, "1/32768")])
def test_16x8_activation_refusals(code, out_scale, message):
    from edgeq.errors import EdgeqError
    from edgeq.frontends.tflite import load_tflite
    from edgeq.lowering import lower_graph

    in_scale = 9.0 if code == "LOGISTIC" else 0.001
    opts = ("SoftmaxOptions", {"beta": 1.0}) if code == "SOFTMAX" else (None, {})
    graph = load_tflite(build([Op(code, [q16((2, 4), in_scale)], [q16((2, 4), out_scale)], *opts, version=3)]), "m")
    with pytest.raises(EdgeqError, match=message):
        lower_graph(graph)


def test_transpose_conv_16x8():
    """16x8 TRANSPOSE_CONV (int64 bias and accumulators): SAME and VALID, strides 1-3, per-tensor and
    per-channel weights, with and without bias, fused RELU and RELU6."""
    rng = np.random.default_rng(6)

    def layer(in_hw, k, stride, padding, ci, co, per_channel=True, bias=True, act=0):
        kh, kw = (k, k) if isinstance(k, int) else k
        sh, sw = (stride, stride) if isinstance(stride, int) else stride
        (ih, iw), s_x = in_hw, 0.0005
        oh, ow = (ih * sh, iw * sw) if padding == "SAME" else ((ih - 1) * sh + kh, (iw - 1) * sw + kw)
        s_w = list(rng.uniform(0.002, 0.02, co)) if per_channel else 0.01
        w = T((co, kh, kw, ci), "int8", s_w, [0] * co if per_channel else 0,
              rng.integers(-127, 128, (co, kh, kw, ci)).astype(np.int8))
        ins = [T((4,), "int32", data=np.array([1, oh, ow, co], np.int32)), w, q16((1, ih, iw, ci), s_x)]
        if bias:
            s_b = np.atleast_1d(s_w) * s_x
            ins.append(T((co,), "int64", list(s_b) if per_channel else float(s_b[0]), [0] * co if per_channel else 0,
                         rng.integers(-2**20, 2**20, co).astype(np.int64)))
        return Op("TRANSPOSE_CONV", ins, [q16((1, oh, ow, co), 0.01)], "TransposeConvOptions",
                  {"padding": {"SAME": 0, "VALID": 1}[padding], "strideH": sh, "strideW": sw,
                   "fusedActivationFunction": act}, version=4)

    op_list = [layer((3, 4), 3, 2, "SAME", 4, 5), layer((3, 4), 3, 2, "VALID", 4, 5, per_channel=False),
               layer((4, 4), 2, 2, "SAME", 3, 2, bias=False), layer((2, 5), (3, 1), (3, 1), "VALID", 2, 3),
               layer((5, 3), 3, 1, "SAME", 6, 4, act=1), layer((3, 3), 4, 3, "SAME", 2, 2, act=3)]
    check_model(build(op_list), n=6, sample=_random_int16)


def test_abs_16x8():
    """ABS on every int16 value: equal scales (|x| clamped, -32768 -> 32767) and rescaled both ways."""
    op_list = [Op("ABS", [q16((64, 256), s_in)], [q16((64, 256), s_out)], version=3)
               for s_in, s_out in ((0.001, 0.001), (0.001, 0.0007), (0.0003, 0.002), (2**-10, 2**-12))]
    check_model(build(op_list), n=4, sample=_every_int16(4))


def test_rsqrt_16x8():
    """RSQRT on every non-negative int16 value (TFLite Micro stops on negative ones) at four scale pairs."""
    count = iter(range(2))

    def sample(graph, rng):
        half = np.array_split(rng.permutation(np.arange(0, 32768)), 2)[next(count)]
        return [half.astype(np.int16).reshape(graph.t(n).shape) for n in graph.inputs]
    op_list = [Op("RSQRT", [q16((64, 256), s_in)], [q16((64, 256), s_out)], version=3)
               for s_in, s_out in ((0.001, 0.001), (0.0001, 0.003), (2**-12, 2**-8), (0.05, 0.0002))]
    check_model(build(op_list), n=2, sample=sample)


# --- MAXIMUM, MINIMUM, SQUARED_DIFFERENCE, BATCH_MATMUL, QUANTIZE/DEQUANTIZE in 16x8 --------------------------

EXTREMES = np.array([-32768, -32767, -16384, -1, 0, 1, 16383, 32766, 32767], np.int16)


def _int16_with_extremes(graph, rng):
    """Uniformly random int16, a quarter of the elements drawn from the extremes and their neighbours."""
    xs = _random_int16(graph, rng)
    for x in xs:
        pick = rng.random(x.shape) < 0.25
        x[pick] = rng.choice(EXTREMES, size=int(pick.sum()))
    return xs


# (a shape, b shape): equal shapes, one side broadcast, both sides broadcast, rank 1 to 4, a single element
BROADCASTS = [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (1, 3, 1)), ((4, 1), (1, 5)), ((1,), (3, 7)),
              ((2, 1, 3, 5), (1, 4, 1, 5)), ((6,), (6,)), ((3, 1, 4), (2, 1)), ((1, 1, 1, 1), (1, 2, 2, 3))]


@pytest.mark.parametrize("code", ["MAXIMUM", "MINIMUM"])
def test_maximum_minimum_16x8(code):
    """Raw int16 values compared, as TFLite Micro does whatever the scales; every broadcast pattern, and an op
    reading one tensor twice."""
    op_list = [Op(code, [q16(a, s_a), q16(b, s_b)], [q16(np.broadcast_shapes(a, b), s_y)], version=4)
               for (a, b), (s_a, s_b, s_y) in zip(BROADCASTS, [(0.01, 0.01, 0.01), (0.002, 0.005, 0.004)] * 4)]
    same = q16((3, 5), 0.003)
    op_list.append(Op(code, [same, same], [q16((3, 5), 0.003)], version=4))
    check_model(build(op_list), n=6, sample=_int16_with_extremes)


def test_squared_difference_16x8():
    """TFLite Micro's int16 arithmetic (left shift 0, int32 square): equal and unequal input scales either way
    round, outputs from fine (saturating) to coarse, every broadcast pattern."""
    scales = [(0.001, 0.001, 0.02), (0.001, 0.0004, 0.05), (0.0003, 0.002, 0.5), (0.01, 0.01, 2**-4),
              (0.05, 0.02, 200.0), (2**-10, 2**-12, 2**-15), (0.002, 0.002, 1e-6), (0.7, 0.3, 3000.0)]
    op_list = [Op("SQUARED_DIFFERENCE", [q16(a, s_a), q16(b, s_b)], [q16(np.broadcast_shapes(a, b), s_y)], version=2)
               for (a, b), (s_a, s_b, s_y) in zip(BROADCASTS, scales)]
    check_model(build(op_list), n=6, sample=_int16_with_extremes)


def test_prelu_16x8():
    """int16 input and output with an int8 alpha (TFLite Micro's only 16x8 PRELU): alpha per channel, scalar and
    broadcast over several axes, with zero points, slopes above 1 and negative ones, outputs finer and coarser."""
    rng = np.random.default_rng(13)
    op_list = []
    for (x_shape, a_shape), (s_x, s_a, zp_a, s_y) in zip(
            [((1, 4, 5, 3), (3,)), ((2, 7), (1,)), ((1, 3, 4, 6), (1, 1, 6)), ((3, 4, 5), (4, 5)),
             ((2, 2, 2, 2), (2, 1, 2)), ((5, 8), (8,))],
            [(0.001, 0.01, 0, 0.001), (0.002, 0.004, -20, 0.0007), (0.0005, 0.02, 100, 0.003), (0.01, 0.05, -128, 0.02),
             (2**-12, 2**-6, 3, 2**-10), (0.003, 0.001, 0, 0.0001)]):
        alpha = T(a_shape, "int8", s_a, zp_a, rng.integers(-128, 128, a_shape).astype(np.int8))
        op_list.append(Op("PRELU", [q16(x_shape, s_x), alpha], [q16(x_shape, s_y)], version=1))
    check_model(build(op_list), n=6, sample=_int16_with_extremes)


def _batch_matmul16(rng, a_shape, b_shape, adj_x, adj_y, const_rhs, fill=1.0, scales=(0.002, 0.003)):
    """One 16x8 BATCH_MATMUL whose output scale makes random full-range operands' products spread over `fill`
    times the int16 range at three standard deviations (fill > 1 saturates)."""
    rhs = (T(b_shape, "int16", scales[1], 0, rng.integers(-32768, 32768, b_shape).astype(np.int16)) if const_rhs
           else q16(b_shape, scales[1]))
    a, b = np.zeros(a_shape), np.zeros(b_shape)
    y = np.matmul(np.swapaxes(a, -1, -2) if adj_x else a, np.swapaxes(b, -1, -2) if adj_y else b)
    depth = a_shape[-2] if adj_x else a_shape[-1]
    s_y = scales[0] * scales[1] * 32768 * np.sqrt(depth) / fill
    return Op("BATCH_MATMUL", [q16(a_shape, scales[0]), rhs], [q16(y.shape, s_y)], "BatchMatMulOptions",
              {"adjX": adj_x, "adjY": adj_y}, version=4)


def test_batch_matmul_16x8():
    """int16 x int16 with int64 sums: adj_x/adj_y in all four combinations, constant and activation rhs, batch
    dimensions broadcast from either side (ranks 2 to 5), depth 1 to 200, outputs in range, saturating, and
    rescaled by more than 1 so that TFLite's int64 rescale leaves the int32 range (its result narrowed as TFLite
    narrows it)."""
    rng = np.random.default_rng(12)
    op_list = [_batch_matmul16(rng, a, b, ax, ay, c) for a, b, ax, ay, c in [
        ((3, 4), (4, 5), False, False, False), ((3, 4), (4, 5), False, False, True),
        ((2, 3, 4), (2, 4, 5), False, False, False), ((2, 3, 4), (4, 5), False, False, True),
        ((2, 1, 3, 6), (1, 3, 6, 2), False, False, False), ((4, 3), (5, 4), True, True, False),
        ((2, 6, 3), (2, 6, 4), True, False, True), ((2, 6, 3), (2, 6, 4), True, False, False),
        ((1, 2, 5, 3), (2, 1, 4, 3), False, True, False), ((1, 2, 5, 3), (2, 1, 4, 3), False, True, True),
        ((2, 1, 2, 3, 7), (1, 3, 1, 7, 2), False, False, False), ((3, 1), (1, 4), False, False, False),
        ((1, 200), (200, 3), False, False, True), ((5, 2, 200), (3, 200), False, True, False)]]
    op_list += [_batch_matmul16(rng, (2, 4, 16), (16, 3), False, False, True, fill=30.0),
                _batch_matmul16(rng, (3, 64), (64, 5), False, False, False, fill=3e6),
                _batch_matmul16(rng, (2, 64), (3, 64), False, True, True, scales=(0.01, 0.01), fill=1e7)]
    check_model(build(op_list), n=6, sample=_int16_with_extremes)


def test_16x8_refusals():
    """An int16 BATCH_MATMUL lhs with an int8 rhs and an int16 PRELU with an int16 alpha (TFLite Micro has neither
    kernel) are refused by name (constant operands of element-wise ops: tests/test_constant_operands.py)."""
    from edgeq.errors import EdgeqError
    from edgeq.frontends.tflite import load_tflite
    from edgeq.lowering import lower_graph

    rhs = T((4, 3), "int8", 0.01, 0, np.ones((4, 3), np.int8))
    graph = load_tflite(build([Op("BATCH_MATMUL", [q16((2, 4), 0.001), rhs], [q16((2, 3), 0.01)],
                                  "BatchMatMulOptions", {}, version=4)]), "m")
    with pytest.raises(EdgeqError, match=r"BATCH_MATMUL\): an int16 lhs times a int8 rhs; TFLite Micro has no"):
        lower_graph(graph)
    alpha16 = T((4,), "int16", 0.01, 0, np.ones(4, np.int16))
    graph = load_tflite(build([Op("PRELU", [q16((2, 4), 0.001), alpha16], [q16((2, 4), 0.001)], version=1)]), "m")
    with pytest.raises(EdgeqError, match=r"PRELU\): an int16 input with a int16 alpha; TFLite Micro has no such"):
        lower_graph(graph)


def _converter_model(float_interface: bool = False) -> bytes:
    """MAXIMUM (of requantized inputs), MINIMUM, SQUARED_DIFFERENCE and BATCH_MATMUL (of two activations, and of a
    stack by a constant) as TensorFlow's 16x8 converter writes them."""
    import tensorflow as tf

    from tests.test_ops_coverage import convert_16x8

    tf.keras.utils.set_random_seed(5)
    w = tf.constant(np.random.default_rng(5).normal(size=(2, 6, 3)).astype(np.float32))

    class Ops(tf.keras.layers.Layer):
        def call(self, a, b):
            return (tf.maximum(a, tf.nn.tanh(a)), tf.minimum(a, b), tf.math.squared_difference(a, b),
                    tf.matmul(a, b), tf.matmul(tf.stack([a, b], 1), w))

    a, b = tf.keras.Input((6, 6), batch_size=1), tf.keras.Input((6, 6), batch_size=1)
    return convert_16x8(tf.keras.Model([a, b], list(Ops()(a, b))), [(6, 6), (6, 6)], float_interface=float_interface)


def test_16x8_converter_model():
    from edgeq.frontends.tflite import load_tflite

    data = _converter_model()
    kinds = [op.kind for op in load_tflite(data, "m").ops]
    assert {"MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "BATCH_MATMUL"} <= set(kinds), kinds
    check_model(data, n=6, sample=_int16_with_extremes)


def test_16x8_float_interface_through_edgeq_run(tmp_path):
    """The converter's float32 interface: QUANTIZE float -> int16 at the inputs and DEQUANTIZE int16 -> float at
    the outputs move to the caller; `edgeq run --dequantize` on float inputs (random ones, and ones exactly half
    a step between two int16 values, where rounding matters) equals TFLite Micro's float outputs bit for bit."""
    import json
    import subprocess
    import sys

    from edgeq.frontends.tflite import load_tflite
    from tests.oracles import tflm_run

    data = _converter_model(float_interface=True)
    graph = load_tflite(data, "m16f")
    assert sum("moved to the caller; the input is int16" in n for n in graph.notes) == len(graph.inputs) == 2
    assert sum("moved to the caller; the output is int16" in n for n in graph.notes) == len(graph.outputs) == 5
    (tmp_path / "m16f.tflite").write_bytes(data)
    rng = np.random.default_rng(8)
    xs = [rng.uniform(-1.2, 1.2, (6, 1, 6, 6)).astype(np.float32) for _ in graph.inputs]
    for x, name in zip(xs, graph.inputs):  # samples 0-2: ties (k + 1/2) * scale wherever float32 holds them exactly
        s = np.float32(graph.t(name).quant.s)
        k = rng.integers(-30000, 30000, (3, 1, 6, 6)) + 0.5
        tie = (k * s).astype(np.float32)
        x[:3] = np.where(tie / s == k, tie, x[:3])
        assert np.mean(tie / s == k) > 0.3
    for i, x in enumerate(xs):
        np.save(tmp_path / f"x{i}.npy", x)
    for args in (["build", tmp_path / "m16f.tflite", "--board", "host", "-o", tmp_path / "out"],
                 ["run", tmp_path / "out", "--input", tmp_path / "x0.npy", "--input", tmp_path / "x1.npy",
                  "--output", tmp_path / "y.npz", "--dequantize"]):
        proc = subprocess.run([sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    names = [t["name"] for t in json.loads((tmp_path / "out" / "model.json").read_text())["outputs"]]
    with np.load(tmp_path / "y.npz") as y:
        for k in range(len(xs[0])):
            want = tflm_run(data, [x[k] for x in xs], len(names))
            for name, w in zip(names, want):
                assert w.dtype == np.float32 and y[name][k].dtype == np.float32
                np.testing.assert_array_equal(y[name][k].reshape(-1), w.reshape(-1), err_msg=f"sample {k}, {name}")


def test_quantize_int8_int16_16x8():
    """QUANTIZE between int8 and int16 (TFLite's Requantize) at several scale ratios, int8 zero points included:
    every int8 value up, every int16 value down (saturating) and across to another int16 scale."""
    from tests.tflite_builder import q8

    up = [Op("QUANTIZE", [q8((16, 16), s8, zp)], [q16((16, 16), s16)], version=4)
          for s8, zp, s16 in ((0.05, 7, 0.0004), (0.02, -128, 0.02), (0.1, 0, 0.00001), (0.003, 100, 0.7))]
    check_model(build(up), n=1, sample=lambda g, rng: [rng.permutation(np.arange(-128, 128)).astype(np.int8)
                                                         .reshape(g.t(n).shape) for n in g.inputs])
    down = [Op("QUANTIZE", [q16((64, 256), s16)], [q8((64, 256), s8, zp)], version=4)
            for s16, s8, zp in ((0.0004, 0.03, -5), (0.0001, 0.0001, 0), (0.001, 0.5, 127), (2**-12, 2**-7, -20))]
    down += [Op("QUANTIZE", [q16((64, 256), s_in)], [q16((64, 256), s_out)], version=4)
             for s_in, s_out in ((0.0004, 0.0011), (0.002, 0.0003), (2**-10, 2**-12))]
    check_model(build(down), n=4, sample=_every_int16(4))


def test_float_input_quantization_rounds_as_tflite():
    """edgeq run's float inputs become int8 or int16 exactly as TFLite's QUANTIZE makes them: ties, half a step
    between two integers, go away from zero (np.round would take them to even)."""
    from edgeq.build import quantize_inputs
    from edgeq.run import _quantize_int16
    from tests.oracles import tflm_run
    from tests.tflite_builder import q8

    for out in (q8((1, 64), 0.0123, -3), q16((1, 64), 0.0123)):
        model = build([Op("QUANTIZE", [T((1, 64), "float32")], [out], version=4)])
        k = np.arange(-32, 32) + 0.5
        x = (k * np.float32(out.scale)).astype(np.float32)
        assert np.mean(x / np.float32(out.scale) == k) > 0.5  # most are exact ties in float32
        tensor = {"name": "x", "scale": [out.scale], "zero_point": [out.zero_point]}
        got = quantize_inputs(x[None], tensor) if out.dtype == "int8" else _quantize_int16(x[None], tensor)
        np.testing.assert_array_equal(got, tflm_run(model, [x[None]])[0])
