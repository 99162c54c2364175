"""edgeq's own kernels for RISC-V cores with the vector extension 1.0 (runtime_c/rvv): convolutions (1x1 and
im2col), depthwise convolutions, fully connected layers and ADD, VLEN-agnostic, inlined and specialised per layer
by the compiler. Built here, at build time: weights repacked for unit-stride channel loads, the input offset
folded into the bias, and every channel's requantization as an add and a shift (eq_rvv_common.h). The host
has no vector unit, so the per-kernel tests run these kernels in QEMU (tests/test_riscv_kernels.py)."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import edgeq
from edgeq.codegen.backends import Backend, CStruct, Impl, Target
from edgeq.codegen.backends.own_kernels import (conv_declines, conv_fields, depthwise_declines, folded_bias,
                                                left_shift_declines, shift_nudges)
from edgeq.lowering import KernelCall
from edgeq.lowering.conv import depthwise_as_conv, is_pointwise
from edgeq.lowering.elementwise import same_layout

RUNTIME_DIR = edgeq.ROOT / "runtime_c" / "rvv"
MODES = {"multiplier": "EQ_RVV_MULTIPLIER", "shift": "EQ_RVV_SHIFT"}  # ADD's two arithmetics


@dataclass
class Requant:
    """A layer's requantization as the kernels take it (eq_rvv_common.h): rq [4, channels] int32 (multiplier,
    left shift, nudge e and d), each channel's right shift, and the flags, a C expression."""
    rq: np.ndarray
    shift: np.ndarray
    flags: str

    def arrays(self) -> dict[str, np.ndarray]:
        return {"rq": self.rq.reshape(-1), "shift": self.shift}


def requant_rows(call: KernelCall, rounding: str, channels: int) -> np.ndarray | str:
    """[5, channels] int64: multiplier, left shift, right shift, and what is added before the floor shift for
    accumulators >= 0 and < 0; or why the own kernels cannot requantize call. rounding: "conv" or "fc", how edgeq's
    power-of-two mode rounds the layer (as LiteRT does). Also the scalar kernels' constants (runtime_c/rv32)."""
    a = call.arrays
    shift = np.broadcast_to(a["out_shift"].astype(np.int64).reshape(-1), (channels,))
    if call.requant == "multiplier":
        mult = np.broadcast_to(a["out_mult"].astype(np.int64).reshape(-1), (channels,))
        left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
        half = np.where(right > 0, np.left_shift(1, np.maximum(right - 1, 0)), 0)
        pos, neg = half, np.where(right > 0, half - 1, 0)
    else:
        declined = left_shift_declines(call)
        if declined:
            return declined
        mult, left, right = np.zeros_like(shift), np.zeros_like(shift), shift
        pos, neg = shift_nudges(shift, rounding)
    if np.any(right > 31):
        return "a right shift beyond 31 bits"
    return np.stack([mult, left, right, pos, neg])


def requant(call: KernelCall, rounding: str, channels: int) -> Requant | str:
    """The requantization of call for the vector kernels, or why they cannot do it (see requant_rows)."""
    rows = requant_rows(call, rounding, channels)
    if isinstance(rows, str):
        return rows
    mult, left, right, pos, neg = rows
    # the floor shift of acc + pos (acc >= 0) or acc + neg (acc < 0) is vnclip's rounding shift, which adds half,
    # of acc + e - (acc < 0) * d
    half = np.where(right > 0, np.left_shift(1, np.maximum(right - 1, 0)), 0)
    e, d = pos - half, pos - neg
    flags = ["EQ_RVV_MULTIPLIER" if call.requant == "multiplier" else "EQ_RVV_SHIFT"]
    if np.any(left):
        flags.append("EQ_RVV_LEFT")
    kinds = {(0, 1): "EQ_RVV_NUDGE_SIGN", (1, 2): "EQ_RVV_NUDGE_AWAY", (0, 0): None}
    pairs = set(zip(e.tolist(), d.tolist()))
    kind = kinds.get(pairs.pop(), "EQ_RVV_NUDGE_ROWS") if len(pairs) == 1 else "EQ_RVV_NUDGE_ROWS"
    if kind:
        flags.append(kind)
    return Requant(np.stack([mult, left, e, d]).astype(np.int32), right.astype(np.int16), " | ".join(flags))


