"""What edgeq's own kernel libraries (arm-dsp, arm-mve, rvv) share: the convolutions they run as matrix
products, the input offset folded into the bias at build time, and a convolution's constant fields."""
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


def is_pointwise(p: dict[str, int]) -> bool:
    """A 1x1 convolution without padding or dilation: its rows are the input's pixels, read in place."""
    return (p["filter_h"] == p["filter_w"] == 1 and p["pad_h"] == p["pad_w"] == 0
            and p["dilation_h"] == p["dilation_w"] == 1)


def folded_bias(call: KernelCall, weight_sums: np.ndarray) -> np.ndarray:
    """bias + input_offset * (each output channel's weight sum), int32 as the kernels add it: the inner loops
    then multiply raw int8 inputs, and padding reads the input's zero point, which this makes zero."""
    return wrap32(call.arrays["bias"].astype(np.int64)
                  + call.params["input_offset"] * weight_sums.astype(np.int64)).astype(np.int32)


def conv_fields(p: dict[str, int], gemm_fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A convolution struct's initializer: its matrix product, its geometry, and the value padding reads."""
    return [("gemm", "{ " + ", ".join(f".{k} = {v}" for k, v in gemm_fields) + " }"),
            *((k, str(p[k])) for k in CONV_FIELDS), ("pad_value", str(-p["input_offset"]))]
