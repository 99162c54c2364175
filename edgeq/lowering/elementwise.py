"""ADD, SUB, SQUARED_DIFFERENCE and MUL (with broadcasting), MAXIMUM, MINIMUM, PRELU, PAD, CONCATENATION.

Integer semantics: TFLM's add_common.cc/mul_common.cc parameters and reference_integer_ops
Add/Mul per element. Broadcasting is expressed as 4-D output dims plus per-input strides (0 on a
broadcast dimension), so the C kernel needs no special cases.
"""
from __future__ import annotations

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, ops
from edgeq.lowering.fixedpoint import (
    multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_smaller_than_one_exp, quantize_multiplier,
    rounding_shift, tflite_rounding_shift, wrap32,
)
from edgeq.lowering import KernelCall, float_impl, kernel, lowers
from edgeq.lowering.common import (
    INT_RANGES, activation_range, clamp_int, clamp_s8, exponent_of, float_activation, pot_shift, require_int8,
    to_nhwc4, variant,
)

ADD_LEFT_SHIFT = 20
ADD_LEFT_SHIFT_S16 = 15


def _broadcast_params(op: ops.Op, graph: Graph) -> dict[str, int]:
    a, b, y = _operands(op, graph)
    out = to_nhwc4(y.shape)
    params = {f"d{i}": out[i] for i in range(4)}
    for name, t in (("in0", a), ("in1", b)):
        dims = to_nhwc4(t.shape)
        strides, acc = [0] * 4, 1
        for i in range(3, -1, -1):
            if dims[i] not in (1, out[i]):
                raise EdgeqError(f"Operator {op.name} ({op.kind}): shapes {a.shape} and {b.shape} do not broadcast.")
            strides[i] = 0 if dims[i] == 1 and out[i] != 1 else acc
            acc *= dims[i]
        params.update({f"{name}_s{i}": strides[i] for i in range(4)})
    return params


def same_layout(p: dict[str, int]) -> bool:
    """No broadcasting: both inputs of a binary call laid out exactly as its output, so kernels may run it flat."""
    expected, acc = {}, 1
    for i in range(3, -1, -1):
        expected[i] = acc if p[f"d{i}"] != 1 else None
        acc *= p[f"d{i}"]
    return all(expected[i] is None or p[f"in{k}_s{i}"] == expected[i] for k in (0, 1) for i in range(4))


def _operands(op: ops.Op, graph: Graph) -> list:
    """The two inputs and the output; a constant operand must have one scale, as TFLite's element-wise kernels
    read it (an activation always has)."""
    for name in op.inputs:
        t = graph.t(name)
        if t.is_const and t.quant is not None and not t.quant.per_tensor:
            raise EdgeqError(f"Operator {op.name} ({op.kind}): constant operand '{name}' is quantized per channel; "
                             f"TFLite's {op.kind} takes one scale and zero point per operand, so quantize it per "
                             "tensor.")
    return [graph.t(n) for n in (op.inputs[0], op.inputs[1], op.outputs[0])]


def _variant(op: ops.Op, graph: Graph) -> str:
    """The kernel variant the activations call for; a constant operand must match it, except that mixed precision
    (edgeq.quant.mixed) widens only activations, so a power-of-two graph's int8 constant with zero point 0 beside
    int16 activations is read as int16 at its scale, which is exact."""
    acts = [n for n in op.inputs if not graph.t(n).is_const] + list(op.outputs)
    kind = variant(op, graph, acts)
    for name in op.inputs:
        t = graph.t(name)
        widened = (kind == "s16" and graph.requant == "shift" and t.dtype == "int8" and t.quant is not None
                   and t.quant.per_tensor and t.quant.zp == 0)
        if t.is_const and not widened:
            variant(op, graph, [acts[0], name])
    return kind


