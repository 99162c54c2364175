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
from edgeq.lowering.common import float_activation
from edgeq.quant.pot import dequantize, per_channel, quantize_sample

LAYERS = (ops.Conv2D, ops.DepthwiseConv2D, ops.FullyConnected)
ROUNDING_SAMPLES = 16  # samples whose inputs define each layer's H for error-compensating rounding
CHUNK = 16  # samples per batched pass


def _dequantize(q: np.ndarray, t) -> np.ndarray:
    return dequantize(q, t.quant).astype(np.float32)


def correct_biases(float_graph: Graph, qgraph: Graph, x: np.ndarray, correct: bool = True,
                   rounding: str = "nearest", echo=None) -> tuple[dict[str, float], np.ndarray]:
    """Adjust qgraph's int32 biases in place (with correct) and, with rounding "gptq" or "adaround", re-round
    each layer's weights against its real inputs first (edgeq.quant.rounding, edgeq.quant.adaround). Returns
    per layer the largest correction in output LSBs, and the model's first output on every sample,
    dequantized ([N, size]). echo, when given, hears of each layer AdaRound optimises (seconds each).
    Samples run CHUNK at a time where the graphs have a batch axis, else one by one."""
    float_ops = {op.name: op for op in float_graph.ops}
    chunks = _Chunks(float_graph, qgraph, x)
    t_in = qgraph.t(qgraph.inputs[0])
    fvals = {qgraph.inputs[0]: chunks.inputs}
    qvals = {qgraph.inputs[0]: [quantize_sample(c, t_in.quant) for c in chunks.inputs]}

    def reads(op) -> set[str]:  # the float op may read the tensor an inserted requantization replaced
        return set(op.inputs) | set(float_ops[op.name].inputs if op.name in float_ops else ())

    remaining: dict[str, int] = {}
    for op in qgraph.ops:
        for name in reads(op):
            remaining[name] = remaining.get(name, 0) + 1
    corrections: dict[str, float] = {}
    layers = [op for op in qgraph.ops if isinstance(op, LAYERS)]
    for op in qgraph.ops:
        fop = float_ops.get(op.name)
        if fop is None:  # a requantization edgeq inserted: the real value is unchanged
            fvals[op.outputs[0]] = fvals[op.inputs[0]]
        else:
            fargs = [[fvals[n][k] if n in fvals else float_graph.t(n).data for n in fop.inputs]
                     for k in range(len(chunks))]
            if isinstance(op, LAYERS):
                if echo is not None and rounding == "adaround":
                    echo(f"adaptive rounding: layer {layers.index(op) + 1} of {len(layers)} ({op.name}) ...")
                linear_f = dataclasses.replace(fop, activation=ops.Activation.NONE)
                pre_f = [run_float(linear_f, chunks.float_graph(k), a) for k, a in enumerate(fargs)]
                corrections[op.name] = _correct_layer(op, chunks, fargs, pre_f, qvals[op.inputs[0]], correct,
                                                      rounding)
                # fused activations are clips, which commute with rounding to float32: no second float run
                fvals[op.outputs[0]] = [float_activation(fop.activation, p).astype(np.float32) for p in pre_f]
            else:
                fvals[op.outputs[0]] = [run_float(fop, chunks.float_graph(k), a).astype(np.float32)
                                        for k, a in enumerate(fargs)]
        qvals[op.outputs[0]] = []
        for k in range(len(chunks)):
            qg = chunks.qgraph(k)
            call = lower(op, qg)
            # a state (an ONNX LSTM's, which restarts every invoke) starts from its initial value
            args = [qvals[n][k] for n in call.inputs] + [qg.states[n].data.copy() for n in call.states]
            qvals[op.outputs[0]].append(run_kernel(call, args, qg.t(op.outputs[0]).shape))
        for name in reads(op):
            remaining[name] -= 1
            if remaining[name] == 0 and name not in qgraph.outputs:
                fvals.pop(name, None)
                qvals.pop(name, None)
    out = qgraph.t(qgraph.outputs[0])
    outputs = np.concatenate([_dequantize(v, out).reshape(chunks.sizes[k], -1)
                              for k, v in enumerate(qvals[qgraph.outputs[0]])]).astype(np.float64)
    return corrections, outputs


