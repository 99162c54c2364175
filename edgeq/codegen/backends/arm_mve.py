"""edgeq's own kernels for Cortex-M cores with Helium (runtime_c/arm_mve): convolutions (1x1 in place, others
via two im2col windows) and fully connected layers as VMLADAVA matrix products of four channels by two rows,
depthwise convolutions four channels per vector, all specialised per layer by the compiler (every shape,
offset and shift reaches the inlined kernel as a constant). Built here, at build time: the weights of the
matrix products repacked in groups of four channels (same size), the input offset folded into the bias, and
each channel's rescale as rows of a table the kernels load four lanes at a time. The host has no Helium, so
the per-kernel tests run these kernels in QEMU (tests/test_mve_kernels.py)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

import edgeq
from edgeq.codegen.backends import Backend, CStruct, Impl, Target
from edgeq.lowering import KernelCall
from edgeq.lowering.conv import depthwise_as_conv
from edgeq.lowering.fixedpoint import wrap32

RUNTIME_DIR = edgeq.ROOT / "runtime_c" / "arm_mve"


def rescale_table(call: KernelCall, rounding: str, channels: int, weight_sums: np.ndarray) -> tuple[np.ndarray, str] | str:
    """[4, channels rounded up to 4] int32 (eq_mve_common.h) and the kernels' mode, or why they cannot take call.
    rounding: "conv" or "fc", how edgeq's power-of-two mode rounds the layer (as LiteRT does)."""
    a, p = call.arrays, call.params
    stride = -(-channels // 4) * 4
    shift = np.broadcast_to(a["out_shift"].astype(np.int64).reshape(-1), (channels,))
    bias = wrap32(a["bias"].astype(np.int64) + p["input_offset"] * weight_sums)
    if call.requant == "multiplier":
        mult = np.broadcast_to(a["out_mult"].astype(np.int64).reshape(-1), (channels,))
        rows = [bias, mult, np.maximum(shift, 0), np.minimum(shift, 0)]
        mode = "EQ_MVE_MULTIPLIER" if np.any(shift > 0) else "EQ_MVE_MULTIPLIER_RIGHT"
    else:
        if np.any(shift < 1):
            return "a power-of-two rescale by a left shift (the fast path shifts right only)"
        half = np.left_shift(1, shift - 1)
        if rounding == "conv":  # LiteRT's multiplier of 0.5 and rounding divide, folded into one nudge
            pos, neg = half + (shift >= 2), half - 1 + (shift == 1)
        else:  # round half away from zero
            pos, neg = half, half - 1
        rows, mode = [bias, pos, neg, -shift], "EQ_MVE_SHIFT"
    table = np.zeros((4, stride), np.int64)
    for i, row in enumerate(rows):
        table[i, :channels] = row
    return table.astype(np.int32), mode


def pack_weights(w: np.ndarray) -> np.ndarray:
    """[channels][depth] -> per group of four channels, per chunk of 16 depth values, the group's channels
    one after another (eq_mve_gemm.h); same size."""
    channels, depth = w.shape
    full = depth & ~15
    parts = []
    for g in range(0, channels, 4):
        block = w[g:g + 4]
        n = block.shape[0]
        if full:
            parts.append(block[:, :full].reshape(n, full // 16, 16).transpose(1, 0, 2).reshape(-1))
        if depth > full:
            parts.append(block[:, full:].reshape(-1))
    return np.ascontiguousarray(np.concatenate(parts).astype(np.int8))


class ArmMve(Backend):
    name = "arm-mve"
    include = "arm_mve/eq_mve_kernels.h"

    def implement(self, call: KernelCall, target: Target) -> Impl | str:
        if "mve" not in target.features:
            return "the core has no Helium (MVE)"
        method = getattr(self, f"_{call.kernel}", None)
        if method is None:
            return f"no own Helium kernel for {call.op_kind} yet"
        return method(call)

    def _gemm(self, call: KernelCall, w: np.ndarray, rounding: str) -> tuple[list[tuple[str, str]], dict, str] | str:
        p = call.params
        channels, depth = w.shape
        table = rescale_table(call, rounding, channels, w.astype(np.int64).sum(axis=1))
        if isinstance(table, str):
            return table
        rq, mode = table
        fields = [("weights", "$weights"), ("rq", "$rq"), ("depth", str(depth)), ("channels", str(channels)),
                  ("output_offset", str(p["output_offset"])), ("act_min", str(p["act_min"])),
                  ("act_max", str(p["act_max"]))]
        return fields, {"weights": pack_weights(w), "rq": rq.reshape(-1)}, mode

    def _conv_s8(self, call: KernelCall) -> Impl | str:
        p = call.params
        if p["filter_c"] != p["input_c"]:
            return "grouped convolution"
        if p["batches"] != 1:
            return "a batch of several images"
        depth, oc = p["filter_h"] * p["filter_w"] * p["input_c"], p["output_c"]
        gemm = self._gemm(call, call.arrays["weights"].reshape(oc, depth), "conv")
        if isinstance(gemm, str):
            return gemm
        fields, arrays, mode = gemm
        names = ("input_h", "input_w", "input_c", "output_h", "output_w", "filter_h", "filter_w", "stride_h",
                 "stride_w", "dilation_h", "dilation_w", "pad_h", "pad_w")
        struct = CStruct("eq_mve_conv_t", "params", [("gemm", "{ " + ", ".join(f".{k} = {v}" for k, v in fields) + " }"),
                                                     *((k, str(p[k])) for k in names),
                                                     ("pad_value", str(-p["input_offset"]))])
        if (p["filter_h"] == p["filter_w"] == 1 and p["pad_h"] == p["pad_w"] == 0
                and p["dilation_h"] == p["dilation_w"] == 1):
            return Impl(self.name, "eq_mve_conv_1x1_s8", ["&$params", "$in0", "$out0", mode], [struct], arrays)
        return Impl(self.name, "eq_mve_conv_s8", ["&$params", "$in0", "$out0", "$scratch", mode], [struct], arrays,
                    scratch_bytes=2 * depth)

    def _depthwise_conv_s8(self, call: KernelCall) -> Impl | str:
        p = call.params
        if p["input_c"] == 1:
            return self._conv_s8(depthwise_as_conv(call))
        if p["depth_multiplier"] != 1:
            return "a depth multiplier other than 1"
        if p["batches"] != 1:
            return "a batch of several images"
        if p["dilation_h"] != 1 or p["dilation_w"] != 1:
            return "dilation"
        c = p["output_c"]
        w = call.arrays["weights"]  # [1, h, w, channels]
        table = rescale_table(call, "conv", c, w.reshape(-1, c).astype(np.int64).sum(axis=0))
        if isinstance(table, str):
            return table
        rq, mode = table
        names = ("input_h", "input_w", "output_h", "output_w", "filter_h", "filter_w", "stride_h", "stride_w",
                 "pad_h", "pad_w")
        fields = [("weights", "$weights"), ("rq", "$rq"), ("channels", str(c)), *((k, str(p[k])) for k in names),
                  ("pad_value", str(-p["input_offset"])), ("output_offset", str(p["output_offset"])),
                  ("act_min", str(p["act_min"])), ("act_max", str(p["act_max"]))]
        return Impl(self.name, "eq_mve_depthwise_conv_s8", ["&$params", "$in0", "$out0", mode],
                    [CStruct("eq_mve_dw_t", "params", fields)], {"weights": w.reshape(-1), "rq": rq.reshape(-1)})

    def _fully_connected_s8(self, call: KernelCall) -> Impl | str:
        p = call.params
        if p["weights_offset"] != 0:
            return "weights with a zero point"
        depth, units = p["input_depth"], p["output_depth"]
        gemm = self._gemm(call, call.arrays["weights"].reshape(units, depth), "fc")
        if isinstance(gemm, str):
            return gemm
        fields, arrays, mode = gemm
        return Impl(self.name, "eq_mve_fully_connected_s8", ["&$params", str(p["batches"]), "$in0", "$out0", mode],
                    [CStruct("eq_mve_gemm_t", "params", fields)], arrays)

    def write_sources(self, impls: list[Impl], folder: Path) -> dict:
        """The headers (every kernel is inline: the model's own C file compiles them)."""
        if any(impl.backend == self.name for impl in impls):
            shutil.copytree(RUNTIME_DIR, folder / "arm_mve", dirs_exist_ok=True)
        return {"sources": []}
