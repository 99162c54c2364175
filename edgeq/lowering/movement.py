"""Data movement: TRANSPOSE, STRIDED_SLICE (and SLICE, SPLIT, SPLIT_V, UNPACK), GATHER, DEPTH_TO_SPACE,
SPACE_TO_DEPTH, BATCH_TO_SPACE_ND, SPACE_TO_BATCH_ND, RESIZE_NEAREST_NEIGHBOR, TILE, and PACK.

Each output element is one input element, so TFLite Micro copies raw values whatever the quantization, and
so does edgeq. Each operator is defined once, by its numpy semantics on an array (`SEMANTICS`): that is its
float implementation, its shape rule, and, applied to the input's element indices, the map its kernel runs.
The lowering splits that index map into one offset table per output axis (`eq_remap`: the input element is
the sum of each axis's table entry), merging the axes whose offsets do not add up separately (a GATHER with
2-D indices), so the C kernel has no per-operator code and its tables are the size of the output's sides.
A GATHER whose indices are computed at run time (an input, an ARG_MAX) copies one row per index (`eq_gather`).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, ops
from edgeq.lowering import KernelCall, float_impl, kernel, lowers
from edgeq.lowering.fixedpoint import round_half_away

MAX_REMAP_RANK = 6
SEMANTICS: dict[type, Callable[[ops.Op, Graph, np.ndarray], np.ndarray]] = {}


def semantics(op_type: type):
    def register(fn):
        SEMANTICS[op_type] = fn
        return fn
    return register


@semantics(ops.Transpose)
def _transpose(op: ops.Transpose, graph: Graph, x: np.ndarray) -> np.ndarray:
    if sorted(op.perm) != list(range(x.ndim)):
        raise ValueError(f"perm {list(op.perm)} is not a permutation of {x.ndim} axes")
    return np.transpose(x, op.perm)


@semantics(ops.StridedSlice)
def _strided_slice(op: ops.StridedSlice, graph: Graph, x: np.ndarray) -> np.ndarray:
    if not len(op.begin) == len(op.end) == len(op.strides) == x.ndim or 0 in op.strides:
        raise ValueError(f"begin {list(op.begin)}, end {list(op.end)}, strides {list(op.strides)} for rank {x.ndim}")
    index = [slice(b, e if e >= 0 else None, s) for b, e, s in zip(op.begin, op.end, op.strides)]
    if (op.begin[0], op.end[0], op.strides[0]) == (0, 1, 1) and 0 not in op.shrink_axes:
        index[0] = slice(None)  # the whole batch axis: float graphs also run with several samples in it
    index = tuple(index)
    y = x[index]
    if any(y.shape[a] != 1 for a in op.shrink_axes):
        raise ValueError(f"shrink axes {list(op.shrink_axes)} are not of size 1 in {list(y.shape)}")
    return y.reshape([d for k, d in enumerate(y.shape) if k not in op.shrink_axes])


def dynamic_gather(op: ops.Op) -> bool:
    """A GATHER whose indices are a tensor computed at run time (its second input), not constants."""
    return isinstance(op, ops.Gather) and len(op.inputs) > 1


@semantics(ops.Gather)
def _gather(op: ops.Gather, graph: Graph, x: np.ndarray) -> np.ndarray:
    if dynamic_gather(op):  # the shape only: the values come at run time
        return np.take(x, np.zeros(op.indices_shape, dtype=np.int64), axis=op.axis)
    idx = np.array(op.indices, dtype=np.int64).reshape(op.indices_shape)
    if idx.size and (idx.min() < 0 or idx.max() >= x.shape[op.axis]):
        raise ValueError(f"indices {idx.min()}..{idx.max()} are outside 0..{x.shape[op.axis] - 1}")
    return np.take(x, idx, axis=op.axis)


def _nhwc(x: np.ndarray) -> tuple[int, int, int, int]:
    if x.ndim != 4:
        raise ValueError(f"the input has rank {x.ndim}, not 4 (NHWC)")
    return x.shape  # type: ignore[return-value]


@semantics(ops.DepthToSpace)
def _depth_to_space(op: ops.DepthToSpace, graph: Graph, x: np.ndarray) -> np.ndarray:
    n, h, w, c = _nhwc(x)
    b = op.block
    if b < 1 or c % (b * b):
        raise ValueError(f"{c} channels are not a multiple of block {b} squared")
    return x.reshape(n, h, w, b, b, c // (b * b)).transpose(0, 1, 3, 2, 4, 5).reshape(n, h * b, w * b, c // (b * b))


@semantics(ops.SpaceToDepth)
def _space_to_depth(op: ops.SpaceToDepth, graph: Graph, x: np.ndarray) -> np.ndarray:
    n, h, w, c = _nhwc(x)
    b = op.block
    if b < 1 or h % b or w % b:
        raise ValueError(f"height {h} and width {w} are not multiples of block {b}")
    return x.reshape(n, h // b, b, w // b, b, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, h // b, w // b, b * b * c)


@semantics(ops.BatchToSpaceND)
def _batch_to_space(op: ops.BatchToSpaceND, graph: Graph, x: np.ndarray) -> np.ndarray:
    n, h, w, c = _nhwc(x)
    (bh, bw), ((t, bo), (left, r)) = op.block, op.crops
    if bh < 1 or bw < 1 or n % (bh * bw) or min(t, bo, left, r) < 0 or t + bo >= h * bh or left + r >= w * bw:
        raise ValueError(f"block {list(op.block)} and crops {[list(c) for c in op.crops]} do not fit {list(x.shape)}")
    y = x.reshape(bh, bw, n // (bh * bw), h, w, c).transpose(2, 3, 0, 4, 1, 5).reshape(n // (bh * bw), h * bh, w * bw, c)
    return y[:, t:h * bh - bo, left:w * bw - r, :]


@semantics(ops.SpaceToBatchND)
def _space_to_batch(op: ops.SpaceToBatchND, graph: Graph, x: np.ndarray) -> np.ndarray:
    n, h, w, c = _nhwc(x)
    bh, bw = op.block
    if bh < 1 or bw < 1 or h % bh or w % bw:
        raise ValueError(f"height {h} and width {w} are not multiples of block {list(op.block)}")
    return x.reshape(n, h // bh, bh, w // bw, bw, c).transpose(2, 4, 0, 1, 3, 5).reshape(bh * bw * n, h // bh, w // bw, c)


def nearest_indices(in_size: int, out_size: int, align_corners: bool, half_pixel: bool) -> np.ndarray:
    """tflite::reference_ops GetNearestNeighbor for each output index, in its float32 arithmetic."""
    f32 = np.float32
    if align_corners and out_size > 1:
        scale = f32(in_size - 1) / f32(out_size - 1)
    else:
        scale = f32(in_size) / f32(out_size)
    offset = f32(0.5) if half_pixel else f32(0.0)
    result = []
    for i in range(out_size):
        v = f32(f32(i) + offset) * scale
        k = int(round_half_away(float(v))) if align_corners else math.floor(float(v))
        k = min(k, in_size - 1)
        result.append(max(k, 0) if half_pixel else k)
    return np.array(result, dtype=np.int64)


@semantics(ops.ResizeNearestNeighbor)
def _resize_nearest(op: ops.ResizeNearestNeighbor, graph: Graph, x: np.ndarray) -> np.ndarray:
    _, h, w, _ = _nhwc(x)
    out = graph.t(op.outputs[0]).shape
    if len(out) != 4:
        raise ValueError(f"the output has rank {len(out)}, not 4")
    rows = nearest_indices(h, out[1], op.align_corners, op.half_pixel_centers)
    cols = nearest_indices(w, out[2], op.align_corners, op.half_pixel_centers)
    return x[:, rows][:, :, cols]


@semantics(ops.Tile)
def _tile(op: ops.Tile, graph: Graph, x: np.ndarray) -> np.ndarray:
    if len(op.multiples) != x.ndim or min(op.multiples, default=1) < 1:
        raise ValueError(f"multiples {list(op.multiples)} for rank {x.ndim}")
    return np.tile(x, op.multiples)


def movement_shape(op: ops.Op, graph: Graph) -> tuple[int, ...]:
    """The output shape the semantics give (ValueError when the attributes do not fit the input)."""
    x = graph.t(op.inputs[0])
    return SEMANTICS[type(op)](op, graph, np.zeros(x.shape, dtype=np.int8)).shape


def _separable_groups(index: np.ndarray) -> list[int]:
    """Boundaries k (between output axes k-1 and k) across which the index map adds up: index[a, b] =
    index[a, 0] + index[0, b] - index[0, 0] with a the axes before k and b those from k on."""
    keep = []
    for k in range(1, index.ndim):
        left = int(np.prod(index.shape[:k]))
        flat = index.reshape(left, -1)
        if np.array_equal(flat, flat[:, :1] + flat[:1, :] - flat[0, 0]):
            keep.append(k)
    return keep


def remap_tables(index: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Output dims (at most 6) and their concatenated offset tables, such that the output element at
    (i0, .., i5) is input element sum_k table_k[i_k]."""
    shape = index.shape if index.ndim else (1,)
    index = index.reshape(shape)
    cuts = [0, *_separable_groups(index), index.ndim]
    groups = [(cuts[i], cuts[i + 1]) for i in range(len(cuts) - 1)]
    groups = [g for g in groups if math.prod(shape[g[0]:g[1]]) > 1] or [(0, index.ndim)]
    while len(groups) > MAX_REMAP_RANK:  # merging neighbours keeps the sum exact, with a longer table
        k = min(range(len(groups) - 1), key=lambda i: math.prod(shape[groups[i][0]:groups[i + 1][1]]))
        groups[k:k + 2] = [(groups[k][0], groups[k + 1][1])]
    base = int(index.reshape(-1)[0])
    dims, tables = [], []
    for lo, hi in groups:
        size = math.prod(shape[lo:hi])
        corner = [0] * lo + [slice(None)] * (hi - lo) + [0] * (index.ndim - hi)
        tables.append(index[tuple(corner)].reshape(size) - base)
        dims.append(size)
    tables[0] = tables[0] + base
    dims = [1] * (MAX_REMAP_RANK - len(dims)) + dims
    tables = [np.zeros(1, np.int64)] * (MAX_REMAP_RANK - len(tables)) + tables
    assert np.array_equal(sum(np.asarray(t).reshape([-1 if j == i else 1 for j in range(MAX_REMAP_RANK)])
                              for i, t in enumerate(tables)).reshape(-1), index.reshape(-1))
    return dims, np.concatenate(tables).astype(np.int32)


