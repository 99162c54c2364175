"""Activations: RELU, RELU6, LEAKY_RELU, LOGISTIC, TANH, HARD_SWISH, ABS, NEG, EXP, LOG, RSQRT, requantization,
SOFTMAX, L2 normalization.

Every unary int8 op is a function of one int8 value, so it lowers to a 256-entry table computed
here by transcribing TFLM's integer code (its Prepare arithmetic, then its Eval arithmetic) for each
possible input. The device then does one load per element (`eq_lut_s8`), bit-exact by construction.
Softmax lowers to a table of gemmlowp exp values per input difference; its row sum and reciprocal
stay in integer C.
"""
from __future__ import annotations

import math

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, ops
from edgeq.lowering import gemmlowp as gl
from edgeq.lowering import lut16
from edgeq.lowering.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier, round_half_away
from edgeq.lowering import KernelCall, float_impl, kernel, lowers
from edgeq.lowering.common import INT8_MAX, INT8_MIN, require_int8, variant

INPUTS = range(INT8_MIN, INT8_MAX + 1)


def _mbqm(x: int, m: int, shift: int) -> int:
    """tflite::MultiplyByQuantizedMultiplier on Python ints."""
    left, right = max(shift, 0), max(-shift, 0)
    return gl.rdbpot(gl.srdhm(gl.wrap32(x * (1 << left)), m), right)


def _clamp8(v: int) -> int:
    return min(INT8_MAX, max(INT8_MIN, v))


def _scales(op: ops.Op, graph: Graph) -> tuple[np.float32, int, np.float32, int]:
    require_int8(op, graph, [op.inputs[0], op.outputs[0]])
    x, y = graph.t(op.inputs[0]), graph.t(op.outputs[0])
    return np.float32(x.quant.s), x.quant.zp, np.float32(y.quant.s), y.quant.zp


def _lut_call(op: ops.Op, fn) -> KernelCall:
    table = np.array([fn(v) for v in INPUTS], dtype=np.int8)
    return KernelCall(op.name, "lut_s8", [op.inputs[0]], [op.outputs[0]], {"size": 0}, {"table": table})


@kernel("lut_s8")
def lut_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    return call.arrays["table"][inputs[0].astype(np.int16) + 128].reshape(out_shape)


def _finish_lut(call: KernelCall, graph: Graph) -> KernelCall:
    call.params["size"] = graph.t(call.inputs[0]).size
    return call


@lowers(ops.Relu, "lut_s8", "rescale")
def lower_relu(op: ops.Relu, graph: Graph) -> KernelCall:
    """TFLM's ReluQuantized: requantize by s_in/s_out, clamp below at the quantized 0."""
    if graph.t(op.inputs[0]).dtype == "int16":
        return _lower_16x8_activation(op, graph)
    s_in, zp_in, s_out, zp_out = _scales(op, graph)
    rescale = _rescaler(s_in, s_out)
    lo = max(INT8_MIN, zp_out + int(round_half_away(float(np.float32(0.0) / s_out))))
    return _finish_lut(_lut_call(op, lambda v: min(INT8_MAX, max(lo, zp_out + rescale(v - zp_in)))), graph)


def _rescaler(s_in, s_out):
    """v -> v * s_in / s_out in integers, as TFLite computes it, for every graph: these ops run as a
    256-entry table, so no rescaling happens at run time and the table may as well agree with LiteRT
    and TFLite Micro on an exported power-of-two model (a single rounding shift differs from TFLite's
    double rounding on a sixth of the values)."""
    m, shift = quantize_multiplier(float(s_in) / float(s_out))
    return lambda v: _mbqm(v, m, shift)


