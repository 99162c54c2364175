"""Empirical bias correction (Nagel et al. 2019, section 4.2, with data).

Walks the quantized graph in order on the calibration samples. At each conv/depthwise/fully-connected
layer it compares the layer's pre-activation output in the integer model (its real inputs, already
carrying every upstream error, times its quantized weights) with the float model's, and moves the
per-channel mean of the difference out of the integer bias. Later layers then see the corrected
outputs, so corrections do not pile up.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from edgeq.ir import Graph, ops
from edgeq.lowering import lower, run_float, run_kernel
from edgeq.quant.pot import dequantize, quantize_sample

LAYERS = (ops.Conv2D, ops.DepthwiseConv2D, ops.FullyConnected)
ROUNDING_SAMPLES = 16  # samples whose inputs define each layer's H for error-compensating rounding


def _dequantize(q: np.ndarray, t) -> np.ndarray:
    return dequantize(q, t.quant).astype(np.float32)


def correct_biases(float_graph: Graph, qgraph: Graph, x: np.ndarray, correct: bool = True,
                   rounding: str = "nearest") -> tuple[dict[str, float], np.ndarray]:
    """Adjust qgraph's int32 biases in place (with correct) and, with rounding "gptq", re-round each
    layer's weights against its real inputs first (edgeq.quant.rounding). Returns per layer the largest
    correction in output LSBs, and the model's first output on every sample, dequantized ([N, size])."""
    float_ops = {op.name: op for op in float_graph.ops}
    t_in = qgraph.t(qgraph.inputs[0])
    fvals = {qgraph.inputs[0]: [s for s in x]}
    qvals = {qgraph.inputs[0]: [quantize_sample(s, t_in.quant) for s in x]}

    def reads(op) -> set[str]:  # the float op may read the tensor an inserted requantization replaced
        return set(op.inputs) | set(float_ops[op.name].inputs if op.name in float_ops else ())

    remaining: dict[str, int] = {}
    for op in qgraph.ops:
        for name in reads(op):
            remaining[name] = remaining.get(name, 0) + 1
    corrections: dict[str, float] = {}
    for op in qgraph.ops:
        fop = float_ops.get(op.name)
        if fop is None:  # a requantization edgeq inserted: the real value is unchanged
            fvals[op.outputs[0]] = fvals[op.inputs[0]]
        else:
            fargs = [[fvals[n][k] if n in fvals else float_graph.t(n).data for n in fop.inputs] for k in range(len(x))]
            if isinstance(op, LAYERS):
                corrections[op.name] = _correct_layer(op, fop, float_graph, qgraph, fargs, qvals[op.inputs[0]],
                                                      correct, rounding)
            fvals[op.outputs[0]] = [run_float(fop, float_graph, a).astype(np.float32) for a in fargs]
        call = lower(op, qgraph)
        out_shape = qgraph.t(op.outputs[0]).shape
        qvals[op.outputs[0]] = [run_kernel(call, [qvals[n][k] for n in call.inputs], out_shape)
                                for k in range(len(x))]
        for name in reads(op):
            remaining[name] -= 1
            if remaining[name] == 0 and name not in qgraph.outputs:
                fvals.pop(name, None)
                qvals.pop(name, None)
    out = qgraph.t(qgraph.outputs[0])
    outputs = np.array([_dequantize(v, out).reshape(-1) for v in qvals[qgraph.outputs[0]]], np.float64)
    return corrections, outputs


def _correct_layer(op, fop, float_graph: Graph, qgraph: Graph, fargs, qins, correct: bool, rounding: str) -> float:
    linear_q = dataclasses.replace(op, activation=ops.Activation.NONE)
    linear_f = dataclasses.replace(fop, activation=ops.Activation.NONE)
    w, b = qgraph.t(op.inputs[1]), qgraph.t(op.inputs[2])
    x_t = qgraph.t(op.inputs[0])
    if rounding == "gptq" and fargs:
        from edgeq.quant.rounding import round_layer
        w.data = round_layer(op, np.asarray(fargs[0][1], np.float64), float(w.quant.s),
                             [_dequantize(q_in, x_t) for q_in in qins[:ROUNDING_SAMPLES]],
                             qgraph.t(op.outputs[0]).shape)
    if not correct:
        return 0.0
    w_real = (w.data.astype(np.float64) * w.quant.s).astype(np.float32)
    b_real = (b.data.astype(np.float64) * b.quant.s).astype(np.float32)
    diff = 0.0
    for q_in, f_args in zip(qins, fargs):
        pre_q = run_float(linear_q, qgraph, [_dequantize(q_in, x_t), w_real, b_real])
        pre_f = run_float(linear_f, float_graph, f_args)
        diff = diff + (pre_q.astype(np.float64) - pre_f).reshape(-1, pre_q.shape[-1]).mean(axis=0)
    error = diff / len(qins)
    b.data = np.clip(np.round((b_real - error) / b.quant.s), -2**31, 2**31 - 1).astype(np.int32)
    return float(np.abs(error).max(initial=0.0) / qgraph.t(op.outputs[0]).quant.s)