def _lower_remap(op: ops.Op, graph: Graph) -> KernelCall:
    x, y = graph.t(op.inputs[0]), graph.t(op.outputs[0])
    if x.dtype != y.dtype or x.dtype not in ("int8", "int16", "int32"):
        raise EdgeqError(f"Operator {op.name} ({op.kind}) moves {x.dtype} into {y.dtype}; edgeq's integer path "
                         "needs the same integer type on both sides. Quantize the model to full int8.")
    if x.size >= 2**31:
        raise EdgeqError(f"Operator {op.name} ({op.kind}): input '{x.name}' has more than 2^31 elements.")
    index = SEMANTICS[type(op)](op, graph, np.arange(x.size, dtype=np.int64).reshape(x.shape))
    dims, offsets = remap_tables(index)
    last = offsets[-dims[-1]:]
    params = {f"d{i}": d for i, d in enumerate(dims)}
    params["elem_bytes"] = np.dtype(x.dtype).itemsize
    # a last axis that reads consecutive elements is copied a row at a time
    params["contiguous"] = int(dims[-1] > 1 and bool(np.all(np.diff(last) == 1)))
    return KernelCall(op.name, "remap", [op.inputs[0]], [op.outputs[0]], params, {"offsets": offsets})


for _op_type in ops.MOVEMENT_OPS:
    lowers(_op_type, "remap")(_lower_remap)
    float_impl(_op_type)(lambda op, graph, inputs: SEMANTICS[type(op)](op, graph, inputs[0]))