@lowers(ops.Relu6, "lut_s8", "rescale")
def lower_relu6(op: ops.Relu6, graph: Graph) -> KernelCall:
    # TFLM clamps the raw input to [zero point, quantized 6.0], both on the *input's* scale, and does not
    # requantize even when the output's scale differs.
    if graph.t(op.inputs[0]).dtype == "int16":
        return _lower_16x8_activation(op, graph)
    s_in, zp_in, _, _ = _scales(op, graph)
    six = _clamp8(int(round_half_away(float(np.float32(6.0) / s_in))) + zp_in)
    return _finish_lut(_lut_call(op, lambda v: six if v > six else (zp_in if v < zp_in else v)), graph)


@lowers(ops.LeakyRelu, "lut_s8", "rescale")
def lower_leaky_relu(op: ops.LeakyRelu, graph: Graph) -> KernelCall:
    if graph.t(op.inputs[0]).dtype == "int16":
        return _lower_16x8_activation(op, graph)
    s_in, zp_in, s_out, zp_out = _scales(op, graph)
    m_alpha, sh_alpha = quantize_multiplier(float(s_in * np.float32(op.alpha) / s_out))
    m_id, sh_id = quantize_multiplier(float(s_in / s_out))

    def f(v: int) -> int:
        d = v - zp_in
        m, sh = (m_id, sh_id) if d >= 0 else (m_alpha, sh_alpha)
        return _clamp8(zp_out + _mbqm(d, m, sh))
    return _finish_lut(_lut_call(op, f), graph)


def _sigmoid_tanh_params(s_in: np.float32) -> tuple[int, int, int]:
    """input multiplier, left shift and range radius for 4 integer bits (TFLM Logistic/Tanh Prepare)."""
    real = float(s_in) * float(1 << (31 - 4))
    q, left_shift = math.frexp(real)
    multiplier = int(round_half_away(q * (1 << 31)))
    max_rescaled = 1.0 * ((1 << 4) - 1) * (1 << (31 - 4)) / (1 << left_shift)
    return multiplier, left_shift, int(math.floor(max_rescaled))


@lowers(ops.Logistic, "lut_s8", "logistic_s16")
def lower_logistic(op: ops.Logistic, graph: Graph) -> KernelCall:
    if graph.t(op.inputs[0]).dtype == "int16":
        return _lower_sigmoid_tanh_16(op, graph, "logistic_s16", (0,))
    s_in, zp_in, s_out, zp_out = _scales(op, graph)
    if zp_out != -128:
        raise EdgeqError(f"Operator {op.name} (LOGISTIC): int8 output zero point must be -128 (got {zp_out}).")
    m, shift, radius = _sigmoid_tanh_params(s_in)

    def f(v: int) -> int:
        d = v - zp_in
        if d <= -radius:
            return INT8_MIN
        if d >= radius:
            return INT8_MAX
        out_q0 = gl.logistic(_mbqm(d, m, shift), 4)
        return _clamp8(gl.rdbpot(out_q0, 31 - 8) - 128)
    return _finish_lut(_lut_call(op, f), graph)


@lowers(ops.Tanh, "lut_s8", "tanh_s16")
def lower_tanh(op: ops.Tanh, graph: Graph) -> KernelCall:
    if graph.t(op.inputs[0]).dtype == "int16":
        return _lower_sigmoid_tanh_16(op, graph, "tanh_s16", (0, 1))
    s_in, zp_in, _, _ = _scales(op, graph)
    m, shift, radius = _sigmoid_tanh_params(s_in)

    def f(v: int) -> int:
        d = v - zp_in
        if d <= -radius:
            return INT8_MIN
        if d >= radius:
            return INT8_MAX
        return _clamp8(gl.rdbpot(gl.tanh(_mbqm(d, m, shift), 4), 31 - 7))
    return _finish_lut(_lut_call(op, f), graph)


