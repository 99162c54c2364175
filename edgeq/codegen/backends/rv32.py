"""edgeq's own scalar kernels for RV32IM cores (runtime_c/rv32): convolutions (1x1 in place, others through
im2col), depthwise convolutions and fully connected layers, inlined and specialised per layer by the compiler.
Built here, at build time: weights repacked in blocks of four output channels, the input offset folded into the
bias, and every channel's requantization constants (rvv.requant_rows, shared with the vector kernels). On the
scalar RISC-V boards `auto` measures them against muRISCV-NN's scalar kernels layer by layer."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

import edgeq
from edgeq.codegen.backends import Backend, CStruct, Impl, Target
from edgeq.codegen.backends.own_kernels import conv_declines, conv_fields, depthwise_declines, folded_bias
from edgeq.codegen.backends.rvv import depthwise_constants, requant_rows
from edgeq.lowering import KernelCall
from edgeq.lowering.conv import depthwise_as_conv, is_pointwise

RUNTIME_DIR = edgeq.ROOT / "runtime_c" / "rv32"
BLOCK = 4  # output pixels and channels per block (EQ_RV32_BLOCK)
MODES = {"multiplier": "EQ_RV32_MULTIPLIER", "shift": "EQ_RV32_SHIFT"}


def _constants(rows: np.ndarray) -> np.ndarray:
    """rvv.requant_rows' [5, channels] -> eq_rv32_common.h's [channels][6] int32: multiplier, left shift, right
    shift, its mask, the addend for acc >= 0, and its difference to the addend for acc < 0."""
    mult, left, right, pos, neg = rows
    return np.stack([mult, left, right, (1 << right) - 1, pos, pos - neg], axis=1).astype(np.int32)


def _padded(a: np.ndarray, n: int) -> np.ndarray:
    """a's last axis padded with zeros to n."""
    return np.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, n - a.shape[-1])])


class Rv32(Backend):
    name = "rv32"
    include = "rv32/eq_rv32_kernels.h"

    def implement(self, call: KernelCall, target: Target) -> Impl | str:
        if "riscv" not in target.features:
            return "not a RISC-V core"
        method = getattr(self, f"_{call.kernel}", None)
        if method is None:
            return f"no own RV32 kernel for {call.op_kind} yet"
        return method(call)

    def _gemm(self, call: KernelCall, weights: np.ndarray, rounding: str) -> tuple[list, dict] | str:
        """weights [channels, depth] -> the struct's fields and arrays, in blocks of four channels."""
        p = call.params
        channels, depth = weights.shape
        rq = requant_rows(call, rounding, channels)
        if isinstance(rq, str):
            return rq
        padded = -(-channels // BLOCK) * BLOCK
        w = _padded(weights.T, padded).reshape(depth, padded // BLOCK, BLOCK).transpose(1, 0, 2)
        arrays = {"weights": np.ascontiguousarray(w).reshape(-1),
                  "bias": _padded(folded_bias(call, weights.astype(np.int64).sum(axis=1)), padded),
                  "rq": _constants(_padded(rq, padded)).reshape(-1)}
        fields = [("weights", "$weights"), ("bias", "$bias"), ("rq", "$rq"), ("depth", str(depth)),
                  ("channels", str(channels)), ("output_offset", str(p["output_offset"])),
                  ("act_min", str(p["act_min"])), ("act_max", str(p["act_max"]))]
        return fields, arrays

    def _conv_s8(self, call: KernelCall) -> Impl | str:
        p = call.params
        declined = conv_declines(p)
        if declined:
            return declined
        depth = p["filter_h"] * p["filter_w"] * p["input_c"]
        gemm = self._gemm(call, call.arrays["weights"].reshape(p["output_c"], depth), "conv")
        if isinstance(gemm, str):
            return gemm
        fields, arrays = gemm
        direct = is_pointwise(p) and p["stride_h"] == p["stride_w"] == 1  # pixels read in place
        return Impl(self.name, "eq_rv32_conv_s8",
                    ["&$params", "$in0", "$out0", "$scratch" if not direct else "NULL", "1" if direct else "0",
                     MODES[call.requant]],
                    [CStruct("eq_rv32_conv_t", "params", conv_fields(p, fields))], arrays,
                    scratch_bytes=0 if direct else BLOCK * depth, inline=True)

    def _depthwise_conv_s8(self, call: KernelCall) -> Impl | str:
        p = call.params
        if p["input_c"] == 1:  # one input channel: the convolution it is
            return self._conv_s8(depthwise_as_conv(call))
        declined = depthwise_declines(p)
        if declined:
            return declined
        rq = requant_rows(call, "conv", p["output_c"])
        if isinstance(rq, str):
            return rq
        arrays, geometry = depthwise_constants(call)
        fields = [("weights", "$weights"), ("bias", "$bias"), ("rq", "$rq"), *geometry]
        return Impl(self.name, "eq_rv32_depthwise_conv_s8", ["&$params", "$in0", "$out0", MODES[call.requant]],
                    [CStruct("eq_rv32_dw_t", "params", fields)], {**arrays, "rq": _constants(rq).reshape(-1)},
                    inline=True)

    def _fully_connected_s8(self, call: KernelCall) -> Impl | str:
        p = call.params
        if p["weights_offset"] != 0:
            return "weights with a zero point"
        units, depth = p["output_depth"], p["input_depth"]
        gemm = self._gemm(call, call.arrays["weights"].reshape(units, depth), "fc")
        if isinstance(gemm, str):
            return gemm
        fields, arrays = gemm
        return Impl(self.name, "eq_rv32_fully_connected_s8",
                    ["&$params", str(p["batches"]), "$in0", "$out0", MODES[call.requant]],
                    [CStruct("eq_rv32_gemm_t", "params", fields)], arrays, inline=True)

    def write_sources(self, impls: list[Impl], folder: Path) -> dict:
        """The headers (every kernel is inline: the model's own C file compiles them)."""
        if any(impl.backend == self.name for impl in impls):
            shutil.copytree(RUNTIME_DIR, folder / "rv32", dirs_exist_ok=True)
        return {"sources": []}
