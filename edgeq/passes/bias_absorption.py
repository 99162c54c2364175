"""High-bias absorption (Nagel et al. 2019, "Data-Free Quantization", section 4.3).

When a layer followed by ReLU has output channels whose pre-activation never falls below c > 0,
relu(x) = relu(x - c) + c there, so c can leave the layer's bias and enter the next layer's:
b1 -= c, b2 += W2 c. The float function is unchanged while the first layer's output range shrinks
by c, which its 8 bits then resolve better. Equalization can create such channels (it scales biases
up with the weights' ranges). c comes from the calibration data (the channel's smallest value after
the ReLU: positive means the ReLU never clipped) or, without data, from batch-norm statistics
(beta - 3 |gamma|, as DFQ does).
"""
from __future__ import annotations

import copy

import numpy as np

from edgeq.ir import Graph, Tensor, ops
from edgeq.passes.equalization import pairs


def _absorbable(first: ops.Op, second: ops.Op, graph: Graph) -> bool:
    if first.activation != ops.Activation.RELU:  # ReLU6 would move its upper clip too
        return False
    if isinstance(second, ops.FullyConnected):
        return True
    # a padded border would read 0 where the shifted input is -c: exact only without padding
    kh, kw = graph.t(second.inputs[1]).shape[1:3]
    return second.padding == ops.Padding.VALID or kh == kw == 1


def absorb_high_biases(graph: Graph, lower_bounds: dict[str, np.ndarray]) -> tuple[Graph, dict]:
    """A copy of the float graph with absorbed biases, and per first layer the largest amount moved.

    lower_bounds: per layer output tensor, a per-channel value its (pre-activation) output never falls below."""
    g = copy.deepcopy(graph)
    g.unshare_constants()
    moved: dict[str, float] = {}
    for first, second in pairs(g):
        low = lower_bounds.get(first.outputs[0])
        if low is None or not _absorbable(first, second, g) or len(first.inputs) < 3 or not first.inputs[2]:
            continue
        c = np.maximum(np.asarray(low, np.float64), 0.0)
        if not np.any(c > 0):
            continue
        b1 = g.t(first.inputs[2])
        b1.data = (b1.data - c).astype(np.float32)
        w2 = g.t(second.inputs[1]).data.astype(np.float64)
        if isinstance(second, ops.FullyConnected):
            shift = w2 @ c
        elif isinstance(second, ops.DepthwiseConv2D):
            shift = w2.sum(axis=(0, 1, 2)) * np.repeat(c, second.depth_multiplier)
        else:
            shift = w2.sum(axis=(1, 2)) @ c
        if len(second.inputs) < 3 or not second.inputs[2]:
            name = f"{second.name}/bias"
            g.tensors[name] = Tensor(name, (shift.size,), "float32", None, np.zeros(shift.size, np.float32))
            second.inputs = second.inputs[:2] + [name]
        b2 = g.t(second.inputs[2])
        b2.data = (b2.data + shift).astype(np.float32)
        if first.outputs[0] in g.bn_stats:
            mean, std = g.bn_stats[first.outputs[0]]
            g.bn_stats[first.outputs[0]] = (mean - c, std)
        moved[first.name] = float(c.max())
    return g, moved
