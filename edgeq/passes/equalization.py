"""Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization", section 4.1).

For two layers joined by ReLU (or nothing), scaling output channel i of the first by 1/S_i and input
channel i of the second by S_i leaves the float function unchanged (ReLU is positively homogeneous)
while making per-tensor weight ranges fit both layers: S_i = sqrt(r1_i / r2_i) equalizes the channel
ranges r1_i (first layer's output channel) and r2_i (second layer's input channel). Iterated over
all pairs until the scales stop changing. ReLU6 between the layers is treated as DFQ does: replaced
by ReLU, since its clip would not commute with the scaling.
"""
from __future__ import annotations

import copy

import numpy as np

from edgeq.ir import Graph, ops

LAYERS = (ops.Conv2D, ops.DepthwiseConv2D, ops.FullyConnected)
JOINABLE = (ops.Activation.NONE, ops.Activation.RELU, ops.Activation.RELU6)
MAX_STEP = 8.0  # bound on one iteration's per-channel scale


def _out_axis_ranges(op: ops.Op, w: np.ndarray) -> np.ndarray:
    if isinstance(op, ops.DepthwiseConv2D):
        return np.abs(w).max(axis=(0, 1, 2))
    return np.abs(w.reshape(w.shape[0], -1)).max(axis=1)


def _in_axis_ranges(op: ops.Op, w: np.ndarray) -> np.ndarray:
    if isinstance(op, ops.DepthwiseConv2D):
        r = np.abs(w).max(axis=(0, 1, 2))
        return r.reshape(-1, op.depth_multiplier).max(axis=1)
    if isinstance(op, ops.FullyConnected):
        return np.abs(w).max(axis=0)
    return np.abs(w).max(axis=(0, 1, 2))


def pairs(graph: Graph) -> list[tuple[ops.Op, ops.Op]]:
    """(first, second) layer pairs where the first's output feeds only the second, as its data input."""
    consumers = graph.consumers()
    result = []
    for op in graph.ops:
        if not isinstance(op, LAYERS) or op.activation not in JOINABLE:
            continue
        users = consumers.get(op.outputs[0], [])
        if len(users) != 1 or op.outputs[0] in graph.outputs:
            continue
        nxt = users[0]
        if not isinstance(nxt, LAYERS) or nxt.inputs[0] != op.outputs[0]:
            continue
        if isinstance(nxt, ops.Conv2D) and graph.t(nxt.inputs[1]).shape[3] != graph.t(op.outputs[0]).shape[-1]:
            continue  # grouped second layer
        if isinstance(op, ops.Conv2D) and graph.t(op.inputs[1]).shape[3] != graph.t(op.inputs[0]).shape[-1]:
            continue  # grouped first layer: its channels cannot move freely
        if isinstance(nxt, ops.FullyConnected) and graph.t(nxt.inputs[1]).shape[1] != graph.t(op.outputs[0]).shape[-1]:
            continue
        result.append((op, nxt))
    return result


def equalize(graph: Graph, iterations: int = 20, tolerance: float = 1e-3) -> tuple[Graph, dict]:
    """A copy of the float graph with equalized weight ranges, and per-pair range statistics."""
    g = copy.deepcopy(graph)
    g.unshare_constants()
    found = pairs(g)
    before = {first.name: _out_axis_ranges(first, g.t(first.inputs[1]).data).tolist() for first, _ in found}
    for first, second in found:
        for name in first.inputs[1:] + second.inputs[1:2]:
            g.t(name).data = g.t(name).data.astype(np.float32)
    for _ in range(iterations):
        worst = 0.0
        for first, second in found:
            w1, w2 = g.t(first.inputs[1]), g.t(second.inputs[1])
            r1, r2 = _out_axis_ranges(first, w1.data), _in_axis_ranges(second, w2.data)
            # dead channels (range ~0 on either side) would get absurd scales, and blow up a bias
            ok = (r1 > 1e-4 * r1.max(initial=0.0)) & (r2 > 1e-4 * r2.max(initial=0.0))
            s = np.ones_like(r1)
            s[ok] = np.clip(np.sqrt(r1[ok] / r2[ok]), 1.0 / MAX_STEP, MAX_STEP)
            worst = max(worst, float(np.abs(np.log(s)).max(initial=0.0)))
            _scale_out(first, g, 1.0 / s)
            _scale_in(second, w2, s)
            if first.activation == ops.Activation.RELU6 and not np.allclose(s, 1.0):
                first.activation = ops.Activation.RELU
        if worst < tolerance:
            break
    after = {first.name: _out_axis_ranges(first, g.t(first.inputs[1]).data).tolist() for first, _ in found}
    return g, {"pairs": [(a.name, b.name) for a, b in found], "ranges_before": before, "ranges_after": after}


def _scale_out(op: ops.Op, g: Graph, f: np.ndarray) -> None:
    w = g.t(op.inputs[1])
    if isinstance(op, ops.DepthwiseConv2D):
        w.data = (w.data * f.reshape(1, 1, 1, -1)).astype(np.float32)
    else:
        w.data = (w.data * f.reshape((-1,) + (1,) * (w.data.ndim - 1))).astype(np.float32)
    if len(op.inputs) > 2 and op.inputs[2]:
        b = g.t(op.inputs[2])
        b.data = (b.data * f).astype(np.float32)
    if op.outputs[0] in g.bn_stats:  # the output distribution scales with the channel (f > 0)
        mean, std = g.bn_stats[op.outputs[0]]
        g.bn_stats[op.outputs[0]] = (mean * f, std * f)


def _scale_in(op: ops.Op, w, s: np.ndarray) -> None:
    if isinstance(op, ops.DepthwiseConv2D):
        w.data = (w.data * np.repeat(s, op.depth_multiplier).reshape(1, 1, 1, -1)).astype(np.float32)
    elif isinstance(op, ops.FullyConnected):
        w.data = (w.data * s.reshape(1, -1)).astype(np.float32)
    else:
        w.data = (w.data * s.reshape(1, 1, 1, -1)).astype(np.float32)
