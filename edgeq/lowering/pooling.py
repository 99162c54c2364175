"""AVERAGE_POOL_2D, MAX_POOL_2D, MEAN and SUM.

Integer semantics: TFLM's reference_integer_ops AveragePool (sum of the valid window, divided by
the count of valid elements with rounding half away from zero) and MaxPool; MEAN over any axes as
reference_ops::QuantizedMeanOrSum (1/count folded into the requantization multiplier).
"""
from __future__ import annotations

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, ops
from edgeq.lowering.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier, wrap32
from edgeq.lowering import KernelCall, float_impl, kernel, lowers
from edgeq.lowering.common import (
    activation_range, clamp_int, float_activation, pad_before, to_nhwc4, variant,
)


def _pool_params(op, graph: Graph) -> dict[str, int]:
    x, y = graph.t(op.inputs[0]), graph.t(op.outputs[0])
    if x.quant.s != y.quant.s or x.quant.zp != y.quant.zp:
        raise EdgeqError(f"Operator {op.name} ({op.kind}): input and output quantization differ; TFLite pools "
                         "int8 tensors that share one scale and zero point.")
    n, ih, iw, c = x.shape
    _, oh, ow, _ = y.shape
    lo, hi = activation_range(op.activation, y)
    return {"batches": n, "input_h": ih, "input_w": iw, "channels": c, "output_h": oh, "output_w": ow,
            "filter_h": op.filter_h, "filter_w": op.filter_w, "stride_h": op.stride_h, "stride_w": op.stride_w,
            "pad_h": pad_before(op.padding, ih, op.filter_h, op.stride_h),
            "pad_w": pad_before(op.padding, iw, op.filter_w, op.stride_w), "act_min": lo, "act_max": hi}


@lowers(ops.AveragePool2D, "avg_pool_s8", "avg_pool_s16")
def lower_avg_pool(op: ops.AveragePool2D, graph: Graph) -> KernelCall:
    kind = variant(op, graph, [op.inputs[0], op.outputs[0]])
    return KernelCall(op.name, f"avg_pool_{kind}", [op.inputs[0]], [op.outputs[0]], _pool_params(op, graph))


@lowers(ops.MaxPool2D, "max_pool_s8", "max_pool_s16")
def lower_max_pool(op: ops.MaxPool2D, graph: Graph) -> KernelCall:
    kind = variant(op, graph, [op.inputs[0], op.outputs[0]])
    return KernelCall(op.name, f"max_pool_{kind}", [op.inputs[0]], [op.outputs[0]], _pool_params(op, graph))


def _windows(p: dict):
    """For each output row/column: the clipped [start, end) of its window in the input."""
    def axis(out, size, filt, stride, pad):
        origin = np.arange(out) * stride - pad
        return np.maximum(origin, 0), np.minimum(origin + filt, size)
    return (axis(p["output_h"], p["input_h"], p["filter_h"], p["stride_h"], p["pad_h"]),
            axis(p["output_w"], p["input_w"], p["filter_w"], p["stride_w"], p["pad_w"]))


def _pool(call: KernelCall, x: np.ndarray, reduce) -> np.ndarray:
    p = call.params
    x = x.reshape(p["batches"], p["input_h"], p["input_w"], p["channels"]).astype(np.int64)
    (y0, y1), (x0, x1) = _windows(p)
    out = np.empty((p["batches"], p["output_h"], p["output_w"], p["channels"]), dtype=np.int64)
    for i in range(p["output_h"]):
        for j in range(p["output_w"]):
            out[:, i, j, :] = reduce(x[:, y0[i]:y1[i], x0[j]:x1[j], :])
    return clamp_int(out, call.kernel, p["act_min"], p["act_max"])


