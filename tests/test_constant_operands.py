"""Element-wise operators with a constant operand (`x * 0.5`, `tf.minimum(x, 6.0)`, a bias-like `x + c`): the
constant stays in flash as a const array the kernels read through its broadcast strides. Keep mode (int8, 16x8)
against TFLite Micro; power-of-two quantization of float models against the golden model; an emulated Arm board."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.oracles import check_model
from tests.tflite_builder import Op, T, build

pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro")

CODES = ["ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE"]
OPTIONS = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions"}
# TFLite's op versions for int8 and for 16x8
VERSIONS = {"ADD": (2, 3), "SUB": (2, 3), "MUL": (2, 4), "MAXIMUM": (2, 4), "MINIMUM": (2, 4),
            "SQUARED_DIFFERENCE": (2, 2)}
ACT_SHAPE = (1, 3, 4, 5)
# the constant's shape against the activation's: a scalar (rank 0 and rank 1), one per channel, the full shape, one
# per row, and a constant larger than the activation (the activation broadcasts)
CONST_SHAPES = [((), ACT_SHAPE), ((1,), ACT_SHAPE), ((5,), ACT_SHAPE), (ACT_SHAPE, ACT_SHAPE),
                ((1, 3, 1, 1), ACT_SHAPE), ((3, 4, 5), (1, 1, 5))]


def _extremes(dtype: str) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.array([info.min, info.min + 1, -1, 0, 1, info.max - 1, info.max])


def _configurations(code: str, dtype: str, seed: int) -> list[Op]:
    """Every constant shape, the constant first and second, with random scales, zero points (int8) and fused
    activations; constant values random with their type's extremes among them."""
    rng = np.random.default_rng(seed)
    wide = dtype == "int16"
    op_list = []
    for (c_shape, x_shape), const_first in itertools.product(CONST_SHAPES, [False, True]):
        lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
        data = rng.integers(lo, hi + 1, size=c_shape)
        pick = rng.random(np.shape(data)) < 0.3
        data = np.where(pick, rng.choice(_extremes(dtype), size=np.shape(data)), data).astype(dtype)
        base = 2.0 ** -12 if wide else 0.02
        s_x, s_c, s_y = (float(base * rng.uniform(0.3, 3.0)) for _ in range(3))
        if code in ("MAXIMUM", "MINIMUM") and rng.random() < 0.5:
            s_x = s_c = s_y  # the converter's way: one scale; TFLite Micro compares raw values in any case
        if code == "MUL":
            s_y = float(s_x * s_c * (2.0 ** 7 if not wide else 2.0 ** 15) * rng.uniform(0.5, 2.0))
        if code == "SQUARED_DIFFERENCE":
            s_y = float(max(s_x, s_c) ** 2 * (2.0 ** 8 if not wide else 2.0 ** 16) * rng.uniform(0.2, 2.0))
        zps = [0, 0, 0] if wide else [int(z) for z in rng.integers(-20, 21, 3)]
        x = T(x_shape, dtype, s_x, zps[0])
        c = T(tuple(c_shape), dtype, s_c, zps[1], data)
        y = T(tuple(np.broadcast_shapes(x_shape, c_shape)), dtype, s_y, zps[2])
        options, fields = None, {}
        if code in OPTIONS:
            options, fields = OPTIONS[code], {"fusedActivationFunction": int(rng.choice([0, 1, 3]))}
            if code in ("ADD", "SUB") and wide:
                fields["potScaleInt16"] = False  # the general 16x8 kernel, as the converter writes it
        op_list.append(Op(code, [c, x] if const_first else [x, c], [y], options, fields,
                          VERSIONS[code][int(wide)]))
    return op_list


def _sample(dtype: str):
    def sample(graph, rng):
        xs = []
        for n in graph.inputs:
            x = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max + 1, size=graph.t(n).shape)
            pick = rng.random(x.shape) < 0.2
            xs.append(np.where(pick, rng.choice(_extremes(dtype), size=x.shape), x).astype(dtype))
        return xs
    return sample


