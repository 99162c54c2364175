"""Element-wise operators with a constant operand (`x * 0.5`, `tf.minimum(x, 6.0)`, a bias-like `x + c`): the
constant stays in flash as a const array the kernels read through its broadcast strides. Keep mode (int8, 16x8)
against TFLite Micro; power-of-two quantization of float models against the golden model; an emulated Arm board."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.oracles import check_model
from tests.tflite_builder import Op, T, build

pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro")

CODES = ["ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE"]
OPTIONS = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions"}
# TFLite's op versions for int8 and for 16x8
VERSIONS = {"ADD": (2, 3), "SUB": (2, 3), "MUL": (2, 4), "MAXIMUM": (2, 4), "MINIMUM": (2, 4),
            "SQUARED_DIFFERENCE": (2, 2)}
ACT_SHAPE = (1, 3, 4, 5)
# the constant's shape against the activation's: a scalar (rank 0 and rank 1), one per channel, the full shape, one
# per row, and a constant larger than the activation (the activation broadcasts)
CONST_SHAPES = [((), ACT_SHAPE), ((1,), ACT_SHAPE), ((5,), ACT_SHAPE), (ACT_SHAPE, ACT_SHAPE),
                ((1, 3, 1, 1), ACT_SHAPE), ((3, 4, 5), (1, 1, 5))]


def _extremes(dtype: str) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.array([info.min, info.min + 1, -1, 0, 1, info.max - 1, info.max])


def _configurations(code: str, dtype: str, seed: int) -> list[Op]:
    """Every constant shape, the constant first and second, with random scales, zero points (int8) and fused
    activations; constant values random with their type's extremes among them."""
    rng = np.random.default_rng(seed)
    wide = dtype == "int16"
    op_list = []
    for (c_shape, x_shape), const_first in itertools.product(CONST_SHAPES, [False, True]):
        lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
        data = rng.integers(lo, hi + 1, size=c_shape)
        pick = rng.random(np.shape(data)) < 0.3
        data = np.where(pick, rng.choice(_extremes(dtype), size=np.shape(data)), data).astype(dtype)
        base = 2.0 ** -12 if wide else 0.02
        s_x, s_c, s_y = (float(base * rng.uniform(0.3, 3.0)) for _ in range(3))
        if code in ("MAXIMUM", "MINIMUM") and rng.random() < 0.5:
            s_x = s_c = s_y  # the converter's way: one scale; TFLite Micro compares raw values in any case
        if code == "MUL":
            s_y = float(s_x * s_c * (2.0 ** 7 if not wide else 2.0 ** 15) * rng.uniform(0.5, 2.0))
        if code == "SQUARED_DIFFERENCE":
            s_y = float(max(s_x, s_c) ** 2 * (2.0 ** 8 if not wide else 2.0 ** 16) * rng.uniform(0.2, 2.0))
        zps = [0, 0, 0] if wide else [int(z) for z in rng.integers(-20, 21, 3)]
        x = T(x_shape, dtype, s_x, zps[0])
        c = T(tuple(c_shape), dtype, s_c, zps[1], data)
        y = T(tuple(np.broadcast_shapes(x_shape, c_shape)), dtype, s_y, zps[2])
        options, fields = None, {}
        if code in OPTIONS:
            options, fields = OPTIONS[code], {"fusedActivationFunction": int(rng.choice([0, 1, 3]))}
            if code in ("ADD", "SUB") and wide:
                fields["potScaleInt16"] = False  # the general 16x8 kernel, as the converter writes it
        op_list.append(Op(code, [c, x] if const_first else [x, c], [y], options, fields,
                          VERSIONS[code][int(wide)]))
    return op_list


def _sample(dtype: str):
    def sample(graph, rng):
        xs = []
        for n in graph.inputs:
            x = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max + 1, size=graph.t(n).shape)
            pick = rng.random(x.shape) < 0.2
            xs.append(np.where(pick, rng.choice(_extremes(dtype), size=x.shape), x).astype(dtype))
        return xs
    return sample


@pytest.mark.parametrize("dtype", ["int8", "int16"])
@pytest.mark.parametrize("code", CODES)
def test_constant_operand_keep_mode(code, dtype):
    """12 configurations per operator and type: numpy golden == host C (ASan/UBSan) == TFLite Micro."""
    from edgeq.frontends.tflite import load_tflite
    from edgeq.lowering import lower_graph

    model = build(_configurations(code, dtype, seed=CODES.index(code) + 10 * (dtype == "int16")))
    calls = lower_graph(load_tflite(model, "m"))
    assert [sorted(c.constants) for c in calls] == [[1], [0]] * len(CONST_SHAPES)
    check_model(model, n=4, sample=_sample(dtype))
