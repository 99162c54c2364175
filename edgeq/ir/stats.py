"""Per-operator cost figures: multiply-accumulates (conv, depthwise and fully-connected layers)."""
from __future__ import annotations

import numpy as np

from edgeq.ir import Graph, ops


def macs(op: ops.Op, graph: Graph) -> int:
    out = graph.t(op.outputs[0])
    if isinstance(op, ops.Conv2D):
        w = graph.t(op.inputs[1])
        return int(np.prod(out.shape, dtype=np.int64)) * w.shape[1] * w.shape[2] * w.shape[3]
    if isinstance(op, ops.DepthwiseConv2D):
        w = graph.t(op.inputs[1])
        return int(np.prod(out.shape, dtype=np.int64)) * w.shape[1] * w.shape[2]
    if isinstance(op, ops.FullyConnected):
        w = graph.t(op.inputs[1])
        return int(np.prod(out.shape, dtype=np.int64)) * w.shape[1]
    return 0