class _Chunks:
    """The calibration samples in chunks, and the float and integer graphs shaped for each chunk."""

    def __init__(self, float_graph: Graph, qgraph: Graph, x: np.ndarray):
        from edgeq.quant.executor import batches_exactly

        self.graphs = (float_graph, qgraph)
        shape = qgraph.t(qgraph.inputs[0]).shape
        self.batched = len(x) > 1 and batches_exactly(float_graph, x[0].reshape(shape).astype(np.float32)) and \
            batches_exactly(qgraph, quantize_sample(x[0].reshape(shape), qgraph.t(qgraph.inputs[0]).quant))
        step = CHUNK if self.batched else 1
        self.sizes = [min(step, len(x) - a) for a in range(0, len(x), step)]
        self.inputs = [x[a:a + step].reshape(len(x[a:a + step]), *shape[1:]) if self.batched else x[a].reshape(shape)
                       for a in range(0, len(x), step)]
        self._shaped: dict[int, tuple[Graph, Graph]] = {}

    def __len__(self) -> int:
        return len(self.sizes)

    def _for(self, k: int) -> tuple[Graph, Graph]:
        from edgeq.quant.executor import batched_graph

        if not self.batched:
            return self.graphs
        size = self.sizes[k]
        if size not in self._shaped:  # shallow copies: they share the weights and biases corrected in place
            self._shaped[size] = tuple(batched_graph(g, size) for g in self.graphs)
        return self._shaped[size]

    def float_graph(self, k: int) -> Graph:
        return self._for(k)[0]

    def qgraph(self, k: int) -> Graph:
        return self._for(k)[1]

    def first(self, values: list[np.ndarray], n: int) -> list[np.ndarray]:
        """The chunks' values of the first n samples."""
        out, count = [], 0
        for v, size in zip(values, self.sizes):
            if count >= n:
                break
            out.append(v[:n - count] if self.batched else v)
            count += size
        return out


def _correct_layer(op, chunks: _Chunks, fargs, pre_fs, qins, correct: bool, rounding: str) -> float:
    """Re-rounds and corrects one layer; pre_fs: the float layer's output before its activation, per chunk."""
    qgraph = chunks.graphs[1]
    linear_q = dataclasses.replace(op, activation=ops.Activation.NONE)
    w, b = qgraph.t(op.inputs[1]), qgraph.t(op.inputs[2])
    x_t = qgraph.t(op.inputs[0])
    if rounding == "gptq" and fargs:
        from edgeq.quant.rounding import round_layer
        w.data = round_layer(op, np.asarray(fargs[0][1], np.float64), w.quant.scale,
                             [_dequantize(q_in, x_t) for q_in in chunks.first(qins, ROUNDING_SAMPLES)],
                             qgraph.t(op.outputs[0]).shape)
    elif rounding == "adaround" and fargs:
        from edgeq.quant.adaround import round_layer as adaround_layer
        w.data = adaround_layer(op, np.asarray(fargs[0][1], np.float64), w.quant.scale,
                                [np.asarray(a[0], np.float64) for a in fargs], [_dequantize(q, x_t) for q in qins],
                                qgraph.t(op.outputs[0]).shape)
    if not correct:
        return 0.0
    w_real = (w.data.astype(np.float64) * per_channel(w.quant.scale, op, w.data.ndim)).astype(np.float32)
    b_scale = b.quant.scale.astype(np.float64)  # per channel with the weights
    b_real = (b.data.astype(np.float64) * b_scale).astype(np.float32)
    diff, rows = 0.0, 0
    for k, (q_in, pre_f) in enumerate(zip(qins, pre_fs)):
        pre_q = run_float(linear_q, chunks.qgraph(k), [_dequantize(q_in, x_t), w_real, b_real])
        delta = (pre_q.astype(np.float64) - pre_f).reshape(-1, pre_q.shape[-1])
        diff, rows = diff + delta.sum(axis=0), rows + len(delta)
    error = diff / rows
    top = 2**31 - 1 if b.data.dtype == np.int32 else 2**62  # int64: a layer on int16 activations (quant.mixed)
    b.data = np.clip(np.round((b_real - error) / b_scale), -top - 1, top).astype(b.data.dtype)
    return float(np.abs(error).max(initial=0.0) / qgraph.t(op.outputs[0]).quant.s)
