"""Helpers shared by the kernel families: activation clamps, padding, shapes, parameter checks, 16x8 variants."""
from __future__ import annotations

import math

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, Tensor, ops
from edgeq.lowering.fixedpoint import round_half_away

INT8_MIN, INT8_MAX = -128, 127


INT_RANGES = {"int8": (INT8_MIN, INT8_MAX), "int16": (-(2**15), 2**15 - 1)}


def activation_range(act: ops.Activation, out: Tensor) -> tuple[int, int]:
    """tflite::CalculateActivationRangeQuantized for an int8 or int16 output."""
    scale, zp = np.float32(out.quant.s), out.quant.zp
    lo, hi = INT_RANGES[out.dtype]

    def q(f: float) -> int:
        return zp + int(round_half_away(float(np.float32(f) / scale)))

    if act == ops.Activation.NONE:
        return lo, hi
    if act == ops.Activation.RELU:
        return max(lo, q(0.0)), hi
    if act == ops.Activation.RELU6:
        return max(lo, q(0.0)), min(hi, q(6.0))
    if act == ops.Activation.RELU_N1_TO_1:
        return max(lo, q(-1.0)), min(hi, q(1.0))
    raise AssertionError(act)


def variant(op: ops.Op, graph: Graph, names: list[str]) -> str:
    """The kernel variant the tensors call for: "s8" (int8), or "s16" for a 16x8 model's int16 activations
    (zero point 0, as TFLite requires)."""
    if graph.t(names[0]).dtype == "int16":
        for name in names:
            t = graph.t(name)
            if t.dtype != "int16" or t.quant is None or np.any(t.quant.zero_point != 0):
                raise EdgeqError(f"Operator {op.name} ({op.kind}): tensor '{name}' is {t.dtype}; in a 16x8 model "
                                 "edgeq needs every activation of this operator int16 with zero point 0, as TFLite "
                                 "makes them.")
        return "s16"
    require_int8(op, graph, names)
    return "s8"


def clamp_int(x: np.ndarray, kernel: str, lo: int | None = None, hi: int | None = None) -> np.ndarray:
    """Clamped to [lo, hi] (default: the whole range) and stored as the kernel's element type."""
    dtype = np.int16 if kernel.endswith("_s16") else np.int8
    info = np.iinfo(dtype)
    return np.clip(x, info.min if lo is None else lo, info.max if hi is None else hi).astype(dtype)


def float_activation(act: ops.Activation, x: np.ndarray) -> np.ndarray:
    if act == ops.Activation.RELU:
        return np.maximum(x, 0)
    if act == ops.Activation.RELU6:
        return np.clip(x, 0, 6)
    if act == ops.Activation.RELU_N1_TO_1:
        return np.clip(x, -1, 1)
    return x


def out_size(padding: ops.Padding, size: int, filt: int, stride: int, dilation: int = 1) -> int:
    eff = (filt - 1) * dilation + 1
    if padding == ops.Padding.SAME:
        return (size + stride - 1) // stride
    return (size - eff + stride) // stride


def pad_before(padding: ops.Padding, size: int, filt: int, stride: int, dilation: int = 1) -> int:
    """tflite::ComputePaddingHeightWidth: padding on the top/left side (the extra one goes after)."""
    eff = (filt - 1) * dilation + 1
    out = out_size(padding, size, filt, stride, dilation)
    total = max(0, (out - 1) * stride + eff - size)
    return total // 2


def to_nhwc4(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Right-align a shape of rank <= 4 into 4 dims."""
    if len(shape) > 4:
        raise EdgeqError(f"Tensor of rank {len(shape)} is not supported (edgeq handles rank <= 4).")
    return tuple([1] * (4 - len(shape)) + list(shape))  # type: ignore[return-value]


def require_int8(op: ops.Op, graph: Graph, names: list[str]) -> None:
    for name in names:
        t = graph.t(name)
        if t.dtype != "int8" or t.quant is None:
            raise EdgeqError(
                f"Operator {op.name} ({op.kind}): tensor '{name}' is {t.dtype}"
                f"{'' if t.quant else ' without quantization'}; edgeq's integer path needs int8 with a "
                "scale and zero point. Quantize the model to full int8 (or use --quant pot for float models)."
            )


def clamp_s8(x: np.ndarray, lo: int = INT8_MIN, hi: int = INT8_MAX) -> np.ndarray:
    return np.clip(x, lo, hi).astype(np.int8)


def exponent_of(scale: float, what: str) -> int:
    """n for scale == 2^-n, exactly or within 2^-32 (a fitted input's scale times its readers' weight scales,
    edgeq.quant.pot.input_step_pair: TFLite's QuantizeMultiplier makes exactly 2^30 of it, a shift)."""
    scale = float(scale)
    n = -round(math.log2(scale)) if scale > 0 and math.isfinite(scale) else 0
    if scale <= 0 or abs(math.ldexp(scale, n) - 1.0) > 2.0 ** -32:
        raise EdgeqError(f"{what}: scale {scale!r} is not a power of two, so it cannot be rescaled by a shift; "
                         "quantize the model with --quant pot.")
    return n


def pot_shift(scale_in: float, scale_out: float, op: ops.Op) -> int:
    """The right shift taking values at scale_in to scale_out (negative: a left shift)."""
    what = f"Operator {op.name} ({op.kind})"
    return exponent_of(scale_in, what) - exponent_of(scale_out, what)
