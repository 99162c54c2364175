"""Recurrent and stateful operators: SVDF, and resource variables (READ_VARIABLE, ASSIGN_VARIABLE).

Their state lives in Graph.states, outside the arena: the C model keeps it in static buffers across invokes
(`<model>_reset()` restores the initial value), the numpy executor in the `state` dict run_int is given.
SVDF is TFLM's EvalIntegerSvdfReference (svdf_common.cc) with int16 state and time weights.
"""
from __future__ import annotations

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, ops
from edgeq.lowering import KernelCall, kernel, lowers
from edgeq.lowering.common import INT8_MAX, INT8_MIN
from edgeq.lowering.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier, round_half_away, wrap32

INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1


def _refuse_pot(op: ops.Op, graph: Graph) -> None:
    if graph.requant == "shift":
        raise EdgeqError(f"Operator {op.name} ({op.kind}): edgeq's power-of-two quantization does not handle "
                         "recurrent state yet; quantize the model to int8 with the TFLite converter and build it "
                         "with --quant keep.")


# --- SVDF -----------------------------------------------------------------------------------------

@lowers(ops.Svdf, "svdf_s8")
def lower_svdf(op: ops.Svdf, graph: Graph) -> KernelCall:
    _refuse_pot(op, graph)
    x, wf, wt = (graph.t(n) for n in op.inputs[:3])
    y, state = graph.t(op.outputs[0]), graph.states[op.state]
    if (x.dtype, wf.dtype, y.dtype) != ("int8", "int8", "int8") or wt.dtype != "int16" or state.dtype != "int16":
        raise EdgeqError(f"Operator {op.name} (SVDF): edgeq runs TFLite's integer SVDF with int8 input, feature "
                         f"weights and output and int16 time weights and state; this one has {x.dtype}, "
                         f"{wf.dtype}, {y.dtype}, {wt.dtype} and {state.dtype}. Convert it with full int8 "
                         "quantization.")
    if not all(t.quant.per_tensor for t in (x, wf, wt, y, state)):
        raise EdgeqError(f"Operator {op.name} (SVDF) has per-channel weights; TFLite's SVDF takes one scale per "
                         "tensor.")
    batches, input_size = x.shape
    filters, memory = wt.shape
    units = filters // op.rank
    f32 = np.float32
    # TFLM's Prepare: the scale products in float, then double
    m1, s1 = quantize_multiplier(float(f32(x.quant.s) * f32(wf.quant.s) / f32(state.quant.s)))
    m2, s2 = quantize_multiplier(float(f32(state.quant.s) * f32(wt.quant.s) / f32(y.quant.s)))
    bias = graph.t(op.inputs[3]).data.astype(np.int32) if len(op.inputs) > 3 else np.zeros(units, np.int32)
    params = {"batches": batches, "input_size": input_size, "filters": filters, "units": units, "rank": op.rank,
              "memory": memory, "input_zp": x.quant.zp, "state_zp": state.quant.zp, "output_zp": y.quant.zp,
              "feature_multiplier": m1, "feature_shift": s1, "time_multiplier": m2, "time_shift": s2}
    arrays = {"weights_feature": wf.data.astype(np.int8).reshape(-1),
              "weights_time": wt.data.astype(np.int16).reshape(-1), "bias": bias.reshape(-1)}
    return KernelCall(op.name, "svdf_s8", [op.inputs[0]], [op.outputs[0]], params, arrays, states=[op.state])


@kernel("svdf_s8")
def svdf_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    """EvalIntegerSvdfReference<int16_t>: the fused activation is not applied (TFLM's integer SVDF ignores it)."""
    p, a = call.params, call.arrays
    x, state = inputs[0].astype(np.int64), inputs[1]
    b, f, m = p["batches"], p["filters"], p["memory"]
    s = state.reshape(b, f, m)
    flat = state.reshape(-1)
    flat[:-1] = flat[1:].copy()  # every filter's memory moves one step left (across filters, as TFLM does)
    wf = a["weights_feature"].astype(np.int64).reshape(f, p["input_size"])
    feature = (x.reshape(b, 1, -1) - p["input_zp"]) * wf[None]
    feature = multiply_by_quantized_multiplier(feature.sum(-1), p["feature_multiplier"], p["feature_shift"])
    s[:, :, m - 1] = np.clip(feature + p["state_zp"], INT16_MIN, INT16_MAX)
    wt = a["weights_time"].astype(np.int64).reshape(f, m)
    per_filter = wrap32((wt[None] * (s.astype(np.int64) - p["state_zp"])).sum(-1))
    acc = wrap32(per_filter.reshape(b, p["units"], p["rank"]).sum(-1) + a["bias"].astype(np.int64)[None])
    out = multiply_by_quantized_multiplier(acc, p["time_multiplier"], p["time_shift"]) + p["output_zp"]
    return np.clip(out, INT8_MIN, INT8_MAX).astype(np.int8).reshape(out_shape)


# --- resource variables ----------------------------------------------------------------------------

@lowers(ops.ReadVariable, "read_variable", "read_variable_s8")
def lower_read_variable(op: ops.ReadVariable, graph: Graph) -> KernelCall:
    """A copy; or, for a float variable kept in int8 (tflite_state.fold_float_variables), a table converting as
    TFLite does through the float it holds: DEQUANTIZE's float(double(scale) * (q - zero point)), then QUANTIZE's
    round(value / double(scale)) + zero point, clamped."""
    state, y = graph.states[op.state], graph.t(op.outputs[0])
    if state.dtype == y.dtype and (state.quant is None or (state.quant.s, state.quant.zp) == (y.quant.s, y.quant.zp)):
        return KernelCall(op.name, "read_variable", [], [op.outputs[0]], {"bytes": state.nbytes}, states=[op.state])
    if (state.dtype, y.dtype) != ("int8", "int8"):
        raise EdgeqError(f"Operator {op.name} (READ_VARIABLE) reads {state.dtype} variable '{op.state}' into a "
                         f"{y.dtype} tensor; edgeq converts between int8 scales only.")
    values = np.arange(INT8_MIN, INT8_MAX + 1)
    real = (np.float64(state.quant.s) * (values - state.quant.zp)).astype(np.float32)
    q = [round_half_away(float(v) / float(y.quant.s)) + y.quant.zp for v in real]
    table = np.clip(q, INT8_MIN, INT8_MAX).astype(np.int8)
    return KernelCall(op.name, "read_variable_s8", [], [op.outputs[0]], {"size": state.size}, {"table": table},
                      states=[op.state])


@kernel("read_variable")
def read_variable(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    return inputs[0].reshape(out_shape).copy()


@kernel("read_variable_s8")
def read_variable_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    return call.arrays["table"][inputs[0].astype(np.int16) + 128].reshape(out_shape)


@lowers(ops.AssignVariable, "assign_variable")
def lower_assign_variable(op: ops.AssignVariable, graph: Graph) -> KernelCall:
    value, state = graph.t(op.inputs[0]), graph.states[op.state]
    if value.dtype != state.dtype or value.size != state.size:
        raise EdgeqError(f"Operator {op.name} (ASSIGN_VARIABLE) writes a {value.dtype} tensor of shape {value.shape} "
                         f"into variable '{op.state}', which is {state.dtype} of shape {state.shape}; a variable "
                         "keeps one type and shape.")
    return KernelCall(op.name, "assign_variable", [op.inputs[0]], [], {"bytes": state.nbytes}, states=[op.state])


@kernel("assign_variable")
def assign_variable(call: KernelCall, inputs: list[np.ndarray], out_shape) -> None:
    value, state = inputs
    state.reshape(-1)[:] = value.reshape(-1)
