"""The numpy executors: integer (the golden model the C must match) and float."""
from __future__ import annotations

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph
from edgeq.lowering import KernelCall, lower_graph, run_float, run_kernel


def _check_inputs(graph: Graph, inputs: list[np.ndarray], dtype: str) -> None:
    if len(inputs) != len(graph.inputs):
        raise EdgeqError(f"The model takes {len(graph.inputs)} inputs, {len(inputs)} were given.")
    for name, x in zip(graph.inputs, inputs):
        t = graph.t(name)
        if tuple(x.shape) != t.shape:
            raise EdgeqError(f"Input '{name}' has shape {t.shape}; got an array of shape {tuple(x.shape)}.")
        if x.dtype != np.dtype(dtype):
            raise EdgeqError(f"Input '{name}' must be {dtype}; got {x.dtype}.")


def run_int(graph: Graph, inputs: list[np.ndarray], calls: list[KernelCall] | None = None,
            keep_all: bool = False) -> dict[str, np.ndarray]:
    """Run one sample through the lowered integer graph. Returns the outputs (or every tensor)."""
    calls = calls if calls is not None else lower_graph(graph)
    _check_inputs(graph, inputs, graph.t(graph.inputs[0]).dtype)
    values: dict[str, np.ndarray] = dict(zip(graph.inputs, inputs))
    for call in calls:
        out = graph.t(call.outputs[0])
        values[call.outputs[0]] = run_kernel(call, [values[n] for n in call.inputs], out.shape)
        assert values[call.outputs[0]].dtype == np.dtype(out.dtype), (call.layer, values[call.outputs[0]].dtype)
    return values if keep_all else {n: values[n] for n in graph.outputs}


def run_float_graph(graph: Graph, inputs: list[np.ndarray], keep_all: bool = False) -> dict[str, np.ndarray]:
    _check_inputs(graph, inputs, "float32")
    values: dict[str, np.ndarray] = dict(zip(graph.inputs, inputs))
    for op in graph.ops:
        args = [values[n] if n in values else graph.t(n).data for n in op.inputs]
        values[op.outputs[0]] = run_float(op, graph, args).astype(np.float32)
    return values if keep_all else {n: values[n] for n in graph.outputs}