def _binary_call(op: ops.Op, graph: Graph, kernel_name: str, params: dict[str, int], **kw) -> KernelCall:
    """The call of a binary element-wise kernel. A constant operand (`x * 0.5`, `tf.minimum(x, 6.0)`) stays in
    flash as the call's constant, read through its broadcast strides like an activation."""
    dtype = np.int16 if kernel_name.endswith("_s16") else np.int8
    constants = {k: graph.t(n).data.astype(dtype).reshape(-1) for k, n in enumerate(op.inputs) if graph.t(n).is_const}
    if len(constants) == len(op.inputs):
        raise EdgeqError(f"Operator {op.name} ({op.kind}) has only constant operands; edgeq needs one computed at "
                         "run time. Fold the operator into a constant before conversion, as TFLite's converter does.")
    inputs = [n for k, n in enumerate(op.inputs) if k not in constants]
    return KernelCall(op.name, kernel_name, inputs, list(op.outputs), params, constants=constants, **kw)


def _gather(x: np.ndarray, p: dict, name: str) -> np.ndarray:
    """Broadcast a flat input to the 4-D output shape through its strides."""
    idx = sum(np.arange(p[f"d{i}"]).reshape([-1 if j == i else 1 for j in range(4)]) * p[f"{name}_s{i}"]
              for i in range(4))
    return x.reshape(-1)[idx].astype(np.int64)


@lowers(ops.Add, "add_s8", "add_s16")
@lowers(ops.Sub, "sub_s8", "sub_s16")
def lower_add(op: ops.Add | ops.Sub, graph: Graph) -> KernelCall:
    """ADD, and SUB, which TFLite computes alike up to the sign of the second scaled input (16x8: int16
    elements, a left shift of 15)."""
    kind = _variant(op, graph)
    kernel_name = f"{'sub' if isinstance(op, ops.Sub) else 'add'}_{kind}"
    if graph.requant == "shift" and kind == "s8":  # int16 ADDs of mixed-precision graphs: TFLite's 16x8 kernel
        return _lower_add_shift(op, graph, kernel_name)
    a, b, y = _operands(op, graph)
    twice_max = 2 * float(max(np.float32(a.quant.s), np.float32(b.quant.s)))
    m1, s1 = quantize_multiplier(float(a.quant.s) / twice_max)
    m2, s2 = quantize_multiplier(float(b.quant.s) / twice_max)
    left = ADD_LEFT_SHIFT_S16 if kind == "s16" else ADD_LEFT_SHIFT
    mo, so = quantize_multiplier(twice_max / ((1 << left) * float(y.quant.s)))
    lo, hi = activation_range(op.activation, y)
    params = _broadcast_params(op, graph)
    params.update({"in0_offset": -a.quant.zp, "in1_offset": -b.quant.zp, "output_offset": y.quant.zp,
                   "left_shift": left, "in0_mult": m1, "in0_shift": s1, "in1_mult": m2, "in1_shift": s2,
                   "out_mult": mo, "out_shift": so, "act_min": lo, "act_max": hi})
    return _binary_call(op, graph, kernel_name, params, requant="multiplier")


def _lower_add_shift(op: ops.Add | ops.Sub, graph: Graph, kernel_name: str) -> KernelCall:
    """Power-of-two ADD: both inputs aligned on the finer scale by left shifts, the sum rescaled by one
    rounding shift."""
    a, b, y = _operands(op, graph)
    what = f"Operator {op.name} ({op.kind})"
    na, nb, ny = (exponent_of(t.quant.s, what) for t in (a, b, y))
    n = max(na, nb)
    lo, hi = activation_range(op.activation, y)
    params = _broadcast_params(op, graph)
    params.update({"in0_offset": -a.quant.zp, "in1_offset": -b.quant.zp, "output_offset": y.quant.zp,
                   "left_shift": 0, "in0_mult": 0, "in0_shift": n - na, "in1_mult": 0, "in1_shift": n - nb,
                   "out_mult": 0, "out_shift": max(n - ny, -31), "act_min": lo, "act_max": hi})
    return _binary_call(op, graph, kernel_name, params, requant="shift")


