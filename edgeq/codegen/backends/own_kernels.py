"""What edgeq's own kernel libraries (arm-dsp, arm-mve, rvv) share: the convolutions they run as matrix
products, the input offset folded into the bias at build time, a convolution's constant fields, and the
power-of-two rescales they take."""
from __future__ import annotations

import numpy as np

from edgeq.lowering import KernelCall
from edgeq.lowering.fixedpoint import wrap32

# the eq_<lib>_conv_t fields every own library's convolution takes beside its matrix product
CONV_FIELDS = ("input_h", "input_w", "input_c", "output_h", "output_w", "filter_h", "filter_w", "stride_h",
               "stride_w", "dilation_h", "dilation_w", "pad_h", "pad_w")


def conv_declines(p: dict[str, int]) -> str | None:
    """Why a convolution is not one matrix product over one image, or None."""
    if p["filter_c"] != p["input_c"]:
        return "grouped convolution"
    if p["batches"] != 1:
        return "a batch of several images"
    return None


def depthwise_declines(p: dict[str, int]) -> str | None:
    """Depthwise convolutions the own vector and scalar kernels (arm-mve, rvv, rv32) leave to other libraries."""
    if p["depth_multiplier"] != 1:
        return "a depth multiplier other than 1"
    if p["batches"] != 1:
        return "a batch of several images"
    if p["dilation_h"] != 1 or p["dilation_w"] != 1:
        return "dilation"
    return None


def folded_bias(call: KernelCall, weight_sums: np.ndarray) -> np.ndarray:
    """bias + input_offset * (each output channel's weight sum), int32 as the kernels add it: the inner loops
    then multiply raw int8 inputs, and padding reads the input's zero point, which this makes zero."""
    return wrap32(call.arrays["bias"].astype(np.int64)
                  + call.params["input_offset"] * weight_sums.astype(np.int64)).astype(np.int32)


def conv_fields(p: dict[str, int], gemm_fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A convolution struct's initializer: its matrix product, its geometry, and the value padding reads."""
    return [("gemm", "{ " + ", ".join(f".{k} = {v}" for k, v in gemm_fields) + " }"),
            *((k, str(p[k])) for k in CONV_FIELDS), ("pad_value", str(-p["input_offset"]))]


def left_shift_declines(call: KernelCall) -> str | None:
    """Power-of-two layers whose rescale multiplies (shift < 1): the own kernels shift right only."""
    if call.requant == "shift" and np.any(call.arrays["out_shift"] < 1):
        return "a power-of-two rescale by a left shift (the own kernels shift right only)"
    return None


def shift_nudges(shift: np.ndarray, rounding: str) -> tuple[np.ndarray, np.ndarray]:
    """What a power-of-two rescale by 2^-shift (shift >= 1) adds before its floor shift, for accumulators >= 0
    and < 0. rounding: "conv" (LiteRT's multiplier of 0.5 and rounding divide as one nudge) or "fc" (half away
    from zero), as edgeq's golden model rounds each layer kind."""
    half = np.left_shift(1, shift - 1)
    if rounding == "conv":
        return half + (shift >= 2), half - 1 + (shift == 1)
    return half, half - 1
