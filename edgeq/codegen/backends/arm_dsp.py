"""edgeq's own kernels for Cortex-M cores with the DSP extension (runtime_c/arm_dsp): convolutions and fully
connected layers as SXTB16/SMLAD matrix products, depthwise layers four channels per pass, ADD/SUB through
per-input tables, specialised per layer by the compiler (every shape, offset and shift reaches the inlined
kernel as a constant). Here, at build time: the input offset folded into the bias, weights grouped in the
order the loops load them, dead channels (all-zero weights) left out, and each rescale turned into the one
sum and one shift the kernels compute. On the host the same source runs with plain-C twins of the
instructions, which is how the per-kernel tests check it against the golden model."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import edgeq
from edgeq.codegen.backends import Backend, CStruct, Impl, Target
from edgeq.codegen.backends.own_kernels import (conv_declines, conv_fields, folded_bias, left_shift_declines,
                                                shift_nudges)
from edgeq.lowering import KernelCall, run_kernel
from edgeq.lowering.conv import depthwise_as_conv, is_pointwise
from edgeq.lowering.elementwise import same_layout
from edgeq.lowering.fixedpoint import (multiply_by_quantized_multiplier,
                                      multiply_by_quantized_multiplier_smaller_than_one_exp, wrap32)

RUNTIME_DIR = edgeq.ROOT / "runtime_c" / "arm_dsp"
MODES = {("shift", "conv"): "EQ_DSP_SHIFT_AS_CONV", ("shift", "fc"): "EQ_DSP_SHIFT_AS_FC"}


@dataclass
class _Sums:
    """What a layer's rescale may rely on of the sums it rescales, per channel: the bias (a dead channel's whole
    sum), a bound on |sum|, and which channels are dead (all their weights zero)."""
    bias: np.ndarray
    bound: np.ndarray
    dead: np.ndarray

    @staticmethod
    def of(bias: np.ndarray, weights: np.ndarray) -> "_Sums":
        """A product's accumulators from int8 inputs: |acc| <= |bias| + 128 * sum|w|."""
        w = np.abs(weights.astype(np.int64))
        return _Sums(bias, np.abs(bias.astype(np.int64)) + 128 * w.sum(axis=1), ~np.any(weights, axis=1))


