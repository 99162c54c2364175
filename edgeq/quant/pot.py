"""Power-of-two post-training quantization of a float graph.

Every int8 activation tensor gets one scale 2^-n per tensor. Weights are symmetric ([-127, 127], zero point 0),
with one 2^-n per output channel (or per tensor), so every requantization stays a rounding shift.
Activations are symmetric with zero point 0 when they can be negative; non-negative ones (after ReLU,
ReLU6, ...) use all 256 levels as unsigned values, stored in int8 with a fixed offset of -128 (the
int8 image of a uint8 tensor with zero point 0), so no bit is wasted on a sign. Biases are int32 at
scale s_w * s_x (per channel with the weights). Each exponent is the candidate that minimizes the mean
squared quantization error on the weights or on the calibration activations.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, Quant, Tensor, ops
from edgeq.quant.calibration import TensorStats
from edgeq.quant.pot_constants import quantize_constant_operands
from edgeq.quant.pot_state import STATE_OPS, hold_range, int16_scale, quantize_state_op, state_range

UNSIGNED_OFFSET = -128
SOFTMAX_SPAN = 8.0  # logits this far below a sample's top one get probability e^-8, under int8's 1/256
# Ops whose int8 kernels need the output quantized exactly like the (first) input (RELU6: TFLite Micro
# clamps on the input scale without requantizing, and LiteRT requantizes: equal scales make both agree).
SAME_QUANT = (ops.AveragePool2D, ops.MaxPool2D, ops.Reshape, ops.Squeeze, ops.Pad, ops.Relu6, *ops.MOVEMENT_OPS,
              ops.ReduceMax, ops.ResizeBilinear)
# Ops whose int8 kernels copy or compare raw values: every input is requantized to the output's quantization.
SHARED_QUANT = (ops.Concatenation, ops.Pack, ops.Maximum, ops.Minimum)
FIXED_OUTPUT = {ops.Softmax: (2.0 ** -8, -128), ops.Logistic: (2.0 ** -8, -128), ops.Tanh: (2.0 ** -7, 0),
                ops.L2Normalization: (2.0 ** -7, 0)}


@dataclass
class Choice:
    exponent: int  # scale = 2^-exponent
    zero_point: int
    mse: float
    step: float | None = None  # a fitted graph input's scale instead (input_step_pair)

    @property
    def scale(self) -> float:
        return 2.0 ** -self.exponent if self.step is None else self.step


def input_step_pair(step: float) -> tuple[float, float]:
    """A float32 scale near step for a graph input, and the float32 reciprocal of its mantissa r: step = c 2^-k with
    c in [1, 2), and c r within 2^-33 of 1. The layers reading the input take weight scales 2^-n r, so each rescale
    (step 2^-n r / 2^-m) is 2^(-k-n+m) to within 2^-33, which TFLite's QuantizeMultiplier rounds to exactly 2^30: a
    shift. The scale moves by at most 2^-10 of itself (the first mantissa m1 near c 2^23 with 2^47 mod m1 within
    2^14 of 0 or m1; about one in 350 is)."""
    k = math.floor(math.log2(step))
    offsets = np.arange(-8192, 8193)
    m1 = int(round(step * 2.0 ** (23 - k))) + offsets[np.argsort(np.abs(offsets), kind="stable")]
    m1 = m1[(m1 >= 2 ** 23) & (m1 < 2 ** 24)].astype(np.int64)
    m2 = np.rint(2.0 ** 47 / m1).astype(np.int64)
    ok = np.flatnonzero(np.abs(m1 * m2 - 2 ** 47) < 2 ** 14)
    # no such mantissa near c (never met): the nearest power of two
    fitted = float(np.float32(m1[ok[0]] * 2.0 ** (k - 23))) if ok.size else 2.0 ** round(math.log2(step))
    return fitted, input_reciprocal(fitted)


def input_reciprocal(step: float) -> float:
    """r of input_step_pair for a scale it made: the float32 nearest 1/c (1 for a power of two)."""
    k = math.floor(math.log2(step))
    m1 = int(round(step * 2.0 ** (23 - k)))
    return float(np.float32(round(2.0 ** 47 / m1) * 2.0 ** -24))


def quant_error(x: np.ndarray, exponent: int, zero_point: int, qmin: int = -128, qmax: int = 127,
                scale: float | None = None) -> float:
    """Mean squared error of x on the grid 2^-exponent (or scale) with zero_point, clipped to [qmin, qmax]."""
    s = 2.0 ** -exponent if scale is None else scale
    q = np.clip(np.round(x / s) + zero_point, qmin, qmax)
    return float(np.mean((x - (q - zero_point) * s) ** 2))


def choose_exponent(x: np.ndarray, max_abs: float, unsigned: bool, weights: bool = False,
                    clip: bool = True) -> Choice:
    """The power-of-two scale with the least squared error, among the one that clips nothing and
    (with clip) four finer ones that clip the tail."""
    zero_point = UNSIGNED_OFFSET if unsigned else 0
    qmin = -127 if weights else -128
    levels = 255 if unsigned else 127
    if max_abs <= 0 or not np.isfinite(max_abs):
        return Choice(0, zero_point, 0.0)
    n0 = math.floor(math.log2(levels / max_abs))
    best = None
    for n in range(n0, n0 + (5 if clip else 1)):
        err = quant_error(x, n, zero_point, qmin)
        if best is None or err < best.mse:
            best = Choice(n, zero_point, err)
    return best


def choose_offset_exponent(x: np.ndarray, lo: float, hi: float) -> Choice:
    """An asymmetric power-of-two grid for [lo, hi] (lo < 0): per exponent from the one that clips nothing to
    four finer ones, the zero point among nine between the grid's bottom at lo and its top at hi with the
    least squared error."""
    n0 = math.floor(math.log2(255 / (hi - lo)))
    best = None
    for n in range(n0, n0 + 5):
        s = 2.0 ** -n
        at_lo, at_hi = -128 - lo / s, 127 - hi / s  # zero points putting lo at -128 or hi at 127
        for zp in sorted({int(np.clip(round(z), -128, 127)) for z in np.linspace(at_lo, at_hi, 9)}):
            err = quant_error(x, n, zp)
            if best is None or err < best.mse:
                best = Choice(n, zp, err)
    return best


INPUT_GRID_SAMPLES = 16


FITTED_SPANS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)  # a fitted input grid's span, as a fraction of the calibration range


def input_grid(g: Graph, name: str, st: TensorStats, x: np.ndarray, fitted: bool = False) -> Choice:
    """The graph input's grid, symmetric or asymmetric (every candidate of choose_exponent and
    choose_offset_exponent; with fitted, also scales that are no power of two, input_step_pair, spanning
    FITTED_SPANS of the range), with the least error at the outputs of the layers that read it: the float
    layers, without bias, applied to the input's quantization error on the first calibration samples, each
    output channel's mean error left out (bias correction removes it). Returns its Choice with that error as
    mse. The input's own squared error misjudges inputs like MFCCs, whose silence floor (-124 in kws_ds_cnn)
    is rare but far out."""
    import dataclasses

    from edgeq.lowering import run_float
    from edgeq.quant.executor import batched_graph

    xs = x[:INPUT_GRID_SAMPLES].astype(np.float64)
    bg = batched_graph(g, len(xs))
    lo, hi = min(st.min, 0.0), st.max
    n_sym = math.floor(math.log2(127 / max(-lo, hi)))
    candidates = [Choice(n, 0, 0.0) for n in range(n_sym, n_sym + 5)] if lo < 0 else []
    n_off = math.floor(math.log2(255 / (hi - lo)))
    steps = [2.0 ** -n for n in range(n_off, n_off + 5)]
    if fitted:
        steps += [input_step_pair(span * (hi - lo) / 255)[0] for span in FITTED_SPANS]
    for step in steps:
        n = -math.floor(math.log2(step))
        at_lo, at_hi = -128 - lo / step, 127 - hi / step
        # a non-negative input takes the bottom level at 0: any other zero point spends levels below it
        zps = np.linspace(at_lo, at_hi, 9) if lo < 0 else [UNSIGNED_OFFSET]
        candidates += [Choice(n, zp, 0.0, None if step == 2.0 ** -n else step)
                       for zp in sorted({int(np.clip(round(z), -128, 127)) for z in zps})]
    if bg is None:
        return min((dataclasses.replace(c, mse=quant_error(st.values, c.exponent, c.zero_point, scale=c.scale))
                    for c in candidates), key=lambda c: c.mse)
    readers = [op for op in g.ops if op.inputs and _reads_input(g, op, name)]
    best = None
    for c in candidates:
        s = c.scale
        e = xs - (np.clip(np.round(xs / s) + c.zero_point, -128, 127) - c.zero_point) * s
        err = 0.0
        for op in readers:
            linear = dataclasses.replace(op, activation=ops.Activation.NONE)
            y = run_float(linear, bg, [e.reshape(bg.t(op.inputs[0]).shape).astype(np.float32),
                                       g.t(op.inputs[1]).data]).astype(np.float64)
            y = y.reshape(-1, y.shape[-1])
            err += float(np.mean((y - y.mean(axis=0)) ** 2))
        if best is None or err < best.mse:
            best = dataclasses.replace(c, mse=err)
    return best


def _reads_input(g: Graph, op: ops.Op, name: str) -> bool:
    """Whether op reads the input (through reshapes) as its data input."""
    producers = g.producers()
    tensor = op.inputs[0]
    while tensor != name and tensor in producers and isinstance(producers[tensor], (ops.Reshape, ops.Squeeze)):
        tensor = producers[tensor].inputs[0]
    return tensor == name and isinstance(op, (ops.Conv2D, ops.DepthwiseConv2D, ops.FullyConnected))


def _offset_ok(g: Graph, name: str) -> bool:
    """Whether the input is read only as the data input of conv/depthwise/fully-connected layers (through
    reshapes)."""
    consumers = g.consumers()
    flows, ok = [name], bool(consumers.get(name))
    while flows and ok:
        tensor = flows.pop()
        for op in consumers.get(tensor, []):
            if isinstance(op, (ops.Reshape, ops.Squeeze)):
                flows.append(op.outputs[0])
            else:
                ok &= isinstance(op, (ops.Conv2D, ops.DepthwiseConv2D, ops.FullyConnected)) and \
                    op.inputs[0] == tensor and tensor not in op.inputs[1:]
    return ok


def _quant(choice: Choice) -> Quant:
    return Quant([choice.scale], [choice.zero_point])


def quantize_graph(graph: Graph, stats: dict[str, TensorStats], bias_correction: bool = True,
                   input_zero_point: bool = False, inputs: np.ndarray | None = None,
                   per_channel_scales: bool = True, fitted_input_scale: bool = False) -> tuple[Graph, dict]:
    """An int8 copy of a float graph with power-of-two scales, and the choices made (for the report).

    With input_zero_point, a graph input that can be negative and feeds only conv/depthwise/fully-connected
    layers (through reshapes) gets a zero point beside its 2^-n scale when that lowers its quantization
    error: the caller quantizes the input anyway, and those kernels take the offset (padding included), so
    no rescale changes. Given the float calibration inputs, that error is the one the reading layers'
    outputs see (input_grid), else the input's own. With bias_correction, each layer's bias absorbs the expected error its quantized weights cause,
    (W_q - W) E[x], with E[x] the per-channel mean of its input in the statistics (Nagel et al. 2019,
    section 4.2, analytic variant; the empirical one is edgeq.quant.bias_correction). per_channel_scales: one
    weight exponent per output channel (else per tensor). fitted_input_scale: such an input (negative or not) may also
    take a scale that is no power of two (input_step_pair), fitted to its range, when that errs less."""
    g = copy.deepcopy(graph)
    g.requant = "shift"
    g.unshare_constants()
    report: dict[str, dict] = {}

    # A softmax's input (logits): what matters is each sample's top values, so the range runs from the
    # largest logit down to SOFTMAX_SPAN below the smallest top logit; lower ones only clip to ~0
    # probability. Clipping the top instead would make classes tie. Graph outputs clip nothing.
    softmax_inputs = {op.inputs[0]: op.beta for op in g.ops if isinstance(op, ops.Softmax)}
    keep_tail = set(g.outputs) | set(softmax_inputs)
    offset_inputs = {n for n in g.inputs if input_zero_point and _offset_ok(g, n)}

    def activation(name: str) -> None:
        t = g.t(name)
        if t.quant is not None:
            return
        st = stats.get(name)
        if st is None:
            raise EdgeqError(f"No calibration statistics for tensor '{name}'.")
        span = st.max_abs if st.min < 0 else st.max
        if name in softmax_inputs and st.min < 0:
            span = min(span, max(st.max, SOFTMAX_SPAN / softmax_inputs[name] - st.row_max_min))
        c = choose_exponent(st.values, span, unsigned=st.min >= 0, clip=name not in keep_tail)
        if name in offset_inputs and inputs is not None and (st.min < 0 or fitted_input_scale):
            c = input_grid(g, name, st, inputs, fitted_input_scale)
        elif name in offset_inputs and st.min < 0:
            c = min(c, choose_offset_exponent(st.values, st.min, st.max), key=lambda c: c.mse)
        t.quant, t.dtype = _quant(c), "int8"
        report[name] = {"kind": "activation", "exponent": c.exponent, "zero_point": c.zero_point, "mse": c.mse,
                        "min": st.min, "max": st.max, **({} if c.step is None else {"scale": c.step})}

    for name in g.inputs:
        activation(name)
    new_ops: list[ops.Op] = []
    for op in g.ops:
        if isinstance(op, (ops.Quantize, ops.Dequantize)):
            raise EdgeqError(f"Operator {op.name} ({op.kind}) in a float graph cannot be power-of-two quantized.")
        if isinstance(op, STATE_OPS):  # SVDF and resource variables (edgeq.quant.pot_state)
            quantize_state_op(g, op, stats, report, activation, _requantized, new_ops)
            new_ops.append(op)
            continue
        out = g.t(op.outputs[0])
        if isinstance(op, SAME_QUANT):
            out.quant, out.dtype = copy.deepcopy(g.t(op.inputs[0]).quant), "int8"
        elif type(op) in FIXED_OUTPUT:
            scale, zp = FIXED_OUTPUT[type(op)]
            out.quant, out.dtype = Quant([scale], [zp]), "int8"
        elif isinstance(op, ops.ArgMax):
            out.quant, out.dtype = None, "int32"
        elif isinstance(op, SHARED_QUANT):
            activation(op.outputs[0])
            quantize_constant_operands(g, op, report, out.quant)
            op.inputs = [_requantized(g, name, out.quant, new_ops, op) for name in op.inputs]
        else:
            activation(op.outputs[0])
        if isinstance(op, (ops.Conv2D, ops.DepthwiseConv2D, ops.FullyConnected, ops.TransposeConv)):
            mean_in = stats[op.inputs[0]].channel_mean if bias_correction else None
            _quantize_weights(g, op, report, mean_in, per_channel_scales)
        elif isinstance(op, (ops.Prelu, ops.BatchMatMul)) and g.t(op.inputs[1]).is_const:
            _quantize_constant(g, op.inputs[1], report)
        elif isinstance(op, ops.UnidirectionalSequenceLstm):
            _quantize_lstm(g, op, report, stats)
        elif isinstance(op, ops.Gru):
            _quantize_gates(g, op, 3, report)
        elif isinstance(op, (ops.Add, ops.Sub, ops.Mul, ops.SquaredDifference)):
            quantize_constant_operands(g, op, report)
        new_ops.append(op)
    g.ops = new_ops
    return g, report


def _requantized(g: Graph, name: str, quant: Quant, new_ops: list[ops.Op], consumer: ops.Op) -> str:
    t = g.t(name)
    if t.quant.s == quant.s and t.quant.zp == quant.zp:
        return name
    out_name = f"{name}/requantized_for_{consumer.name}"
    g.tensors[out_name] = Tensor(out_name, t.shape, "int8", copy.deepcopy(quant))
    new_ops.append(ops.Quantize(f"quantize_for_{consumer.name}_{len(new_ops)}", [name], [out_name]))
    return out_name


def weight_error_bias(op: ops.Op, w: np.ndarray, wq: np.ndarray, mean_in: np.ndarray) -> np.ndarray:
    """Per output channel: the expected output shift (W_q - W) E[x] caused by quantized weights."""
    dw = (wq - w).astype(np.float64)
    if isinstance(op, ops.FullyConnected):
        return dw @ mean_in.reshape(-1)[: dw.shape[1]] if mean_in.size >= dw.shape[1] else np.zeros(dw.shape[0])
    if isinstance(op, ops.DepthwiseConv2D):
        per_out = dw.sum(axis=(0, 1, 2))  # [C*M]
        return per_out * np.repeat(mean_in, op.depth_multiplier)
    out_c, _, _, filt_c = dw.shape
    groups = mean_in.size // filt_c
    per_group = out_c // groups
    spatial = dw.sum(axis=(1, 2))  # [O, filt_c]
    return np.array([spatial[o] @ mean_in[(o // per_group) * filt_c:(o // per_group + 1) * filt_c]
                     for o in range(out_c)])


def _quantize_constant(g: Graph, name: str, report: dict) -> None:
    """A constant operand that is not a layer's weights (PRELU's slope, BATCH_MATMUL's constant rhs): symmetric
    int8 with a power-of-two scale."""
    t = g.t(name)
    c = choose_exponent(t.data.astype(np.float64), float(np.abs(t.data).max()), unsigned=False, weights=True)
    report[name] = {"kind": "weights", "exponent": c.exponent, "mse": c.mse, "max_abs": float(np.abs(t.data).max())}
    t.data, t.dtype, t.quant = np.clip(np.round(t.data / c.scale), -127, 127).astype(np.int8), "int8", _quant(c)


def weight_axis(op: ops.Op) -> int:
    """The output-channel axis of a layer's weights: [1, KH, KW, C*M] for depthwise, [O, ...] otherwise."""
    return 3 if isinstance(op, ops.DepthwiseConv2D) else 0