@kernel("add_s8")
@kernel("sub_s8")
@kernel("add_s16")
@kernel("sub_s16")
def add_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    p = call.params
    sign = -1 if call.kernel.startswith("sub") else 1
    if call.requant == "shift":
        acc = ((_gather(inputs[0], p, "in0") + p["in0_offset"]) << p["in0_shift"]) + sign * (
            (_gather(inputs[1], p, "in1") + p["in1_offset"]) << p["in1_shift"])
        raw = rounding_shift(acc, p["out_shift"]) + p["output_offset"]
        return clamp_s8(raw, p["act_min"], p["act_max"]).reshape(out_shape)
    scaled = []
    for k in (0, 1):
        v = wrap32((_gather(inputs[k], p, f"in{k}") + p[f"in{k}_offset"]) * (1 << p["left_shift"]))
        scaled.append(multiply_by_quantized_multiplier_smaller_than_one_exp(v, p[f"in{k}_mult"], p[f"in{k}_shift"]))
    raw = multiply_by_quantized_multiplier_smaller_than_one_exp(wrap32(scaled[0] + sign * scaled[1]), p["out_mult"],
                                                                p["out_shift"]) + p["output_offset"]
    return clamp_int(raw, call.kernel, p["act_min"], p["act_max"]).reshape(out_shape)


@lowers(ops.Mul, "mul_s8", "mul_s16")
def lower_mul(op: ops.Mul, graph: Graph) -> KernelCall:
    kind = _variant(op, graph)
    a, b, y = _operands(op, graph)
    if graph.requant == "shift":  # the product rescaled by one rounding shift
        m, s = 0, max(pot_shift(float(a.quant.s) * float(b.quant.s), y.quant.s, op), -31)
    else:
        m, s = quantize_multiplier(float(a.quant.s) * float(b.quant.s) / float(y.quant.s))
    lo, hi = activation_range(op.activation, y)
    params = _broadcast_params(op, graph)
    params.update({"in0_offset": -a.quant.zp, "in1_offset": -b.quant.zp, "output_offset": y.quant.zp,
                   "out_mult": m, "out_shift": s, "act_min": lo, "act_max": hi})
    return _binary_call(op, graph, f"mul_{kind}", params, requant="shift" if graph.requant == "shift" else "multiplier")


@kernel("mul_s16")
@kernel("mul_s8")
def mul_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    p = call.params
    prod = (_gather(inputs[0], p, "in0") + p["in0_offset"]) * (_gather(inputs[1], p, "in1") + p["in1_offset"])
    if call.requant == "shift":
        raw = tflite_rounding_shift(prod, p["out_shift"]) + p["output_offset"]
    else:
        raw = multiply_by_quantized_multiplier(prod, p["out_mult"], p["out_shift"]) + p["output_offset"]
    return clamp_int(raw, call.kernel, p["act_min"], p["act_max"]).reshape(out_shape)


@lowers(ops.SquaredDifference, "squared_difference_s8", "squared_difference_s16")
def lower_squared_difference(op: ops.SquaredDifference, graph: Graph) -> KernelCall:
    """TFLM's squared_difference PrepareQuantized: left shift 7 for int8, 0 for 16x8's int16 (whose inputs,
    scaled by at most 1/2, square to at most 2^30). Its scales need not be powers of two, and power-of-two graphs
    take the same arithmetic, which is exact for their int8 tensors."""
    kind = _variant(op, graph)
    a, b, y = _operands(op, graph)
    left = 7 if kind == "s8" else 0
    twice_max = 2.0 * float(max(np.float32(a.quant.s), np.float32(b.quant.s)))
    m1, s1 = quantize_multiplier(float(a.quant.s) / twice_max)
    m2, s2 = quantize_multiplier(float(b.quant.s) / twice_max)
    mo, so = quantize_multiplier(twice_max * twice_max / ((1 << (2 * left)) * float(y.quant.s)))
    lo, hi = INT_RANGES[y.dtype]
    params = _broadcast_params(op, graph)
    params.update({"in0_offset": -a.quant.zp, "in1_offset": -b.quant.zp, "output_offset": y.quant.zp,
                   "left_shift": left, "in0_mult": m1, "in0_shift": s1, "in1_mult": m2, "in1_shift": s2,
                   "out_mult": mo, "out_shift": so, "act_min": lo, "act_max": hi})
    return _binary_call(op, graph, f"squared_difference_{kind}", params, requant="multiplier")


