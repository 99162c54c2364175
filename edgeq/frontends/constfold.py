"""A small numpy evaluator for constant subgraphs of ONNX operators.

Exporters leave shape arithmetic in the graph (Shape -> Gather -> Unsqueeze -> Concat -> Reshape)
and the odd transposed or cast weight. Every such node whose inputs are all constant is evaluated
here at import time, with ONNX semantics, so only real layers reach the IR.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

Evaluator = Callable[[list, dict], list]
EVALUATORS: dict[str, Evaluator] = {}


def _op(*names: str):
    def register(fn):
        for n in names:
            EVALUATORS[n] = fn
        return fn
    return register


def axes_of(inputs: list, attrs: dict, pos: int = 1):
    """Axes from the attribute (older opsets) or from input `pos` (newer ones); None when absent."""
    if "axes" in attrs:
        return [int(a) for a in attrs["axes"]]
    if len(inputs) > pos and inputs[pos] is not None:
        return [int(a) for a in np.asarray(inputs[pos]).reshape(-1)]
    return None


def reshape_target(in_shape: tuple, shape, allowzero: int = 0) -> tuple[int, ...]:
    """ONNX Reshape's output shape: 0 copies the input dimension (unless allowzero), -1 is inferred."""
    shape = [int(s) for s in np.asarray(shape).reshape(-1)]
    out = [in_shape[i] if s == 0 and not allowzero else s for i, s in enumerate(shape)]
    if -1 in out:
        known = int(np.prod([s for s in out if s != -1], dtype=np.int64))
        out[out.index(-1)] = int(np.prod(in_shape, dtype=np.int64)) // max(known, 1)
    return tuple(out)


def flatten_shape(in_shape: tuple, axis: int) -> tuple[int, int]:
    axis = axis + len(in_shape) if axis < 0 else axis
    return (int(np.prod(in_shape[:axis], dtype=np.int64)), int(np.prod(in_shape[axis:], dtype=np.int64)))


def squeeze_shape(in_shape: tuple, axes) -> tuple[int, ...]:
    rank = len(in_shape)
    drop = {a % rank for a in axes} if axes is not None else {i for i, d in enumerate(in_shape) if d == 1}
    return tuple(d for i, d in enumerate(in_shape) if i not in drop)


def unsqueeze_shape(in_shape: tuple, axes) -> tuple[int, ...]:
    rank = len(in_shape) + len(axes)
    out = list(in_shape)
    for a in sorted(a % rank for a in axes):
        out.insert(a, 1)
    return tuple(out)


@_op("Identity")
def _identity(i, a):
    return [i[0]]


@_op("Shape")
def _shape(i, a):
    shape = np.array(np.shape(i[0]), dtype=np.int64)
    start, end = a.get("start", 0), a.get("end")
    return [shape[start:end]]


@_op("Size")
def _size(i, a):
    return [np.array(np.size(i[0]), dtype=np.int64)]


@_op("Cast")
def _cast(i, a):
    return [np.asarray(i[0]).astype(a["to"])]


@_op("CastLike")
def _cast_like(i, a):
    return [np.asarray(i[0]).astype(np.asarray(i[1]).dtype)]


@_op("Gather")
def _gather(i, a):
    return [np.take(i[0], np.asarray(i[1], dtype=np.int64), axis=a.get("axis", 0))]


@_op("Concat")
def _concat(i, a):
    return [np.concatenate([np.asarray(x) for x in i], axis=a["axis"])]


@_op("Unsqueeze")
def _unsqueeze(i, a):
    return [np.asarray(i[0]).reshape(unsqueeze_shape(np.shape(i[0]), axes_of(i, a)))]


@_op("Squeeze")
def _squeeze(i, a):
    return [np.asarray(i[0]).reshape(squeeze_shape(np.shape(i[0]), axes_of(i, a)))]


@_op("Reshape")
def _reshape(i, a):
    return [np.asarray(i[0]).reshape(reshape_target(np.shape(i[0]), i[1], a.get("allowzero", 0)))]


@_op("Flatten")
def _flatten(i, a):
    return [np.asarray(i[0]).reshape(flatten_shape(np.shape(i[0]), a.get("axis", 1)))]


@_op("Transpose")
def _transpose(i, a):
    return [np.transpose(i[0], a.get("perm"))]


@_op("ConstantOfShape")
def _constant_of_shape(i, a):
    value = np.asarray(a.get("value", np.zeros(1, dtype=np.float32))).reshape(-1)
    return [np.full(tuple(int(d) for d in np.asarray(i[0]).reshape(-1)), value[0], dtype=value.dtype)]


@_op("Range")
def _range(i, a):
    return [np.arange(i[0], i[1], i[2]).astype(np.asarray(i[0]).dtype)]


@_op("Slice")
def _slice(i, a):
    x = np.asarray(i[0])
    if "starts" in a:  # opset < 10
        starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes"), None
    else:
        starts, ends = list(np.asarray(i[1]).reshape(-1)), list(np.asarray(i[2]).reshape(-1))
        axes = list(np.asarray(i[3]).reshape(-1)) if len(i) > 3 and i[3] is not None else None
        steps = list(np.asarray(i[4]).reshape(-1)) if len(i) > 4 and i[4] is not None else None
    axes = axes if axes is not None else range(len(starts))
    steps = steps if steps is not None else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for ax, s, e, st in zip(axes, starts, ends, steps):
        # ONNX clamps out-of-range bounds (INT64_MAX means "to the end"), as Python slicing does
        index[int(ax)] = slice(int(s), int(e), int(st))
    return [x[tuple(index)]]


