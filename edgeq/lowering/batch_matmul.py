"""BATCH_MATMUL: TFLite's reference_ops::BatchMatMul for int8 (exact int32 sums of (lhs - zp) * (rhs - zp), one
multiplier for the product's scale over the output's, the whole int8 range), batch dimensions broadcast.
16x8 models' int16 operands (both int16, zero points 0, as TFLite Micro requires) take int64 sums rescaled by
TFLite's int64 MultiplyByQuantizedMultiplier. Each operand is read through element strides, so adj_x/adj_y and
broadcasting cost no copy. A constant rhs stays in flash (batch_matmul_const_rhs_s8/_s16)."""
from __future__ import annotations

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, ops
from edgeq.lowering import KernelCall, float_impl, kernel, lowers
from edgeq.lowering.common import INT_RANGES, clamp_int, variant
from edgeq.lowering.fixedpoint import (
    multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_int64, quantize_multiplier, wrap32,
)

BATCH_DIMS = 3
# int16 sums of products: |sum| <= depth * 2^30 must stay below TFLite's 2^47, so that times the 16-bit multiplier
# it fits an int64
MAX_DEPTH_S16 = 1 << 17


def _strides(shape: tuple[int, ...], out_batch: tuple[int, ...], adj: bool, name: str) -> dict[str, int]:
    """Element strides of an operand [..., R, C]: per output batch dim (0 where broadcast), then rows and
    columns of the matrix as the product reads it (swapped when adj)."""
    rows, cols = shape[-2:]
    batch = (1,) * (BATCH_DIMS - len(shape[:-2])) + tuple(shape[:-2])
    strides, acc = [0] * BATCH_DIMS, rows * cols
    for i in range(BATCH_DIMS - 1, -1, -1):
        strides[i] = 0 if batch[i] == 1 and out_batch[i] != 1 else acc
        acc *= batch[i]
    r, c = (1, cols) if adj else (cols, 1)
    return {**{f"{name}_b{i}": strides[i] for i in range(BATCH_DIMS)}, f"{name}_r": r, f"{name}_c": c}


@lowers(ops.BatchMatMul, "batch_matmul_s8", "batch_matmul_const_rhs_s8", "batch_matmul_s16",
        "batch_matmul_const_rhs_s16")
def lower_batch_matmul(op: ops.BatchMatMul, graph: Graph) -> KernelCall:
    lhs, rhs, y = (graph.t(n) for n in (op.inputs[0], op.inputs[1], op.outputs[0]))
    if lhs.dtype == "int16" and rhs.dtype != "int16":
        raise EdgeqError(f"Operator {op.name} (BATCH_MATMUL): an int16 lhs times a {rhs.dtype} rhs; TFLite Micro has "
                         "no such kernel (its BATCH_MATMUL needs both operands of one type), so edgeq has none either. "
                         "Convert the model with the rhs in int16 too, as TensorFlow's 16x8 converter does.")
    kind = variant(op, graph, op.inputs + op.outputs)
    if lhs.is_const or not lhs.quant.per_tensor or not rhs.quant.per_tensor:
        raise EdgeqError(f"Operator {op.name} (BATCH_MATMUL): edgeq needs an activation lhs and per-tensor "
                         "quantization on both operands; this model has them otherwise.")
    if len(y.shape) - 2 > BATCH_DIMS:
        raise EdgeqError(f"Operator {op.name} (BATCH_MATMUL): {len(y.shape) - 2} batch dimensions; edgeq (like "
                         f"TFLite Micro) handles at most {BATCH_DIMS}.")
    out_batch = (1,) * (BATCH_DIMS + 2 - len(y.shape)) + tuple(y.shape[:-2])
    m, n = y.shape[-2:]
    k = lhs.shape[-2] if op.adj_x else lhs.shape[-1]
    mult, shift = quantize_multiplier(float(lhs.quant.s) * float(rhs.quant.s) / float(y.quant.s))
    if kind == "s16" and (k > MAX_DEPTH_S16 or shift > 14):
        raise EdgeqError(f"Operator {op.name} (BATCH_MATMUL): a 16x8 product over {k} terms rescaled by "
                         f"2^{shift}; TFLite's int64 rescaling is undefined beyond {MAX_DEPTH_S16} terms or 2^14. "
                         "Split the product, or check the output's scale.")
    lo, hi = INT_RANGES[y.dtype]
    params = {**{f"b{i}": out_batch[i] for i in range(BATCH_DIMS)}, "m": m, "n": n, "k": k,
              **_strides(lhs.shape, out_batch, op.adj_x, "lhs"),
              # rhs is read as [K, N]: its rows are K (its columns when adj_y)
              **_strides(rhs.shape, out_batch, op.adj_y, "rhs"),
              "lhs_offset": -lhs.quant.zp, "rhs_offset": -rhs.quant.zp, "output_offset": y.quant.zp,
              "out_mult": mult, "out_shift": shift, "act_min": lo, "act_max": hi}
    if rhs.is_const:
        return KernelCall(op.name, f"batch_matmul_const_rhs_{kind}", [op.inputs[0]], list(op.outputs), params,
                          {"rhs": rhs.data.astype(np.int16 if kind == "s16" else np.int8).reshape(-1)})
    return KernelCall(op.name, f"batch_matmul_{kind}", list(op.inputs), list(op.outputs), params)


def _operand(flat: np.ndarray, p: dict, name: str, rows: int, cols: int) -> np.ndarray:
    idx = sum(np.arange(p[f"b{i}"]).reshape([-1 if j == i else 1 for j in range(BATCH_DIMS + 2)]) * p[f"{name}_b{i}"]
              for i in range(BATCH_DIMS))
    idx = idx + np.arange(rows).reshape(-1, 1) * p[f"{name}_r"] + np.arange(cols).reshape(1, -1) * p[f"{name}_c"]
    return flat.reshape(-1)[idx].astype(np.float64)


@kernel("batch_matmul_s8")
@kernel("batch_matmul_const_rhs_s8")
@kernel("batch_matmul_s16")
@kernel("batch_matmul_const_rhs_s16")
def batch_matmul_s8(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    p = call.params
    rhs = call.arrays["rhs"] if "rhs" in call.arrays else inputs[1]
    a = _operand(inputs[0], p, "lhs", p["m"], p["k"]) + p["lhs_offset"]
    b = _operand(rhs, p, "rhs", p["k"], p["n"]) + p["rhs_offset"]
    acc = (a @ b).astype(np.int64)  # exact: every partial sum is below 2^48 (MAX_DEPTH_S16), far below 2^53
    if call.kernel.endswith("_s16"):  # TFLite narrows the int64 rescale's result to int32 as it is
        out = wrap32(multiply_by_quantized_multiplier_int64(acc, p["out_mult"], p["out_shift"]))
    else:
        out = multiply_by_quantized_multiplier(acc, p["out_mult"], p["out_shift"])
    return clamp_int(out + p["output_offset"], call.kernel, p["act_min"], p["act_max"]).reshape(out_shape)


@float_impl(ops.BatchMatMul)
def float_batch_matmul(op: ops.BatchMatMul, graph: Graph, inputs: list[np.ndarray]) -> np.ndarray:
    a, b = inputs[0].astype(np.float64), inputs[1].astype(np.float64)
    return np.matmul(np.swapaxes(a, -1, -2) if op.adj_x else a, np.swapaxes(b, -1, -2) if op.adj_y else b)
