"""Error-compensating weight rounding (GPTQ, Frantar et al. 2023, from Optimal Brain Quantization).

Rounding each weight to the nearest step is optimal for the weights, not for the layer's output.
Taking a layer's input columns one at a time, the rounding error of a column is spread over the
columns not yet rounded, weighted by the inverse of H = E[x x^T] of the layer's real (quantized)
inputs, so the output error ||(W - Q) x|| shrinks. The scales (2^-n per output channel or per tensor) are unchanged.
"""
from __future__ import annotations

import numpy as np

from edgeq.ir import ops
from edgeq.lowering.conv import _float_patches
from edgeq.quant.pot import per_channel, weight_axis

MAX_ROWS = 8192  # input vectors per layer for H
DAMP = 0.01  # of H's mean diagonal, for layers whose inputs do not span every direction


def layer_steps(op: ops.Op, steps: np.ndarray, w_float: np.ndarray) -> np.ndarray:
    """A layer's weight steps (one, or one per output channel) as [B, O, 1], the layout of the rows below."""
    s = np.broadcast_to(np.asarray(steps, np.float64).reshape(-1), (w_float.shape[weight_axis(op)],))
    return s[:, None, None] if isinstance(op, ops.DepthwiseConv2D) else s[None, :, None]


def plain_rounding(op: ops.Op, w_float: np.ndarray, steps: np.ndarray) -> np.ndarray:
    return np.clip(np.round(w_float / per_channel(steps, op, w_float.ndim)), -127, 127).astype(np.int8)


def _round_columns(w: np.ndarray, h: np.ndarray, step: np.ndarray, qmax: int = 127) -> np.ndarray:
    """w [B, O, K] float, h [B, K, K], step [B, O, 1]: integer weights [B, O, K] (B independent problems)."""
    k = h.shape[-1]
    h = h + DAMP * np.mean(np.diagonal(h, axis1=1, axis2=2), axis=1)[:, None, None] * np.eye(k) + 1e-12 * np.eye(k)
    u = np.linalg.cholesky(np.linalg.inv(h)).transpose(0, 2, 1)  # upper Cholesky factor of H^-1
    w = w.astype(np.float64).copy()
    q = np.empty_like(w)
    step = step[:, :, 0]
    for i in range(k):
        q[:, :, i] = np.clip(np.round(w[:, :, i] / step), -qmax, qmax)
        err = (w[:, :, i] - q[:, :, i] * step) / u[:, i, i][:, None]
        w[:, :, i + 1:] -= err[:, :, None] * u[:, None, i, i + 1:]
    return q


def _rows(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= MAX_ROWS else x[rng.choice(len(x), MAX_ROWS, replace=False)]


def round_layer(op: ops.Op, w_float: np.ndarray, steps: np.ndarray, inputs: list[np.ndarray], out_shape) -> np.ndarray:
    """The int8 weights of a conv/depthwise/FC layer with scales `steps` (per tensor or per output channel), rounded
    against its inputs."""
    rng = np.random.default_rng(0)
    step = layer_steps(op, steps, w_float)
    if isinstance(op, ops.FullyConnected):
        x = _rows(np.concatenate([v.reshape(-1, w_float.shape[1]) for v in inputs]).astype(np.float64), rng)
        return _round_columns(w_float[None], (x.T @ x / len(x))[None], step)[0].astype(np.int8)
    kh, kw = w_float.shape[1:3]
    patches = np.concatenate([_float_patches(v, op, (kh, kw), out_shape).reshape(-1, kh * kw, v.shape[-1])
                              for v in inputs])
    patches = _rows(patches, rng)
    if isinstance(op, ops.DepthwiseConv2D):
        m = op.depth_multiplier
        x = patches.transpose(2, 0, 1)  # [C, rows, KH*KW]
        h = np.einsum("crk,crl->ckl", x, x) / x.shape[1]
        h = np.repeat(h, m, axis=0)  # output channel c*M+j reads input channel c
        w = w_float[0].reshape(kh * kw, -1).T[:, None, :]  # [C*M, 1, KH*KW]
        q = _round_columns(w, h, step)[:, 0, :]
        return q.T.reshape(1, kh, kw, -1).astype(np.int8)
    cin = patches.shape[-1]
    if w_float.shape[3] != cin:  # grouped convolution: plain rounding
        return plain_rounding(op, w_float, steps)
    x = patches.reshape(len(patches), -1)
    q = _round_columns(w_float.reshape(w_float.shape[0], -1)[None], (x.T @ x / len(x))[None], step)[0]
    return q.reshape(w_float.shape).astype(np.int8)