def _round_div(acc: np.ndarray, count) -> np.ndarray:
    """C++ (acc +/- count/2) / count, truncating toward zero."""
    count = np.asarray(count, dtype=np.int64)
    num = np.where(acc > 0, acc + count // 2, acc - count // 2)
    return np.sign(num) * (np.abs(num) // count)


@kernel("avg_pool_s8")
@kernel("avg_pool_s16")
def avg_pool_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    def average(win):
        count = win.shape[1] * win.shape[2]
        return _round_div(win.sum(axis=(1, 2)), count)
    return _pool(call, inputs[0], average).reshape(out_shape)


@kernel("max_pool_s8")
@kernel("max_pool_s16")
def max_pool_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    return _pool(call, inputs[0], lambda win: win.max(axis=(1, 2))).reshape(out_shape)


@lowers(ops.Mean, "mean_s8", "mean_s16")
@lowers(ops.Sum, "mean_s8", "mean_s16")
def lower_mean(op: ops.Mean | ops.Sum, graph: Graph) -> KernelCall:
    """MEAN and SUM: QuantizedMeanOrSum, which for a mean folds 1/count into the multiplier (int8, or int16 in
    16x8 models)."""
    kind = variant(op, graph, [op.inputs[0], op.outputs[0]])
    x, y = graph.t(op.inputs[0]), graph.t(op.outputs[0])
    dims = to_nhwc4(x.shape)
    axes = tuple(a + 4 - len(x.shape) for a in op.axes)
    count = int(np.prod([dims[a] for a in axes]))
    # QuantizedMeanOrSum folds 1/count into the multiplier. Power-of-two graphs too: 1/count is rarely a
    # power of two, and TFLite's arithmetic keeps an exported model in step with LiteRT and TFLite Micro.
    mult, shift = quantize_multiplier(float(x.quant.s) / float(y.quant.s))
    if isinstance(op, ops.Mean):
        fold = min(count.bit_length() - 1, 32, 31 + shift)
        mult, shift = int(np.int32((mult << fold) // count)), shift - fold
    params = {f"d{i}": dims[i] for i in range(4)}
    params.update({f"reduce{i}": int(i in axes) for i in range(4)})
    params.update({"count": count, "input_zp": x.quant.zp, "output_zp": y.quant.zp,
                   "out_mult": mult, "out_shift": shift})
    return KernelCall(op.name, f"mean_{kind}", [op.inputs[0]], [op.outputs[0]], params)


@kernel("mean_s16")
@kernel("mean_s8")
def mean_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    p = call.params
    x = inputs[0].reshape([p[f"d{i}"] for i in range(4)]).astype(np.int64)
    axes = tuple(i for i in range(4) if p[f"reduce{i}"])
    centred = wrap32(x.sum(axis=axes) - p["input_zp"] * p["count"])
    out = multiply_by_quantized_multiplier(centred, p["out_mult"], p["out_shift"]) + p["output_zp"]
    return clamp_int(out, call.kernel).reshape(out_shape)


# --- float semantics ------------------------------------------------------------------------------

def _float_pool(op, graph, x: np.ndarray, reduce) -> np.ndarray:
    y = graph.t(op.outputs[0])
    p = {"input_h": x.shape[1], "input_w": x.shape[2], "output_h": y.shape[1], "output_w": y.shape[2],
         "filter_h": op.filter_h, "filter_w": op.filter_w, "stride_h": op.stride_h, "stride_w": op.stride_w,
         "pad_h": pad_before(op.padding, x.shape[1], op.filter_h, op.stride_h),
         "pad_w": pad_before(op.padding, x.shape[2], op.filter_w, op.stride_w)}
    (y0, y1), (x0, x1) = _windows(p)
    out = np.empty(y.shape, dtype=np.float64)
    for i in range(y.shape[1]):
        for j in range(y.shape[2]):
            out[:, i, j, :] = reduce(x[:, y0[i]:y1[i], x0[j]:x1[j], :].astype(np.float64))
    return float_activation(op.activation, out)


@float_impl(ops.AveragePool2D)
def float_avg_pool(op, graph, inputs):
    return _float_pool(op, graph, inputs[0], lambda w: w.mean(axis=(1, 2)))


@float_impl(ops.MaxPool2D)
def float_max_pool(op, graph, inputs):
    return _float_pool(op, graph, inputs[0], lambda w: w.max(axis=(1, 2)))


@float_impl(ops.Mean)
def float_mean(op, graph, inputs):
    return inputs[0].astype(np.float64).mean(axis=op.axes, keepdims=op.keep_dims).reshape(
        graph.t(op.outputs[0]).shape)


@float_impl(ops.Sum)
def float_sum(op, graph, inputs):
    return inputs[0].astype(np.float64).sum(axis=op.axes, keepdims=op.keep_dims).reshape(
        graph.t(op.outputs[0]).shape)
