"""Convolution, depthwise convolution and fully-connected layers.

Integer semantics: TFLM's reference_integer_ops ConvPerChannel, DepthwiseConvPerChannel,
FullyConnected and FullyConnectedPerChannel. Accumulation is exact, so the numpy kernels use float64
matrix products (every partial sum stays far below 2^53) and then TFLite's requantization.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, ops
from edgeq.lowering.fixedpoint import (
    multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_int64, quantize_multiplier, rounding_shift,
    tflite_rounding_shift, wrap32,
)
from edgeq.lowering import KernelCall, float_impl, kernel, lowers
from edgeq.lowering.common import (
    activation_range, clamp_int, float_activation, pad_before, pot_shift, variant,
)


def _requant_mode(graph: Graph) -> str:
    return "shift" if graph.requant == "shift" else "multiplier"


def _rescale_arrays(op: ops.Op, graph: Graph, channels: int, kind: str) -> dict[str, np.ndarray]:
    """out_mult/out_shift per channel (TFLite), or out_shift alone, per channel, for a power-of-two graph's int8
    layers (its int16 layers run TFLite's 16x8 kernels, whose multiplier is then 0.5: a rounding shift done by a
    multiply)."""
    if graph.requant == "shift" and kind == "s8":
        x, w, y = (graph.t(n) for n in (op.inputs[0], op.inputs[1], op.outputs[0]))
        shifts = [pot_shift(float(x.quant.s) * float(s), y.quant.s, op) for s in w.quant.scale]
        return {"out_shift": np.broadcast_to(np.array(shifts, np.int32), (channels,)).copy()}
    mult, shift = _per_channel_multipliers(op, graph, channels)
    return {"out_mult": mult, "out_shift": shift}


def _per_channel_multipliers(op: ops.Op, graph: Graph, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """PopulateConvolutionQuantizationParams: double(s_in) * double(s_w[c]) / double(s_out)."""
    x, w, y = (graph.t(n) for n in (op.inputs[0], op.inputs[1], op.outputs[0]))
    scales = w.quant.scale if not w.quant.per_tensor else np.repeat(w.quant.scale, channels)
    if scales.size != channels:
        raise EdgeqError(f"Operator {op.name} ({op.kind}): {scales.size} weight scales for {channels} channels.")
    pairs = [quantize_multiplier(float(x.quant.s) * float(s) / float(y.quant.s)) for s in scales]
    return (np.array([m for m, _ in pairs], dtype=np.int32), np.array([s for _, s in pairs], dtype=np.int32))


def _bias(op: ops.Op, graph: Graph, channels: int, kind: str = "s8") -> np.ndarray:
    """int32 for int8 layers; int64 for 16x8 ones (TFLite's int64 bias, or an int32 one widened)."""
    wide = kind == "s16"
    if len(op.inputs) > 2 and op.inputs[2]:
        b = graph.t(op.inputs[2])
        if b.dtype not in (("int32", "int64") if wide else ("int32",)):
            raise EdgeqError(f"Operator {op.name} ({op.kind}): bias is {b.dtype}; int8 layers need an int32 bias, "
                             "16x8 layers an int64 (or int32) one.")
        return b.data.astype(np.int64 if wide else np.int32).reshape(-1)
    return np.zeros(channels, dtype=np.int64 if wide else np.int32)


def _finish(call: KernelCall, kind: str) -> KernelCall:
    """A 16x8 layer: the _s16 kernel, rescaled by TFLite's multipliers (power-of-two graphs' too)."""
    if kind == "s16":
        call.kernel, call.requant = call.kernel.replace("_s8", "_s16"), None
    return call


def _check_weights(op: ops.Op, graph: Graph) -> None:
    w = graph.t(op.inputs[1])
    if not w.is_const or w.dtype != "int8" or w.quant is None:
        raise EdgeqError(f"Operator {op.name} ({op.kind}): weights must be constant int8 with a scale "
                         f"(got {'non-constant ' if not w.is_const else ''}{w.dtype}).")
    if np.any(w.quant.zero_point != 0) and not isinstance(op, ops.FullyConnected):
        raise EdgeqError(f"Operator {op.name} ({op.kind}): weights have a non-zero zero point; TFLite requires "
                         "symmetric int8 weights for convolutions.")


def _spatial_params(op, x_shape, w_hw, y_shape) -> dict[str, int]:
    _, ih, iw, ic = x_shape
    _, oh, ow, oc = y_shape
    kh, kw = w_hw
    return {
        "batches": x_shape[0], "input_h": ih, "input_w": iw, "input_c": ic,
        "output_h": oh, "output_w": ow, "output_c": oc, "filter_h": kh, "filter_w": kw,
        "stride_h": op.stride_h, "stride_w": op.stride_w, "dilation_h": op.dilation_h, "dilation_w": op.dilation_w,
        "pad_h": pad_before(op.padding, ih, kh, op.stride_h, op.dilation_h),
        "pad_w": pad_before(op.padding, iw, kw, op.stride_w, op.dilation_w),
    }


def _quant_params(op, graph) -> dict[str, int]:
    x, y = graph.t(op.inputs[0]), graph.t(op.outputs[0])
    lo, hi = activation_range(op.activation, y)
    return {"input_offset": -x.quant.zp, "output_offset": y.quant.zp, "act_min": lo, "act_max": hi}


@lowers(ops.Conv2D, "conv_s8", "conv_s16")
def lower_conv(op: ops.Conv2D, graph: Graph) -> KernelCall:
    kind = variant(op, graph, [op.inputs[0], op.outputs[0]])
    _check_weights(op, graph)
    x, w, y = graph.t(op.inputs[0]), graph.t(op.inputs[1]), graph.t(op.outputs[0])
    if x.shape[3] % w.shape[3] or w.shape[0] % (x.shape[3] // w.shape[3]):
        raise EdgeqError(f"Operator {op.name} (CONV_2D): {x.shape[3]} input channels do not split into groups "
                         f"of {w.shape[3]}.")
    params = _spatial_params(op, x.shape, w.shape[1:3], y.shape)
    params["filter_c"] = w.shape[3]
    params.update(_quant_params(op, graph))
    return _finish(KernelCall(op.name, "conv_s8", [op.inputs[0]], [op.outputs[0]], params, {
        "weights": w.data.astype(np.int8), "bias": _bias(op, graph, w.shape[0], kind),
        **_rescale_arrays(op, graph, w.shape[0], kind)}, requant=_requant_mode(graph)), kind)


@lowers(ops.DepthwiseConv2D, "depthwise_conv_s8", "depthwise_conv_s16")
def lower_depthwise(op: ops.DepthwiseConv2D, graph: Graph) -> KernelCall:
    kind = variant(op, graph, [op.inputs[0], op.outputs[0]])
    _check_weights(op, graph)
    x, w, y = graph.t(op.inputs[0]), graph.t(op.inputs[1]), graph.t(op.outputs[0])
    params = _spatial_params(op, x.shape, w.shape[1:3], y.shape)
    params["depth_multiplier"] = op.depth_multiplier
    params.update(_quant_params(op, graph))
    return _finish(KernelCall(op.name, "depthwise_conv_s8", [op.inputs[0]], [op.outputs[0]], params, {
        "weights": w.data.astype(np.int8), "bias": _bias(op, graph, w.shape[3], kind),
        **_rescale_arrays(op, graph, w.shape[3], kind)}, requant=_requant_mode(graph)), kind)


@lowers(ops.FullyConnected, "fully_connected_s8", "fully_connected_s16")
def lower_fully_connected(op: ops.FullyConnected, graph: Graph) -> KernelCall:
    kind = variant(op, graph, [op.inputs[0], op.outputs[0]])
    _check_weights(op, graph)
    x, w, y = graph.t(op.inputs[0]), graph.t(op.inputs[1]), graph.t(op.outputs[0])
    units, depth = w.shape
    if x.size % depth:
        raise EdgeqError(f"Operator {op.name} (FULLY_CONNECTED): input of {x.size} values is not a multiple of "
                         f"the weights' depth {depth}.")
    if graph.requant == "shift" and kind == "s8":
        rescale = _rescale_arrays(op, graph, units, kind)
    elif w.quant.per_tensor:
        # GetQuantizedConvolutionMultipler: the float product, then double.
        real = float(np.float32(x.quant.s) * np.float32(w.quant.s)) / float(y.quant.s)
        m, s = quantize_multiplier(real)
        rescale = {"out_mult": np.full(units, m, np.int32), "out_shift": np.full(units, s, np.int32)}
    else:
        mult, shift = _per_channel_multipliers(op, graph, units)
        rescale = {"out_mult": mult, "out_shift": shift}
    params = {"batches": x.size // depth, "input_depth": depth, "output_depth": units,
              "weights_offset": -int(w.quant.zero_point[0])}
    params.update(_quant_params(op, graph))
    return _finish(KernelCall(op.name, "fully_connected_s8", [op.inputs[0]], [op.outputs[0]], params, {
        "weights": w.data.astype(np.int8), "bias": _bias(op, graph, units, kind), **rescale},
        requant=_requant_mode(graph)), kind)


def _patches(x: np.ndarray, p: dict, pad_value, dtype=np.int32) -> np.ndarray:
    """[N, OH, OW, KH, KW, C] windows of x, padded with pad_value (integer: so that pad + offset == 0)."""
    n, ih, iw, c = x.shape
    kh, kw, sh, sw, dh, dw = (p[k] for k in ("filter_h", "filter_w", "stride_h", "stride_w", "dilation_h",
                                             "dilation_w"))
    oh, ow = p["output_h"], p["output_w"]
    if kh == kw == 1 and p["pad_h"] == p["pad_w"] == 0:  # pointwise: a strided view, no padded copy
        return x[:, :oh * sh:sh, :ow * sw:sw, None, None, :].astype(dtype, copy=False)
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1
    ph, pw = p["pad_h"], p["pad_w"]
    xp = np.full((n, max(need_h, ph + ih), max(need_w, pw + iw), c), pad_value, dtype=dtype)
    xp[:, ph:ph + ih, pw:pw + iw, :] = x
    rows = (np.arange(oh) * sh)[:, None] + np.arange(kh)[None, :] * dh  # [OH, KH]
    cols = (np.arange(ow) * sw)[:, None] + np.arange(kw)[None, :] * dw  # [OW, KW]
    return xp[:, rows[:, None, :, None], cols[None, :, None, :], :]


def _requantize(acc: np.ndarray, call: KernelCall, shift_rounding=tflite_rounding_shift) -> np.ndarray:
    """TFLite's multipliers, or in power-of-two graphs one rounding shift, rounded as LiteRT rounds the layer
    (convolutions: its multiplier of 2^-shift; fully connected: once, half away from zero)."""
    p, a = call.params, call.arrays
    shift = a["out_shift"].astype(np.int64)
    if call.kernel.endswith("_s16"):  # int64 accumulators; the rescaled value cut to int32 as TFLite and eq_mbqm64 do
        out = wrap32(multiply_by_quantized_multiplier_int64(acc, a["out_mult"].astype(np.int64), shift))
    elif call.requant == "multiplier":
        out = multiply_by_quantized_multiplier(acc, a["out_mult"].astype(np.int64), shift)
    else:
        out = shift_rounding(acc, shift)
    return clamp_int(out + p["output_offset"], call.kernel, p["act_min"], p["act_max"])


@kernel("conv_s8")
@kernel("conv_s16")
def conv_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    p, a = call.params, call.arrays
    x = inputs[0].reshape(p["batches"], p["input_h"], p["input_w"], p["input_c"]).astype(np.int32)
    cols = _patches(x, p, -p["input_offset"]).astype(np.float64) + p["input_offset"]
    w = a["weights"].astype(np.float64)  # [OC, KH, KW, FC]
    fc, oc = p["filter_c"], p["output_c"]
    groups = p["input_c"] // fc
    per_group = oc // groups
    n, oh, ow, kh, kw, _ = cols.shape
    acc = np.empty((n, oh, ow, oc), dtype=np.float64)
    for g in range(groups):
        xg = cols[..., g * fc:(g + 1) * fc].reshape(n * oh * ow, kh * kw * fc)
        wg = w[g * per_group:(g + 1) * per_group].reshape(per_group, kh * kw * fc)
        acc[..., g * per_group:(g + 1) * per_group] = (xg @ wg.T).reshape(n, oh, ow, per_group)
    acc = acc.astype(np.int64) + a["bias"].astype(np.int64)
    return _requantize(acc, call).reshape(out_shape)


@kernel("depthwise_conv_s8")
@kernel("depthwise_conv_s16")
def depthwise_conv_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    p, a = call.params, call.arrays
    x = inputs[0].reshape(p["batches"], p["input_h"], p["input_w"], p["input_c"]).astype(np.int64)
    w = a["weights"].astype(np.int64).reshape(p["filter_h"], p["filter_w"], p["output_c"])
    acc = _depthwise_taps(x + p["input_offset"], w, p) + a["bias"].astype(np.int64)
    return _requantize(acc, call).reshape(out_shape)


def _depthwise_taps(x: np.ndarray, w: np.ndarray, p: dict) -> np.ndarray:
    """sum over the filter's taps of the zero-padded input's strided view times the tap's weights ([N, OH, OW,
    OC]); x already offset, so padding is 0. No window copies: one view per tap (channel c*M+m reads channel c)."""
    n, ih, iw, c = x.shape
    oh, ow, sh, sw, dh, dw = (p[k] for k in ("output_h", "output_w", "stride_h", "stride_w", "dilation_h",
                                             "dilation_w"))
    ph, pw, m = p["pad_h"], p["pad_w"], w.shape[2] // c
    xp = np.zeros((n, max((oh - 1) * sh + (p["filter_h"] - 1) * dh + 1, ph + ih),
                   max((ow - 1) * sw + (p["filter_w"] - 1) * dw + 1, pw + iw), c), x.dtype)
    xp[:, ph:ph + ih, pw:pw + iw, :] = x
    acc = np.zeros((n, oh, ow, c * m), x.dtype)
    for ky in range(p["filter_h"]):
        for kx in range(p["filter_w"]):
            view = xp[:, ky * dh:ky * dh + (oh - 1) * sh + 1:sh, kx * dw:kx * dw + (ow - 1) * sw + 1:sw, :]
            acc += (np.repeat(view, m, axis=-1) if m > 1 else view) * w[ky, kx]
    return acc


@kernel("fully_connected_s8")
@kernel("fully_connected_s16")
def fully_connected_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    p, a = call.params, call.arrays
    x = inputs[0].reshape(p["batches"], p["input_depth"]).astype(np.float64) + p["input_offset"]
    w = a["weights"].astype(np.float64) + p["weights_offset"]
    acc = (x @ w.T).astype(np.int64) + a["bias"].astype(np.int64)
    return _requantize(acc, call, shift_rounding=rounding_shift).reshape(out_shape)


def _float_patches(x: np.ndarray, op, w_hw, y_shape) -> np.ndarray:
    return _patches(x, _spatial_params(op, x.shape, w_hw, y_shape), 0.0, np.float64)


@float_impl(ops.Conv2D)
def float_conv(op: ops.Conv2D, graph: Graph, inputs: list[np.ndarray]) -> np.ndarray:
    x, w = inputs[0], inputs[1].astype(np.float64)
    y_shape = graph.t(op.outputs[0]).shape
    cols = _float_patches(x, op, w.shape[1:3], y_shape)
    oc, kh, kw, fc = w.shape
    groups = x.shape[3] // fc
    per_group = oc // groups
    n, oh, ow = cols.shape[:3]
    out = np.empty((n, oh, ow, oc))
    for g in range(groups):
        xg = cols[..., g * fc:(g + 1) * fc].reshape(n * oh * ow, kh * kw * fc)
        out[..., g * per_group:(g + 1) * per_group] = (
            xg @ w[g * per_group:(g + 1) * per_group].reshape(per_group, -1).T).reshape(n, oh, ow, per_group)
    if len(inputs) > 2:
        out += inputs[2]
    return float_activation(op.activation, out).astype(np.float32).reshape(y_shape)


@float_impl(ops.DepthwiseConv2D)
def float_depthwise(op: ops.DepthwiseConv2D, graph: Graph, inputs: list[np.ndarray]) -> np.ndarray:
    x, w = inputs[0], inputs[1].astype(np.float64)
    y_shape = graph.t(op.outputs[0]).shape
    p = _spatial_params(op, x.shape, w.shape[1:3], y_shape)
    out = _depthwise_taps(x.astype(np.float64), w[0], p)
    if len(inputs) > 2:
        out += inputs[2]
    return float_activation(op.activation, out).astype(np.float32).reshape(y_shape)


@float_impl(ops.FullyConnected)
def float_fully_connected(op: ops.FullyConnected, graph: Graph, inputs: list[np.ndarray]) -> np.ndarray:
    w = inputs[1].astype(np.float64)
    x = inputs[0].astype(np.float64).reshape(-1, w.shape[1])
    out = x @ w.T
    if len(inputs) > 2:
        out += inputs[2]
    return float_activation(op.activation, out).astype(np.float32).reshape(graph.t(op.outputs[0]).shape)


def depthwise_as_conv(call: KernelCall) -> KernelCall:
    """A depthwise convolution of one input channel as the convolution it is (same results), its weights
    transposed once at build time: [1, h, w, oc] -> [oc, h, w, 1]."""
    params = {k: v for k, v in call.params.items() if k != "depth_multiplier"}
    weights = call.arrays["weights"].transpose(3, 1, 2, 0).copy()
    return replace(call, kernel="conv_s8", params={**params, "filter_c": 1}, arrays={**call.arrays, "weights": weights})


def is_pointwise(p: dict[str, int]) -> bool:
    """A convolution call's params: 1x1 without padding or dilation, so each output pixel reads one input pixel."""
    return (p["filter_h"] == p["filter_w"] == 1 and p["pad_h"] == p["pad_w"] == 0
            and p["dilation_h"] == p["dilation_w"] == 1)
