"""Power-of-two quantization of the state models keep across invokes: SVDF, resource variables (READ_VARIABLE,
ASSIGN_VARIABLE) and, with edgeq.quant.pot._quantize_lstm, TFLite's LSTM.

Calibration runs the calibration samples in order as successive invokes from the initial state (the float
executor carries the state, edgeq.quant.executor.run_float_batch), so each state's range is the one it takes over
those invokes. Every state gets the finest power-of-two scale that holds that range without clipping; values
beyond it saturate, as TFLite's kernels saturate their int16 state. The kernels are TFLite's: their multipliers
come out as exact powers of two.
"""
from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, Quant, ops
from edgeq.quant.calibration import TensorStats
from edgeq.quant.executor import STATE_KEY

STATE_OPS = (ops.Svdf, ops.ReadVariable, ops.AssignVariable)
INT16_LEVELS = 32767


def state_range(g: Graph, name: str, stats: dict[str, TensorStats]) -> TensorStats:
    """The statistics of state `name` over the calibration invokes, its initial value included."""
    st = stats.get(STATE_KEY + name)
    if st is None:
        raise EdgeqError(f"No calibration statistics for state '{name}'; calibrate on data (--calib), which runs the "
                         "samples as successive invokes.")
    init = np.asarray(g.states[name].data, np.float32).reshape(-1)
    both = TensorStats()
    both.min, both.max = min(st.min, float(init.min())), max(st.max, float(init.max()))
    both.max_abs, both.samples = max(st.max_abs, float(np.abs(init).max())), [*st.samples, init]
    return both


def int16_scale(max_abs: float) -> float:
    """The finest power of two whose int16 grid holds max_abs."""
    return 2.0 ** -math.floor(math.log2(INT16_LEVELS / max_abs)) if max_abs > 0 else 2.0 ** -15


def _unclipped(st: TensorStats):
    """The int8 power-of-two grid that holds every value in st (unsigned when none is negative)."""
    from edgeq.quant.pot import choose_exponent

    return choose_exponent(st.values, st.max_abs if st.min < 0 else st.max, unsigned=st.min >= 0, clip=False)


def hold_range(g: Graph, name: str, stats: dict[str, TensorStats], report: dict) -> None:
    """An activation that is a state too (an LSTM's output is its hidden state) on the grid that clips nothing
    calibration saw, rather than the least squared error's, which may clip the tail."""
    c = _unclipped(stats[name])
    g.t(name).quant = Quant([c.scale], [c.zero_point])
    report[name].update(exponent=c.exponent, zero_point=c.zero_point, mse=c.mse)


def quantize_state_op(g: Graph, op: ops.Op, stats: dict[str, TensorStats], report: dict, activation, requantized,
                      new_ops: list[ops.Op]) -> None:
    """One of STATE_OPS in edgeq.quant.pot.quantize_graph's walk: activation(name) quantizes an activation from its
    statistics, requantized(g, name, quant, new_ops, consumer) inserts a requantization."""
    if isinstance(op, ops.Svdf):
        _quantize_svdf(g, op, stats, report, activation)
        return
    state = _variable(g, op.state, stats, report)
    if isinstance(op, ops.ReadVariable):
        out = g.t(op.outputs[0])
        out.dtype, out.quant = "int8", copy.deepcopy(state.quant)
    else:
        op.inputs = [requantized(g, op.inputs[0], state.quant, new_ops, op)]


def _variable(g: Graph, name: str, stats: dict[str, TensorStats], report: dict):
    """A resource variable in int8 at a power of two that holds every value it took (unsigned when none was
    negative, as activations are), its initial value rounded onto that grid."""
    state = g.states[name]
    if state.dtype != "float32":  # quantized at its first READ_VARIABLE or ASSIGN_VARIABLE
        return state
    st = state_range(g, name, stats)
    c = _unclipped(st)
    state.quant = Quant([c.scale], [c.zero_point])
    init = np.asarray(state.data, np.float64)
    state.data = np.clip(np.round(init / c.scale) + c.zero_point, -128, 127).astype(np.int8)
    state.dtype = "int8"
    report[name] = {"kind": "state", "exponent": c.exponent, "zero_point": c.zero_point, "mse": c.mse,
                    "min": st.min, "max": st.max}
    return state


def _quantize_svdf(g: Graph, op: ops.Svdf, stats: dict[str, TensorStats], report: dict, activation) -> None:
    """TFLite's integer SVDF with power-of-two scales: feature weights int8 per tensor, time weights and the state
    int16 (the state at the finest power of two holding the feature values seen), the bias int32 at
    s_state * s_time (it is added to the time weights' sum), the output from calibration. TFLite's integer SVDF
    applies no activation; a RELU is exact all the same, since its output is unsigned (zero point -128 is 0.0)."""
    from edgeq.quant.pot import _quantize_constant

    if op.activation not in (ops.Activation.NONE, ops.Activation.RELU):
        raise EdgeqError(f"Operator {op.name} (SVDF) has fused activation {op.activation.name}, which TFLite's "
                         "integer SVDF does not apply; edgeq's power-of-two SVDF takes none or RELU (exact through "
                         "its unsigned output). Move the activation out of the SVDF, or quantize the model to int8 "
                         "with the TFLite converter and build it with --quant keep.")
    _quantize_constant(g, op.inputs[1], report)
    wt = g.t(op.inputs[2])
    s_wt = int16_scale(float(np.abs(wt.data).max()))
    report[wt.name] = {"kind": "weights", "exponent": -round(math.log2(s_wt)), "dtype": "int16",
                       "max_abs": float(np.abs(wt.data).max())}
    wt.data = np.clip(np.round(wt.data / s_wt), -INT16_LEVELS, INT16_LEVELS).astype(np.int16)
    wt.dtype, wt.quant = "int16", Quant([s_wt], [0])
    state = g.states[op.state]
    st = state_range(g, op.state, stats)
    s_state = int16_scale(st.max_abs)
    state.data, state.dtype, state.quant = np.zeros(state.shape, np.int16), "int16", Quant([s_state], [0])
    report[op.state] = {"kind": "state", "exponent": -round(math.log2(s_state)), "zero_point": 0, "dtype": "int16",
                        "min": st.min, "max": st.max}
    if len(op.inputs) > 3:
        b = g.t(op.inputs[3])
        scale = s_state * s_wt
        b.data = np.clip(np.round(b.data.astype(np.float64) / scale), -2**31, 2**31 - 1).astype(np.int32)
        b.dtype, b.quant = "int32", Quant([scale], [0])
    activation(op.outputs[0])


def stateful_options(options, echo):
    """The quantizer's options for a stateful graph: the steps that walk the calibration samples as independent
    ones give way (empirical bias correction and error-compensating rounding walk layer by layer, each layer over
    every sample, which a state shared between layers cannot follow), or are refused."""
    if options.mixed_precision or options.cv_folds:
        raise EdgeqError("--mixed-precision and --cv-folds take calibration samples as independent inputs; this model "
                         "keeps state across invokes, and its calibration samples are one sequence of invokes. "
                         "Leave those options out.")
    changed = dataclasses.replace(options, rounding="nearest",
                                  bias_correction="analytic" if options.bias_correction != "off" else "off")
    if changed != options:
        echo("the model keeps state across invokes: calibrating on the samples as one sequence of invokes, with "
             "analytic bias correction and nearest rounding")
    return changed

