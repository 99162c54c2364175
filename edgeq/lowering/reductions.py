"""REDUCE_MAX and ARG_MAX (MEAN and SUM are in pooling.py).

TFLite Micro's int8 REDUCE_MAX takes the largest raw value (it requires one scale and zero point on both
sides); ARG_MAX returns the index of the first largest value, as int32 or int64.
"""
from __future__ import annotations

import math

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, ops
from edgeq.lowering import KernelCall, float_impl, kernel, lowers
from edgeq.lowering.common import require_int8, to_nhwc4


@lowers(ops.ReduceMax, "reduce_max_s8")
def lower_reduce_max(op: ops.ReduceMax, graph: Graph) -> KernelCall:
    require_int8(op, graph, [op.inputs[0], op.outputs[0]])
    x, y = graph.t(op.inputs[0]), graph.t(op.outputs[0])
    if x.quant.s != y.quant.s or x.quant.zp != y.quant.zp:
        raise EdgeqError(f"Operator {op.name} (REDUCE_MAX): input and output quantization differ; TFLite Micro "
                         "takes the maximum of int8 tensors that share one scale and zero point.")
    dims = to_nhwc4(x.shape)
    axes = {a + 4 - len(x.shape) for a in op.axes}
    params = {f"d{i}": dims[i] for i in range(4)}
    params.update({f"reduce{i}": int(i in axes) for i in range(4)})
    return KernelCall(op.name, "reduce_max_s8", [op.inputs[0]], [op.outputs[0]], params)


@kernel("reduce_max_s8")
def reduce_max_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    p = call.params
    x = inputs[0].reshape([p[f"d{i}"] for i in range(4)])
    return x.max(axis=tuple(i for i in range(4) if p[f"reduce{i}"])).reshape(out_shape)


@lowers(ops.ArgMax, "arg_max_s8")
def lower_arg_max(op: ops.ArgMax, graph: Graph) -> KernelCall:
    require_int8(op, graph, [op.inputs[0]])
    x, y = graph.t(op.inputs[0]), graph.t(op.outputs[0])
    if y.dtype not in ("int32", "int64"):
        raise EdgeqError(f"Operator {op.name} (ARG_MAX): output '{y.name}' is {y.dtype}; TFLite writes int32 or "
                         "int64 indices.")
    params = {"outer": math.prod(x.shape[:op.axis]), "axis_size": x.shape[op.axis],
              "inner": math.prod(x.shape[op.axis + 1:]), "out_bytes": np.dtype(y.dtype).itemsize}
    return KernelCall(op.name, "arg_max_s8", [op.inputs[0]], [op.outputs[0]], params)


@kernel("arg_max_s8")
def arg_max_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    p = call.params
    x = inputs[0].reshape(p["outer"], p["axis_size"], p["inner"])
    dtype = np.int32 if p["out_bytes"] == 4 else np.int64
    return np.argmax(x, axis=1).astype(dtype).reshape(out_shape)  # numpy too returns the first of equals


@float_impl(ops.ReduceMax)
def float_reduce_max(op, graph, inputs):
    return inputs[0].max(axis=op.axes, keepdims=op.keep_dims).reshape(graph.t(op.outputs[0]).shape)


@float_impl(ops.ArgMax)
def float_arg_max(op, graph, inputs):
    return np.argmax(inputs[0], axis=op.axis)