@kernel("squared_difference_s8")
@kernel("squared_difference_s16")
def squared_difference_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    p = call.params
    scaled = []
    for k in (0, 1):
        v = wrap32((_gather(inputs[k], p, f"in{k}") + p[f"in{k}_offset"]) * (1 << p["left_shift"]))
        scaled.append(multiply_by_quantized_multiplier_smaller_than_one_exp(v, p[f"in{k}_mult"], p[f"in{k}_shift"]))
    diff = wrap32(scaled[0] - scaled[1])
    raw = multiply_by_quantized_multiplier(wrap32(diff * diff), p["out_mult"], p["out_shift"]) + p["output_offset"]
    return clamp_int(raw, call.kernel, p["act_min"], p["act_max"]).reshape(out_shape)


@lowers(ops.Prelu, "prelu_s8", "prelu_s16")
def lower_prelu(op: ops.Prelu, graph: Graph) -> KernelCall:
    """TFLM's CalculatePreluParams and BroadcastPrelu4DSlow; alpha is a constant in flash, int8 also when the
    input and output are a 16x8 model's int16 (TFLite Micro takes no other alpha there)."""
    kind = variant(op, graph, [op.inputs[0], op.outputs[0]])
    x, alpha, y = (graph.t(n) for n in (op.inputs[0], op.inputs[1], op.outputs[0]))
    if kind == "s16" and alpha.dtype != "int8":
        raise EdgeqError(f"Operator {op.name} (PRELU): an int16 input with a {alpha.dtype} alpha; TFLite Micro has no "
                         "such kernel (its 16x8 PRELU takes an int8 alpha), so edgeq has none either.")
    require_int8(op, graph, [op.inputs[1]])
    if x.is_const or not alpha.is_const or not alpha.quant.per_tensor:
        raise EdgeqError(f"Operator {op.name} (PRELU): edgeq needs an activation input and a constant alpha with "
                         "one scale; this model has them otherwise.")
    m1, s1 = quantize_multiplier(float(x.quant.s) / float(y.quant.s))
    m2, s2 = quantize_multiplier(float(x.quant.s) * float(alpha.quant.s) / float(y.quant.s))
    params = _broadcast_params(op, graph)
    params.update({"in0_offset": -x.quant.zp, "in1_offset": -alpha.quant.zp, "output_offset": y.quant.zp,
                   "out_mult1": m1, "out_shift1": s1, "out_mult2": m2, "out_shift2": s2})
    return KernelCall(op.name, f"prelu_{kind}", [op.inputs[0]], list(op.outputs), params,
                      {"alpha": alpha.data.astype(np.int8).reshape(-1)})


@kernel("prelu_s8")
@kernel("prelu_s16")
def prelu_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    p = call.params
    x = _gather(inputs[0], p, "in0") + p["in0_offset"]
    a = _gather(call.arrays["alpha"], p, "in1") + p["in1_offset"]
    pos = multiply_by_quantized_multiplier(x, p["out_mult1"], p["out_shift1"])
    neg = multiply_by_quantized_multiplier(wrap32(x * a), p["out_mult2"], p["out_shift2"])
    return clamp_int(np.where(x >= 0, pos, neg) + p["output_offset"], call.kernel).reshape(out_shape)


@lowers(ops.Maximum, "min_max_s8", "min_max_s16")
@lowers(ops.Minimum, "min_max_s8", "min_max_s16")
def lower_min_max(op: ops.Maximum | ops.Minimum, graph: Graph) -> KernelCall:
    """TFLite Micro compares the raw int8 or int16 values, whatever the scales (the converter gives all three
    one)."""
    kind = _variant(op, graph)
    params = _broadcast_params(op, graph)
    params["is_max"] = int(isinstance(op, ops.Maximum))
    return _binary_call(op, graph, f"min_max_{kind}", params)


@kernel("min_max_s8")
@kernel("min_max_s16")
def min_max_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    p = call.params
    a, b = _gather(inputs[0], p, "in0"), _gather(inputs[1], p, "in1")
    return clamp_int(np.maximum(a, b) if p["is_max"] else np.minimum(a, b), call.kernel).reshape(out_shape)


