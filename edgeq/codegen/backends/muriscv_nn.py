"""muRISCV-NN (TU Munich), CMSIS-NN's port to RISC-V: what `--kernels cmsis-nn` links on RISC-V boards.

Same API and int8 semantics as CMSIS-NN, so the CMSIS-NN backend's lowering serves it unchanged; what differs is
the library (pinned commit, sources, buffer sizes), the function names (`muriscv_nn_*`), and the functions its own
wrappers pick: a vector build (`-DUSE_VEXT`, on boards with "rvv") has no 3x3 depthwise kernel, and its 1x1 fast
path needs a multiple of four input channels. The vector path's fully connected kernels take no kernel sums.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from edgeq.codegen.backends import CStruct, Impl, Target
from edgeq.codegen.backends.cmsis_nn import CmsisNN
from edgeq.codegen.backends.cmsis_nn_library import KernelLibrary
from edgeq.lowering import KernelCall

MURISCV_NN = KernelLibrary(
    "muRISCV-NN", "https://github.com/tum-ei-eda/muriscv-nn", "4eb6a1f632745b385e415d39e21fd728003de1ac",
    "EDGEQ_MURISCV_NN", "Include/muriscv_nn_functions.h", "muriscv_nn_",
    ("convolve_wrapper_s8_get_buffer_size", "depthwise_conv_wrapper_s8_get_buffer_size",
     "fully_connected_s8_get_buffer_size", "avgpool_s8_get_buffer_size"),
    {"c": ("", ()), "rvv": ("", ("-DUSE_VEXT",))},
    # riscv_vector.h exists only for RISC-V targets; those size functions read USE_PORTABLE_VEXT as USE_VEXT
    host_swap=("muriscv_nn_support_functions.h", "-DUSE_VEXT", "-DUSE_PORTABLE_VEXT"))
CH_IN_BLOCK = 124  # CH_IN_BLOCK_MVE (muriscv_nn_support_functions.h): channels per block of the vector opt kernel
# The build flags muRISCV-NN's own CMake uses for its vector path (-O3; USE_VEXT selects the RVV kernels).
VECTOR_CFLAGS = ["-O3"]
SCALAR_CFLAGS = ["-O3"]
# Include/CMSIS/NN/Include holds its arm_nnfunctions.h, mapping CMSIS-NN's names onto its own.
INCLUDE_DIRS = ["Include", "Include/CMSIS/NN/Include"]


def _own_name(name: str) -> str:
    return "muriscv_nn_" + name.removeprefix("arm_").removeprefix("cmsis_nn_")


class MuriscvNN(CmsisNN):
    library = MURISCV_NN

    def implement(self, call: KernelCall, target: Target) -> Impl | str:
        if target.isa not in MURISCV_NN.variants:
            return f"muRISCV-NN has no {target.isa} code path"
        if target.isa == "rvv" and call.requant == "multiplier" and _left_shift(call):
            # its vector requantization shifts the multiplier left, not the accumulator: it overflows
            return "a rescale with a left shift, which muRISCV-NN's vector path computes as multiplier << shift"
        impl = super().implement(call, target)
        if isinstance(impl, str):
            return impl.replace("CMSIS-NN", "muRISCV-NN")
        structs = [replace(s, ctype=_own_name(s.ctype)) for s in impl.structs]
        return replace(impl, function=_own_name(impl.function), structs=structs, isa=target.isa)

    def _conv_s8(self, call: KernelCall, target: Target) -> Impl | str:
        impl = super()._conv_s8(call, target)
        if isinstance(impl, str):
            return impl
        p = call.params
        # muriscv_nn_convolve_wrapper_s8's choice (its buffer size, already in impl, follows the same rules)
        if (p["pad_w"] == p["pad_h"] == 0 and p["input_c"] % 4 == 0 and p["stride_w"] == p["stride_h"] == 1
                and p["filter_w"] == p["filter_h"] == 1 and p["dilation_w"] == p["dilation_h"] == 1):
            function = "arm_convolve_1x1_s8_fast"
        elif p["input_h"] == 1 and p["output_w"] % 4 == 0 and p["dilation_w"] == 1:
            function = "arm_convolve_1_x_n_s8"
        else:
            function = "arm_convolve_s8"
        args = ["&$ctx", "&$conv", "&$quant", "&$input_dims", "$in0", "&$filter_dims", "$weights", "&$bias_dims",
                "$bias", *(["NULL"] if function == "arm_convolve_s8" else []), "&$output_dims", "$out0"]
        return replace(impl, function=function, args=args)

    def _depthwise_conv_s8(self, call: KernelCall, target: Target) -> Impl | str:
        impl = super()._depthwise_conv_s8(call, target)
        if isinstance(impl, str) or target.isa != "rvv":
            return impl
        p = call.params
        if impl.function == "arm_depthwise_conv_3x3_s8":
            impl = replace(impl, function="arm_depthwise_conv_s8_opt")  # the vector build has no 3x3 kernel
        if (impl.function == "arm_depthwise_conv_s8_opt" and p["output_c"] > CH_IN_BLOCK
                and (p["output_h"] * p["output_w"]) % 4):
            # At 4eb6a1f6 the vector opt kernel's last (< 4) pixels of a channel block after the first read the
            # first block's weights, bias and rescale: wrong outputs. Its generic kernel is exact.
            impl = replace(impl, function="arm_depthwise_conv_s8")
        return impl

    def _fully_connected_s8(self, call: KernelCall, target: Target) -> Impl | str:
        impl = super()._fully_connected_s8(call, target)
        if isinstance(impl, str) or "kernel_sum" not in impl.arrays:
            return impl
        # the vector kernels ignore ctx (muriscv_nn_fully_connected_s8.c): no kernel sums in flash
        arrays = {k: v for k, v in impl.arrays.items() if k != "kernel_sum"}
        structs = [CStruct(s.ctype, s.name, [("buf", "NULL"), ("size", "0")]) if s.name == "ctx" else s
                   for s in impl.structs]
        return replace(impl, arrays=arrays, structs=structs)

    def write_sources(self, impls: list[Impl], folder: Path) -> dict:
        """Not copied: the build points at muRISCV-NN (a local copy, or the pinned commit it fetches)."""
        functions = sorted({impl.function for impl in impls if impl.backend == self.name})
        root = MURISCV_NN.locate()
        vector = any(impl.isa == "rvv" for impl in impls if impl.backend == self.name)
        return {"sources": MURISCV_NN.sources_for(functions, root), "root": str(root), "functions": functions,
                "repository": MURISCV_NN.repository, "commit": MURISCV_NN.commit, "title": MURISCV_NN.title,
                "cmake_name": "muriscv_nn", "include_dirs": INCLUDE_DIRS,
                "defines": ["USE_VEXT"] if vector else [], "cflags": VECTOR_CFLAGS if vector else SCALAR_CFLAGS}


def _left_shift(call: KernelCall) -> bool:
    shifts = [call.arrays["out_shift"]] if "out_shift" in call.arrays else []
    shifts += [call.params[k] for k in ("out_shift", "in0_shift", "in1_shift") if k in call.params]
    return any(bool((np.asarray(v) > 0).any()) for v in shifts)