def per_channel(values, op: ops.Op, ndim: int) -> np.ndarray:
    """Per-output-channel values shaped to broadcast against op's weights (a single value broadcasts as it is)."""
    shape = [1] * ndim
    shape[weight_axis(op)] = -1
    return np.reshape(np.asarray(values, np.float64), shape)


def _row_exponents(rows: np.ndarray) -> list[Choice]:
    """choose_exponent for the weights of every row of rows [C, K] at once."""
    top = np.abs(rows).max(axis=1)
    n0 = np.floor(np.log2(127 / np.where(top > 0, top, 1.0))).astype(np.int64)
    errors = []
    for extra in range(5):
        step = 2.0 ** -(n0 + extra)[:, None]
        errors.append(np.mean((rows - np.clip(np.round(rows / step), -127, 127) * step) ** 2, axis=1))
    errors = np.array(errors)  # [5, C]
    best = np.argmin(errors, axis=0)  # the first of equal errors, as choose_exponent keeps it
    return [Choice(int(n0[c] + best[c]), 0, float(errors[best[c], c])) if top[c] > 0 else Choice(0, 0, 0.0)
            for c in range(len(rows))]


MAX_RESCALE_SHIFT = 22  # the largest right shift a layer's rescale takes (the kernels' fused rescales go to 22)