@lowers(ops.Pad, "pad_s8")
def lower_pad(op: ops.Pad, graph: Graph) -> KernelCall:
    kind = variant(op, graph, [op.inputs[0], op.outputs[0]])
    x, y = graph.t(op.inputs[0]), graph.t(op.outputs[0])
    pads = [(0, 0)] * (4 - len(op.paddings)) + list(op.paddings)
    if len(pads) > 4:
        raise EdgeqError(f"Operator {op.name} (PAD): rank {len(op.paddings)} is more than edgeq's 4.")
    dims = to_nhwc4(x.shape)
    params = {f"in_d{i}": dims[i] for i in range(4)}
    params.update({f"pad_before{i}": pads[i][0] for i in range(4)})
    params.update({f"out_d{i}": to_nhwc4(y.shape)[i] for i in range(4)})
    params["pad_value"] = y.quant.zp
    params["elem_bytes"] = 2 if kind == "s16" else 1
    return KernelCall(op.name, "pad_s8", [op.inputs[0]], [op.outputs[0]], params)


@kernel("pad_s8")
def pad_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    p = call.params
    out = np.full([p[f"out_d{i}"] for i in range(4)], p["pad_value"], dtype=inputs[0].dtype)
    sl = tuple(slice(p[f"pad_before{i}"], p[f"pad_before{i}"] + p[f"in_d{i}"]) for i in range(4))
    out[sl] = inputs[0].reshape([p[f"in_d{i}"] for i in range(4)])
    return out.reshape(out_shape)


@lowers(ops.Concatenation, "concat_s8")
def lower_concat(op: ops.Concatenation, graph: Graph) -> KernelCall:
    """Byte copies, so 16x8 models' int16 tensors concatenate with the same kernel (sizes in bytes)."""
    kind = variant(op, graph, op.inputs + op.outputs)
    y = graph.t(op.outputs[0])
    for name in op.inputs:
        t = graph.t(name)
        if t.is_const or t.quant.s != y.quant.s or t.quant.zp != y.quant.zp:
            raise EdgeqError(f"Operator {op.name} (CONCATENATION): input '{name}' is "
                             f"{'constant' if t.is_const else 'quantized differently from the output'}; TFLite "
                             "Micro concatenates int8 tensors that share the output's scale and zero point.")
    if op.activation != ops.Activation.NONE:
        raise EdgeqError(f"Operator {op.name} (CONCATENATION): a fused activation is not supported for int8.")
    outer = int(np.prod(y.shape[:op.axis], dtype=np.int64))
    inner = int(np.prod(y.shape[op.axis + 1:], dtype=np.int64))
    width = 2 if kind == "s16" else 1
    sizes = np.array([graph.t(n).shape[op.axis] * inner * width for n in op.inputs], dtype=np.int32)
    return KernelCall(op.name, "concat_s8", list(op.inputs), list(op.outputs),
                      {"n_inputs": len(op.inputs), "outer": outer}, {"copy_sizes": sizes}, variadic=True)


@kernel("concat_s8")
def concat_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    outer = call.params["outer"]
    return np.concatenate([x.reshape(outer, -1) for x in inputs], axis=1).reshape(out_shape)


# --- float semantics ------------------------------------------------------------------------------

@float_impl(ops.Add)
def float_add(op, graph, inputs):
    return float_activation(op.activation, inputs[0] + inputs[1])


@float_impl(ops.Sub)
def float_sub(op, graph, inputs):
    return float_activation(op.activation, inputs[0] - inputs[1])


@float_impl(ops.SquaredDifference)
def float_squared_difference(op, graph, inputs):
    return (inputs[0] - inputs[1]) ** 2


@float_impl(ops.Prelu)
def float_prelu(op, graph, inputs):
    return np.where(inputs[0] >= 0, inputs[0], inputs[0] * inputs[1])


@float_impl(ops.Maximum)
def float_maximum(op, graph, inputs):
    return np.maximum(inputs[0], inputs[1])


@float_impl(ops.Minimum)
def float_minimum(op, graph, inputs):
    return np.minimum(inputs[0], inputs[1])


@float_impl(ops.Mul)
def float_mul(op, graph, inputs):
    return float_activation(op.activation, inputs[0] * inputs[1])


@float_impl(ops.Pad)
def float_pad(op, graph, inputs):
    return np.pad(inputs[0], op.paddings)


@float_impl(ops.Concatenation)
def float_concat(op, graph, inputs):
    return float_activation(op.activation, np.concatenate(inputs, axis=op.axis))
