"""Arm's CMSIS-NN as a kernel library: plain C, DSP extension (Cortex-M4/M7/M33) or Helium (Cortex-M55).

Each function is chosen here as CMSIS-NN's own wrappers would choose it on the target's code path, so
the layer reports the function it really calls. Keep mode passes TFLite's multipliers, which CMSIS-NN
applies as TFLite Micro does. Power-of-two mode expresses the shift 2^-k as TFLite would, a multiplier
of 2^30 with shift 1-k: CMSIS-NN's two roundings then give exactly what the golden model gives for
convolutions, depthwise and MUL; fully connected layers and ADD round once in that mode, which no
CMSIS-NN multiplier reproduces, so they stay on `ref`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeq.codegen.backends import Backend, CStruct, Impl, Target
from edgeq.codegen.backends import cmsis_nn_library as lib
from edgeq.lowering import KernelCall
from edgeq.lowering.conv import depthwise_as_conv, is_pointwise
from edgeq.lowering.elementwise import same_layout
from edgeq.lowering.fixedpoint import wrap32

# CMSIS-NN's CONVERT_DW_CONV_WITH_ONE_INPUT_CH_AND_OUTPUT_CH_ABOVE_THRESHOLD (arm_nnsupportfunctions.h):
# 8 under Arm Compiler 6, 1 under gcc and clang, which edgeq builds with
DW_ONE_INPUT_CHANNEL_AS_CONV = 1
POT_MULTIPLIER = 1 << 30


def _tile(w: int, h: int) -> str:
    return f"{{ .w = {w}, .h = {h} }}"


def _dims(n: int, h: int, w: int, c: int) -> list[tuple[str, str]]:
    return [("n", str(n)), ("h", str(h)), ("w", str(w)), ("c", str(c))]


def _dims_fields(d: "lib.Dims") -> list[tuple[str, str]]:
    return _dims(d.n, d.h, d.w, d.c)


def _in_dims(p: dict[str, int]) -> "lib.Dims":
    return lib.Dims(p["batches"], p["input_h"], p["input_w"], p["input_c"])


def _out_dims(p: dict[str, int]) -> "lib.Dims":
    return lib.Dims(p["batches"], p["output_h"], p["output_w"], p["output_c"])


def _window(p: dict[str, int]) -> tuple:
    """A convolution's stride, padding, dilation and activation range, as CMSIS-NN's params structs order them."""
    return (lib._Tile(p["stride_w"], p["stride_h"]), lib._Tile(p["pad_w"], p["pad_h"]),
            lib._Tile(p["dilation_w"], p["dilation_h"]), lib._Tile(p["act_min"], p["act_max"]))


def _activation(p: dict[str, int]) -> str:
    return f"{{ .min = {p['act_min']}, .max = {p['act_max']} }}"


def _window_fields(p: dict[str, int]) -> list[tuple[str, str]]:
    """The same four as C initializers."""
    return [("stride", _tile(p["stride_w"], p["stride_h"])), ("padding", _tile(p["pad_w"], p["pad_h"])),
            ("dilation", _tile(p["dilation_w"], p["dilation_h"])),
            ("activation", _activation(p))]


def _rescale(call: KernelCall, channels: int) -> dict[str, np.ndarray] | str:
    """Per-channel multiplier and shift arrays as CMSIS-NN takes them, or why they cannot be."""
    a = call.arrays
    if call.requant == "multiplier":
        return {"out_mult": a["out_mult"], "out_shift": a["out_shift"]}
    k = a["out_shift"]
    if np.any(k < 1):
        return "a power-of-two rescale by a left shift, which CMSIS-NN does not saturate as edgeq does"
    return {"out_mult": np.full(channels, POT_MULTIPLIER, np.int32), "out_shift": (1 - k).astype(np.int32)}


class CmsisNN(Backend):
    name = "cmsis-nn"
    include = "arm_nnfunctions.h"
    library = lib.CMSIS_NN

    def _port(self, target: Target) -> "CmsisNN":
        """On RISC-V, `cmsis-nn` is muRISCV-NN, CMSIS-NN's port (backends/muriscv_nn.py)."""
        if "riscv" in target.features and type(self) is CmsisNN:
            from edgeq.codegen.backends.muriscv_nn import MuriscvNN
            return MuriscvNN()
        return self

    def require(self, target: Target) -> None:
        self._port(target).library.locate()

    def implement(self, call: KernelCall, target: Target) -> Impl | str:
        if self._port(target) is not self:
            return self._port(target).implement(call, target)
        method = getattr(self, f"_{call.kernel}", None)
        if method is None:
            return f"no CMSIS-NN kernel for {call.op_kind}"
        return method(call, target)

    # --- convolutions -----------------------------------------------------------------------------

    def _conv_s8(self, call: KernelCall, target: Target) -> Impl | str:
        p = call.params
        if p["filter_c"] != p["input_c"]:
            return "grouped convolution"
        rescale = _rescale(call, p["output_c"])
        if isinstance(rescale, str):
            return rescale
        stride_w, stride_h = p["stride_w"], p["stride_h"]
        if is_pointwise(p):
            function = "arm_convolve_1x1_s8_fast" if stride_w == stride_h == 1 else "arm_convolve_1x1_s8"
        elif (p["input_h"] == 1 and p["dilation_w"] == 1 and p["filter_h"] == 1
              and (stride_w * p["input_c"]) % 4 == 0):
            function = "arm_convolve_1_x_n_s8"
        else:
            function = "arm_convolve_s8"
        conv = lib.ConvParams(p["input_offset"], p["output_offset"], *_window(p))
        filter_dims = lib.Dims(p["output_c"], p["filter_h"], p["filter_w"], p["filter_c"])
        scratch = self.library.buffer_size("arm_convolve_wrapper_s8", target.isa, conv, _in_dims(p), filter_dims,
                                           _out_dims(p))
        structs = [
            CStruct("cmsis_nn_conv_params", "conv", [
                ("input_offset", str(p["input_offset"])), ("output_offset", str(p["output_offset"])),
                *_window_fields(p)]),
            *self._weights_structs(call, filter_dims, rescale, scratch),
        ]
        args = ["&$ctx", "&$conv", "&$quant", "&$input_dims", "$in0", "&$filter_dims", "$weights", "&$bias_dims",
                "$bias", *(["NULL"] if function == "arm_convolve_s8" else []), "&$output_dims", "$out0"]
        return Impl(self.name, function, args, structs, {"weights": call.arrays["weights"],
                                                         "bias": call.arrays["bias"], **rescale}, scratch)

    def _weights_structs(self, call: KernelCall, filter_dims, rescale, scratch: int) -> list[CStruct]:
        p = call.params
        return [
            CStruct("cmsis_nn_per_channel_quant_params", "quant",
                    [("multiplier", "(int32_t *)$out_mult"), ("shift", "(int32_t *)$out_shift")]),
            CStruct("cmsis_nn_context", "ctx", [("buf", "$scratch" if scratch else "NULL"), ("size", str(scratch))]),
            CStruct("cmsis_nn_dims", "input_dims", _dims_fields(_in_dims(p))),
            CStruct("cmsis_nn_dims", "filter_dims", _dims_fields(filter_dims)),
            CStruct("cmsis_nn_dims", "bias_dims", _dims(1, 1, 1, p["output_c"])),
            CStruct("cmsis_nn_dims", "output_dims", _dims_fields(_out_dims(p))),
        ]

    def _depthwise_conv_s8(self, call: KernelCall, target: Target) -> Impl | str:
        p = call.params
        rescale = _rescale(call, p["output_c"])
        if isinstance(rescale, str):
            return rescale
        mult = p["depth_multiplier"]
        dilated = p["dilation_w"] != 1 or p["dilation_h"] != 1
        if target.isa == "mve" and p["input_c"] == 1 and p["output_c"] > DW_ONE_INPUT_CHANNEL_AS_CONV:
            return self._conv_s8(depthwise_as_conv(call), target)
        if mult == 1 and p["batches"] == 1 and not dilated:
            three = p["filter_w"] == p["filter_h"] == 3 and p["pad_h"] <= 1 and p["pad_w"] <= 1
            function = "arm_depthwise_conv_3x3_s8" if three and target.isa != "mve" else "arm_depthwise_conv_s8_opt"
        else:
            function = "arm_depthwise_conv_s8"
        dw = lib.DwConvParams(p["input_offset"], p["output_offset"], mult, *_window(p))
        filter_dims = lib.Dims(1, p["filter_h"], p["filter_w"], p["output_c"])
        scratch = self.library.buffer_size("arm_depthwise_conv_wrapper_s8", target.isa, dw, _in_dims(p), filter_dims,
                                           _out_dims(p))
        structs = [
            CStruct("cmsis_nn_dw_conv_params", "dw_conv", [
                ("input_offset", str(p["input_offset"])), ("output_offset", str(p["output_offset"])),
                ("ch_mult", str(mult)), *_window_fields(p)]),
            *self._weights_structs(call, filter_dims, rescale, scratch),
        ]
        args = ["&$ctx", "&$dw_conv", "&$quant", "&$input_dims", "$in0", "&$filter_dims", "$weights",
                "&$bias_dims", "$bias", "&$output_dims", "$out0"]
        return Impl(self.name, function, args, structs, {"weights": call.arrays["weights"],
                                                         "bias": call.arrays["bias"], **rescale}, scratch)

    def _fully_connected_s8(self, call: KernelCall, target: Target) -> Impl | str:
        p, a = call.params, call.arrays
        if call.requant == "shift":
            return "power-of-two fully connected layers round once, CMSIS-NN's requantization twice"
        per_tensor = bool(np.all(a["out_mult"] == a["out_mult"][0]) and np.all(a["out_shift"] == a["out_shift"][0]))
        depth, units = p["input_depth"], p["output_depth"]
        filter_dims = lib.Dims(depth, 1, 1, units)
        size = self.library.buffer_size("arm_fully_connected_s8", target.isa, filter_dims)
        arrays = {"weights": a["weights"], "bias": a["bias"]}
        ctx = [("buf", "NULL"), ("size", "0")]
        if size:  # Helium: the kernel sums, bias + input_offset * (row sum + depth * filter_offset), at build time
            sums = a["weights"].astype(np.int64).sum(axis=1) + depth * p["weights_offset"]
            arrays["kernel_sum"] = wrap32(a["bias"].astype(np.int64) + p["input_offset"] * sums).astype(np.int32)
            assert arrays["kernel_sum"].nbytes == size, (arrays["kernel_sum"].nbytes, size)
            ctx = [("buf", "(void *)$kernel_sum"), ("size", str(size))]
        if per_tensor:
            function, quant_type = "arm_fully_connected_s8", "cmsis_nn_per_tensor_quant_params"
            quant = [("multiplier", str(int(a["out_mult"][0]))), ("shift", str(int(a["out_shift"][0])))]
        else:
            function, quant_type = "arm_fully_connected_per_channel_s8", "cmsis_nn_per_channel_quant_params"
            arrays.update(out_mult=a["out_mult"], out_shift=a["out_shift"])
            quant = [("multiplier", "(int32_t *)$out_mult"), ("shift", "(int32_t *)$out_shift")]
        structs = [
            CStruct("cmsis_nn_fc_params", "fc", [
                ("input_offset", str(p["input_offset"])), ("filter_offset", str(p["weights_offset"])),
                ("output_offset", str(p["output_offset"])),
                ("activation", _activation(p))]),
            CStruct(quant_type, "quant", quant),
            CStruct("cmsis_nn_context", "ctx", ctx),
            CStruct("cmsis_nn_dims", "input_dims", _dims(p["batches"], 1, 1, depth)),
            CStruct("cmsis_nn_dims", "filter_dims", _dims(depth, 1, 1, units)),
            CStruct("cmsis_nn_dims", "bias_dims", _dims(1, 1, 1, units)),
            CStruct("cmsis_nn_dims", "output_dims", _dims(p["batches"], 1, 1, units)),
        ]
        args = ["&$ctx", "&$fc", "&$quant", "&$input_dims", "$in0", "&$filter_dims", "$weights", "&$bias_dims",
                "$bias", "&$output_dims", "$out0"]
        return Impl(self.name, function, args, structs, arrays, 0)

    # --- pooling, element-wise, softmax ---------------------------------------------------------------

    def _pool(self, call: KernelCall, target: Target, function: str, scratch: int) -> Impl:
        p = call.params
        structs = [
            CStruct("cmsis_nn_pool_params", "pool", [
                ("stride", _tile(p["stride_w"], p["stride_h"])), ("padding", _tile(p["pad_w"], p["pad_h"])),
                ("activation", _activation(p))]),
            CStruct("cmsis_nn_context", "ctx", [("buf", "$scratch" if scratch else "NULL"), ("size", str(scratch))]),
            CStruct("cmsis_nn_dims", "input_dims", _dims(p["batches"], p["input_h"], p["input_w"], p["channels"])),
            CStruct("cmsis_nn_dims", "filter_dims", _dims(1, p["filter_h"], p["filter_w"], 1)),
            CStruct("cmsis_nn_dims", "output_dims", _dims(p["batches"], p["output_h"], p["output_w"], p["channels"])),
        ]
        return Impl(self.name, function, ["&$ctx", "&$pool", "&$input_dims", "$in0", "&$filter_dims",
                                          "&$output_dims", "$out0"], structs, {}, scratch)

    def _avg_pool_s8(self, call: KernelCall, target: Target) -> Impl | str:
        p = call.params
        if p["batches"] != 1:
            return "batched average pooling"
        return self._pool(call, target, "arm_avgpool_s8",
                          self.library.buffer_size("arm_avgpool_s8", target.isa, p["output_w"], p["channels"]))

    def _max_pool_s8(self, call: KernelCall, target: Target) -> Impl | str:
        return self._pool(call, target, "arm_max_pool_s8", 0)

    def _add_s8(self, call: KernelCall, target: Target) -> Impl | str:
        p = call.params
        if call.requant == "shift":
            return "power-of-two ADD rounds once, CMSIS-NN's ADD in several steps"
        if not same_layout(p):
            return "broadcasting"
        size = p["d0"] * p["d1"] * p["d2"] * p["d3"]
        args = ["$in0", "$in1", *(str(p[k]) for k in ("in0_offset", "in0_mult", "in0_shift", "in1_offset", "in1_mult",
                                                      "in1_shift", "left_shift")),
                "$out0", *(str(p[k]) for k in ("output_offset", "out_mult", "out_shift", "act_min", "act_max")),
                str(size)]
        return Impl(self.name, "arm_elementwise_add_s8", args)

    def _mul_s8(self, call: KernelCall, target: Target) -> Impl | str:
        p = call.params
        if not same_layout(p):
            return "broadcasting"
        mult, shift = p["out_mult"], p["out_shift"]
        if call.requant == "shift":
            if shift < 1:
                return "a power-of-two rescale by a left shift, which CMSIS-NN does not saturate as edgeq does"
            mult, shift = POT_MULTIPLIER, 1 - shift
        size = p["d0"] * p["d1"] * p["d2"] * p["d3"]
        args = ["$in0", "$in1", str(p["in0_offset"]), str(p["in1_offset"]), "$out0", str(p["output_offset"]),
                str(mult), str(shift), str(p["act_min"]), str(p["act_max"]), str(size)]
        return Impl(self.name, "arm_elementwise_mul_s8", args)

    def _softmax_s8(self, call: KernelCall, target: Target) -> Impl | str:
        p = call.params
        args = ["$in0", str(p["rows"]), str(p["depth"]), str(p["input_multiplier"]), str(p["input_left_shift"]),
                str(p["diff_min"]), "$out0"]
        return Impl(self.name, "arm_softmax_s8", args, returns_status=False)

    def write_sources(self, impls: list[Impl], folder: Path) -> dict:
        """CMSIS-NN is not copied: the build points at it (a local copy, or the pinned commit it fetches)."""
        functions = sorted({impl.function for impl in impls if impl.backend == self.name})
        if type(self) is CmsisNN and any(f.startswith("muriscv_nn_") for f in functions):
            from edgeq.codegen.backends.muriscv_nn import MuriscvNN
            return MuriscvNN().write_sources(impls, folder)
        root = self.library.locate()
        return {"sources": self.library.sources_for(functions, root), "root": str(root), "functions": functions,
                "repository": self.library.repository, "commit": self.library.commit}
