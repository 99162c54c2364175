"""Recurrent and stateful operators: SVDF, UNIDIRECTIONAL_SEQUENCE_LSTM, and resource variables (READ_VARIABLE,
ASSIGN_VARIABLE).

Their state lives in Graph.states, outside the arena: the C model keeps it in static buffers across invokes
(`<model>_reset()` restores the initial value), the numpy executors in the `state` dict run_int and run_float_graph
are given (the float impls take the states after their inputs, as the kernels do).
SVDF is TFLM's EvalIntegerSvdfReference (svdf_common.cc) with int16 (or int8) state and time weights. The LSTM is TFLM's
integer LSTM (lstm_eval.h's LstmStep, lstm_eval_common.cc's parameters): int8 activations or 16x8 (int16
activations, int64 bias), int16 cell state of a power-of-two scale, gates in int16 (FC outputs in 2^-12,
sigmoid/tanh outputs in 2^-15).
"""
from __future__ import annotations

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, ops
from edgeq.lowering import KernelCall, float_impl, kernel, lowers
from edgeq.lowering.common import INT8_MAX, INT8_MIN, float_activation
from edgeq.lowering.fixedpoint import (multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_int64,
                                       quantize_multiplier, round_half_away, wrap32)
from edgeq.lowering.lut16 import SIGMOID_TABLE, checked_log2, sigmoid_tanh_s16

INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1


# --- SVDF -----------------------------------------------------------------------------------------

@float_impl(ops.Svdf)
def svdf_float(op: ops.Svdf, graph: Graph, inputs: list[np.ndarray]) -> np.ndarray:
    """TFLite's EvalFloatSVDF: the state (every filter's last `memory` feature values) moves one step left, the
    feature products x . w_f fill each filter's newest slot, then the time weights, the bias and the activation."""
    x, wf, wt = (np.asarray(a, np.float64) for a in inputs[:3])
    state = inputs[-1]
    b, (f, m) = x.shape[0], wt.shape
    flat = state.reshape(-1)
    flat[:-1] = flat[1:].copy()  # across filters, as the integer kernel (and TFLite) shifts
    s = state.reshape(b, f, m)
    s[:, :, m - 1] = x @ wf.T
    out = (s.astype(np.float64) * wt[None]).sum(-1).reshape(b, -1, op.rank).sum(-1)
    if len(inputs) > 4:
        out = out + np.asarray(inputs[3], np.float64)[None]
    return float_activation(op.activation, out.astype(np.float32))


@lowers(ops.Svdf, "svdf_s8", "svdf_state8_s8")
def lower_svdf(op: ops.Svdf, graph: Graph) -> KernelCall:
    x, wf, wt = (graph.t(n) for n in op.inputs[:3])
    y, state = graph.t(op.outputs[0]), graph.states[op.state]
    if (x.dtype, wf.dtype, y.dtype) != ("int8", "int8", "int8") or wt.dtype != state.dtype or \
            state.dtype not in ("int8", "int16"):
        raise EdgeqError(f"Operator {op.name} (SVDF): edgeq runs TFLite's integer SVDF with int8 input, feature "
                         f"weights and output, and time weights and state both int16 or both int8; this one has "
                         f"{x.dtype}, {wf.dtype}, {y.dtype}, {wt.dtype} and {state.dtype}. Convert it with full "
                         "int8 quantization.")
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
              "weights_time": wt.data.reshape(-1), "bias": bias.reshape(-1)}
    return KernelCall(op.name, "svdf_s8" if state.dtype == "int16" else "svdf_state8_s8", [op.inputs[0]],
                      [op.outputs[0]], params, arrays, states=[op.state])


