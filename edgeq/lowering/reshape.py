"""Reshape and squeeze: no arithmetic, the output aliases the input's memory."""
from __future__ import annotations

import numpy as np

from edgeq.ir import Graph, ops
from edgeq.lowering import KernelCall, float_impl, lowers


@lowers(ops.Reshape)
@lowers(ops.Squeeze)
def lower_alias(op: ops.Op, graph: Graph) -> KernelCall:
    return KernelCall(op.name, "alias", [op.inputs[0]], list(op.outputs), alias=True)


@float_impl(ops.Reshape)
@float_impl(ops.Squeeze)
def float_alias(op: ops.Op, graph: Graph, inputs: list[np.ndarray]) -> np.ndarray:
    return inputs[0].reshape(graph.t(op.outputs[0]).shape)
