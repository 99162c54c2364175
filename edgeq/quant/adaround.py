"""Adaptive rounding (AdaRound, Nagel et al. 2020, "Up or Down? Adaptive Rounding for Post-Training
Quantization"), on the power-of-two scale edgeq already chose.

Each weight rounds down or up: q = clip(floor(w/s) + h(V), -127, 127), with h a rectified sigmoid of a
learned V. Per layer, V minimises the layer's output error against the float layer on real inputs, plus a
regulariser that drives every h to 0 or 1 (its exponent beta annealed from 20 to 2 after a warm-up), with
Adam. The output error is the asymmetric reconstruction of the paper (section 4): the float layer on its
float inputs against the quantized weights on the layer's real quantized inputs, so upstream error is
compensated too. For a linear layer it is a quadratic form, E||W x - Q x~||^2 = tr(W Hff W^T) -
2 tr(W Hfq Q^T) + tr(Q Hqq Q^T), so each step costs one [O, K] x [K, K] product, whatever the sample count.
"""
from __future__ import annotations

import numpy as np

from edgeq.ir import ops
from edgeq.lowering.conv import _float_patches
from edgeq.quant.rounding import layer_steps, plain_rounding

ZETA, GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch
ITERATIONS = 1000
WARMUP = 0.2  # share of the iterations without the regulariser
LAMBDA = 0.01
BETA = (20.0, 2.0)
LR = 0.01
MAX_ROWS = 8192
DAMP = 0.01  # of H's mean diagonal


def _h(v: np.ndarray) -> np.ndarray:
    return np.clip(1 / (1 + np.exp(-v)) * (ZETA - GAMMA) + GAMMA, 0, 1)


def _optimise(w: np.ndarray, hqq: np.ndarray, hfq: np.ndarray, step: np.ndarray, qmax: int = 127) -> np.ndarray:
    """w [B, O, K] float weights, step [B, O, 1]; hqq = E[x~ x~^T], hfq = E[x x~^T], [B, K, K]. Integer weights
    [B, O, K]."""
    scale = np.mean(np.diagonal(hqq, axis1=1, axis2=2), axis=1)[:, None, None] + 1e-30  # inputs in their own units
    # damped as GPTQ damps H: with fewer input rows than weights per row (fully connected layers on 64
    # samples) the undamped error can be fitted exactly, and held-out error rises
    eye = DAMP * np.eye(hqq.shape[-1])
    hqq, hfq = hqq / scale + eye, hfq / scale + eye
    wq = w / step  # in weight steps
    base = np.floor(wq)
    rest = np.clip(wq - base, 0.01, 0.99)
    v = -np.log((ZETA - GAMMA) / (rest - GAMMA) - 1)  # h(v) = the fractional part: starts at w itself
    target = wq @ hfq  # [B, O, K]: the float layer's correlation with the quantized inputs
    hqq32 = hqq.astype(np.float32)  # the step's product in float32: twice as fast, and h only needs its sign
    m, s2 = np.zeros_like(v), np.zeros_like(v)
    count = w.shape[1] * w.shape[2]
    warm = int(WARMUP * ITERATIONS)
    for it in range(ITERATIONS):
        sig = 1 / (1 + np.exp(-v))
        h_raw = sig * (ZETA - GAMMA) + GAMMA
        h = np.clip(h_raw, 0, 1)
        q = base + h
        live = (h_raw > 0) & (h_raw < 1) & (q >= -qmax) & (q <= qmax)
        grad_q = 2 * ((np.clip(q, -qmax, qmax).astype(np.float32) @ hqq32) - target) / count
        if it >= warm:
            beta = BETA[1] + (BETA[0] - BETA[1]) * (1 - (it - warm) / (ITERATIONS - warm))
            d = 2 * h - 1
            grad_q = grad_q - LAMBDA * beta * np.abs(d) ** (beta - 1) * np.sign(d) * 2 / count
        g = grad_q * live * sig * (1 - sig) * (ZETA - GAMMA)
        m = 0.9 * m + 0.1 * g
        s2 = 0.999 * s2 + 0.001 * g * g
        v -= LR * (m / (1 - 0.9 ** (it + 1))) / (np.sqrt(s2 / (1 - 0.999 ** (it + 1))) + 1e-12)
    return np.clip(base + (_h(v) >= 0.5), -qmax, qmax)


def _rows(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= MAX_ROWS else np.sort(rng.choice(n, MAX_ROWS, replace=False))


def _moments(xf: np.ndarray, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return xq.T @ xq / len(xq), xf.T @ xq / len(xq)


def round_layer(op: ops.Op, w_float: np.ndarray, steps: np.ndarray, float_inputs: list[np.ndarray],
                inputs: list[np.ndarray], out_shape) -> np.ndarray:
    """The int8 weights of a conv/depthwise/FC layer with scales `steps` (per tensor or per output channel): w_float
    against the layer's float inputs and its real (dequantized) quantized inputs, sample by sample."""
    rng = np.random.default_rng(0)
    w_float = w_float.astype(np.float64)
    step = layer_steps(op, steps, w_float)
    if isinstance(op, ops.FullyConnected):
        k = w_float.shape[1]
        xq = np.concatenate([v.reshape(-1, k) for v in inputs]).astype(np.float64)
        xf = np.concatenate([v.reshape(-1, k) for v in float_inputs]).astype(np.float64)
        rows = _rows(len(xq), rng)
        hqq, hfq = _moments(xf[rows], xq[rows])
        return _optimise(w_float[None], hqq[None], hfq[None], step)[0].astype(np.int8)
    kh, kw = w_float.shape[1:3]

    def patches(values):
        return np.concatenate([_float_patches(v, op, (kh, kw), out_shape).reshape(-1, kh * kw, v.shape[-1])
                               for v in values])

    pq, pf = patches(inputs), patches(float_inputs)
    rows = _rows(len(pq), rng)
    pq, pf = pq[rows], pf[rows]
    if isinstance(op, ops.DepthwiseConv2D):
        m = op.depth_multiplier
        xq, xf = pq.transpose(2, 0, 1), pf.transpose(2, 0, 1)  # [C, rows, KH*KW]
        hqq = np.repeat(np.einsum("crk,crl->ckl", xq, xq) / xq.shape[1], m, axis=0)
        hfq = np.repeat(np.einsum("crk,crl->ckl", xf, xq) / xq.shape[1], m, axis=0)
        w = w_float[0].reshape(kh * kw, -1).T[:, None, :]  # [C*M, 1, KH*KW]
        q = _optimise(w, hqq, hfq, step)[:, 0, :]
        return q.T.reshape(1, kh, kw, -1).astype(np.int8)
    if w_float.shape[3] != pq.shape[-1]:  # grouped convolution: plain rounding
        return plain_rounding(op, w_float, steps)
    hqq, hfq = _moments(pf.reshape(len(pf), -1), pq.reshape(len(pq), -1))
    q = _optimise(w_float.reshape(w_float.shape[0], -1)[None], hqq[None], hfq[None], step)[0]
    return q.reshape(w_float.shape).astype(np.int8)