@kernel("svdf_s8")
@kernel("svdf_state8_s8")
def svdf_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    """EvalIntegerSvdfReference<int16_t or int8_t>: the fused activation is not applied (TFLM's integer SVDF
    ignores it)."""
    p, a = call.params, call.arrays
    x, state = inputs[0].astype(np.int64), inputs[1]
    b, f, m = p["batches"], p["filters"], p["memory"]
    s = state.reshape(b, f, m)
    flat = state.reshape(-1)
    flat[:-1] = flat[1:].copy()  # every filter's memory moves one step left (across filters, as TFLM does)
    wf = a["weights_feature"].astype(np.int64).reshape(f, p["input_size"])
    feature = (x.reshape(b, 1, -1) - p["input_zp"]) * wf[None]
    feature = multiply_by_quantized_multiplier(feature.sum(-1), p["feature_multiplier"], p["feature_shift"])
    info = np.iinfo(state.dtype)
    # as the tflite-micro package computes it: clamped, then the zero point added, and the store wraps (its newer
    # sources add the zero point before the clamp; the two differ only for an int8 state with a zero point)
    s[:, :, m - 1] = (np.clip(feature, info.min, info.max) + p["state_zp"]).astype(state.dtype)
    wt = a["weights_time"].astype(np.int64).reshape(f, m)
    per_filter = wrap32((wt[None] * (s.astype(np.int64) - p["state_zp"])).sum(-1))
    acc = wrap32(per_filter.reshape(b, p["units"], p["rank"]).sum(-1) + a["bias"].astype(np.int64)[None])
    out = multiply_by_quantized_multiplier(acc, p["time_multiplier"], p["time_shift"]) + p["output_zp"]
    return np.clip(out, INT8_MIN, INT8_MAX).astype(np.int8).reshape(out_shape)


# --- UNIDIRECTIONAL_SEQUENCE_LSTM --------------------------------------------------------------------

GATES = ("input", "forget", "cell", "output")
GATE_INPUT_SCALE = 2.0 ** -12  # the int16 FC outputs, Q3.12
GATE_OUTPUT_SCALE = 2.0 ** -15  # sigmoid and tanh outputs, Q0.15


def _lstm_tensors(op: ops.UnidirectionalSequenceLstm, graph: Graph):
    x = graph.t(op.inputs[0])
    w_in = [graph.t(n) for n in op.inputs[1:5]]
    w_rec = [graph.t(n) for n in op.inputs[5:9]]
    bias = [graph.t(n) for n in op.inputs[9:13]]
    return x, w_in, w_rec, bias, graph.t(op.outputs[0]), graph.states[op.hidden_state], graph.states[op.cell_state]


