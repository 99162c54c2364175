"""RESIZE_BILINEAR: TFLite's ResizeBilinearInteger (10-bit fixed-point source coordinates, the four weighted raw
values summed in int64 and divided by 2^20 rounding half away from zero; the output keeps the input's
quantization). The source rows and columns and their weights are computed here, once per output row and column,
so the C kernel only interpolates."""
from __future__ import annotations

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, ops
from edgeq.lowering import KernelCall, float_impl, kernel, lowers
from edgeq.lowering.common import require_int8

ONE = 1 << 10


def _c_div(a: int, b: int) -> int:
    """C's integer division (toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def interpolation_table(in_size: int, out_size: int, align_corners: bool, half_pixel: bool) -> np.ndarray:
    """Per output index: lower and upper source index and the upper one's weight in 1/1024 (possibly negative
    near the border with half-pixel centers, as in TFLite)."""
    if align_corners and out_size > 1:
        scale = (ONE * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
    else:
        scale = (ONE * in_size + out_size // 2) // out_size
    rows = []
    for v in range(out_size):
        scaled = v * scale + scale // 2 - (1 << 9) if half_pixel else v * scale
        lo = max(_c_div(scaled, ONE), 0)
        hi = min(_c_div(scaled + ONE - 1, ONE), in_size - 1)
        rows.append((lo, hi, scaled - ONE * lo))
    return np.array(rows, dtype=np.int32).reshape(-1)


@lowers(ops.ResizeBilinear, "resize_bilinear_s8")
def lower_resize_bilinear(op: ops.ResizeBilinear, graph: Graph) -> KernelCall:
    require_int8(op, graph, [op.inputs[0], op.outputs[0]])
    x, y = graph.t(op.inputs[0]), graph.t(op.outputs[0])
    if x.quant.s != y.quant.s or x.quant.zp != y.quant.zp:
        raise EdgeqError(f"Operator {op.name} (RESIZE_BILINEAR): input and output quantization differ; TFLite "
                         "interpolates int8 tensors that share one scale and zero point.")
    n, ih, iw, c = x.shape
    _, oh, ow, _ = y.shape
    params = {"batches": n, "input_h": ih, "input_w": iw, "channels": c, "output_h": oh, "output_w": ow}
    return KernelCall(op.name, "resize_bilinear_s8", [op.inputs[0]], [op.outputs[0]], params, {
        "rows": interpolation_table(ih, oh, op.align_corners, op.half_pixel_centers),
        "cols": interpolation_table(iw, ow, op.align_corners, op.half_pixel_centers)})


@kernel("resize_bilinear_s8")
def resize_bilinear_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    p = call.params
    x = inputs[0].reshape(p["batches"], p["input_h"], p["input_w"], p["channels"]).astype(np.int64)
    r = call.arrays["rows"].astype(np.int64).reshape(-1, 3)
    c = call.arrays["cols"].astype(np.int64).reshape(-1, 3)
    wy, wx = r[:, 2].reshape(1, -1, 1, 1), c[:, 2].reshape(1, 1, -1, 1)

    def at(ys, xs):
        return x[:, ys][:, :, xs]
    total = (at(r[:, 0], c[:, 0]) * (ONE - wy) * (ONE - wx) + at(r[:, 1], c[:, 0]) * wy * (ONE - wx)
             + at(r[:, 0], c[:, 1]) * (ONE - wy) * wx + at(r[:, 1], c[:, 1]) * wy * wx)
    rounded = np.where(total > 0, total + (1 << 19), total - (1 << 19))
    return (np.sign(rounded) * (np.abs(rounded) >> 20)).astype(np.int8).reshape(out_shape)


@float_impl(ops.ResizeBilinear)
def float_resize_bilinear(op: ops.ResizeBilinear, graph: Graph, inputs: list[np.ndarray]) -> np.ndarray:
    """TFLite's float ResizeBilinear: source coordinate (v + 0.5) * scale - 0.5 with half-pixel centers."""
    x = inputs[0].astype(np.float64)
    _, oh, ow, _ = graph.t(op.outputs[0]).shape

    def axis(in_size, out_size):
        scale = (in_size - 1) / (out_size - 1) if op.align_corners and out_size > 1 else in_size / out_size
        v = np.arange(out_size, dtype=np.float64)
        src = (v + 0.5) * scale - 0.5 if op.half_pixel_centers else v * scale
        lo = np.clip(np.floor(src), 0, in_size - 1).astype(int)
        hi = np.minimum(np.ceil(src), in_size - 1).astype(int)
        return lo, hi, src - np.floor(src)
    (y0, y1, fy), (x0, x1, fx) = axis(x.shape[1], oh), axis(x.shape[2], ow)
    fy, fx = fy.reshape(1, -1, 1, 1), fx.reshape(1, 1, -1, 1)
    top = x[:, y0][:, :, x0] * (1 - fx) + x[:, y0][:, :, x1] * fx
    bottom = x[:, y1][:, :, x0] * (1 - fx) + x[:, y1][:, :, x1] * fx
    return top * (1 - fy) + bottom * fy