def _fused_rescale(call: KernelCall, sums: _Sums, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per channel the multiplier and the right shift r (2..22) as EQ_DSP_MULTIPLIER_FUSED takes them, or None.
    A channel outside that range gets multiplier 0, which makes its output a constant, where that is exact:
    TFLite's own when its weights are all zero (a dead channel: the accumulator is its bias), or the offset when
    it is rescaled by more than 2^-22 and no sum reaches a step (sums.bound < 2^(r-1))."""
    if call.requant != "multiplier":
        return None
    mult, r = call.arrays["out_mult"][keep].astype(np.int64), -call.arrays["out_shift"][keep].astype(np.int64)
    constant = np.zeros(len(r), np.int64)
    dead = sums.dead & ((r > 22) | (r < 2))
    constant[dead] = multiply_by_quantized_multiplier(sums.bias[dead].astype(np.int32), mult[dead].astype(np.int32),
                                                      -r[dead].astype(np.int32))
    vanishing = dead | ((r > 22) & (sums.bound < (1 << np.minimum(r - 1, 62)) - 1))
    mult, r = np.where(vanishing, 0, mult), np.where(vanishing, 2, r)
    if np.any((r < 2) | (r > 22)):
        return None
    level = np.clip(call.params["output_offset"] + constant, -1024, 1024)  # the clamp to int8 follows
    k = (1 << (r - 2)) + level * (1 << (r - 1))  # m = 0, r = 2: k >> 1 is the output
    return np.stack([mult, k], axis=1).reshape(-1).astype(np.int32), (r - 1).astype(np.int32)


def _shift_fused(call: KernelCall, kind: str, sums: _Sums, keep: np.ndarray) -> dict[str, int | np.ndarray] | None:
    """A power-of-two layer as EQ_DSP_SHIFT_FUSED takes it ((acc + add + (acc >> 31) * sign_step) >> k), or None
    when its channels' nudges drop by different steps for negative accumulators or a sum could overflow."""
    if call.requant != "shift":
        return None
    k = call.arrays["out_shift"][keep].astype(np.int64)
    if np.any(k < 1):
        return None
    pos, neg = shift_nudges(k, kind)
    add = pos.astype(np.int64) + call.params["output_offset"] * (1 << k)
    step = np.unique(pos - neg)
    if len(step) != 1 or np.any(sums.bound + np.abs(add) + 2 >= 1 << 31):
        return None
    if len(np.unique(k)) == 1:  # per tensor, as power-of-two graphs are: literals in the struct, no tables
        return {"add": int(add[0]), "rshift": int(k[0]), "sign_step": int(step[0])}
    return {"out_mult": add.astype(np.int32), "out_shift": k.astype(np.int8), "sign_step": int(step[0])}


def _rescale(call: KernelCall, kind: str, sums: _Sums, keep: np.ndarray) -> tuple[str, str, dict[str, np.ndarray]]:
    """The kernel's requantization mode (a compile-time constant of the call), the eq_dsp_rescale_t initializer
    and its arrays, for the channels in keep. EQ_DSP_MULTIPLIER_FUSED: per channel the multiplier and
    k = 2^(r-2) + output_offset * 2^(r-1), and r - 1, for the rescale by 2^-r (eq_dsp_fused); literals when
    every channel shares them."""
    a, p = call.arrays, call.params
    fields = {"output_offset": p["output_offset"], "act_min": p["act_min"], "act_max": p["act_max"]}
    fused, by_shift = _fused_rescale(call, sums, keep), _shift_fused(call, kind, sums, keep)
    if fused is not None:
        mode = "EQ_DSP_MULTIPLIER_FUSED"
        pairs = fused[0].reshape(-1, 2)
        if len(np.unique(pairs, axis=0)) == 1 and len(np.unique(fused[1])) == 1:
            arrays = {}
            fields.update(multiplier=int(pairs[0, 0]), add=int(pairs[0, 1]), rshift=int(fused[1][0]))
        else:
            arrays = {"out_mult": fused[0], "out_shift": fused[1].astype(np.int8)}
    elif by_shift is not None:
        mode = "EQ_DSP_SHIFT_FUSED"
        arrays = {k: v for k, v in by_shift.items() if isinstance(v, np.ndarray)}
        fields.update({k: v for k, v in by_shift.items() if not isinstance(v, np.ndarray)})
    else:
        shift = a["out_shift"][keep].astype(np.int8)  # TFLite's shifts and power-of-two ones all lie in -31..31
        if call.requant == "multiplier":
            mode = "EQ_DSP_MULTIPLIER_RIGHT" if np.all(shift <= 0) else "EQ_DSP_MULTIPLIER"
            arrays = {"out_mult": a["out_mult"][keep], "out_shift": shift}
        else:
            mode, arrays = MODES[("shift", kind)], {"out_shift": shift}
    return mode, _rescale_init(arrays, fields), arrays


def _rescale_init(arrays: dict[str, np.ndarray], fields: dict[str, int]) -> str:
    """An eq_dsp_rescale_t initializer: its tables (where arrays has them) and scalar fields."""
    pointers = {"mult": "$out_mult" if "out_mult" in arrays else "NULL",
                "shift": "$out_shift" if "out_shift" in arrays else "NULL"}
    return "{ " + ", ".join(f".{k} = {v}" for k, v in {**pointers, **fields}.items()) + " }"


def _dead_channel_outputs(call: KernelCall, kind: str) -> np.ndarray:
    """Every output channel's value for an all-zero input, from the golden model: a dead channel's constant."""
    p = call.params
    if kind == "fc":
        x, y = (1, p["input_depth"]), (1, p["output_depth"])
        call = KernelCall(call.layer, call.kernel, call.inputs, call.outputs, {**p, "batches": 1}, call.arrays,
                          requant=call.requant)
    else:
        x, y = (p["batches"], p["input_h"], p["input_w"], p["input_c"]), \
               (p["batches"], p["output_h"], p["output_w"], p["output_c"])
    zero = np.full(x, -p["input_offset"], np.int8)  # the input's zero point: the folded offset makes it 0
    return run_kernel(call, [zero], y).reshape(-1, y[-1])[0]


def _gemm(call: KernelCall, depth: int, channels: int, kind: str) -> tuple[str, list[tuple[str, str]], dict[str, np.ndarray]]:
    """The requantization mode, the eq_dsp_gemm_t initializer and its arrays: bias with input_offset * (the
    channel's weight sum); dead channels (all-zero weights) left out, their constants in the fill row."""
    weights = call.arrays["weights"].reshape(channels, depth)
    live = np.flatnonzero(np.any(weights, axis=1))
    if len(live) == channels:
        live = np.arange(channels)
    bias = folded_bias(call, weights.sum(axis=1))[live]
    mode, rescale, rescale_arrays = _rescale(call, kind, _Sums.of(bias, weights[live]), live)
    arrays = {"weights": _grouped(weights[live]), "bias": bias, **rescale_arrays}
    dead = len(live) < channels
    if dead:
        arrays["live"] = live.astype(np.uint16)
        arrays["fill"] = _dead_channel_outputs(call, kind).astype(np.int8)
    fields = [("weights", "$weights"), ("bias", "$bias"), ("rq", rescale),
              ("live", "$live" if dead else "NULL"), ("fill", "$fill" if dead else "NULL"),
              ("depth", str(depth)), ("channels", str(len(live))), ("out_channels", str(channels))]
    return mode, fields, arrays


def _grouped(weights: np.ndarray) -> np.ndarray:
    """[channels][depth] int8 in the order eq_dsp_gemm.h reads them: channels in groups of 4 (then 2, then 1);
    per group, each four-deep chunk's words of its channels side by side, then their depth % 4 tails, padded
    to whole words."""
    channels, depth = weights.shape
    body, out, c = depth & ~3, [], 0
    while c < channels:
        n = 4 if channels - c >= 4 else 2 if channels - c >= 2 else 1
        group = weights[c:c + n]
        out.append(group[:, :body].reshape(n, body // 4, 4).transpose(1, 0, 2).reshape(-1))
        tails = group[:, body:].reshape(-1)
        out += [tails, np.zeros(-len(tails) % 4, np.int8)]
        c += n
    return np.concatenate(out).astype(np.int8)


def _split_quads(weights: np.ndarray) -> np.ndarray:
    """[channels][taps] int8 -> per group of four channels and per tap the int16 pairs (w0, w2), (w1, w3) as
    the words eq_dsp_depthwise4_s8 multiplies halfword by halfword (little-endian: low half first)."""
    channels, taps = weights.shape
    q = weights.astype(np.int16).reshape(channels // 4, 4, taps).transpose(0, 2, 1)  # [group][tap][4]
    pairs = q[:, :, [0, 2, 1, 3]].astype(np.uint16).astype(np.uint32)
    return (pairs[:, :, 0::2] | (pairs[:, :, 1::2] << 16)).reshape(-1).astype(np.uint32).view(np.int32)


def _unpacked_rows(depth: int) -> int:
    """EQ_DSP_GEMM_SCRATCH: two rows of depth int8 sign-extended to int16 (the depth % 4 tail stays int8)."""
    return 4 * (depth & ~3)


class ArmDsp(Backend):
    name = "arm-dsp"
    include = "arm_dsp/eq_dsp_kernels.h"

    def implement(self, call: KernelCall, target: Target) -> Impl | str:
        if "dsp" not in target.features and not target.host:
            return "the core has no DSP extension"
        method = getattr(self, f"_{call.kernel}", None)
        if method is None:
            return f"no own DSP kernel for {call.op_kind} yet"
        result = ("out_shift" in call.arrays and left_shift_declines(call)) or method(call)
        if isinstance(result, Impl):
            result.inline = True
        return result

    def _conv_s8(self, call: KernelCall) -> Impl | str:
        p = call.params
        declined = conv_declines(p)
        if declined:
            return declined
        if not np.any(call.arrays["weights"]):
            return "every weight is zero"
        depth = p["filter_h"] * p["filter_w"] * p["input_c"]
        mode, gemm, arrays = _gemm(call, depth, p["output_c"], "conv")
        fields = conv_fields(p, gemm)
        function, scratch = ("eq_dsp_conv_1x1_s8", _unpacked_rows(depth)) if is_pointwise(p) else \
            ("eq_dsp_conv_s8", _unpacked_rows(depth) + 2 * depth)
        return Impl(self.name, function, ["&$params", "$in0", "$out0", "$scratch" if scratch else "NULL", mode],
                    [CStruct("eq_dsp_conv_t", "params", fields)], arrays, scratch_bytes=scratch)

    def _depthwise_conv_s8(self, call: KernelCall) -> Impl | str:
        p, a = call.params, call.arrays
        if p["input_c"] == 1:
            return self._conv_s8(depthwise_as_conv(call))
        if p["batches"] != 1:
            return "a batch of several images"
        channels = p["output_c"]
        weights = np.ascontiguousarray(a["weights"].reshape(-1, channels).T)  # [h*w, oc] -> [oc, h*w]
        bias = folded_bias(call, weights.sum(axis=1))
        mode, rescale, rescale_arrays = _rescale(call, "conv", _Sums.of(bias, weights), np.arange(channels))
        arrays = {"weights": weights, "bias": bias, **rescale_arrays}
        names = ("input_h", "input_w", "input_c", "output_h", "output_w", "depth_multiplier", "filter_h",
                 "filter_w", "stride_h", "stride_w", "dilation_h", "dilation_w", "pad_h", "pad_w")
        fields = [("weights", "$weights"), ("bias", "$bias"), ("rq", rescale),
                  ("channels", str(channels)), *((k, str(p[k])) for k in names),
                  ("pad_value", str(-p["input_offset"]))]
        struct = [CStruct("eq_dsp_depthwise_t", "params", fields)]
        if p["depth_multiplier"] == 1 and channels % 4 == 0:  # the split weights alone (border pixels too)
            arrays["split_weights"] = _split_quads(arrays.pop("weights"))
            struct[0].fields[0] = ("weights", "NULL")
            wide = (p["output_w"] - 1) * p["stride_w"] + (p["filter_w"] - 1) * p["dilation_w"] + 1  # padded rows
            return Impl(self.name, "eq_dsp_depthwise4_s8",
                        ["&$params", "(const uint32_t *)$split_weights", "$in0", "$out0", "$scratch", mode], struct,
                        arrays, scratch_bytes=p["filter_h"] * wide * p["input_c"])
        return Impl(self.name, "eq_dsp_depthwise_s8", ["&$params", "$in0", "$out0", mode], struct, arrays)

    def _fully_connected_s8(self, call: KernelCall) -> Impl | str:
        p = call.params
        if p["weights_offset"] != 0:
            return "weights with a zero point"
        if not np.any(call.arrays["weights"]):
            return "every weight is zero"
        mode, gemm, arrays = _gemm(call, p["input_depth"], p["output_depth"], "fc")
        scratch = _unpacked_rows(p["input_depth"]) if p["batches"] > 1 else 0  # one row is read in place
        return Impl(self.name, "eq_dsp_fully_connected_s8",
                    ["&$params", str(p["batches"]), "$in0", "$out0", "$scratch" if scratch else "NULL", mode],
                    [CStruct("eq_dsp_gemm_t", "params", gemm)], arrays, scratch_bytes=scratch)

    def _add_s8(self, call: KernelCall) -> Impl | str:
        """ADD (and SUB) of same-shape tensors: each input's rescale as a build-time table of its 256 values."""
        p = call.params
        if not same_layout(p):
            return "broadcasting"
        values = np.arange(256).astype(np.uint8).view(np.int8).astype(np.int64)  # indexed by the element's byte
        sign = -1 if call.kernel.startswith("sub") else 1
        if call.requant == "shift":
            up = max(-p["out_shift"], 0)  # a rescale by 2^up >= 1 goes into the tables: the sum is the output
            tables = [(values + p[f"in{k}_offset"]) << (p[f"in{k}_shift"] + up) for k in (0, 1)]
            rescale = {"out_shift": np.array([max(p["out_shift"], 0)])}
        else:
            tables = [multiply_by_quantized_multiplier_smaller_than_one_exp(
                wrap32((values + p[f"in{k}_offset"]) << p["left_shift"]), p[f"in{k}_mult"], p[f"in{k}_shift"])
                for k in (0, 1)]
            rescale = {"out_mult": np.array([p["out_mult"]]), "out_shift": np.array([p["out_shift"]])}
        tables[1] = sign * tables[1]
        bound = max(np.abs(tables[0]).max() + np.abs(tables[1]).max(), 1)
        if bound >= 1 << 30:
            return "rescaled inputs whose sum could leave 32 bits"
        rescale_call = KernelCall(call.layer, call.kernel, [], [], {k: p[k] for k in ("output_offset", "act_min",
                                                                                       "act_max")},
                                  rescale, requant=call.requant)
        sums = _Sums(np.zeros(1, np.int64), np.array([bound]), np.zeros(1, bool))
        if call.requant == "shift" and rescale["out_shift"][0] == 0:  # the output is the sum plus the offset
            mode, arrays = "EQ_DSP_SHIFT_FUSED", {"out_mult": np.array([p["output_offset"]], np.int32),
                                                  "out_shift": np.zeros(1, np.int8)}
            rq = _rescale_init(arrays, {"act_min": p["act_min"], "act_max": p["act_max"]})
        else:
            mode, rq, arrays = _rescale(rescale_call, "fc", sums, np.arange(1))
            if mode != "EQ_DSP_SHIFT_FUSED" and call.requant == "shift":
                return "a power-of-two ADD whose sum could leave 32 bits"
        arrays.update(table0=tables[0].astype(np.int32), table1=tables[1].astype(np.int32))
        size = p["d0"] * p["d1"] * p["d2"] * p["d3"]
        fields = [("table0", "$table0"), ("table1", "$table1"), ("rq", rq), ("size", str(size))]
        return Impl(self.name, "eq_dsp_add_s8", ["&$params", "$in0", "$in1", "$out0", mode],
                    [CStruct("eq_dsp_add_t", "params", fields)], arrays)

    _sub_s8 = _add_s8

    def write_sources(self, impls: list[Impl], folder: Path) -> dict:
        """The headers (every kernel is inline: the model's own C file compiles them)."""
        if any(impl.backend == self.name for impl in impls):
            shutil.copytree(RUNTIME_DIR, folder / "arm_dsp", dirs_exist_ok=True)
        return {"sources": []}