@lowers(ops.UnidirectionalSequenceLstm, "lstm_s8", "lstm_s16")
def lower_lstm(op: ops.UnidirectionalSequenceLstm, graph: Graph) -> KernelCall:
    # a power-of-two graph's LSTM (pot._quantize_lstm) runs the same kernel: its multipliers are exact powers of two
    x, w_in, w_rec, bias, y, hidden, cell = _lstm_tensors(op, graph)
    wide = x.dtype == "int16"
    act, bias_type = ("int16", "int64") if wide else ("int8", "int32")
    if (x.dtype, y.dtype, hidden.dtype, cell.dtype) != (act, act, act, "int16") or any(
            w.dtype != "int8" for w in w_in + w_rec) or any(b.dtype != bias_type for b in bias):
        raise EdgeqError(f"Operator {op.name} (UNIDIRECTIONAL_SEQUENCE_LSTM): edgeq runs TFLite's integer LSTM with "
                         "int8 activations and int32 biases, or int16 activations and int64 biases (16x8), int8 "
                         "weights and an int16 cell state; this one has input "
                         f"{x.dtype}, output {y.dtype}, hidden state {hidden.dtype}, cell state {cell.dtype}, "
                         f"biases {bias[0].dtype}. Convert it with full integer quantization.")
    if not all(t.quant is not None and t.quant.per_tensor for t in [x, y, hidden, cell, *w_in, *w_rec]):
        raise EdgeqError(f"Operator {op.name} (UNIDIRECTIONAL_SEQUENCE_LSTM) has per-channel weights; TFLite's "
                         "integer LSTM takes one scale per tensor.")
    pot, power = checked_log2(cell.quant.s)
    if not pot:
        raise EdgeqError(f"Operator {op.name} (UNIDIRECTIONAL_SEQUENCE_LSTM): the cell state's scale "
                         f"{cell.quant.s} is not a power of two, which TFLite's integer LSTM requires.")
    if wide and (x.quant.zp or hidden.quant.zp or y.quant.zp):
        raise EdgeqError(f"Operator {op.name} (UNIDIRECTIONAL_SEQUENCE_LSTM): int16 activations need zero point 0.")
    if op.time_major:
        steps, batches, input_size = x.shape
    else:
        batches, steps, input_size = x.shape
    units = w_in[0].shape[0]
    f32 = np.float32

    def fc(s_in, w):  # CalculateOpDataFullyConnected: float product, then double, over the int16 output's 2^-12
        return quantize_multiplier(float(f32(s_in) * f32(w.quant.s)) / GATE_INPUT_SCALE)

    params = {"batches": batches, "steps": steps, "input_size": input_size, "units": units,
              "time_major": int(op.time_major), "reset_state": int(op.reset_state), "input_zp": x.quant.zp,
              "hidden_zp": hidden.quant.zp}
    for g, wi, wr in zip(GATES, w_in, w_rec):
        params[f"{g}_in_mult"], params[f"{g}_in_shift"] = fc(x.quant.s, wi)
        params[f"{g}_rec_mult"], params[f"{g}_rec_shift"] = fc(hidden.quant.s, wr)
    s_cell = float(cell.quant.s)
    params["forget_cell_mult"], params["forget_cell_shift"] = quantize_multiplier(GATE_OUTPUT_SCALE)
    params["input_cell_mult"], params["input_cell_shift"] = quantize_multiplier(GATE_OUTPUT_SCALE ** 2 / s_cell)
    params["hidden_mult"], params["hidden_shift"] = quantize_multiplier(GATE_OUTPUT_SCALE ** 2 / float(hidden.quant.s))
    params["cell_clip"] = int(np.trunc(min(max(float(f32(op.cell_clip)) / s_cell, -32768.0), 32767.0))) \
        if op.cell_clip > 0 else 0
    left = 15 + power - 3  # lstm_internal::Tanh's input shift for the cell state
    params["tanh_mult"], params["tanh_shift"] = (3, -left) if left < 0 else (3 << left, 0)
    arrays = {"input_weights": np.concatenate([w.data.reshape(-1) for w in w_in]).astype(np.int8),
              "recurrent_weights": np.concatenate([w.data.reshape(-1) for w in w_rec]).astype(np.int8),
              "bias": np.concatenate([b.data.reshape(-1) for b in bias]).astype(bias_type),
              "sigmoid_table": SIGMOID_TABLE}
    return KernelCall(op.name, "lstm_s16" if wide else "lstm_s8", [op.inputs[0]], [op.outputs[0]], params, arrays,
                      states=[op.hidden_state, op.cell_state])


@float_impl(ops.UnidirectionalSequenceLstm)
def lstm_float(op: ops.UnidirectionalSequenceLstm, graph: Graph, inputs: list[np.ndarray]) -> np.ndarray:
    """The float LSTM. With reset_state (ONNX's) every invoke starts from zero, so samples are independent and may
    share a batched pass along the leading axis; otherwise (TFLite's) inputs end with the hidden and cell states,
    read and updated in place."""
    x = inputs[0].astype(np.float64)
    w_in, w_rec, bias = (np.stack([np.asarray(a, np.float64) for a in inputs[k:k + 4]]) for k in (1, 5, 9))
    if op.time_major:
        x = x.transpose(1, 0, 2)
    h = np.zeros((x.shape[0], w_in.shape[1]))
    c = np.zeros_like(h)
    if not op.reset_state:
        h_state, c_state = inputs[13], inputs[14]
        h, c = h_state.reshape(h.shape).astype(np.float64), c_state.reshape(c.shape).astype(np.float64)
    out = np.empty(x.shape[:2] + (h.shape[1],))
    sigmoid = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    for t in range(x.shape[1]):
        z = np.einsum("gui,bi->gbu", w_in, x[:, t]) + np.einsum("guv,bv->gbu", w_rec, h) + bias[:, None]
        c = sigmoid(z[1]) * c + sigmoid(z[0]) * np.tanh(z[2])
        if op.cell_clip > 0:
            c = np.clip(c, -op.cell_clip, op.cell_clip)
        h = sigmoid(z[3]) * np.tanh(c)
        out[:, t] = h
    if not op.reset_state:
        h_state.reshape(h.shape)[:], c_state.reshape(c.shape)[:] = h, c
    return out.transpose(1, 0, 2) if op.time_major else out