# --- GATHER at computed indices: one row copy per index, checked at run time --------------------------

@lowers(ops.Gather, "remap", "gather", "gather_table")
def lower_gather(op: ops.Gather, graph: Graph) -> KernelCall:
    """A constant x (an embedding table, a label list) goes into the parameters: `gather_table`."""
    if not dynamic_gather(op):
        return _lower_remap(op, graph)
    x, idx, y = graph.t(op.inputs[0]), graph.t(op.inputs[1]), graph.t(op.outputs[0])
    if (x.dtype, idx.dtype, y.dtype) != ("int8", "int32", "int8"):
        raise EdgeqError(f"Operator {op.name} (GATHER) takes {x.dtype} at {idx.dtype} indices into {y.dtype}; at "
                         "indices computed at run time edgeq gathers int8 values at int32 indices, as TFLite Micro "
                         "does for quantized models.")
    params = {"outer": math.prod(x.shape[:op.axis]), "axis_size": x.shape[op.axis], "n_indices": idx.size,
              "inner": math.prod(x.shape[op.axis + 1:])}
    if x.is_const:
        table = np.asarray(x.data, dtype=np.int8).reshape(-1)
        return KernelCall(op.name, "gather_table", [op.inputs[1]], [op.outputs[0]], params, {"table": table})
    return KernelCall(op.name, "gather", [op.inputs[0], op.inputs[1]], [op.outputs[0]], params)