def weight_choices(op: ops.Op, w: np.ndarray, per_channel_scales: bool, finest: int | None = None) -> list[Choice]:
    """The weights' exponent per output channel (HPTQ's per-channel thresholds: every rescale stays a shift, one per
    channel), or one for the tensor. A channel's exponent is at most finest: weights too small for it round to zero,
    as their products would below the output's step."""
    w = w.astype(np.float64)
    if not per_channel_scales:
        return [choose_exponent(w, float(np.abs(w).max()), unsigned=False, weights=True)]
    rows = np.moveaxis(w, weight_axis(op), 0).reshape(w.shape[weight_axis(op)], -1)
    choices = _row_exponents(rows)
    if finest is not None:
        choices = [c if c.exponent <= finest else Choice(finest, 0, quant_error(r, finest, 0, -127))
                   for c, r in zip(choices, rows)]
    alive = [bool(np.any(np.round(r * 2.0 ** c.exponent))) for c, r in zip(choices, rows)]
    live = [c.exponent for c, a in zip(choices, alive) if a]
    # a channel of zeros outputs its bias: the finest live exponent quantizes that bias finest, and keeps its
    # rescale a right shift like its neighbours' (kernels fold a layer's shifts into one form when they can)
    dead = max(live) if live else weight_choices(op, w, False)[0].exponent
    return [c if a else Choice(dead, 0, float(np.mean(r ** 2))) for c, r, a in zip(choices, rows, alive)]