def _clamp16(v):
    return np.clip(v, INT16_MIN, INT16_MAX)


@kernel("lstm_s8")
@kernel("lstm_s16")
def lstm(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    """LstmStep for each batch row and time step: four gates (FC of the input with the bias, FC of the hidden
    state, each clamped to int16, a saturating sum, sigmoid or tanh), the cell update, the new hidden state."""
    p, a = call.params, call.arrays
    wide = call.kernel == "lstm_s16"
    x, hidden, cell = inputs
    b_count, t_count, n_in, units = p["batches"], p["steps"], p["input_size"], p["units"]
    x = x.astype(np.int64).reshape((t_count, b_count, n_in) if p["time_major"] else (b_count, t_count, n_in))
    out = np.empty(x.shape[:2] + (units,), dtype=np.int64)
    w_in = a["input_weights"].astype(np.int64).reshape(4, units, n_in)
    w_rec = a["recurrent_weights"].astype(np.int64).reshape(4, units, units)
    bias = a["bias"].astype(np.int64).reshape(4, units)
    h_state, c_state = hidden.reshape(b_count, units), cell.reshape(b_count, units)
    if p["reset_state"]:
        h_state[:], c_state[:] = p["hidden_zp"], 0
    # 16x8: the rescaled int64 sum is cut to int32 before the clamp, as TFLite and eq_mbqm64 do
    mbqm = (lambda v, m, s: wrap32(multiply_by_quantized_multiplier_int64(v, m, s))) if wide else \
        multiply_by_quantized_multiplier
    acc = (lambda v: v) if wide else wrap32
    for b in range(b_count):
        for t in range(t_count):
            xt = x[t, b] if p["time_major"] else x[b, t]
            h = h_state[b].astype(np.int64)
            gates = []
            for g, name in enumerate(GATES):
                fc_in = _clamp16(mbqm(acc(w_in[g] @ (xt - p["input_zp"]) + bias[g]), p[f"{name}_in_mult"],
                                      p[f"{name}_in_shift"]))
                fc_rec = _clamp16(mbqm(acc(w_rec[g] @ (h - p["hidden_zp"])), p[f"{name}_rec_mult"],
                                       p[f"{name}_rec_shift"]))
                gates.append(sigmoid_tanh_s16(_clamp16(fc_in + fc_rec), 3, 0, tanh=name == "cell").astype(np.int64))
            i_gate, f_gate, g_gate, o_gate = gates
            c = c_state[b].astype(np.int64)
            c = _clamp16(multiply_by_quantized_multiplier(f_gate * c, p["forget_cell_mult"], p["forget_cell_shift"]))
            c = _clamp16(c + _clamp16(multiply_by_quantized_multiplier(i_gate * g_gate, p["input_cell_mult"],
                                                                       p["input_cell_shift"])))
            if p["cell_clip"] > 0:
                c = np.clip(c, -p["cell_clip"], p["cell_clip"])
            c_state[b] = c
            tanh_c = sigmoid_tanh_s16(c, p["tanh_mult"], p["tanh_shift"], tanh=True).astype(np.int64)
            lo, hi = (INT16_MIN, INT16_MAX) if wide else (INT8_MIN, INT8_MAX)
            new_h = np.clip(multiply_by_quantized_multiplier(tanh_c * o_gate, p["hidden_mult"], p["hidden_shift"])
                            + p["hidden_zp"], lo, hi)
            h_state[b] = new_h
            if p["time_major"]:
                out[t, b] = new_h
            else:
                out[b, t] = new_h
    return out.astype(np.int16 if wide else np.int8).reshape(out_shape)


# --- GRU (ONNX's, linear_before_reset) ---------------------------------------------------------------

@float_impl(ops.Gru)
def gru_float(op: ops.Gru, graph: Graph, inputs: list[np.ndarray]) -> np.ndarray:
    x = inputs[0].astype(np.float64)
    w_in, w_rec, b_in, b_rec = (np.stack([np.asarray(a, np.float64) for a in inputs[k:k + 3]]) for k in (1, 4, 7, 10))
    h = np.zeros((x.shape[0], w_in.shape[1]))
    out = np.empty(x.shape[:2] + (h.shape[1],))
    sigmoid = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    for t in range(x.shape[1]):
        zx = np.einsum("gui,bi->gbu", w_in, x[:, t]) + b_in[:, None]
        zh = np.einsum("guv,bv->gbu", w_rec, h) + b_rec[:, None]
        z, r = sigmoid(zx[0] + zh[0]), sigmoid(zx[1] + zh[1])
        n = np.tanh(zx[2] + r * zh[2])
        h = (1 - z) * n + z * h
        out[:, t] = h
    return out


@lowers(ops.Gru, "gru_s8")
def lower_gru(op: ops.Gru, graph: Graph) -> KernelCall:
    """edgeq's integer GRU, in the manner of TFLite's integer LSTM (TFLite has no GRU): each gate's input and
    recurrent FC into int16 at 2^-12, sigmoid and tanh into 2^-15, r * (R_n h + rb_n) and z * (h - n) rescaled by
    2^-15; the hidden state is the int8 output (each step reads the previous step's output row)."""
    x, y = graph.t(op.inputs[0]), graph.t(op.outputs[0])
    w_in, w_rec = [graph.t(n) for n in op.inputs[1:4]], [graph.t(n) for n in op.inputs[4:7]]
    biases = [graph.t(n) for n in op.inputs[7:13]]
    if (x.dtype, y.dtype) != ("int8", "int8") or any(w.dtype != "int8" for w in w_in + w_rec) or \
            any(b.dtype != "int32" for b in biases):
        raise EdgeqError(f"Operator {op.name} (GRU): edgeq's integer GRU takes int8 activations and weights and int32 "
                         f"biases; this one has input {x.dtype}, output {y.dtype}, biases {biases[0].dtype}. Build "
                         "the float model with --quant pot.")
    if not all(t.quant is not None and t.quant.per_tensor for t in [x, y, *w_in, *w_rec]):
        raise EdgeqError(f"Operator {op.name} (GRU) has per-channel weights; edgeq's GRU takes one scale per tensor.")
    batches, steps, input_size = x.shape
    units = w_in[0].shape[0]
    params = {"batches": batches, "steps": steps, "input_size": input_size, "units": units, "input_zp": x.quant.zp,
              "hidden_zp": y.quant.zp}
    for g, wi, wr in zip(GRU_GATES, w_in, w_rec):
        params[f"{g}_in_mult"], params[f"{g}_in_shift"] = quantize_multiplier(
            float(x.quant.s) * float(wi.quant.s) / GATE_INPUT_SCALE)
        params[f"{g}_rec_mult"], params[f"{g}_rec_shift"] = quantize_multiplier(
            float(y.quant.s) * float(wr.quant.s) / GATE_INPUT_SCALE)
    params["gate_mult"], params["gate_shift"] = quantize_multiplier(GATE_OUTPUT_SCALE)
    params["to_gate_mult"], params["to_gate_shift"] = quantize_multiplier(float(y.quant.s) / GATE_OUTPUT_SCALE)
    params["from_gate_mult"], params["from_gate_shift"] = quantize_multiplier(GATE_OUTPUT_SCALE / float(y.quant.s))
    arrays = {"input_weights": np.concatenate([w.data.reshape(-1) for w in w_in]).astype(np.int8),
              "recurrent_weights": np.concatenate([w.data.reshape(-1) for w in w_rec]).astype(np.int8),
              "input_bias": np.concatenate([b.data.reshape(-1) for b in biases[:3]]).astype(np.int32),
              "recurrent_bias": np.concatenate([b.data.reshape(-1) for b in biases[3:]]).astype(np.int32),
              "sigmoid_table": SIGMOID_TABLE}
    return KernelCall(op.name, "gru_s8", [op.inputs[0]], [op.outputs[0]], params, arrays)


GRU_GATES = ("update", "reset", "new")


@kernel("gru_s8")
def gru_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    """Per batch row and step: the gates' FCs (the hidden state before the first step is zero: its FC is the
    bias), z and r, n = tanh(FC_in(n) + r * FC_rec(n)), then h' = n + z * (h - n) in 2^-15, into the output."""
    p, a = call.params, call.arrays
    n_in, units = p["input_size"], p["units"]
    x = inputs[0].astype(np.int64).reshape(p["batches"], p["steps"], n_in)
    out = np.empty((p["batches"], p["steps"], units), dtype=np.int64)
    w_in = a["input_weights"].astype(np.int64).reshape(3, units, n_in)
    w_rec = a["recurrent_weights"].astype(np.int64).reshape(3, units, units)
    b_in = a["input_bias"].astype(np.int64).reshape(3, units)
    b_rec = a["recurrent_bias"].astype(np.int64).reshape(3, units)
    mbqm = multiply_by_quantized_multiplier
    for b in range(p["batches"]):
        h = np.full(units, p["hidden_zp"], np.int64)
        for t in range(p["steps"]):
            fx, fh = [], []
            for g, name in enumerate(GRU_GATES):
                fx.append(_clamp16(mbqm(wrap32(w_in[g] @ (x[b, t] - p["input_zp"]) + b_in[g]), p[f"{name}_in_mult"],
                                        p[f"{name}_in_shift"])))
                fh.append(_clamp16(mbqm(wrap32(w_rec[g] @ (h - p["hidden_zp"]) + b_rec[g]), p[f"{name}_rec_mult"],
                                        p[f"{name}_rec_shift"])))
            z, r = (sigmoid_tanh_s16(_clamp16(fx[g] + fh[g]), 3, 0, tanh=False).astype(np.int64) for g in (0, 1))
            reset = _clamp16(mbqm(r * fh[2], p["gate_mult"], p["gate_shift"]))
            n = sigmoid_tanh_s16(_clamp16(fx[2] + reset), 3, 0, tanh=True).astype(np.int64)
            h15 = _clamp16(mbqm(h - p["hidden_zp"], p["to_gate_mult"], p["to_gate_shift"]))
            new = _clamp16(n + _clamp16(mbqm(z * (h15 - n), p["gate_mult"], p["gate_shift"])))
            h = np.clip(mbqm(new, p["from_gate_mult"], p["from_gate_shift"]) + p["hidden_zp"], INT8_MIN, INT8_MAX)
            out[b, t] = h
    return out.astype(np.int8).reshape(out_shape)


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


@float_impl(ops.ReadVariable)
def read_variable_float(op: ops.ReadVariable, graph: Graph, inputs: list[np.ndarray]) -> np.ndarray:
    return inputs[-1].reshape(graph.t(op.outputs[0]).shape).copy()


@float_impl(ops.AssignVariable)
def assign_variable_float(op: ops.AssignVariable, graph: Graph, inputs: list[np.ndarray]) -> np.ndarray:
    value, state = inputs
    state.reshape(-1)[:] = np.asarray(value, np.float32).reshape(-1)
    return state


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