def _lower_sigmoid_tanh_16(op: ops.Op, graph: Graph, name: str, pot_shifts: tuple[int, ...]) -> KernelCall:
    """16x8 LOGISTIC/TANH (TFLM's int16 Prepare): zero points 0, the output scale 2^-15."""
    variant(op, graph, [op.inputs[0], op.outputs[0]])
    x, y = graph.t(op.inputs[0]), graph.t(op.outputs[0])
    if lut16.checked_log2(y.quant.s) != (True, -15):
        raise EdgeqError(f"Operator {op.name} ({op.kind}): an int16 output needs scale 1/32768 (got {y.quant.s}), "
                         "as TFLite requires; convert the model again with TFLite's 16x8 mode.")
    rescale = lut16.sigmoid_tanh_rescale(x.quant.s, pot_shifts)
    if rescale is None:
        raise EdgeqError(f"Operator {op.name} ({op.kind}): int16 input scale {x.quant.s} is too large (above about "
                         "2.7, TFLite's multiplier would not fit 15 bits); requantize the input to a smaller scale.")
    return KernelCall(op.name, name, [op.inputs[0]], [op.outputs[0]],
                      {"size": x.size, "input_multiplier": rescale[0], "input_left_shift": rescale[1]},
                      {"table": lut16.SIGMOID_TABLE})