def _quantize_weights(g: Graph, op: ops.Op, report: dict, mean_in: np.ndarray | None,
                      per_channel_scales: bool = True) -> None:
    w = g.t(op.inputs[1])
    s_in, y_quant = g.t(op.inputs[0]).quant.s, g.t(op.outputs[0]).quant
    # the exponent n_w that makes the layer's right shift n_in + n_w - n_out equal MAX_RESCALE_SHIFT
    finest = None if y_quant is None else MAX_RESCALE_SHIFT + math.floor(math.log2(s_in)) - round(math.log2(y_quant.s))
    # a fitted input's scale c 2^-k: the weights' scales carry 1/c (input_step_pair), so the rescale stays a shift
    reciprocal = input_reciprocal(s_in)
    choices = weight_choices(op, w.data / reciprocal, per_channel_scales, finest)
    scales = np.array([c.scale for c in choices]) * reciprocal
    steps = per_channel(scales, op, w.data.ndim)
    q = np.clip(np.round(w.data / steps), -127, 127).astype(np.int8)
    out_channels = w.shape[weight_axis(op)]
    if len(op.inputs) < 3 or not op.inputs[2]:
        name = f"{op.name}/bias"
        g.tensors[name] = Tensor(name, (out_channels,), "float32", None, np.zeros(out_channels, np.float32))
        op.inputs = op.inputs[:2] + [name]
    b = g.t(op.inputs[2])
    bias = b.data.astype(np.float64)
    correction = np.zeros(out_channels)
    if mean_in is not None:
        correction = weight_error_bias(op, w.data, q.astype(np.float64) * steps, mean_in)
        bias = bias - correction
    exponents = [c.exponent for c in choices]
    report[w.name] = {"kind": "weights", "exponent": min(exponents), "max_exponent": max(exponents),
                      "mse": float(np.mean([c.mse for c in choices])) * reciprocal ** 2,
                      "max_abs": float(np.abs(w.data).max()),
                      "bias_correction_max_abs": float(np.abs(correction).max(initial=0.0)),
                      **({} if reciprocal == 1.0 else {"reciprocal": reciprocal})}
    w.data, w.dtype, w.quant = q, "int8", Quant(scales, [0], axis=weight_axis(op) if len(scales) > 1 else 0)
    bias_scales = float(s_in) * scales
    b.data = np.clip(np.round(bias / bias_scales), -2**31, 2**31 - 1).astype(np.int32)
    b.dtype, b.quant = "int32", Quant(bias_scales, [0])


