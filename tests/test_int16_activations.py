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
