"""Per-operator cost figures: multiply-accumulates (convolutions, fully connected layers, matrix products)."""
from __future__ import annotations

import numpy as np

from edgeq.ir import Graph, ops


def macs(op: ops.Op, graph: Graph) -> int:
    if not op.outputs:  # ASSIGN_VARIABLE
        return 0
    out = graph.t(op.outputs[0])
    if isinstance(op, ops.UnidirectionalSequenceLstm):  # per step and batch row: four gates' input and recurrent FCs
        units, inputs = graph.t(op.inputs[1]).shape
        return int(np.prod(out.shape[:2], dtype=np.int64)) * 4 * units * (inputs + units)
    if isinstance(op, ops.Gru):  # per step and batch row: three gates' input and recurrent FCs
        units, inputs = graph.t(op.inputs[1]).shape
        return int(np.prod(out.shape[:2], dtype=np.int64)) * 3 * units * (inputs + units)
    if isinstance(op, ops.Svdf):  # the feature FC, then every filter over its memory
        filters, memory = graph.t(op.inputs[2]).shape
        return graph.t(op.inputs[0]).shape[0] * filters * (graph.t(op.inputs[0]).shape[1] + memory)
    if isinstance(op, ops.Conv2D):
        w = graph.t(op.inputs[1])
        return int(np.prod(out.shape, dtype=np.int64)) * w.shape[1] * w.shape[2] * w.shape[3]
    if isinstance(op, ops.DepthwiseConv2D):
        w = graph.t(op.inputs[1])
        return int(np.prod(out.shape, dtype=np.int64)) * w.shape[1] * w.shape[2]
    if isinstance(op, ops.FullyConnected):
        w = graph.t(op.inputs[1])
        return int(np.prod(out.shape, dtype=np.int64)) * w.shape[1]
    if isinstance(op, ops.TransposeConv):  # every input pixel times every tap
        w = graph.t(op.inputs[1])
        return graph.t(op.inputs[0]).size * w.shape[0] * w.shape[1] * w.shape[2]
    if isinstance(op, ops.BatchMatMul):
        lhs = graph.t(op.inputs[0]).shape
        return int(np.prod(out.shape, dtype=np.int64)) * (lhs[-2] if op.adj_x else lhs[-1])
    return 0