def _quantize_lstm(g: Graph, op: ops.UnidirectionalSequenceLstm, report: dict, stats: dict[str, TensorStats]) -> None:
    """TFLite's integer LSTM with power-of-two scales where it takes a free one: the input and the output (shared by
    the hidden state, as TFLite's converter does) from calibration, each of the eight weight matrices per tensor; the
    biases int32 at s_x * s_w of their gate's input weights. The gates' 2^-12 and 2^-15 are the kernel's own. The
    cell state is int16 at a power of two. When it starts at zero every invoke (reset_state, ONNX's), the finest
    that holds steps + 1: each step adds i * g with |i * g| < 1 to f * c with f < 1, so it cannot saturate. When it
    carries over (TFLite's), the finest that holds every value it took over the calibration invokes, no finer than
    2^-15 (edgeq.quant.pot_state); beyond that range it saturates, as in TFLite's kernel."""
    if not op.reset_state:
        hold_range(g, op.outputs[0], stats, report)
    x, y = g.t(op.inputs[0]), g.t(op.outputs[0])
    _quantize_gates(g, op, 4, report)
    steps = x.shape[0] if op.time_major else x.shape[1]
    hidden, cell = g.states[op.hidden_state], g.states[op.cell_state]
    hidden.dtype, hidden.quant = "int8", copy.deepcopy(y.quant)
    hidden.data = np.full(hidden.shape, y.quant.zp, np.int8)
    if op.reset_state:
        cell_scale = 2.0 ** (math.ceil(math.log2(steps + 1)) - 15)
    else:
        st = state_range(g, op.cell_state, stats)
        cell_scale = max(int16_scale(st.max_abs), 2.0 ** -15)
        report[op.cell_state] = {"kind": "state", "exponent": -round(math.log2(cell_scale)), "zero_point": 0,
                                 "dtype": "int16", "min": st.min, "max": st.max}
    cell.dtype, cell.quant, cell.data = "int16", Quant([cell_scale], [0]), np.zeros(cell.shape, np.int16)