@kernel("logistic_s16")
def logistic_s16(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    p = call.params
    return lut16.sigmoid_tanh_s16(inputs[0], p["input_multiplier"], p["input_left_shift"], False).reshape(out_shape)


@kernel("tanh_s16")
def tanh_s16(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    p = call.params
    return lut16.sigmoid_tanh_s16(inputs[0], p["input_multiplier"], p["input_left_shift"], True).reshape(out_shape)


def _wrap16(x: int) -> int:
    return ((x + 2**15) & 0xFFFF) - 2**15


def _srdhm16(a: int, b: int) -> int:
    if a == b == -(2**15):
        return 2**15 - 1
    ab = a * b
    s = ab + ((1 << 14) if ab >= 0 else 1 - (1 << 14))
    return _wrap16(s >> 15 if s >= 0 else -((-s) >> 15))


def _sdhm16(a: int, b: int) -> int:
    if a == b == -(2**15):
        return 2**15 - 1
    ab = a * b
    return _wrap16(ab >> 15 if ab >= 0 else -((-ab) >> 15))


def _sat_left16(v: int, amount: int) -> int:
    return min(2**15 - 1, max(-(2**15), v * (1 << amount)))


def _to_int16_multiplier(m32: int) -> int:
    """DownScaleInt32ToInt16Multiplier."""
    if m32 >= 2**31 - 1 - (1 << 15):
        return 2**15 - 1
    return (m32 + (1 << 15)) >> 16


@lowers(ops.HardSwish, "lut_s8")
def lower_hard_swish(op: ops.HardSwish, graph: Graph) -> KernelCall:
    s_in, zp_in, s_out, zp_out = _scales(op, graph)
    hires = np.float32(1.0 / 128.0) * s_in
    m_out, e_out = quantize_multiplier(float(hires / s_out))
    m_relu, e_relu = quantize_multiplier(float(hires / np.float32(3.0 / 32768.0)))
    m_out16, m_relu16 = _to_int16_multiplier(m_out), _to_int16_multiplier(m_relu)
    if e_out > 0:
        raise EdgeqError(f"Operator {op.name} (HARD_SWISH): output scale too small for the input scale "
                         "(TFLite requires a non-positive output exponent).")

    def f(v: int) -> int:
        x = _wrap16(v - zp_in)
        hi = _wrap16(x * (1 << 7))
        pre_out = _srdhm16(hi, m_out16)
        r = hi
        if e_relu > 0:
            r = _sat_left16(r, e_relu - 1)
        r = _srdhm16(r, m_relu16)
        if e_relu > 0:
            r = _sat_left16(r, 1)
        if e_relu < 0:
            r = gl.rdbpot(r, -e_relu)
        r = _wrap16((r + (1 << 15)) >> 1)
        out = _wrap16(gl.rdbpot(_sdhm16(r, pre_out), -e_out) + zp_out)
        return _clamp8(out)
    return _finish_lut(_lut_call(op, f), graph)


@lowers(ops.Abs, "lut_s8", "abs_s16")
def lower_abs(op: ops.Abs, graph: Graph) -> KernelCall:
    """TFLM's AbsEvalQuantized: |v - zp_in|, rescaled only when the scales differ."""
    if graph.t(op.inputs[0]).dtype == "int16":
        return _lower_abs_16(op, graph)
    s_in, zp_in, s_out, zp_out = _scales(op, graph)
    rescale = (lambda v: v) if s_in == s_out else _rescaler(s_in, s_out)
    return _finish_lut(_lut_call(op, lambda v: _clamp8(rescale(abs(v - zp_in)) + zp_out)), graph)


def _lower_abs_16(op: ops.Abs, graph: Graph) -> KernelCall:
    """16x8 ABS (zero points 0): |v|, through TFLite's multiplier when the scales differ, else only clamped."""
    variant(op, graph, [op.inputs[0], op.outputs[0]])
    x, y = graph.t(op.inputs[0]), graph.t(op.outputs[0])
    s_in, s_out = np.float32(x.quant.s), np.float32(y.quant.s)
    m, shift = quantize_multiplier(float(s_in) / float(s_out)) if s_in != s_out else (0, 0)
    return KernelCall(op.name, "abs_s16", [op.inputs[0]], [op.outputs[0]],
                      {"size": x.size, "rescale": int(s_in != s_out), "out_mult": m, "out_shift": shift})


@kernel("abs_s16")
def abs_s16(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    p = call.params
    v = np.abs(inputs[0].astype(np.int64))
    if p["rescale"]:
        v = multiply_by_quantized_multiplier(v, p["out_mult"], p["out_shift"])
    return np.clip(v, -(2**15), 2**15 - 1).astype(np.int16).reshape(out_shape)


@lowers(ops.Neg, "lut_s8")
def lower_neg(op: ops.Neg, graph: Graph) -> KernelCall:
    """-(v - zp_in) rescaled to the output as TFLite rescales (TFLite Micro has no int8 NEG). Folded from TFLite's
    float round trip: TFLite Micro's Dequantize (float32 of the double product) and AffineQuantize (the float32
    quotient rounded half away from zero)."""
    s_in, zp_in, s_out, zp_out = _scales(op, graph)
    if op.float_roundtrip:
        def f(v: int) -> int:
            x = -np.float32(float(s_in) * (v - zp_in))
            return _clamp8(int(round_half_away(float(np.float32(x / s_out)))) + zp_out)
        return _finish_lut(_lut_call(op, f), graph)
    rescale = _rescaler(s_in, s_out)
    return _finish_lut(_lut_call(op, lambda v: _clamp8(rescale(zp_in - v) + zp_out)), graph)


def _float_lut(op: ops.Op, graph: Graph, fn) -> KernelCall:
    """LiteRT's LUTPopulate: each input dequantized in float32, transformed, rescaled and rounded in float32
    (TFLite Micro has no int8 EXP or LOG). A result that is not a finite int32 (log of 0 or less) stores
    -128, as LiteRT's float-to-int conversion gives on x86."""
    s_in, zp_in, s_out, zp_out = _scales(op, graph)
    inverse = np.float32(1.0) / s_out

    def f(v: int) -> int:
        with np.errstate(all="ignore"):
            rescaled = np.float32(fn(np.float32(s_in * np.float32(v - zp_in))) * inverse)
        if not np.isfinite(rescaled) or abs(float(rescaled)) >= 2**31:
            return INT8_MIN
        return _clamp8(int(round_half_away(float(rescaled)) + zp_out))
    return _finish_lut(_lut_call(op, f), graph)


@lowers(ops.Exp, "lut_s8")
def lower_exp(op: ops.Exp, graph: Graph) -> KernelCall:
    return _float_lut(op, graph, np.exp)


@lowers(ops.Log, "lut_s8")
def lower_log(op: ops.Log, graph: Graph) -> KernelCall:
    return _float_lut(op, graph, np.log)


def _gelu(op: ops.Gelu):
    """LiteRT's GeluTransform (0.5 x erfc(-x / sqrt 2)) or GeluTransformApproximate, in float32."""
    from scipy.special import erfc

    f32 = np.float32
    if op.approximate:
        return lambda x: f32(0.5) * x * (f32(1) + np.tanh(f32(np.sqrt(2 / np.pi)) * (x + f32(0.044715) * x * x * x)))
    return lambda x: f32(0.5) * x * f32(erfc(x * -f32(np.sqrt(0.5))))


@lowers(ops.Gelu, "lut_s8")
def lower_gelu(op: ops.Gelu, graph: Graph) -> KernelCall:
    return _float_lut(op, graph, _gelu(op))


_RSQRT_SHIFT = 20  # TFLM's kShift: 1/sqrt(value) held as an integer times 2^20


def _rsqrt(value: int, m: int, shift: int) -> int:
    """TFLM's RsqrtEvalQuantized for value = input - zero point > 0, before the output offset and clamp."""
    inv_m, inv_shift = gl.inv_sqrt_multiplier_exp(value)
    return _mbqm(_mbqm(1, inv_m, inv_shift + _RSQRT_SHIFT), m, shift - _RSQRT_SHIFT)


@lowers(ops.Rsqrt, "lut_s8", "rsqrt_s16")
def lower_rsqrt(op: ops.Rsqrt, graph: Graph) -> KernelCall:
    """TFLM's RsqrtEvalQuantized. Inputs below the zero point (negative reals) stop TFLite Micro with an
    error; edgeq gives them the largest output, as TFLite gives zero."""
    if graph.t(op.inputs[0]).dtype == "int16":
        variant(op, graph, [op.inputs[0], op.outputs[0]])
        x, y = graph.t(op.inputs[0]), graph.t(op.outputs[0])
        m, shift = quantize_multiplier(1.0 / (math.sqrt(float(np.float32(x.quant.s))) * float(np.float32(y.quant.s))))
        return KernelCall(op.name, "rsqrt_s16", [op.inputs[0]], [op.outputs[0]],
                          {"size": x.size, "out_mult": m, "out_shift": shift})
    s_in, zp_in, s_out, zp_out = _scales(op, graph)
    m, shift = quantize_multiplier(1.0 / (math.sqrt(float(s_in)) * float(s_out)))
    return _finish_lut(_lut_call(op, lambda v: INT8_MAX if v <= zp_in else
                                 _clamp8(_rsqrt(v - zp_in, m, shift) + zp_out)), graph)


@kernel("rsqrt_s16")
def rsqrt_s16(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    p = call.params
    x = inputs[0].astype(np.int64).reshape(-1)
    values, where = np.unique(x, return_inverse=True)
    top = 2**15 - 1
    table = np.array([top if v <= 0 else min(top, max(-top - 1, _rsqrt(int(v), p["out_mult"], p["out_shift"])))
                      for v in values], dtype=np.int16)
    return table[where].reshape(out_shape)


@lowers(ops.Quantize, "lut_s8", "rescale")
def lower_requantize(op: ops.Quantize, graph: Graph) -> KernelCall:
    x, y = graph.t(op.inputs[0]), graph.t(op.outputs[0])
    if "int16" in (x.dtype, y.dtype):
        return _lower_rescale(op, graph)
    s_in, zp_in, s_out, zp_out = _scales(op, graph)
    rescale = _rescaler(s_in, s_out)
    return _finish_lut(_lut_call(op, lambda v: _clamp8(rescale(v - zp_in) + zp_out)), graph)


def _lower_rescale(op: ops.Quantize, graph: Graph) -> KernelCall:
    """QUANTIZE between int8 and int16 (16x8 models): TFLite's Requantize, one multiplier per tensor."""
    x, y = graph.t(op.inputs[0]), graph.t(op.outputs[0])
    for t in (x, y):
        if t.dtype not in ("int8", "int16") or t.quant is None:
            raise EdgeqError(f"Operator {op.name} (QUANTIZE): tensor '{t.name}' is {t.dtype}; edgeq requantizes "
                             "between int8 and int16 tensors with a scale and zero point.")
    m, shift = quantize_multiplier(float(x.quant.s) / float(y.quant.s))
    lo, hi = (-(2**15), 2**15 - 1) if y.dtype == "int16" else (INT8_MIN, INT8_MAX)
    return _rescale_call(op, x, y, (m, shift), (m, shift), lo, hi)


def _rescale_call(op: ops.Op, x, y, positive, negative, lo: int, hi: int) -> KernelCall:
    return KernelCall(op.name, "rescale", [op.inputs[0]], [op.outputs[0]], {
        "size": x.size, "in_wide": int(x.dtype == "int16"), "out_wide": int(y.dtype == "int16"),
        "input_zp": x.quant.zp, "output_zp": y.quant.zp, "out_mult": positive[0], "out_shift": positive[1],
        "neg_mult": negative[0], "neg_shift": negative[1], "out_min": lo, "out_max": hi})


def _lower_16x8_activation(op: ops.Op, graph: Graph) -> KernelCall:
    """16x8 RELU (TFLM's ReluQuantized), RELU6 (a clamp on the input's scale, no rescaling) and LEAKY_RELU
    (QuantizeLeakyRelu): a rescale per sign, then a clamp; 65,536-entry tables would not fit."""
    variant(op, graph, [op.inputs[0], op.outputs[0]])
    x, y = graph.t(op.inputs[0]), graph.t(op.outputs[0])
    s_in, s_out = np.float32(x.quant.s), np.float32(y.quant.s)
    top = 2**15 - 1
    if isinstance(op, ops.Relu6):
        identity = (1 << 30, 1)  # exactly x
        six = min(top, int(round_half_away(float(np.float32(6.0) / s_in))))
        return _rescale_call(op, x, y, identity, identity, 0, six)
    rescale = quantize_multiplier(float(s_in) / float(s_out))
    if isinstance(op, ops.Relu):
        return _rescale_call(op, x, y, rescale, rescale, 0, top)
    return _rescale_call(op, x, y, rescale, quantize_multiplier(float(s_in * np.float32(op.alpha) / s_out)),
                         -(2**15), top)


@kernel("rescale")
def rescale(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    p = call.params
    x = inputs[0].astype(np.int64) - p["input_zp"]
    v = np.where(x >= 0, multiply_by_quantized_multiplier(x, p["out_mult"], p["out_shift"]),
                 multiply_by_quantized_multiplier(x, p["neg_mult"], p["neg_shift"]))
    out = np.clip(v + p["output_zp"], p["out_min"], p["out_max"])
    return out.astype(np.int16 if p["out_wide"] else np.int8).reshape(out_shape)


# --- softmax ---------------------------------------------------------------------------------------

@lowers(ops.Softmax, "softmax_s8", "softmax_s16")
def lower_softmax(op: ops.Softmax, graph: Graph) -> KernelCall:
    if graph.t(op.inputs[0]).dtype == "int16":
        return _lower_softmax_16(op, graph)
    s_in, _, s_out, zp_out = _scales(op, graph)
    if zp_out != -128 or s_out != np.float32(1.0 / 256):
        raise EdgeqError(f"Operator {op.name} (SOFTMAX): int8 output must have scale 1/256 and zero point -128 "
                         f"(got {float(s_out)} and {zp_out}), as TFLite requires.")
    # PreprocessSoftmaxScaling with 5 integer bits, then CalculateInputRadius.
    real = min(float(np.float32(op.beta)) * float(s_in) * (1 << (31 - 5)), (1 << 31) - 1.0)
    multiplier, left_shift = quantize_multiplier(real)
    diff_min = -int(math.floor(1.0 * ((1 << 5) - 1) * (1 << (31 - 5)) / (1 << left_shift)))
    exp_table = []
    for diff in range(-255, 1):
        if diff < diff_min:
            exp_table.append(0)  # excluded from the sum, and its output is -128 either way
        else:
            rescaled = gl.srdhm(gl.wrap32(diff * (1 << left_shift)), multiplier)
            exp_table.append(gl.exp_on_negative_values(rescaled, 5))
    shape = graph.t(op.inputs[0]).shape
    depth = shape[-1]
    return KernelCall(op.name, "softmax_s8", [op.inputs[0]], [op.outputs[0]],
                      {"rows": graph.t(op.inputs[0]).size // depth, "depth": depth, "input_multiplier": multiplier,
                       "input_left_shift": left_shift, "diff_min": diff_min},
                      {"exp_table": np.array(exp_table, dtype=np.int32)})


def _lower_softmax_16(op: ops.Softmax, graph: Graph) -> KernelCall:
    """TFLM's int16 SoftmaxPrepare: the input difference scaled so [-65535, 0] is [-10, 0], two Q0.15 tables."""
    variant(op, graph, [op.inputs[0], op.outputs[0]])
    x, y = graph.t(op.inputs[0]), graph.t(op.outputs[0])
    if abs(float(np.float32(y.quant.s)) - 1 / 32768) > 0.001 / 32768:
        raise EdgeqError(f"Operator {op.name} (SOFTMAX): an int16 output needs scale 1/32768 (got {y.quant.s}), as "
                         "TFLite requires; convert the model again with TFLite's 16x8 mode.")
    rescale = float(np.float32(x.quant.s)) * float(np.float32(op.beta)) / (10.0 / 65535.0)
    multiplier, shift = quantize_multiplier(rescale)
    exp_lut, recip_lut = lut16.softmax_luts()
    depth = x.shape[-1]
    if depth > 65535:  # TFLite's Q16.15 sum of exps would overflow int32
        raise EdgeqError(f"Operator {op.name} (SOFTMAX): an int16 softmax over {depth} values; TFLite's integer "
                         "sum holds at most 65,535. Split the axis or run this softmax in int8.")
    return KernelCall(op.name, "softmax_s16", [op.inputs[0]], [op.outputs[0]],
                      {"rows": x.size // depth, "depth": depth, "input_multiplier": multiplier,
                       "input_left_shift": shift},
                      {"exp_lut": exp_lut, "recip_lut": recip_lut})


@kernel("softmax_s16")
def softmax_s16(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    p, a = call.params, call.arrays
    x = inputs[0].reshape(p["rows"], p["depth"])
    return lut16.softmax_s16(x, p["input_multiplier"], p["input_left_shift"], a["exp_lut"], a["recip_lut"]).reshape(
        out_shape)


def _get_reciprocal(x: int, integer_digits: int) -> tuple[int, int]:
    headroom_plus_one = gl.count_leading_zeros(x)
    num_bits_over_unit = integer_digits - headroom_plus_one
    shifted_sum_minus_one = gl.wrap32(((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return gl.one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


@kernel("softmax_s8")
def softmax_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    rows, depth = call.params["rows"], call.params["depth"]
    x = inputs[0].reshape(rows, depth).astype(np.int64)
    table = call.arrays["exp_table"]
    out = np.empty((rows, depth), dtype=np.int8)
    for r in range(rows):
        exps = [int(table[v + 255]) for v in (x[r] - x[r].max())]
        total = 0
        for e in exps:
            total = gl.wrap32(total + gl.rdbpot(e, 12))
        scale, bits = _get_reciprocal(total, 12)
        for c, e in enumerate(exps):
            unsat = gl.rdbpot(gl.srdhm(scale, e), bits + 31 - 8)
            out[r, c] = _clamp8(unsat - 128)
    return out.reshape(out_shape)


# --- L2 normalization ------------------------------------------------------------------------------

@lowers(ops.L2Normalization, "l2_normalization_s8")
def lower_l2_normalization(op: ops.L2Normalization, graph: Graph) -> KernelCall:
    """TFLite's reference_integer_ops::L2Normalization: the output is in 1/128 with zero point 0."""
    s_in, zp_in, s_out, zp_out = _scales(op, graph)
    if s_out != np.float32(1.0 / 128) or zp_out != 0:
        raise EdgeqError(f"Operator {op.name} (L2_NORMALIZATION): int8 output must have scale 1/128 and zero point 0 "
                         f"(got {float(s_out)} and {zp_out}), as TFLite requires.")
    shape = graph.t(op.inputs[0]).shape
    depth = shape[-1]
    return KernelCall(op.name, "l2_normalization_s8", [op.inputs[0]], [op.outputs[0]],
                      {"rows": graph.t(op.inputs[0]).size // depth, "depth": depth, "input_zp": zp_in})


@kernel("l2_normalization_s8")
def l2_normalization_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    p = call.params
    x = inputs[0].reshape(p["rows"], p["depth"]).astype(np.int64) - p["input_zp"]
    out = np.empty(x.shape, dtype=np.int8)
    for r in range(p["rows"]):
        m, shift = gl.inv_sqrt_multiplier_exp(gl.wrap32(int((x[r] * x[r]).sum())))
        out[r] = [_clamp8(_mbqm(int(v), m, shift + 7)) for v in x[r]]
    return out.reshape(out_shape)


# --- float semantics ------------------------------------------------------------------------------

@float_impl(ops.Relu)
def float_relu(op, graph, inputs):
    return np.maximum(inputs[0], 0)


@float_impl(ops.Relu6)
def float_relu6(op, graph, inputs):
    return np.clip(inputs[0], 0, 6)


@float_impl(ops.LeakyRelu)
def float_leaky_relu(op, graph, inputs):
    return np.where(inputs[0] >= 0, inputs[0], inputs[0] * np.float32(op.alpha))


@float_impl(ops.Logistic)
def float_logistic(op, graph, inputs):
    return 1.0 / (1.0 + np.exp(-inputs[0].astype(np.float64)))


@float_impl(ops.Tanh)
def float_tanh(op, graph, inputs):
    return np.tanh(inputs[0].astype(np.float64))


@float_impl(ops.HardSwish)
def float_hard_swish(op, graph, inputs):
    x = inputs[0].astype(np.float64)
    return x * np.clip(x + 3.0, 0.0, 6.0) / 6.0


@float_impl(ops.Abs)
def float_abs(op, graph, inputs):
    return np.abs(inputs[0])


@float_impl(ops.Neg)
def float_neg(op, graph, inputs):
    return -inputs[0]


@float_impl(ops.Gelu)
def float_gelu(op, graph, inputs):
    from scipy.special import erf

    x = inputs[0].astype(np.float64)
    if op.approximate:
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


@float_impl(ops.Exp)
def float_exp(op, graph, inputs):
    return np.exp(inputs[0].astype(np.float64))


@float_impl(ops.Log)
def float_log(op, graph, inputs):
    return np.log(inputs[0].astype(np.float64))


@float_impl(ops.Rsqrt)
def float_rsqrt(op, graph, inputs):
    return 1.0 / np.sqrt(inputs[0].astype(np.float64))


@float_impl(ops.L2Normalization)
def float_l2_normalization(op, graph, inputs):
    x = inputs[0].astype(np.float64)
    return x / np.sqrt(np.maximum((x * x).sum(axis=-1, keepdims=True), 1e-6))


@float_impl(ops.Softmax)
def float_softmax(op, graph, inputs):
    x = inputs[0].astype(np.float64) * op.beta
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
