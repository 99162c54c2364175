"""QDQ models (QuantizeLinear/DequantizeLinear around float operators, int8) into an int8 graph.

The float graph is translated as usual, with each Q->DQ pair an identity whose scale and zero point
are recorded on the IR tensor it quantizes, and each DequantizeLinear of an int8/int32 constant
folded to floats with its quantization kept. `make_integer` then turns the translated graph into
the int8 graph `--quant keep` compiles: activations int8 with the pairs' parameters (the float
input's QuantizeLinear and the output's DequantizeLinear move to the caller, as in the TFLite
frontend), weights back to their int8 values and scales, biases int32 at s_input * s_weight.
"""
from __future__ import annotations

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, Quant, ops

# Ops whose int8 kernels keep the input's scale and zero point (data movement or order-preserving)
SAME_QUANT = (ops.Reshape, ops.Squeeze, ops.MaxPool2D, ops.Pad, ops.AveragePool2D, ops.Concatenation)
LAYERS = (ops.Conv2D, ops.DepthwiseConv2D, ops.FullyConnected)


def _quant_args(imp, n, what: str):
    scale = np.asarray(imp._cval(1, f"{what} scale"), dtype=np.float32)
    zp = imp._cval(2, f"{what} zero point", optional=True)
    zp = np.zeros((), dtype=np.uint8) if zp is None else np.asarray(zp)
    return scale, zp


def record_const(imp, node) -> None:
    x = imp.consts[node.inputs[0]]
    if x.dtype not in (np.int8, np.int32):
        return  # uint8 or float constants: the float value is all edgeq uses
    scale, zp = _quant_args(imp, node, "constant")
    axis = int(node.attrs.get("axis", 1)) % max(x.ndim, 1)
    imp.const_quant[node.outputs[0]] = (x, Quant(scale, zp.astype(np.int64), axis))


def quantize_linear(imp, n) -> None:
    x = imp._act()
    scale, zp = _quant_args(imp, n, "activation")
    if zp.dtype != np.int8:
        raise imp.fail(f"QuantizeLinear to {zp.dtype}; edgeq runs int8 activations. Quantize the model with "
                       "int8 activations (onnxruntime: activation_type=QuantType.QInt8).")
    if scale.size != 1:
        raise imp.fail("per-axis quantization of an activation is not supported.")
    q = Quant(scale.reshape(1), zp.astype(np.int64).reshape(1))
    old = imp.act_quant.get(x.tensor)
    if old is not None and (old.s != q.s or old.zp != q.zp):
        raise imp.fail(f"tensor '{x.tensor}' is quantized twice with different parameters ({old.s}, {old.zp}) and "
                       f"({q.s}, {q.zp}); edgeq expects one QuantizeLinear per tensor.")
    imp.act_quant[x.tensor] = q
    imp.vals[n.outputs[0]] = x


def dequantize_linear(imp, n) -> None:
    x = imp._act()
    if x.tensor not in imp.act_quant:
        raise imp.fail(f"DequantizeLinear of '{n.inputs[0]}', which no QuantizeLinear made.")
    imp.vals[n.outputs[0]] = x


def _infer_missing(graph: Graph, quant: dict[str, Quant], layout_ops: set[str]) -> list[str]:
    """Give tensors between Q/DQ pairs that data-movement ops made their input's parameters."""
    # the NCHW input's reordering runs before the model's first QuantizeLinear: quantize it like it
    for op in reversed(graph.ops):
        if (isinstance(op, (ops.Reshape, ops.Squeeze)) or op.name in layout_ops) and op.outputs[0] in quant:
            quant.setdefault(op.inputs[0], quant[op.outputs[0]])
    for op in graph.ops:
        out = op.outputs[0]
        if out in quant or not op.inputs or op.inputs[0] not in quant:
            continue
        if isinstance(op, SAME_QUANT) or op.name in layout_ops:
            quant[out] = quant[op.inputs[0]]
    return [t.name for t in graph.activations() if t.name not in quant]