@pytest.mark.parametrize("dtype", ["int8", "int16"])
@pytest.mark.parametrize("code", CODES)
def test_constant_operand_keep_mode(code, dtype):
    """12 configurations per operator and type: numpy golden == host C (ASan/UBSan) == TFLite Micro."""
    from edgeq.frontends.tflite import load_tflite
    from edgeq.lowering import lower_graph

    model = build(_configurations(code, dtype, seed=CODES.index(code) + 10 * (dtype == "int16")))
    calls = lower_graph(load_tflite(model, "m"))
    assert [sorted(c.constants) for c in calls] == [[1], [0]] * len(CONST_SHAPES)
    check_model(model, n=4, sample=_sample(dtype))


@pytest.mark.parametrize("mode", ["int8", "16x8"])
def test_constant_operands_from_the_converter(mode):
    """The constants as TensorFlow's converter writes them (int8, and 16x8): numpy == host C == TFLite Micro."""
    import tensorflow as tf

    from edgeq.frontends.tflite import load_tflite
    from edgeq.lowering import lower_graph
    from tests.oracles import convert_int8
    from tests.test_ops_coverage import convert_16x8

    tf.keras.utils.set_random_seed(2)
    per_channel = tf.constant(np.random.default_rng(2).uniform(-0.5, 0.5, 6).astype(np.float32))
    full = tf.constant(np.random.default_rng(3).uniform(-1, 1, (1, 5, 6)).astype(np.float32))

    class Ops(tf.keras.layers.Layer):
        def call(self, x):
            return (x * 0.5 + per_channel, tf.minimum(x, 0.6), tf.maximum(x, -0.3), 0.25 - x,
                    tf.math.squared_difference(x, full), x * per_channel)

    x = tf.keras.Input((5, 6), batch_size=1)
    model = tf.keras.Model(x, list(Ops()(x)))
    data = convert_int8(model, [(5, 6)]) if mode == "int8" else convert_16x8(model, [(5, 6)])
    graph = load_tflite(data, "m")
    kinds = {op.kind for op in graph.ops}
    assert {"ADD", "SUB", "MUL", "MINIMUM", "MAXIMUM", "SQUARED_DIFFERENCE"} <= kinds, kinds
    assert sum(len(c.constants) for c in lower_graph(graph)) >= 7
    dtype = "int8" if mode == "int8" else "int16"
    check_model(data, n=4, sample=_sample(dtype))


def _float_model() -> bytes:
    """A float chain with a constant at every step, as a float model holds them: x * c (per channel), x + c (per
    row), MAXIMUM by a scalar, c - x (the constant first), MINIMUM by 6.0 (`tf.minimum(x, 6.0)`), SQUARED_DIFFERENCE
    with a full-shape constant, MUL by 0.5, and ADD with a constant larger than the activation."""
    rng = np.random.default_rng(3)

    def f(shape):
        return T(tuple(shape), "float32")

    def c(values):
        return T(np.shape(values), "float32", data=np.asarray(values, np.float32))

    shape = (1, 4, 6)
    h = [f(shape) for _ in range(8)]
    x = f(shape)
    wide = f((3, 4, 6))
    return build([
        Op("MUL", [x, c(rng.uniform(0.5, 3.0, 6))], [h[0]], "MulOptions"),
        Op("ADD", [h[0], c(rng.uniform(-1.0, 1.0, (4, 1)))], [h[1]], "AddOptions"),
        Op("MAXIMUM", [h[1], c(-1.5)], [h[2]]),
        Op("SUB", [c(0.75), h[2]], [h[3]], "SubOptions"),
        Op("MINIMUM", [h[3], c([6.0])], [h[4]]),
        Op("SQUARED_DIFFERENCE", [c(rng.uniform(-1.0, 1.0, shape)), h[4]], [h[5]]),
        Op("MUL", [h[5], c(0.5)], [h[6]], "MulOptions"),
        Op("ADD", [h[6], c(rng.uniform(-2.0, 2.0, (3, 4, 6)))], [wide], "AddOptions", {"fusedActivationFunction": 1}),
    ])


