"""Layout bookkeeping for NCHW models in the NHWC IR: which axis order the IR holds a value in,
and which reshapes are free in that order.

A value is the ONNX tensor; the IR holds transpose(value, perm). With `order` (rank 2 only), the
IR's columns are a permutation of the value's: what flattening an NHWC tensor gives.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NHWC = (0, 2, 3, 1)


@dataclass
class Val:
    """An activation: the IR tensor holding it, its ONNX shape, and how the IR lays it out."""

    tensor: str
    shape: tuple[int, ...]
    perm: tuple[int, ...]
    order: np.ndarray | None = None  # rank 2 only: IR column j holds ONNX column order[j]
    nonneg: bool = False  # known >= 0 (after a ReLU), which makes zero padding of max pools exact

    @property
    def ir_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[p] for p in self.perm)


def identity(rank: int) -> tuple[int, ...]:
    return tuple(range(rank))


def nontrivial(shape, perm) -> list[int]:
    """The ONNX axes of size > 1, in IR memory order."""
    return [p for p in perm if shape[p] != 1]


def reshape_perm(in_shape, perm, out_shape) -> tuple[int, ...] | None:
    """The layout of a reshaped value if the reshape moves no bytes in IR memory, else None.

    The reshape must merge or split runs of axes that are adjacent and in the same order in the IR."""
    nz_in = [a for a in range(len(in_shape)) if in_shape[a] != 1]
    nz_out = [a for a in range(len(out_shape)) if out_shape[a] != 1]
    groups, i, j = [], 0, 0
    while i < len(nz_in):
        gi, go = [nz_in[i]], [nz_out[j]]
        pi, po = in_shape[nz_in[i]], out_shape[nz_out[j]]
        i, j = i + 1, j + 1
        while pi != po:
            if pi < po:
                gi.append(nz_in[i])
                pi *= in_shape[nz_in[i]]
                i += 1
            else:
                go.append(nz_out[j])
                po *= out_shape[nz_out[j]]
                j += 1
        groups.append((gi, go))
    pos = {a: k for k, a in enumerate(nontrivial(in_shape, perm))}
    runs = []
    for gi, go in groups:
        ks = [pos[a] for a in gi]
        if ks != list(range(ks[0], ks[0] + len(ks))):
            return None
        runs.append((ks[0], go))
    new_nz = [o for _, go in sorted(runs) for o in go]
    rank = len(out_shape)
    for candidate in (identity(rank), NHWC if rank == 4 else None):
        if candidate and nontrivial(out_shape, candidate) == new_nz:
            return candidate
    # axes of 1 first: the batch axis stays leading, as the float executor's batching wants
    return tuple([a for a in range(rank) if out_shape[a] == 1] + new_nz)


def flatten_order(in_shape, perm, out_shape) -> np.ndarray | None:
    """For a rank-2 reshape that would move bytes: the column order the IR's own flatten gives,
    if every row is a permutation of the ONNX row (a flatten that keeps the batch dimension)."""
    if len(out_shape) != 2:
        return None
    n, k = out_shape
    idx = np.arange(int(np.prod(in_shape, dtype=np.int64))).reshape(in_shape).transpose(perm).reshape(n, k)
    order = idx - (np.arange(n) * k)[:, None]
    if (order != order[0]).any() or sorted(order[0].tolist()) != list(range(k)):
        return None
    return order[0].copy()
