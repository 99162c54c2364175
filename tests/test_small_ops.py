"""TFLite NEG (the converter's DEQUANTIZE -> float NEG -> QUANTIZE, folded into an int8 table) and GATHER at
indices computed at run time (a model input, an ARG_MAX), against TFLite Micro: numpy and host C (ASan/UBSan)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.oracles import check_model
from tests.tflite_builder import Op, T, build, q8

pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro")


def _every_int8(graph, rng):
    return [rng.permutation(np.arange(-128, 128)).astype(np.int8).reshape(graph.t(n).shape) for n in graph.inputs]


def test_neg_float_round_trip_folded():
    """Scales and zero points where the round trip rounds ties, saturates, and changes scale."""
    cases = [((0.05, 3), (0.05, 3)), ((0.1, 0), (0.1, 0)), ((0.02, -128), (0.02, 127)), ((0.037, 10), (0.05, -7)),
             ((0.5, 0), (0.25, 0)), ((0.0123, -40), (0.031, 90))]
    op_list = []
    for (s_in, zp_in), (s_out, zp_out) in cases:
        f, g = T((16, 16), "float32"), T((16, 16), "float32")
        op_list += [Op("DEQUANTIZE", [q8((16, 16), s_in, zp_in)], [f], version=2),
                    Op("NEG", [f], [g]),
                    Op("QUANTIZE", [g], [q8((16, 16), s_out, zp_out)], version=2)]
    model = build(op_list)
    from edgeq.frontends.tflite import load_tflite
    assert [op.kind for op in load_tflite(model, "m").ops] == ["NEG"] * len(cases)
    check_model(model, n=2, sample=_every_int8)


def _indices(graph, rng):
    """int8 data, and indices inside their axis (the gather's axis size is recorded in the input's name)."""
    out = []
    for n in graph.inputs:
        t = graph.t(n)
        if t.dtype == "int32":
            out.append(rng.integers(0, AXIS_SIZES[n], size=t.shape).astype(t.dtype))
        else:
            out.append(rng.integers(-128, 128, size=t.shape).astype(np.int8))
    return out


AXIS_SIZES: dict[str, int] = {}


def test_gather_at_computed_indices():
    """Indices as model inputs (axes 0, 1 and last; 2-D indices; repeated indices; a constant int8 table as in an
    embedding), and indices an ARG_MAX computes. TFLite Micro takes int32 indices only, and so does edgeq."""
    from edgeq.frontends.tflite import load_tflite

    rng = np.random.default_rng(3)
    cases = [((5, 4), 0, (3,), "input"), ((2, 6, 3), 1, (2, 2), "input"), ((3, 4, 7), 2, (5,), "input"),
             ((4, 5), 1, (7,), "input"), ((10, 8), 0, (1, 4), "table")]
    op_list, index_tensors = [], []
    for shape, axis, idx_shape, kind in cases:
        idx = T(idx_shape, "int32")
        index_tensors.append((idx, shape[axis]))
        y_shape = (*shape[:axis], *idx_shape, *shape[axis + 1:])
        if kind == "table":
            x = T(shape, "int8", 0.1, 2, rng.integers(-128, 128, shape).astype(np.int8))
        else:
            x = q8(shape, 0.1, 2)
        y = T(y_shape, x.dtype, x.scale, x.zero_point)
        op_list.append(Op("GATHER", [x, idx], [y], "GatherOptions", {"axis": axis}, version=2))
    # ARG_MAX -> GATHER of a constant label table: a classifier's label id
    scores, ids = q8((2, 9), 0.1, 0), T((2,), "int32")
    labels = T((9, 3), "int8", 0.5, 0, np.arange(27, dtype=np.int8).reshape(9, 3))
    op_list += [Op("ARG_MAX", [scores, T((1,), "int32", data=np.array([1], np.int32))], [ids], "ArgMaxOptions",
                   {"outputType": 2}, version=2),
                Op("GATHER", [labels, ids], [q8((2, 3), 0.5, 0)], "GatherOptions", {"axis": 0}, version=2)]
    model = build(op_list)
    graph = load_tflite(model, "m")
    names = [n for n in graph.inputs if graph.t(n).dtype == "int32"]
    AXIS_SIZES.update({n: size for n, (_, size) in zip(names, index_tensors)})
    assert sum(op.kind == "GATHER" and len(op.inputs) == 2 for op in graph.ops) == len(cases) + 1
    check_model(model, n=8, sample=_indices)


def test_gather_index_outside_the_axis_is_refused():
    from edgeq.errors import EdgeqError
    from edgeq.frontends.tflite import load_tflite
    from edgeq.quant.executor import run_int

    graph = load_tflite(build([Op("GATHER", [q8((4, 3), 0.1, 0), T((2,), "int32")], [q8((2, 3), 0.1, 0)],
                                  "GatherOptions", {"axis": 0}, version=2)]), "m")
    x = np.zeros((4, 3), np.int8)
    run_int(graph, [x, np.array([3, 0], np.int32)])
    with pytest.raises(EdgeqError, match=r"index 4 is outside 0\.\.3"):
        run_int(graph, [x, np.array([1, 4], np.int32)])


def test_integer_neg_is_refused():
    from edgeq.errors import EdgeqError
    from edgeq.frontends.tflite import load_tflite

    with pytest.raises(EdgeqError, match=r"\(NEG\) is int8: TFLite Micro has no integer NEG"):
        load_tflite(build([Op("NEG", [q8((4, 8), 0.05, 3)], [q8((4, 8), 0.05, 3)])]), "m")