def test_constant_operand_power_of_two(tmp_path):
    """A float model's constants get power-of-two scales (symmetric int8; MINIMUM/MAXIMUM's on the output's grid);
    the golden model equals the generated C (ASan/UBSan) on held-out samples; output SQNR vs float reported."""
    from edgeq.build import build_and_run_host
    from edgeq.frontends.tflite import load_tflite
    from edgeq.ir import ops
    from edgeq.lowering import lower_graph
    from edgeq.quant.driver import quantize
    from edgeq.quant.executor import run_float_batch, run_int
    from edgeq.quant.pot import dequantize, quantize_sample

    graph = load_tflite(_float_model(), "constants")
    rng = np.random.default_rng(7)
    calib, held_out = (rng.normal(0, 1.2, (n, 1, 4, 6)).astype(np.float32) for n in (64, 16))
    q = quantize(graph, calib, echo=lambda *_: None).graph
    calls = lower_graph(q)
    assert sum(len(call.constants) for call in calls) == 8
    for op in q.ops:
        for name in op.inputs:
            t = q.t(name)
            if t.is_const:
                assert t.dtype == "int8" and np.log2(float(t.quant.s)) == round(np.log2(float(t.quant.s))), name
                if isinstance(op, (ops.Maximum, ops.Minimum)):
                    assert t.quant.s == q.t(op.outputs[0]).quant.s and t.quant.zp == q.t(op.outputs[0]).quant.zp

    samples = [[quantize_sample(x, q.t(q.inputs[0]).quant)] for x in held_out]
    golden = np.array([run_int(q, s, calls)[q.outputs[0]].reshape(-1) for s in samples])
    c_out = np.array([o[0].view(np.int8).reshape(-1) for o in build_and_run_host(q, tmp_path / "c", samples)])
    np.testing.assert_array_equal(c_out, golden, err_msg="generated C != golden model")

    reference = run_float_batch(graph, held_out)[graph.outputs[0]].reshape(len(held_out), -1).astype(np.float64)
    noise = np.sum((reference - dequantize(golden, q.t(q.outputs[0]).quant)) ** 2)
    sqnr = 10 * np.log10(np.sum(reference ** 2) / noise)
    print(f"power-of-two constants: output SQNR {sqnr:.1f} dB vs float on {len(held_out)} held-out samples")
    assert sqnr > 20, sqnr


def test_constant_operand_under_mixed_precision(tmp_path):
    """--mixed-precision widens activations only: an int16 ADD between two fully connected layers reads its int8
    power-of-two constant as int16 at the same scale; golden == host C (ASan/UBSan)."""
    from edgeq.build import build_and_run_host
    from edgeq.frontends.tflite import load_tflite
    from edgeq.lowering import lower_graph
    from edgeq.quant.driver import QuantOptions, quantize
    from edgeq.quant.executor import run_int
    from edgeq.quant.pot import quantize_sample

    rng = np.random.default_rng(0)

    def c(values):
        return T(np.shape(values), "float32", data=np.asarray(values, np.float32))

    x, h1, h2, y = T((1, 8), "float32"), T((1, 8), "float32"), T((1, 8), "float32"), T((1, 4), "float32")
    model = build([Op("FULLY_CONNECTED", [x, c(rng.normal(0, 0.5, (8, 8))), c(rng.normal(0, 0.1, 8))], [h1],
                      "FullyConnectedOptions"),
                   Op("ADD", [c(rng.normal(0, 0.3, 8)), h1], [h2], "AddOptions"),
                   Op("FULLY_CONNECTED", [h2, c(rng.normal(0, 0.5, (4, 8))), c(rng.normal(0, 0.1, 4))], [y],
                      "FullyConnectedOptions")])
    calib = rng.normal(0, 1, (64, 1, 8)).astype(np.float32)
    q = quantize(load_tflite(model, "mixed"), calib, QuantOptions(mixed_precision=True, max_arena=100_000),
                 echo=lambda *_: None).graph
    calls = lower_graph(q)
    add = next(call for call in calls if call.kernel.startswith("add"))
    assert add.kernel == "add_s16" and add.constants[0].dtype == np.int16, (add.kernel, add.constants)
    samples = [[quantize_sample(v, q.t(q.inputs[0]).quant)] for v in calib[:8]]
    outs = build_and_run_host(q, tmp_path, samples)
    for k, (xs, got) in enumerate(zip(samples, outs)):
        want = run_int(q, xs, calls)[q.outputs[0]]
        np.testing.assert_array_equal(got[0].view(want.dtype).reshape(-1), want.reshape(-1), err_msg=f"sample {k}")