# (LMUL of the 32-bit accumulators, output pixels per block): rows * LMUL registers hold the accumulators, and
# the weights of two depth steps (2 * 3/4 LMUL) must fit beside them in the 32 vector registers
GEMM_SHAPES = ((2, 8), (4, 4), (8, 2), (8, 1))
DEFAULT_VLEN = 128  # a board without `vlen` (the code runs at any VLEN; only the choice depends on it)


def gemm_shape(pixels: int, channels: int, depth: int, vlen: int) -> tuple[int, int]:
    """The (LMUL, rows) of a convolution's matrix product: the fewest instructions by a count of eq_rvv_gemm's
    loop (per pair of depth steps and row, two scalar loads and two vwmacc; per pair, the two weight loads and
    widenings and the loop's own five; per strip and row, about 16 to requantize and store) over its blocks of
    pixels and strips of channels. Measured on the RVV board (VLEN 128) with every shape forced on every layer
    (make bench's rvv_shape_table), it picks the fastest shape for all 44 convolutions of the shared int8 models."""
    def cost(shape: tuple[int, int]) -> int:
        lmul, rows = shape
        strips = -(-channels // (vlen // 32 * lmul))
        blocks = -(-pixels // rows)
        return blocks * strips * ((depth + 1) // 2 * (4 * rows + 9) + 16 * rows)
    return min(GEMM_SHAPES, key=cost)


DW_GEOMETRY = ("input_h", "input_w", "output_h", "output_w", "filter_h", "filter_w", "stride_h", "stride_w", "pad_h",
               "pad_w", "input_offset", "output_offset", "act_min", "act_max")


def depthwise_constants(call: KernelCall) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    """A depthwise convolution's weights ([taps][channels], as TFLite keeps them) and folded bias, and its struct's
    channel count and geometry (the own kernels' eq_*_dw_t)."""
    p, c = call.params, call.params["output_c"]
    w = call.arrays["weights"]  # [1, h, w, channels]: already channel-minor per tap
    arrays = {"weights": w.reshape(-1), "bias": folded_bias(call, w.reshape(-1, c).astype(np.int64).sum(axis=0))}
    return arrays, [("channels", str(c)), *((k, str(p[k])) for k in DW_GEOMETRY)]


def _vlen(target: Target) -> int:
    from edgeq.targets.boards import get_board
    return get_board(target.board).vlen or DEFAULT_VLEN


class Rvv(Backend):
    name = "rvv"
    include = "rvv/eq_rvv_kernels.h"

    def implement(self, call: KernelCall, target: Target) -> Impl | str:
        if "rvv" not in target.features:
            return "the core has no vector extension"
        method = getattr(self, f"_{call.kernel}", None)
        if method is None:
            return f"no own RVV kernel for {call.op_kind} yet"
        return method(call, _vlen(target))

    def _gemm(self, call: KernelCall, weights_kc: np.ndarray, rq: Requant, depth: int, channels: int,
              weight_sums: np.ndarray) -> tuple[list[tuple[str, str]], dict[str, np.ndarray]]:
        p = call.params
        arrays = {"weights": np.ascontiguousarray(weights_kc), "bias": folded_bias(call, weight_sums),
                  **rq.arrays()}
        fields = [("weights", "$weights"), ("bias", "$bias"), ("rq", "$rq"), ("shift", "$shift"),
                  ("depth", str(depth)), ("channels", str(channels)), ("output_offset", str(p["output_offset"])),
                  ("act_min", str(p["act_min"])), ("act_max", str(p["act_max"]))]
        return fields, arrays

    def _conv_s8(self, call: KernelCall, vlen: int) -> Impl | str:
        p = call.params
        declined = conv_declines(p)
        if declined:
            return declined
        oc = p["output_c"]
        rq = requant(call, "conv", oc)
        if isinstance(rq, str):
            return rq
        depth = p["filter_h"] * p["filter_w"] * p["input_c"]
        w = call.arrays["weights"].reshape(oc, depth)
        gemm, arrays = self._gemm(call, w.T, rq, depth, oc, w.astype(np.int64).sum(axis=1))
        fields = conv_fields(p, gemm)
        lmul, rows = gemm_shape(p["output_h"] * p["output_w"], oc, depth, vlen)
        return Impl(self.name, "eq_rvv_conv_s8",
                    ["&$params", "$in0", "$out0", "$scratch", "1" if is_pointwise(p) else "0", str(rows), str(lmul),
                     rq.flags],
                    [CStruct("eq_rvv_conv_t", "params", fields)], arrays, scratch_bytes=rows * depth, inline=True)

    def _depthwise_conv_s8(self, call: KernelCall, vlen: int) -> Impl | str:
        p = call.params
        if p["input_c"] == 1:  # one input channel: the convolution it is (kws, person_detect's first layers)
            return self._conv_s8(depthwise_as_conv(call), vlen)
        declined = depthwise_declines(p)
        if declined:
            return declined
        if not -32767 <= p["input_offset"] <= 32768:  # padded taps subtract it as a 16-bit -input_offset
            return "an input offset beyond 16 bits"
        rq = requant(call, "conv", p["output_c"])
        if isinstance(rq, str):
            return rq
        arrays, geometry = depthwise_constants(call)
        fields = [("weights", "$weights"), ("bias", "$bias"), ("rq", "$rq"), ("shift", "$shift"), *geometry]
        return Impl(self.name, "eq_rvv_depthwise_conv_s8", ["&$params", "$in0", "$out0", rq.flags],
                    [CStruct("eq_rvv_dw_t", "params", fields)], {**arrays, **rq.arrays()}, inline=True)

    def _fully_connected_s8(self, call: KernelCall, vlen: int) -> Impl | str:
        p = call.params
        if p["weights_offset"] != 0:
            return "weights with a zero point"
        depth, units = p["input_depth"], p["output_depth"]
        rq = requant(call, "fc", units)
        if isinstance(rq, str):
            return rq
        w = call.arrays["weights"].reshape(units, depth)
        gemm, arrays = self._gemm(call, w, rq, depth, units, w.astype(np.int64).sum(axis=1))
        return Impl(self.name, "eq_rvv_fully_connected_s8",
                    ["&$params", str(p["batches"]), "$in0", "$out0", rq.flags],
                    [CStruct("eq_rvv_gemm_t", "params", gemm)], arrays, inline=True)

    def _add_s8(self, call: KernelCall, vlen: int) -> Impl | str:
        p = call.params
        if not same_layout(p):
            return "broadcasting"
        if call.requant == "shift" and not (p["out_shift"] >= 1 and 0 <= min(p["in0_shift"], p["in1_shift"])
                                            and max(p["in0_shift"], p["in1_shift"]) <= 22):
            return "power-of-two shifts beyond 32-bit lanes (inputs up to 2^22, the sum's right shift >= 1)"
        if call.requant == "multiplier" and max(p["in0_shift"], p["in1_shift"]) > 0:
            return "an input rescale above 1"
        names = ("in0_offset", "in1_offset", "left_shift", "in0_mult", "in0_shift", "in1_mult", "in1_shift",
                 "out_mult", "out_shift", "output_offset", "act_min", "act_max")
        fields = [("size", str(p["d0"] * p["d1"] * p["d2"] * p["d3"])), *((k, str(p[k])) for k in names)]
        return Impl(self.name, "eq_rvv_add_s8", ["&$params", "$in0", "$in1", "$out0", MODES[call.requant]],
                    [CStruct("eq_rvv_add_t", "params", fields)], inline=True)

    def write_sources(self, impls: list[Impl], folder: Path) -> dict:
        """The headers (every kernel is inline: the model's own C file compiles them)."""
        if any(impl.backend == self.name for impl in impls):
            shutil.copytree(RUNTIME_DIR, folder / "rvv", dirs_exist_ok=True)
        return {"sources": []}
