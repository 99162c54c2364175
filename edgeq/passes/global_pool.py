"""Global average pools become MEANs before power-of-two quantization.

TFLite's int8 AVERAGE_POOL_2D cannot rescale: its output keeps its input's scale. A global pool's output
is an average of many values, far finer than any one of them, and on the MLPerf ResNet that shared scale
(2^-3 for averages near 0.8) was the largest single source of logit error. MEAN over height and width is
the same function in float and can rescale, so its output gets its own power-of-two scale.
"""
from __future__ import annotations

import copy

from edgeq.ir import Graph, ops


def _is_global(op: ops.Op, graph: Graph) -> bool:
    if not isinstance(op, ops.AveragePool2D) or op.activation != ops.Activation.NONE:
        return False
    x, y = graph.t(op.inputs[0]).shape, graph.t(op.outputs[0]).shape
    return len(x) == 4 and tuple(y[1:3]) == (1, 1) and (op.filter_h, op.filter_w) == tuple(x[1:3])


def global_average_pools_to_means(graph: Graph) -> tuple[Graph, list[str]]:
    """A copy of the float graph with every global average pool (the window the whole input, no fused
    activation) replaced by a MEAN over height and width, and the names of the replaced pools."""
    if not any(_is_global(op, graph) for op in graph.ops):
        return graph, []
    g = copy.deepcopy(graph)
    replaced = []
    for i, op in enumerate(g.ops):
        if _is_global(op, g):
            g.ops[i] = ops.Mean(op.name, list(op.inputs), list(op.outputs), axes=(1, 2), keep_dims=True)
            replaced.append(op.name)
    return g, replaced