def _int8_chain() -> bytes:
    """Constant operands where the optimized libraries compete (full-shape ADD and MUL, the constant first and
    second) and where they decline (broadcasting)."""
    rng = np.random.default_rng(11)
    shape = (1, 4, 4, 8)

    def c(shape_, scale, zp):
        return T(tuple(shape_), "int8", scale, zp, rng.integers(-128, 128, shape_).astype(np.int8))

    x, h = T(shape, "int8", 0.05, 3), [T(shape, "int8", s, z) for s, z in ((0.08, -5), (0.1, 2), (0.1, 2), (0.12, 0))]
    return build([Op("ADD", [x, c(shape, 0.03, -7)], [h[0]], "AddOptions", {}, 2),
                  Op("MUL", [c(shape, 0.02, 4), h[0]], [h[1]], "MulOptions", {"fusedActivationFunction": 1}, 2),
                  Op("MINIMUM", [h[1], c((), 0.1, 2)], [h[2]], version=2),
                  Op("SUB", [h[2], c((8,), 0.04, 1)], [h[3]], "SubOptions", {}, 2)])


@pytest.mark.usefixtures("cmsis_nn")  # auto measures CMSIS-NN against edgeq's kernels
def test_constant_operands_on_emulated_arm_board(tmp_path):
    """qemu-mps2-an500 (Cortex-M7) with auto kernels: the full-shape ADD and MUL go to an optimized library, which
    reads the constant from flash; 8 samples over the serial link equal TFLite Micro."""
    import shutil

    from edgeq.build import compile_graph, write_project
    from edgeq.frontends.tflite import load_tflite
    from edgeq.run import run_build
    from edgeq.targets.boards import get_board
    from tests.oracles import tflm_run

    if not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm") and shutil.which("cmake")):
        pytest.skip("needs gcc-arm-none-eabi, qemu-system-arm and cmake (make test installs them)")
    data = _int8_chain()
    path = tmp_path / "constants.tflite"
    path.write_bytes(data)
    board = get_board("qemu-mps2-an500")
    compiled = compile_graph(load_tflite(data, "constants"), "keep", board, "auto")
    backends = [impl.backend for impl in compiled.impls if impl is not None]
    assert backends[0] != "ref" and backends[1] != "ref" and backends[3] == "ref", backends
    out = tmp_path / "fw"
    write_project(compiled, board, "keep", out, path, echo=lambda *_: None)
    xs = np.random.default_rng(5).integers(-128, 128, size=(8, 1, 4, 4, 8)).astype(np.int8)
    ys = run_build(out, [xs])[0]
    for k in range(len(xs)):
        np.testing.assert_array_equal(ys[k].reshape(-1), tflm_run(data, [xs[k]])[0].reshape(-1),
                                      err_msg=f"sample {k} over serial != TFLite Micro")


@pytest.mark.parametrize("kernels", ["cmsis-nn", "arm-dsp"])
def test_constant_operands_in_optimized_kernels_on_host(kernels, tmp_path, request):
    """The plain-C paths of CMSIS-NN (full-shape ADD and MUL) and arm-dsp (ADD) reading a constant operand
    from flash: host C (ASan/UBSan) == golden model."""
    from edgeq.build import build_and_run_host, compile_graph
    from edgeq.frontends.tflite import load_tflite
    from edgeq.quant.executor import run_int
    from edgeq.targets.boards import get_board

    if kernels == "cmsis-nn":
        request.getfixturevalue("cmsis_nn")
    graph = load_tflite(_int8_chain(), "constants")
    taken = [impl.backend == kernels for impl in compile_graph(graph, "keep", get_board("host"), kernels).impls]
    assert taken == ([True, True, False, False] if kernels == "cmsis-nn" else [True, False, False, False]), taken
    rng = np.random.default_rng(8)
    samples = [[rng.integers(-128, 128, (1, 4, 4, 8)).astype(np.int8)] for _ in range(6)]
    outs = build_and_run_host(graph, tmp_path, samples, kernels=kernels)
    for k, (xs, got) in enumerate(zip(samples, outs)):
        np.testing.assert_array_equal(got[0].reshape(-1), run_int(graph, xs)[graph.outputs[0]].reshape(-1),
                                      err_msg=f"{kernels} != golden model, sample {k}")


