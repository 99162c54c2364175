"""TRANSPOSE_CONV: TFLM's reference_integer_ops TransposeConv (each input pixel scatters its weighted values
into the output, accumulated in int32, then the per-channel requantization of convolutions; 16x8 layers
accumulate in int64 with an int64 bias and TFLite's 64-bit rescaling). The C kernels gather instead (each output
sums the input pixels that reach it), which adds the same integers."""
from __future__ import annotations

import numpy as np

from edgeq.ir import Graph, ops
from edgeq.lowering import KernelCall, float_impl, kernel, lowers
from edgeq.lowering.common import float_activation, pad_before, variant
from edgeq.lowering.conv import (
    _bias, _check_weights, _finish, _quant_params, _requant_mode, _requantize, _rescale_arrays,
)


def _geometry(op: ops.TransposeConv, x_shape, w_shape, y_shape) -> dict[str, int]:
    n, ih, iw, ic = x_shape
    _, oh, ow, oc = y_shape
    _, kh, kw, _ = w_shape
    # the padding of the convolution this one transposes, whose input is this one's output
    return {"batches": n, "input_h": ih, "input_w": iw, "input_c": ic, "output_h": oh, "output_w": ow,
            "output_c": oc, "filter_h": kh, "filter_w": kw, "stride_h": op.stride_h, "stride_w": op.stride_w,
            "pad_h": pad_before(op.padding, oh, kh, op.stride_h), "pad_w": pad_before(op.padding, ow, kw, op.stride_w)}


@lowers(ops.TransposeConv, "transpose_conv_s8", "transpose_conv_s16")
def lower_transpose_conv(op: ops.TransposeConv, graph: Graph) -> KernelCall:
    kind = variant(op, graph, [op.inputs[0], op.outputs[0]])
    _check_weights(op, graph)
    x, w, y = graph.t(op.inputs[0]), graph.t(op.inputs[1]), graph.t(op.outputs[0])
    params = _geometry(op, x.shape, w.shape, y.shape)
    params.update(_quant_params(op, graph))
    return _finish(KernelCall(op.name, "transpose_conv_s8", [op.inputs[0]], [op.outputs[0]], params, {
        "weights": w.data.astype(np.int8), "bias": _bias(op, graph, w.shape[0], kind),
        **_rescale_arrays(op, graph, w.shape[0], kind)}, requant=_requant_mode(graph)), kind)


def _scatter(x: np.ndarray, w: np.ndarray, p: dict) -> np.ndarray:
    """sum over input pixels and taps of x[n, iy, ix, :] . w[:, ky, kx, :] at output (iy*s - pad + ky, ...)."""
    n, ih, iw, _ = x.shape
    oh, ow, oc = p["output_h"], p["output_w"], p["output_c"]
    sh, sw, ph, pw = p["stride_h"], p["stride_w"], p["pad_h"], p["pad_w"]
    full = np.zeros((n, (ih - 1) * sh + p["filter_h"], (iw - 1) * sw + p["filter_w"], oc), dtype=np.float64)
    for ky in range(p["filter_h"]):
        for kx in range(p["filter_w"]):
            full[:, ky:ky + (ih - 1) * sh + 1:sh, kx:kx + (iw - 1) * sw + 1:sw, :] += x @ w[:, ky, kx, :].T
    out = np.zeros((n, oh, ow, oc), dtype=np.float64)
    h, wd = min(oh, full.shape[1] - ph), min(ow, full.shape[2] - pw)
    out[:, :h, :wd] = full[:, ph:ph + h, pw:pw + wd]
    return out


@kernel("transpose_conv_s8")
@kernel("transpose_conv_s16")
def transpose_conv(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    """float64 sums of integer products stay exact: below 2^53 for any int16 layer edgeq can hold."""
    p, a = call.params, call.arrays
    x = inputs[0].reshape(p["batches"], p["input_h"], p["input_w"], p["input_c"]).astype(np.float64)
    acc = _scatter(x + p["input_offset"], a["weights"].astype(np.float64), p)
    acc = acc.astype(np.int64) + a["bias"].astype(np.int64)
    return _requantize(acc, call).reshape(out_shape)


@float_impl(ops.TransposeConv)
def float_transpose_conv(op: ops.TransposeConv, graph: Graph, inputs: list[np.ndarray]) -> np.ndarray:
    x, w = inputs[0].astype(np.float64), inputs[1].astype(np.float64)
    y = graph.t(op.outputs[0]).shape
    out = _scatter(x, w, _geometry(op, x.shape, w.shape, (x.shape[0], *y[1:])))
    if len(inputs) > 2:
        out += inputs[2]
    return float_activation(op.activation, out)