def make_integer(graph: Graph, imp, folded: set[str]) -> None:
    quant = dict(imp.act_quant)
    missing = _infer_missing(graph, quant, imp.layout_ops)
    if missing:
        raise EdgeqError(f"{imp.src.origin} is a QDQ model, but {len(missing)} tensor(s) have no QuantizeLinear/"
                         f"DequantizeLinear pair: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}. "
                         "Quantize every operator (or export the float model and use --quant pot).")
    for t in graph.activations():
        t.dtype, t.quant = "int8", quant[t.name]
    for op in graph.ops:
        for pos, name in enumerate(op.inputs):
            t = graph.t(name)
            if not t.is_const or t.dtype != "float32":
                continue
            if isinstance(op, LAYERS) and pos == 1:
                _weights(graph, imp, op, t, folded, op.name in imp.layout_ops)
            elif isinstance(op, LAYERS) and pos == 2:
                _bias(graph, imp, op, t)
            else:
                _operand(graph, imp, t)
    graph.notes.append("QDQ model: the input's QuantizeLinear and the output's DequantizeLinear move to the caller; "
                       "the model's interface is int8")


def _weights(graph, imp, op, t, folded, layout_op: bool) -> None:
    src = imp.param_source.get(t.name)
    rec = imp.const_quant.get(src) if src else None
    if layout_op:  # the input-reordering one-hot kernel: exactly 1 at scale 1
        t.data, t.dtype, t.quant = t.data.astype(np.int8), "int8", Quant([1.0], [0])
        return
    if rec is None or op.name in folded:
        raise EdgeqError(f"{imp.src.origin}: the weights of {op.name} are not int8 with a DequantizeLinear"
                         f"{' (a BatchNormalization was folded into them)' if op.name in folded else ''}; edgeq keeps "
                         "only models whose every layer is quantized.")
    q = rec[1]
    if (q.zero_point != 0).any():
        raise EdgeqError(f"{imp.src.origin}: the weights of {op.name} have a non-zero zero point; TFLite-style int8 "
                         "kernels need symmetric weights (onnxruntime: WeightSymmetric=True).")
    axis = 3 if isinstance(op, ops.DepthwiseConv2D) else 0
    scale = q.scale
    shape = [1] * t.data.ndim
    if scale.size > 1:
        shape[axis] = -1
    ints = t.data / scale.reshape(shape)
    if np.abs(ints - np.round(ints)).max(initial=0) > 1e-3:
        raise EdgeqError(f"{imp.src.origin}: the weights of {op.name} are not whole multiples of their scale.")
    t.data = np.round(ints).astype(np.int8)
    t.dtype, t.quant = "int8", Quant(scale, np.zeros(scale.size, np.int64), axis if scale.size > 1 else 0)


def _bias(graph, imp, op, t) -> None:
    x, w = graph.t(op.inputs[0]), graph.t(op.inputs[1])
    scale = (np.float64(x.quant.s) * w.quant.scale.astype(np.float64)).astype(np.float32)
    rec = imp.const_quant.get(imp.param_source.get(t.name, ""))
    if rec is not None and rec[1].scale.size == scale.size and np.allclose(rec[1].scale, scale, rtol=1e-6):
        scale = rec[1].scale  # the file's own bias scale, so the integers come back exactly
    t.data = np.round(t.data.astype(np.float64) / np.broadcast_to(scale, t.data.shape)).astype(np.int32)
    t.dtype, t.quant = "int32", Quant(scale, np.zeros(scale.size, np.int64))


def _operand(graph, imp, t) -> None:
    """A constant operand of Add/Mul/Concat: int8, with its own DequantizeLinear's parameters when it had one,
    else symmetric per-tensor."""
    src = imp.param_source.get(t.name)
    rec = imp.const_quant.get(src) if src else None
    if rec is not None and rec[0].dtype == np.int8 and rec[0].size == t.data.size and rec[1].per_tensor:
        q = rec[1]
    else:
        peak = float(np.abs(t.data).max(initial=0.0)) or 1.0
        q = Quant([peak / 127.0], [0])
        graph.notes.append(f"QDQ model: constant {t.name} quantized symmetric int8 at import")
    t.data = np.clip(np.round(t.data / q.s) + q.zp, -128, 127).astype(np.int8)
    t.dtype, t.quant = "int8", q