def test_16x8_rescale_is_cut_to_int32_as_tflite_does():
    """TFLite's MultiplyByQuantizedMultiplier(int64_t, ...) returns its rescaled accumulator cast to int32, which
    wraps before the clamp to int16; the C kernels' eq_mbqm64 does too, and so must the numpy golden model. int64
    biases near k * 2^42 with an output multiplier of 2^-10 put conv, depthwise and fully connected results
    at k * 2^32 (wraps to a small value), 2^31 (wraps negative) and inside int32 (no wrap)."""
    rng = np.random.default_rng(1)
    oc, k = 6, np.array([0, 1, -1, 0.5, -0.5, 3])

    def q16(shape, scale):
        return T(tuple(shape), "int16", scale, 0)

    def bias():
        return T((oc,), "int64", [1e-6] * oc, [0] * oc,
                 (k * 2.0 ** 42).astype(np.int64) + rng.integers(-2 ** 20, 2 ** 20, oc))

    def weights(shape, axis):
        return T(shape, "int8", [0.001] * oc, [0] * oc, rng.integers(-3, 4, shape).astype(np.int8), axis=axis)

    conv = Op("CONV_2D", [q16((1, 3, 3, 4), 0.001), weights((oc, 1, 1, 4), 0), bias()], [q16((1, 3, 3, oc), 1.024e-3)],
              "Conv2DOptions", {"padding": 1, "strideH": 1, "strideW": 1}, version=4)
    dw = Op("DEPTHWISE_CONV_2D", [q16((1, 3, 3, 3), 0.001), weights((1, 2, 2, oc), 3), bias()],
            [q16((1, 3, 3, oc), 1.024e-3)], "DepthwiseConv2DOptions",
            {"padding": 0, "strideH": 1, "strideW": 1, "depthMultiplier": 2}, version=5)
    fc = Op("FULLY_CONNECTED", [q16((2, 4), 0.001), weights((oc, 4), 0), bias()], [q16((2, oc), 1.024e-3)],
            "FullyConnectedOptions", {}, version=5)
    check_model(build([conv, dw, fc]), n=3, sample=_sample("int16"))


def test_constant_operands_count_as_weights():
    """`edgeq inspect` (and the flash check before a firmware build) count a constant operand's bytes."""
    from edgeq.frontends.tflite import load_tflite
    from edgeq.inspect import inspect_graph

    report = inspect_graph(load_tflite(_int8_chain(), "constants"))
    assert [op["weights_bytes"] for op in report["ops"]] == [128, 128, 1, 8]


def test_constant_operand_refusals():
    """A per-channel-quantized constant (TFLite's element-wise kernels take one scale) and an operator of constants
    only are refused in one sentence naming the operator."""
    from edgeq.errors import EdgeqError
    from edgeq.frontends.tflite import load_tflite
    from edgeq.lowering import lower_graph

    per_channel = T((4,), "int8", [0.1, 0.2, 0.3, 0.4], [0] * 4, np.arange(4, dtype=np.int8))
    model = build([Op("ADD", [T((2, 4), "int8", 0.1, 0), per_channel], [T((2, 4), "int8", 0.1, 0)], "AddOptions")])
    with pytest.raises(EdgeqError, match=r"\(ADD\): constant operand 't1' is quantized per channel; .*per tensor"):
        lower_graph(load_tflite(model, "m"))
    a, b = (T((4,), "int8", 0.1, 0, np.arange(4, dtype=np.int8)) for _ in range(2))
    model = build([Op("MAXIMUM", [a, b], [T((4,), "int8", 0.1, 0)], version=2)])
    with pytest.raises(EdgeqError, match=r"\(MAXIMUM\) has only constant operands; edgeq needs one computed"):
        lower_graph(load_tflite(model, "m"))