def _quantize_gates(g: Graph, op: ops.Op, gates: int, report: dict) -> None:
    """A recurrent op's input and recurrent weight matrices (one per gate each) symmetric int8 per tensor, then its
    biases int32: those after the input FCs at s_x * s_w, a GRU's after the recurrent FCs at s_y * s_r (the hidden
    state is the output)."""
    s_x, s_y = float(g.t(op.inputs[0]).quant.s), float(g.t(op.outputs[0]).quant.s)
    weights = op.inputs[1:1 + 2 * gates]
    for name in weights:
        _quantize_constant(g, name, report)
    scales = [s_x * g.t(w).quant.s for w in weights[:gates]] + [s_y * g.t(w).quant.s for w in weights[gates:]]
    for name, scale in zip(op.inputs[1 + 2 * gates:], scales):
        b = g.t(name)
        b.data = np.clip(np.round(b.data.astype(np.float64) / scale), -2**31, 2**31 - 1).astype(np.int32)
        b.dtype, b.quant = "int32", Quant([scale], [0])


def quantize_sample(x: np.ndarray, quant: Quant) -> np.ndarray:
    """A float input as the integer graph takes it."""
    return np.clip(np.round(x / quant.s) + quant.zp, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, quant: Quant) -> np.ndarray:
    return (q.astype(np.float64) - quant.zp) * quant.s