@_op("Expand")
def _expand(i, a):
    shape = np.broadcast_shapes(np.shape(i[0]), tuple(int(d) for d in np.asarray(i[1]).reshape(-1)))
    return [np.broadcast_to(i[0], shape).copy()]


@_op("Tile")
def _tile(i, a):
    return [np.tile(i[0], tuple(int(r) for r in np.asarray(i[1]).reshape(-1)))]


@_op("Where")
def _where(i, a):
    return [np.where(i[0], i[1], i[2])]


def _binary(fn):
    def run(i, a):
        x, y = np.asarray(i[0]), np.asarray(i[1])
        out = fn(x, y)
        # ONNX keeps the operand type (integer division stays integer)
        return [np.asarray(out).astype(np.result_type(x, y)) if out.dtype != bool else out]
    return run


def _int_aware_div(x, y):
    if np.issubdtype(x.dtype, np.integer) and np.issubdtype(y.dtype, np.integer):
        return np.trunc(x / y).astype(np.result_type(x, y))
    return x / y


for _name, _fn in {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": _int_aware_div,
                   "Pow": np.power, "Equal": np.equal, "Less": np.less, "Greater": np.greater,
                   "LessOrEqual": np.less_equal, "GreaterOrEqual": np.greater_equal, "And": np.logical_and,
                   "Or": np.logical_or}.items():
    EVALUATORS[_name] = _binary(_fn)


@_op("Mod")
def _mod(i, a):  # fmod=0: the sign of the divisor, like Python's %; fmod=1: C's fmod
    return _binary(np.fmod if a.get("fmod", 0) else np.mod)(i, a)

for _name, _fn in {"Neg": np.negative, "Sqrt": np.sqrt, "Abs": np.abs, "Floor": np.floor, "Ceil": np.ceil,
                   "Reciprocal": np.reciprocal, "Not": np.logical_not, "Exp": np.exp, "Log": np.log,
                   "Relu": lambda x: np.maximum(x, 0), "Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
                   "Tanh": np.tanh}.items():
    EVALUATORS[_name] = (lambda f: lambda i, a: [np.asarray(f(np.asarray(i[0]))).astype(np.asarray(i[0]).dtype)])(_fn)


EVALUATORS["Min"] = lambda i, a: [np.minimum.reduce([np.asarray(x) for x in i])]
EVALUATORS["Max"] = lambda i, a: [np.maximum.reduce([np.asarray(x) for x in i])]
EVALUATORS["Sum"] = lambda i, a: [np.add.reduce([np.asarray(x) for x in i])]


@_op("Clip")
def _clip(i, a):
    lo = i[1] if len(i) > 1 and i[1] is not None else a.get("min", -np.inf)
    hi = i[2] if len(i) > 2 and i[2] is not None else a.get("max", np.inf)
    return [np.clip(i[0], lo, hi).astype(np.asarray(i[0]).dtype)]


def _reduce(fn):
    def run(i, a):
        axes = axes_of(i, a)
        x = np.asarray(i[0])
        if axes is None and a.get("noop_with_empty_axes", 0):
            return [x]
        out = fn(x, axis=tuple(axes) if axes is not None else None, keepdims=bool(a.get("keepdims", 1)))
        return [np.asarray(out).astype(x.dtype)]
    return run


for _name, _fn in {"ReduceProd": np.prod, "ReduceSum": np.sum, "ReduceMean": np.mean, "ReduceMax": np.max,
                   "ReduceMin": np.min}.items():
    EVALUATORS[_name] = _reduce(_fn)


def _per_axis(x: np.ndarray, v: np.ndarray, axis: int) -> np.ndarray:
    if v.ndim == 1 and v.size > 1:
        shape = [1] * x.ndim
        shape[axis % x.ndim] = -1
        return v.reshape(shape)
    return v


@_op("QuantizeLinear")
def _quantize(i, a):
    x = np.asarray(i[0], dtype=np.float32)
    zp = np.asarray(i[2]) if len(i) > 2 and i[2] is not None else np.zeros((), dtype=np.uint8)
    info = np.iinfo(zp.dtype)
    axis = a.get("axis", 1)
    scale, zpb = _per_axis(x, np.asarray(i[1], dtype=np.float32), axis), _per_axis(x, zp, axis)
    q = np.rint(x / scale) + zpb.astype(np.int64)  # rint: round half to even, as ONNX specifies
    return [np.clip(q, info.min, info.max).astype(zp.dtype)]


@_op("DequantizeLinear")
def _dequantize(i, a):
    x = np.asarray(i[0])
    scale = np.asarray(i[1], dtype=np.float32)
    zp = np.asarray(i[2]) if len(i) > 2 and i[2] is not None else np.zeros_like(scale, dtype=np.int64)
    scale, zp = _per_axis(x, scale, a.get("axis", 1)), _per_axis(x, zp, a.get("axis", 1))
    return [((x.astype(np.int64) - zp.astype(np.int64)).astype(np.float32) * scale).astype(np.float32)]


def evaluate(op: str, inputs: list, attrs: dict) -> list[np.ndarray]:
    """Outputs of one node whose inputs are numpy arrays (None for an omitted optional input)."""
    return [np.asarray(o) for o in EVALUATORS[op](inputs, attrs)]
