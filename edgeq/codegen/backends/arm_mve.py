"""edgeq's own kernels for Cortex-M cores with Helium (runtime_c/arm_mve): convolutions (1x1 in place, others
via two im2col windows) and fully connected layers as VMLADAVA matrix products of four channels by two rows,
depthwise convolutions eight channels and ADD four elements per step, all specialised per layer by the compiler
(every shape, offset and shift reaches the inlined kernel as a constant). Built here, at build time: the weights
repacked in groups of four channels (the products' depth padded with zeros to chunks of 16; depthwise: groups of
eight, the channels padded to a multiple of eight), the input offset folded into the bias, and each channel's
rescale as rows of a table the kernels load four lanes at a time. The host has no Helium, so the per-kernel
tests run these kernels in QEMU (tests/test_mve_kernels.py)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

import edgeq
from edgeq.codegen.backends import Backend, CStruct, Impl, Target
from edgeq.codegen.backends.own_kernels import (conv_declines, conv_fields, depthwise_declines, folded_bias,
                                                left_shift_declines, shift_nudges)
from edgeq.lowering import KernelCall
from edgeq.lowering.conv import depthwise_as_conv, is_pointwise
from edgeq.lowering.elementwise import same_layout

RUNTIME_DIR = edgeq.ROOT / "runtime_c" / "arm_mve"


def rescale_table(call: KernelCall, rounding: str, channels: int, weight_sums: np.ndarray) -> tuple[np.ndarray, str] | str:
    """[3 or 4, channels rounded up to 4] int32 (eq_mve_common.h) and the kernels' mode, or why they cannot take call.
    rounding: "conv" or "fc", how edgeq's power-of-two mode rounds the layer (as LiteRT does)."""
    a = call.arrays
    stride = -(-channels // 4) * 4
    shift = np.broadcast_to(a["out_shift"].astype(np.int64).reshape(-1), (channels,))
    bias = folded_bias(call, weight_sums).astype(np.int64)
    if call.requant == "multiplier":
        mult = np.broadcast_to(a["out_mult"].astype(np.int64).reshape(-1), (channels,))
        rows = [bias, mult, np.minimum(shift, 0)]
        mode = "EQ_MVE_MULTIPLIER_RIGHT" if np.all(shift < 0) else "EQ_MVE_MULTIPLIER"
        if mode == "EQ_MVE_MULTIPLIER":
            rows.append(np.maximum(shift, 0))
    else:
        declined = left_shift_declines(call)
        if declined:
            return declined
        pos, neg = shift_nudges(shift, rounding)
        rows, mode = [bias, pos, -shift, neg], "EQ_MVE_SHIFT"
    table = np.zeros((len(rows), stride), np.int64)
    for i, row in enumerate(rows):
        table[i, :channels] = row
    return table.astype(np.int32), mode


def pack_weights(w: np.ndarray) -> np.ndarray:
    """[channels][depth] -> per group of four channels, per chunk of 16 depth values (the depth padded with zero
    weights to whole chunks), the group's channels one after another (eq_mve_gemm.h)."""
    channels, depth = w.shape
    padded = np.zeros((channels, _chunks(depth)), np.int8)
    padded[:, :depth] = w
    parts = []
    for g in range(0, channels, 4):
        block = padded[g:g + 4]
        parts.append(block.reshape(block.shape[0], -1, 16).transpose(1, 0, 2).reshape(-1))
    return np.ascontiguousarray(np.concatenate(parts))


def _chunks(depth: int) -> int:
    """depth rounded up to whole chunks of 16."""
    return -(-depth // 16) * 16


def pack_depthwise(w: np.ndarray) -> np.ndarray:
    """[taps][channels] -> [channel groups of eight][taps][8], zero beyond the channels (eq_mve_depthwise.h)."""
    taps, channels = w.shape
    padded = np.zeros((taps, -(-channels // 8) * 8), np.int8)
    padded[:, :channels] = w
    return np.ascontiguousarray(padded.reshape(taps, -1, 8).transpose(1, 0, 2).reshape(-1))


def even_odd(table: np.ndarray) -> np.ndarray:
    """Rescale table columns per group of eight channels: the even channels, then the odd ones (the lanes of
    VMULLB and VMULLT), the channels padded to a multiple of eight."""
    rows, stride = table.shape
    padded = np.zeros((rows, -(-stride // 8) * 8), table.dtype)
    padded[:, :stride] = table
    groups = padded.reshape(rows, -1, 4, 2)  # [row][group][pair][even/odd]
    return np.ascontiguousarray(groups.transpose(0, 1, 3, 2).reshape(rows, -1))


class ArmMve(Backend):
    name = "arm-mve"
    include = "arm_mve/eq_mve_kernels.h"

    def implement(self, call: KernelCall, target: Target) -> Impl | str:
        if "mve" not in target.features:
            return "the core has no Helium (MVE)"
        method = getattr(self, f"_{call.kernel}", None)
        if method is None:
            return f"no own Helium kernel for {call.op_kind} yet"
        result = method(call)
        if isinstance(result, Impl):
            result.inline = True  # a function of the layer's own: the whole model's register pressure costs more
        return result

    def _gemm(self, call: KernelCall, w: np.ndarray, rounding: str) -> tuple[list[tuple[str, str]], dict, str] | str:
        p = call.params
        channels, depth = w.shape
        table = rescale_table(call, rounding, channels, w.astype(np.int64).sum(axis=1))
        if isinstance(table, str):
            return table
        rq, mode = table
        fields = [("weights", "$weights"), ("rq", "$rq"), ("depth", str(_chunks(depth))), ("channels", str(channels)),
                  ("output_offset", str(p["output_offset"])), ("act_min", str(p["act_min"])),
                  ("act_max", str(p["act_max"]))]
        return fields, {"weights": pack_weights(w), "rq": rq.reshape(-1)}, mode

    def _conv_s8(self, call: KernelCall) -> Impl | str:
        p = call.params
        declined = conv_declines(p)
        if declined:
            return declined
        depth, oc = p["filter_h"] * p["filter_w"] * p["input_c"], p["output_c"]
        gemm = self._gemm(call, call.arrays["weights"].reshape(oc, depth), "conv")
        if isinstance(gemm, str):
            return gemm
        fields, arrays, mode = gemm
        struct = CStruct("eq_mve_conv_t", "params", conv_fields(p, fields))
        rows = 2 * _chunks(depth)  # two rows of whole chunks
        if is_pointwise(p):
            staged = depth % 16 != 0  # rows in place unless they end inside a chunk
            return Impl(self.name, "eq_mve_conv_1x1_s8", ["&$params", "$in0", "$out0",
                                                          "$scratch" if staged else "NULL", mode],
                        [struct], arrays, scratch_bytes=rows if staged else 0)
        return Impl(self.name, "eq_mve_conv_s8", ["&$params", "$in0", "$out0", "$scratch", mode], [struct], arrays,
                    scratch_bytes=rows)

    def _depthwise_conv_s8(self, call: KernelCall) -> Impl | str:
        p = call.params
        if p["input_c"] == 1:
            return self._conv_s8(depthwise_as_conv(call))
        declined = depthwise_declines(p)
        if declined:
            return declined
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
        row = ((p["output_w"] + 1) // 2 * 2 - 1) * p["stride_w"] + p["filter_w"]  # EQ_MVE_DW_ROW
        staged = p["filter_h"] * row * c
        return Impl(self.name, "eq_mve_depthwise_conv_s8", ["&$params", "$in0", "$out0", "$scratch", mode],
                    [CStruct("eq_mve_dw_t", "params", fields)],
                    {"weights": pack_depthwise(w.reshape(-1, c)), "rq": even_odd(rq).reshape(-1)},
                    scratch_bytes=staged)

    def _fully_connected_s8(self, call: KernelCall) -> Impl | str:
        p = call.params
        if p["weights_offset"] != 0:
            return "weights with a zero point"
        depth, units = p["input_depth"], p["output_depth"]
        gemm = self._gemm(call, call.arrays["weights"].reshape(units, depth), "fc")
        if isinstance(gemm, str):
            return gemm
        fields, arrays, mode = gemm
        staged = _chunks(depth) * min(2, p["batches"]) if depth % 16 else 0
        return Impl(self.name, "eq_mve_fully_connected_s8",
                    ["&$params", str(p["batches"]), str(depth), "$in0", "$out0", "$scratch" if staged else "NULL",
                     mode], [CStruct("eq_mve_gemm_t", "params", fields)], arrays, scratch_bytes=staged)

    def _add_s8(self, call: KernelCall) -> Impl | str:
        p = call.params
        if not same_layout(p):
            return "broadcasting"
        shift = call.requant == "shift"
        if shift and p["out_shift"] < 1:
            return "a power-of-two rescale by a left shift (the fast path shifts right only)"
        if shift and max(p["in0_shift"], p["in1_shift"]) > 22:
            return "inputs aligned by more than 22 bits (the sum would leave 32 bits)"
        size = p["d0"] * p["d1"] * p["d2"] * p["d3"]
        left0, left1 = (p["in0_shift"], p["in1_shift"]) if shift else (p["left_shift"], p["left_shift"])
        fields = [("size", str(size)), ("in0_offset", str(p["in0_offset"] << left0)),
                  ("in1_offset", str(p["in1_offset"] << left1)),
                  *((k, str(p[k])) for k in ("left_shift", "in0_mult", "in0_shift", "in1_mult", "in1_shift", "out_mult",
                                             "out_shift", "output_offset", "act_min", "act_max"))]
        return Impl(self.name, "eq_mve_add_s8", ["&$params", "$in0", "$in1", "$out0",
                                                 "EQ_MVE_SHIFT" if shift else "EQ_MVE_MULTIPLIER"],
                    [CStruct("eq_mve_add_t", "params", fields)])

    def write_sources(self, impls: list[Impl], folder: Path) -> dict:
        """The headers (every kernel is inline: the model's own C file compiles them)."""
        if any(impl.backend == self.name for impl in impls):
            shutil.copytree(RUNTIME_DIR, folder / "arm_mve", dirs_exist_ok=True)
        return {"sources": []}