def _gather_rows(call: KernelCall, x: np.ndarray, indices: np.ndarray, out_shape) -> np.ndarray:
    p = call.params
    idx = indices.astype(np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= p["axis_size"]):
        # TFLite Micro fails the invoke; the C kernel returns EQ_ERR_ARG
        raise EdgeqError(f"Layer {call.layer} (GATHER): index {int(idx.min() if idx.min() < 0 else idx.max())} is "
                         f"outside 0..{p['axis_size'] - 1}.")
    return x.reshape(p["outer"], p["axis_size"], -1)[:, idx].reshape(out_shape)


@kernel("gather")
def gather(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    return _gather_rows(call, inputs[0], inputs[1], out_shape)


@kernel("gather_table")
def gather_table(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    return _gather_rows(call, call.arrays["table"], inputs[0], out_shape)


@float_impl(ops.Gather)
def float_gather(op, graph, inputs):
    if dynamic_gather(op):
        return np.take(inputs[0], inputs[1].astype(np.int64), axis=op.axis)
    return SEMANTICS[ops.Gather](op, graph, inputs[0])


@kernel("remap")
def remap(call: KernelCall, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    dims = [call.params[f"d{i}"] for i in range(MAX_REMAP_RANK)]
    offsets, index, start = call.arrays["offsets"].astype(np.int64), 0, 0
    for i, d in enumerate(dims):
        index = index + offsets[start:start + d].reshape([-1 if j == i else 1 for j in range(MAX_REMAP_RANK)])
        start += d
    return inputs[0].reshape(-1)[np.asarray(index).reshape(-1)].reshape(out_shape)


# --- PACK: a concatenation of the inputs, each seen with a new axis of 1 --------------------------------

@lowers(ops.Pack, "concat_s8")
def lower_pack(op: ops.Pack, graph: Graph) -> KernelCall:
    y = graph.t(op.outputs[0])
    for name in op.inputs:
        t = graph.t(name)
        if t.is_const or t.dtype != y.dtype or y.dtype not in ("int8", "int16"):
            raise EdgeqError(f"Operator {op.name} (PACK): input '{name}' is {'constant' if t.is_const else t.dtype}; "
                             f"edgeq packs int8 (or int16) activations into an output of their type.")
    inner = math.prod(y.shape[op.axis + 1:]) * np.dtype(y.dtype).itemsize  # bytes
    sizes = np.array([inner] * len(op.inputs), dtype=np.int32)
    return KernelCall(op.name, "concat_s8", list(op.inputs), list(op.outputs),
                      {"n_inputs": len(op.inputs), "outer": math.prod(y.shape[:op.axis])}, {"copy_sizes": sizes},
                      variadic=True)


@float_impl(ops.Pack)
def float_pack(op, graph, inputs):
    return np.stack(inputs, axis=op.axis)