def sqnr_report(float_graph: Graph, int_graph: Graph, x: np.ndarray, samples: int = 8) -> dict[str, float]:
    """Per activation tensor: signal-to-quantization-noise ratio (dB) of the integer graph against the
    float graph on the first calibration samples."""
    from edgeq.lowering import lower_graph
    from edgeq.quant.executor import run_float_graph, run_int

    calls = lower_graph(int_graph)
    signal: dict[str, float] = {}
    noise: dict[str, float] = {}
    t_in = int_graph.t(int_graph.inputs[0]).quant
    for sample in x[:samples]:
        f = run_float_graph(float_graph, [sample], keep_all=True)
        q = run_int(int_graph, [quantize_sample(sample, t_in)], calls, keep_all=True)
        for name, fv in f.items():
            if name not in q or int_graph.t(name).quant is None:
                continue
            deq = dequantize(q[name], int_graph.t(name).quant)
            signal[name] = signal.get(name, 0.0) + float(np.sum(fv.astype(np.float64) ** 2))
            noise[name] = noise.get(name, 0.0) + float(np.sum((fv - deq) ** 2))
    return {n: 10 * math.log10(signal[n] / noise[n]) if noise[n] > 0 else float("inf")
            for n in signal if signal[n] > 0}


def dequantized_outputs(int_graph: Graph, x: np.ndarray) -> np.ndarray:
    """The integer graph's first output for every float sample, dequantized: [N, size] float64. The samples run in
    order as successive invokes from the initial state, as the C model runs them after <model>_reset() (which
    matters only to a graph whose state carries over)."""
    from edgeq.lowering import lower_graph
    from edgeq.quant.executor import initial_state, run_int

    calls, state = lower_graph(int_graph), initial_state(int_graph)
    t_in, t_out = int_graph.t(int_graph.inputs[0]).quant, int_graph.t(int_graph.outputs[0]).quant
    return np.array([dequantize(run_int(int_graph, [quantize_sample(s, t_in)], calls, state=state)[
        int_graph.outputs[0]], t_out).reshape(-1) for s in x])


def paired_outputs(float_graph: Graph, int_graph: Graph, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first output of the float graph and the dequantized first output of the integer graph,
    for every sample (the input quantized with the integer graph's input scale)."""
    from edgeq.quant.executor import run_float_graph

    fs = np.array([run_float_graph(float_graph, [s])[float_graph.outputs[0]].reshape(-1) for s in x])
    return fs, dequantized_outputs(int_graph, x)
