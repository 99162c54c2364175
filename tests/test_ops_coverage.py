"""Issue 12's operators against TFLite Micro: each test is one model (written with tests/tflite_builder.py,
no converter) holding many configurations of an operator side by side, run on random inputs through TFLite
Micro, edgeq's numpy executor and edgeq's generated C (ASan/UBSan), compared bit for bit."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.oracles import check_model
from tests.tflite_builder import Op, T, build, const, q8

pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro")

# The TFLite operators these tests build (tests/test_ops.py covers the rest of the frontend's list).
COVERED = set("""TRANSPOSE STRIDED_SLICE SLICE SPLIT SPLIT_V PACK UNPACK GATHER DEPTH_TO_SPACE SPACE_TO_DEPTH
    BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND RESIZE_NEAREST_NEIGHBOR RESIZE_BILINEAR TILE EXPAND_DIMS SUB MAXIMUM MINIMUM
    ABS RSQRT EXP LOG GELU SQUARED_DIFFERENCE PRELU REDUCE_MAX SUM ARG_MAX TRANSPOSE_CONV BATCH_MATMUL
    L2_NORMALIZATION NEG""".split())  # NEG: tests/test_small_ops.py


def test_readme_operator_table_is_generated():
    """The README's operator table is the registries' (regenerate: python -m edgeq.coverage --readme README.md)."""
    import re
    from pathlib import Path

    from edgeq import coverage

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(re.escape(coverage.BEGIN) + r"\n(.*?)\n" + re.escape(coverage.END), readme, re.S)
    assert block and block.group(1) == coverage.markdown(), \
        "README.md's operator table is stale: run python -m edgeq.coverage --readme README.md"


def _check(op_list: list[Op], n: int = 6, **kw) -> None:
    check_model(build(op_list), n=n, **kw)


def _same(shape, zp: int = 3) -> tuple[T, T]:
    return q8(shape, 0.1, zp), q8((), 0.1, zp)


def _io(x_shape, y_shape, scale=0.1, zp=3) -> tuple[T, T]:
    return q8(x_shape, scale, zp), q8(y_shape, scale, zp)


def _shape_of(op_fn, x_shape):
    """Output shape from numpy: op_fn applied to an array of the input's shape."""
    return op_fn(np.zeros(x_shape)).shape


def test_transpose():
    cases = [((2, 3, 4), (2, 0, 1)), ((1, 5, 6, 3), (0, 3, 1, 2)), ((1, 3, 4, 5), (0, 2, 3, 1)),
             ((7, 3), (1, 0)), ((2, 3, 4, 5), (3, 2, 1, 0)), ((1, 2, 3, 2, 3), (0, 4, 2, 1, 3)), ((6,), (0,)),
             ((2, 1, 3, 1, 4), (4, 3, 2, 1, 0))]
    op_list = []
    for shape, perm in cases:
        x, _ = _io(shape, ())
        y = q8(tuple(shape[p] for p in perm), 0.1, 3)
        op_list.append(Op("TRANSPOSE", [x, const(perm)], [y], "TransposeOptions", version=2))
    _check(op_list)


def _strided(shape, begin, end, strides, begin_mask=0, end_mask=0, shrink=0):
    x = q8(shape, 0.07, -5)
    index = []
    for a, d in enumerate(shape):
        b = None if begin_mask >> a & 1 else begin[a]
        e = None if end_mask >> a & 1 else end[a]
        index.append(b if shrink >> a & 1 else slice(b, e, strides[a]))
    y_shape = np.zeros(shape)[tuple(index)].shape
    y = q8(y_shape, 0.07, -5)
    return Op("STRIDED_SLICE", [x, const(begin), const(end), const(strides)], [y], "StridedSliceOptions",
              {"beginMask": begin_mask, "endMask": end_mask, "shrinkAxisMask": shrink}, version=2)


def test_strided_slice():
    _check([
        _strided((1, 8, 9, 3), [0, 1, 2, 0], [1, 7, 9, 3], [1, 2, 3, 1]),
        _strided((1, 8, 9, 3), [0, -3, 0, 1], [1, -1, 5, 3], [1, 1, 2, 1]),
        _strided((1, 8, 9, 3), [0, 7, 8, 2], [1, 0, 0, 0], [1, -1, -2, -1], end_mask=0b0000),
        _strided((1, 8, 9, 3), [0, 0, 0, 0], [1, 0, 0, 0], [1, -1, -3, 1], begin_mask=0b0110, end_mask=0b1110),
        _strided((4, 10), [1, 2], [2, 10], [1, 3], shrink=0b01),
        _strided((4, 10), [-1, 0], [0, 5], [1, 1], shrink=0b01),
        _strided((3, 4, 5), [0, 1, 0], [3, 2, 5], [2, 1, 1], shrink=0b010),
        _strided((2, 3, 4, 6), [1, 0, 1, 5], [2, 3, 4, 0], [1, 2, 3, -2]),
        _strided((12,), [100], [-100], [-1]),
    ])


def test_slice_split_unpack_pack():
    x1 = q8((1, 6, 7, 4), 0.1, 2)
    slice_out = q8((1, 3, 7, 2), 0.1, 2)
    x2 = q8((2, 9, 4), 0.2, -1)
    split_outs = [q8((2, 3, 4), 0.2, -1) for _ in range(3)]
    x3 = q8((1, 10, 3), 0.3, 0)
    splitv_outs = [q8((1, n, 3), 0.3, 0) for n in (2, 5, 3)]
    x4 = q8((3, 4, 2), 0.1, 7)
    unpack_outs = [q8((3, 2), 0.1, 7) for _ in range(4)]
    packs = [q8((2, 5), 0.1, 1) for _ in range(3)]
    pack_out = q8((2, 3, 5), 0.1, 1)
    packs0 = [q8((4,), 0.1, 1) for _ in range(2)]
    pack_out0 = q8((2, 4), 0.1, 1)
    _check([
        Op("SLICE", [x1, const([0, 2, 0, 1]), const([1, 3, -1, 2])], [slice_out], "SliceOptions", version=2),
        Op("SPLIT", [const(1), x2], split_outs, "SplitOptions", {"numSplits": 3}, version=2),
        Op("SPLIT_V", [x3, const([2, -1, 3]), const(-2)], splitv_outs, "SplitVOptions", {"numSplits": 3}, version=2),
        Op("UNPACK", [x4], unpack_outs, "UnpackOptions", {"num": 4, "axis": 1}, version=2),
        Op("PACK", packs, [pack_out], "PackOptions", {"valuesCount": 3, "axis": 1}, version=2),
        Op("PACK", packs0, [pack_out0], "PackOptions", {"valuesCount": 2, "axis": 0}, version=2),
        Op("EXPAND_DIMS", [q8((3, 4), 0.1, 2), const(1)], [q8((3, 1, 4), 0.1, 2)], version=1),
    ])


def test_gather():
    op_list = []
    for shape, axis, idx in [((5, 4), 0, [4, 0, 0, 2]), ((3, 6, 2), 1, [[1, 5], [0, 0], [3, 2]]),
                             ((2, 3, 4), -1, [3, 1]), ((10,), 0, [[9], [1]])]:
        x = q8(shape, 0.1, 4)
        idx_a = np.array(idx)
        y = q8(np.take(np.zeros(shape), idx_a, axis=axis).shape, 0.1, 4)
        op_list.append(Op("GATHER", [x, const(idx_a)], [y], "GatherOptions", {"axis": axis}, version=2))
    _check(op_list)


def test_depth_space_batch():
    op_list = []
    for shape, b in [((1, 3, 4, 8), 2), ((2, 2, 3, 9), 3), ((1, 1, 1, 4), 2)]:
        n, h, w, c = shape
        op_list.append(Op("DEPTH_TO_SPACE", [q8(shape, 0.1, 1)], [q8((n, h * b, w * b, c // (b * b)), 0.1, 1)],
                          "DepthToSpaceOptions", {"blockSize": b}, version=2))
    for shape, b in [((1, 4, 6, 3), 2), ((2, 6, 3, 2), 3)]:
        n, h, w, c = shape
        op_list.append(Op("SPACE_TO_DEPTH", [q8(shape, 0.1, 1)], [q8((n, h // b, w // b, c * b * b), 0.1, 1)],
                          "SpaceToDepthOptions", {"blockSize": b}, version=2))
    for shape, block, crops in [((4, 3, 2, 5), (2, 2), ((0, 0), (0, 0))), ((6, 2, 3, 1), (3, 2), ((1, 2), (0, 1))),
                                ((2, 4, 4, 2), (1, 2), ((0, 1), (2, 1)))]:
        n, h, w, c = shape
        out = (n // (block[0] * block[1]), h * block[0] - sum(crops[0]), w * block[1] - sum(crops[1]), c)
        op_list.append(Op("BATCH_TO_SPACE_ND", [q8(shape, 0.1, 1), const(block), const(crops)], [q8(out, 0.1, 1)],
                          "BatchToSpaceNDOptions", version=2))
    op_list += _space_to_batch([((1, 4, 6, 3), (2, 2)), ((2, 6, 3, 2), (3, 1))], no_pads=True)
    _check(op_list)


def _space_to_batch(cases, no_pads: bool = False) -> list[Op]:
    op_list = []
    for shape, block, *pads in cases:
        pads = ((0, 0), (0, 0)) if no_pads else pads[0]
        n, h, w, c = shape
        hp, wp = h + sum(pads[0]), w + sum(pads[1])
        out = (n * block[0] * block[1], hp // block[0], wp // block[1], c)
        op_list.append(Op("SPACE_TO_BATCH_ND", [q8(shape, 0.1, 7), const(block), const(pads)], [q8(out, 0.1, 7)],
                          "SpaceToBatchNDOptions", version=2))
    return op_list


def _check_litert(op_list: list[Op], n: int = 4, sample=None) -> None:
    """For what TFLite Micro cannot run: LiteRT's interpreter against edgeq's numpy executor and host C."""
    import tempfile
    from pathlib import Path

    from ai_edge_litert.interpreter import Interpreter

    from edgeq.build import build_and_run_host
    from edgeq.frontends.tflite import load_tflite
    from edgeq.lowering import lower_graph
    from edgeq.quant.executor import run_int

    model = build(op_list)
    graph = load_tflite(model, "m")
    it = Interpreter(model_content=model)
    it.allocate_tensors()
    rng = np.random.default_rng(0)
    samples, expected = [], []
    for _ in range(n):
        xs = sample(graph, rng) if sample else [rng.integers(-128, 128, size=graph.t(name).shape).astype(np.int8)
                                                 for name in graph.inputs]
        for d, x in zip(it.get_input_details(), xs):
            it.set_tensor(d["index"], x)
        it.invoke()
        samples.append(xs)
        expected.append([it.get_tensor(d["index"]) for d in it.get_output_details()])
        got = run_int(graph, xs, lower_graph(graph))
        for name, want in zip(graph.outputs, expected[-1]):
            np.testing.assert_array_equal(got[name], want)
    with tempfile.TemporaryDirectory() as d:
        outs = build_and_run_host(graph, Path(d), samples, sanitize=True)
    for got, want in zip(outs, expected):
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g.reshape(-1), w.reshape(-1))


def test_space_to_batch_padded_against_litert():
    """TFLite Micro pads int8 SPACE_TO_BATCH_ND with a value it never sets (what its arena held), so padded
    cases are held to LiteRT's interpreter, which pads with the zero point, as edgeq does."""
    _check_litert(_space_to_batch([((2, 3, 4, 2), (2, 3), ((1, 0), (1, 1))), ((1, 5, 5, 1), (3, 3), ((2, 2), (0, 1))),
                                   ((1, 2, 2, 3), (2, 2), ((1, 1), (1, 1)))]))


def test_tile_against_litert():
    """TILE: TFLite Micro has no such kernel; LiteRT's interpreter is the oracle."""
    _check_litert([Op("TILE", [q8((2, 3), 0.1, 1), const([2, 3])], [q8((4, 9), 0.1, 1)], version=2),
                   Op("TILE", [q8((1, 2, 1, 3), 0.1, 1), const([1, 1, 4, 2])], [q8((1, 2, 4, 6), 0.1, 1)], version=2),
                   Op("TILE", [q8((5,), 0.2, -3), const([3])], [q8((15,), 0.2, -3)], version=2)])


@pytest.mark.parametrize("code", ["RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"])
def test_resize(code):
    op_list = []
    options = "ResizeNearestNeighborOptions" if code == "RESIZE_NEAREST_NEIGHBOR" else "ResizeBilinearOptions"
    for (h, w), (oh, ow), align, half in itertools.product([(3, 4), (5, 2), (1, 3)], [(6, 8), (2, 3), (7, 5)],
                                                           [False, True], [False, True]):
        if align and half:
            continue
        op_list.append(Op(code, [q8((1, h, w, 3), 0.1, 2), const([oh, ow])], [q8((1, oh, ow, 3), 0.1, 2)], options,
                          {"alignCorners": align, "halfPixelCenters": half}, version=3))
    _check(op_list)


def _binary(code, a_shape, b_shape, scales, zps, options=None, fields=None, version=2):
    a, b = q8(a_shape, scales[0], zps[0]), q8(b_shape, scales[1], zps[1])
    y = q8(np.broadcast_shapes(a_shape, b_shape), scales[2], zps[2])
    return Op(code, [a, b], [y], options, fields or {}, version)


SHAPES = [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (1, 3, 1)), ((4, 1, 5), (1, 3, 1)), ((1, 6), (6,)), ((5,), (1,))]
SCALES = [((0.05, 0.05, 0.1), (0, 0, 0)), ((0.1, 0.02, 0.07), (-3, 10, 2)), ((0.01, 0.3, 0.5), (20, -7, -128)),
          ((0.2, 0.2, 0.05), (5, 5, 0))]


def test_sub():
    op_list = []
    for (a, b), (scales, zps), act in zip(itertools.cycle(SHAPES), SCALES * 3, [0, 1, 3, 2] * 3):
        op_list.append(_binary("SUB", a, b, scales, zps, "SubOptions", {"fusedActivationFunction": act}, version=3))
    _check(op_list)


def test_squared_difference():
    op_list = [_binary("SQUARED_DIFFERENCE", a, b, scales, zps)
               for (a, b), (scales, zps) in zip(itertools.cycle(SHAPES), SCALES * 2)]
    op_list.append(_binary("SQUARED_DIFFERENCE", (3, 5), (3, 5), (0.5, 0.5, 0.001), (0, 0, -128)))  # saturates
    _check(op_list)


def test_prelu():
    rng = np.random.default_rng(3)
    op_list = []
    for shape, alpha_shape, (s_x, s_a, s_y), (zx, za, zy) in [
            ((1, 4, 5, 3), (1, 1, 3), (0.1, 0.01, 0.08), (2, 0, -5)), ((1, 4, 5, 3), (4, 5, 3), (0.05, 0.02, 0.1), (0, 5, 0)),
            ((2, 6), (6,), (0.2, 0.004, 0.2), (-10, -3, 20)), ((3, 4), (1,), (0.1, 0.1, 0.03), (0, 0, 0))]:
        alpha = T(alpha_shape, "int8", s_a, za, rng.integers(-128, 128, alpha_shape).astype(np.int8))
        op_list.append(Op("PRELU", [q8(shape, s_x, zx), alpha], [q8(shape, s_y, zy)], version=1))
    _check(op_list)


def test_maximum_minimum():
    op_list = []
    for code in ("MAXIMUM", "MINIMUM"):
        for a, b in SHAPES:
            op_list.append(_binary(code, a, b, (0.1, 0.1, 0.1), (2, 2, 2)))
    _check(op_list)


def test_abs_rsqrt():
    op_list = []
    for (s_in, zp_in), (s_out, zp_out) in [((0.1, 0), (0.1, 0)), ((0.05, -20), (0.1, -128)), ((0.2, 30), (0.02, 5)),
                                           ((0.01, -128), (0.01, -128))]:
        op_list.append(Op("ABS", [q8((3, 7), s_in, zp_in)], [q8((3, 7), s_out, zp_out)], version=2))
    _check(op_list, n=10)


def test_rsqrt():
    """TFLite Micro stops on inputs below the zero point (negative reals), so the inputs here are not."""
    op_list, zps = [], []
    for (s_in, zp_in), (s_out, zp_out) in [((0.1, -128), (0.05, -128)), ((0.01, -100), (0.02, 0)),
                                           ((1.0, -128), (0.004, -128)), ((0.5, 0), (0.01, -50))]:
        op_list.append(Op("RSQRT", [q8((4, 9), s_in, zp_in)], [q8((4, 9), s_out, zp_out)], version=2))
        zps.append(zp_in)

    def sample(graph, rng):
        return [rng.integers(zp, 128, size=graph.t(n).shape).astype(np.int8) for n, zp in zip(graph.inputs, zps)]
    _check(op_list, n=10, sample=sample)


def test_reduce_max_sum_arg_max():
    op_list = []
    for shape, axes, keep in [((2, 5, 6, 3), [1, 2], False), ((2, 5, 6, 3), [3], True), ((4, 7), [0], False),
                              ((3, 4, 5), [-1, 0], True), ((3, 4, 5), [1], False)]:
        x = q8(shape, 0.1, 3)
        y_shape = np.zeros(shape).max(axis=tuple(axes), keepdims=keep).shape
        op_list.append(Op("REDUCE_MAX", [x, const(axes)], [q8(y_shape, 0.1, 3)], "ReducerOptions",
                          {"keepDims": keep}, version=2))
        op_list.append(Op("SUM", [q8(shape, 0.05, -4), const(axes)], [q8(y_shape, 0.6, 2)], "ReducerOptions",
                          {"keepDims": keep}, version=2))
    # TFLite Micro writes int32 indices only (its int64 output fails at invoke)
    for shape, axis, dtype in [((3, 10), 1, "int32"), ((2, 5, 4), 1, "int32"), ((6,), 0, "int32"),
                               ((2, 3, 4), 0, "int32")]:
        y = T(tuple(d for k, d in enumerate(shape) if k != axis), dtype)
        op_list.append(Op("ARG_MAX", [q8(shape, 0.1, 0), const([axis])], [y], "ArgMaxOptions",
                          {"outputType": 2 if dtype == "int32" else 4}, version=2))
    _check(op_list)


def _movement_model(tf):
    L = tf.keras.layers
    x = tf.keras.Input((8, 8, 2), batch_size=1)
    a = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    b = L.Permute((2, 1, 3))(L.Conv2D(8, 3, padding="same")(x))
    s = L.Subtract()([L.Maximum()([a, b]), L.Conv2D(8, 1)(x)])
    c = L.Cropping2D(((1, 3), (2, 2)))(L.Lambda(lambda t: tf.nn.depth_to_space(t, 2))(s))
    u = L.UpSampling2D(2)(L.MaxPooling2D(2)(c))
    p1, p2 = L.Lambda(lambda t: tf.split(t, 2, axis=-1))(u)
    y = L.Lambda(lambda t: tf.reduce_max(t, axis=[1]))(L.Add()([p1, L.Minimum()([p2, p1])]))
    return tf.keras.Model(x, L.Dense(5)(L.Flatten()(y)))


def _upsampling_model(tf):
    L = tf.keras.layers
    x = tf.keras.Input((8, 8, 2), batch_size=1)
    a = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    t = L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu")(a)
    u = L.UpSampling2D(2, interpolation="bilinear")(L.Conv2D(4, 1)(x))
    m = L.Lambda(lambda v: tf.matmul(v, v, transpose_b=True))(L.Reshape((16, 64))(L.Add()([t, u])))
    return tf.keras.Model(x, L.Dense(5)(L.Flatten()(m)))


@pytest.mark.parametrize("make,min_sqnr", [(_movement_model, 30), (_upsampling_model, 20)])
def test_power_of_two_float_model(tmp_path, make, min_sqnr):
    """Float models using the new operators (TRANSPOSE, MAXIMUM, SUB, DEPTH_TO_SPACE, STRIDED_SLICE, TILE,
    SPLIT, MINIMUM, REDUCE_MAX; TRANSPOSE_CONV, RESIZE_BILINEAR, BATCH_MATMUL), power-of-two quantized by
    edgeq: the host C (ASan/UBSan) equals the numpy executor bit for bit, and the outputs stay close to the
    float model's."""
    import subprocess
    import sys

    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    model = make(tf)
    path = tmp_path / "model.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", x=rng.uniform(-1, 1, (32, 8, 8, 2)).astype(np.float32))
    ev = rng.uniform(-1, 1, (20, 8, 8, 2)).astype(np.float32)
    np.savez(tmp_path / "eval.npz", x=ev)

    def edgeq(*args):
        return subprocess.run([sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True)

    out = tmp_path / "out"
    proc = edgeq("build", path, "--board", "host", "--calib", tmp_path / "calib.npz", "-o", out)
    assert proc.returncode == 0, proc.stderr
    proc = edgeq("validate", out, "--data", tmp_path / "eval.npz")
    assert proc.returncode == 0 and "20 of 20 samples bit-exact" in proc.stdout, proc.stdout + proc.stderr
    proc = edgeq("run", out, "--input", tmp_path / "eval.npz", "--output", tmp_path / "y.npy", "--dequantize")
    assert proc.returncode == 0, proc.stderr
    want = model.predict(ev, batch_size=1, verbose=0)
    got = np.load(tmp_path / "y.npy").reshape(want.shape)
    sqnr = 10 * np.log10(np.sum(want ** 2) / np.sum((want - got) ** 2))
    assert sqnr > min_sqnr, sqnr


def test_several_inputs_and_outputs(tmp_path):
    """`edgeq run` with --input once per input or one .npz keyed by input name, writing a .npz keyed by output
    name; `edgeq validate` with that .npz; every output equal to TFLite Micro's (int32 ARG_MAX indices too)."""
    import subprocess
    import sys

    from tests.oracles import tflm_run

    a, b = q8((4, 6), 0.1, 2), q8((4, 6), 0.05, -3)
    diff, y_idx = q8((4, 6), 0.2, 0), T((4,), "int32")
    model = build([Op("SUB", [a, b], [diff], "SubOptions", version=3),
                   Op("TRANSPOSE", [diff, const([1, 0])], [q8((6, 4), 0.2, 0)], "TransposeOptions", version=2),
                   Op("ARG_MAX", [b, const([1])], [y_idx], "ArgMaxOptions", {"outputType": 2}, version=2)])
    path = tmp_path / "two_io.tflite"
    path.write_bytes(model)

    def edgeq(*args):
        return subprocess.run([sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True)

    out = tmp_path / "out"
    proc = edgeq("build", path, "--board", "host", "-o", out)
    assert proc.returncode == 0, proc.stderr
    header = (out / "two_io.h").read_text()
    assert "int two_io_invoke(const int8_t *input0, const int8_t *input1, int8_t *output0, int32_t *output1);" in header
    rng = np.random.default_rng(0)
    xa, xb = (rng.integers(-128, 128, (5, 4, 6)).astype(np.int8) for _ in range(2))
    np.save(tmp_path / "a.npy", xa)
    np.save(tmp_path / "b.npy", xb)
    np.savez(tmp_path / "ab.npz", t0=xa, t1=xb)
    refs = [tflm_run(model, [xa[k], xb[k]], 2) for k in range(5)]
    for inputs in (["--input", tmp_path / "a.npy", "--input", tmp_path / "b.npy"], ["--input", tmp_path / "ab.npz"]):
        proc = edgeq("run", out, *inputs, "--output", tmp_path / "y.npz")
        assert proc.returncode == 0, proc.stderr
        with np.load(tmp_path / "y.npz") as y:
            names = sorted(y.files)
            assert len(names) == 2
            for k in range(5):
                got = [y[n][k] for n in ("t4", "t6")]
                for g, r in zip(got, refs[k]):
                    np.testing.assert_array_equal(g.reshape(-1), r.reshape(-1))
            assert y["t6"].dtype == np.int32
    proc = edgeq("validate", out, "--data", tmp_path / "ab.npz")
    assert proc.returncode == 0 and "5 of 5 samples bit-exact" in proc.stdout, proc.stdout + proc.stderr
    proc = edgeq("run", out, "--input", tmp_path / "a.npy", "--output", tmp_path / "y.npz")
    assert proc.returncode != 0 and "2 input(s)" in proc.stderr, proc.stderr
    proc = edgeq("run", out, "--input", tmp_path / "a.npy", "--input", tmp_path / "b.npy", "--output",
                 tmp_path / "y.npy")
    assert proc.returncode != 0 and "give --output a .npz" in proc.stderr, proc.stderr


def _transpose_conv(rng, in_hw, k, stride, padding, ci, co, per_channel=True, bias=True, act=0):
    kh, kw = (k, k) if isinstance(k, int) else k
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ih, iw = in_hw
    if padding == "SAME":
        oh, ow = ih * sh, iw * sw
    else:
        oh, ow = (ih - 1) * sh + kh, (iw - 1) * sw + kw
    s_x = 0.05
    s_w = rng.uniform(0.002, 0.02, co) if per_channel else 0.01
    w = T((co, kh, kw, ci), "int8", s_w, [0] * co if per_channel else 0,
          rng.integers(-127, 128, (co, kh, kw, ci)).astype(np.int8))
    ops_in = [const([1, oh, ow, co]), w, q8((1, ih, iw, ci), s_x, 3)]
    if bias:
        s_b = np.atleast_1d(s_w) * s_x
        ops_in.append(T((co,), "int32", list(s_b) if per_channel else float(s_b[0]), [0] * co if per_channel else 0,
                        rng.integers(-3000, 3000, co).astype(np.int32)))
    padding_code = {"SAME": 0, "VALID": 1}[padding]
    return Op("TRANSPOSE_CONV", ops_in, [q8((1, oh, ow, co), 0.15, -4)], "TransposeConvOptions",
              {"padding": padding_code, "strideH": sh, "strideW": sw, "fusedActivationFunction": act}, version=4)


def test_transpose_conv():
    rng = np.random.default_rng(5)
    _check([
        _transpose_conv(rng, (3, 4), 3, 2, "SAME", 4, 5),
        _transpose_conv(rng, (3, 4), 3, 2, "VALID", 4, 5, per_channel=False),
        _transpose_conv(rng, (4, 4), 2, 2, "SAME", 3, 2, bias=False),
        _transpose_conv(rng, (2, 5), (3, 1), (3, 1), "VALID", 2, 3),
        _transpose_conv(rng, (5, 3), 3, 1, "SAME", 6, 4, act=1),
        _transpose_conv(rng, (3, 3), 4, 3, "SAME", 2, 2, act=3),
        _transpose_conv(rng, (2, 2), 5, 2, "VALID", 3, 3),
    ])


def test_batch_matmul():
    rng = np.random.default_rng(6)
    op_list = []
    for a_shape, b_shape, adj_x, adj_y, const_rhs in [
            ((3, 4), (4, 5), False, False, False), ((2, 3, 4), (2, 4, 5), False, False, False),
            ((2, 3, 4), (4, 5), False, False, True), ((2, 1, 3, 6), (1, 3, 6, 2), False, False, False),
            ((4, 3), (5, 4), True, True, False), ((2, 6, 3), (2, 6, 4), True, False, True),
            ((1, 2, 5, 3), (2, 1, 4, 3), False, True, False)]:
        lhs = q8(a_shape, 0.05, 4)
        if const_rhs:
            rhs = T(b_shape, "int8", 0.02, -3, rng.integers(-128, 128, b_shape).astype(np.int8))
        else:
            rhs = q8(b_shape, 0.03, -7)
        a = np.zeros(a_shape)
        b = np.zeros(b_shape)
        y = np.matmul(np.swapaxes(a, -1, -2) if adj_x else a, np.swapaxes(b, -1, -2) if adj_y else b)
        op_list.append(Op("BATCH_MATMUL", [lhs, rhs], [q8(y.shape, 0.4, 2)], "BatchMatMulOptions",
                          {"adjX": adj_x, "adjY": adj_y}, version=4))
    _check(op_list)


def test_l2_normalization():
    op_list = [Op("L2_NORMALIZATION", [q8(shape, s, zp)], [q8(shape, 1 / 128, 0)], "L2NormOptions", version=2)
               for shape, s, zp in [((4, 10), 0.1, 0), ((2, 3, 16), 0.02, -20), ((1, 1, 1, 64), 0.5, 7), ((3, 1), 0.1, 0)]]
    _check(op_list, n=10)


def test_mobilenet_v2_nchw_input():
    """MobileNetV2 (Keras', untrained, alpha 0.35, 32x32) behind the NCHW -> NHWC TRANSPOSE that a PyTorch model
    converted to TFLite starts with, full int8: bit-exact with TFLite Micro in numpy and host C. (The logits
    end the model: with its softmax on these untrained logits this TFLite Micro build aborts in Prepare.)"""
    import tensorflow as tf

    from edgeq.frontends.tflite import load_tflite
    from tests.oracles import convert_int8

    L = tf.keras.layers
    tf.keras.utils.set_random_seed(0)
    net = tf.keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, include_top=False,
                                            pooling="avg")
    x = tf.keras.Input((3, 32, 32), batch_size=1)
    data = convert_int8(tf.keras.Model(x, L.Dense(10)(net(L.Permute((2, 3, 1))(x)))), [(3, 32, 32)], n_rep=8)
    kinds = [op.kind for op in load_tflite(data, "m").ops]
    assert kinds[0] == "TRANSPOSE" and kinds.count("DEPTHWISE_CONV_2D") == 17, kinds
    check_model(data, n=3)


# --- 16x8: int16 activations, int8 weights, int64 bias -------------------------------------------------------

def _int16_samples(graph, rng):
    return [rng.integers(-32768, 32768, size=graph.t(n).shape).astype(np.int16) for n in graph.inputs]


def convert_16x8(model, shapes, n_rep=16, seed=0, float_interface=False) -> bytes:
    """float_interface: float32 inputs and outputs, behind the converter's QUANTIZE and DEQUANTIZE."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)

    def rep():
        for _ in range(n_rep):
            yield [rng.uniform(-1, 1, size=(1, *s)).astype(np.float32) for s in shapes]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    if not float_interface:
        conv.inference_input_type = tf.int16
        conv.inference_output_type = tf.int16
    return conv.convert()


def test_16x8_model():
    """A 16x8 model (convolutions, depthwise, grouped, ADD, MUL, pooling, concatenation, transpose, fully
    connected with and without activations) from TensorFlow's converter: bit-exact with TFLite Micro."""
    import tensorflow as tf

    L = tf.keras.layers
    tf.keras.utils.set_random_seed(0)
    x = tf.keras.Input((8, 8, 4), batch_size=1)
    a = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    b = L.DepthwiseConv2D(3, padding="same", depth_multiplier=1, activation="relu6")(a)
    g = L.Conv2D(8, 3, strides=2, padding="same", groups=2)(b)
    c = L.Add()([a, b])
    d = L.Multiply()([c, b])
    p = L.MaxPooling2D(2)(d)
    q = L.AveragePooling2D(2, strides=1, padding="same")(p)
    m = L.Concatenate()([q, g])
    t = L.Permute((2, 1, 3))(m)
    y = L.Dense(6)(L.Dense(12, activation="relu")(L.Flatten()(t)))
    data = convert_16x8(tf.keras.Model(x, y), [(8, 8, 4)])
    from edgeq.frontends.tflite import load_tflite
    graph = load_tflite(data, "m")
    assert graph.t(graph.inputs[0]).dtype == "int16"
    check_model(data, n=6, sample=_int16_samples)
    # edgeq build and edgeq run with float inputs, quantized to int16 by edgeq run
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from edgeq.build import tflite_round
    from tests.oracles import tflm_run
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "m16.tflite").write_bytes(data)
        xs = np.random.default_rng(4).uniform(-1, 1, (3, 8, 8, 4)).astype(np.float32)
        np.save(d / "x.npy", xs)
        for args in (["build", d / "m16.tflite", "--board", "host", "-o", d / "out"],
                     ["run", d / "out", "--input", d / "x.npy", "--output", d / "y.npy"]):
            proc = subprocess.run([sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
        y = np.load(d / "y.npy")
        scale = graph.t(graph.inputs[0]).quant.s
        for k in range(3):
            # halves away from zero, as TFLite's QUANTIZE (tests/test_int16_activations.py checks it against TFLM)
            xq = np.clip(tflite_round(xs[k] / np.float32(scale)), -32768, 32767).astype(np.int16)[None]
            np.testing.assert_array_equal(y[k].reshape(-1), tflm_run(data, [xq])[0].reshape(-1))


def q16(shape, scale: float = 0.001) -> T:
    return T(tuple(shape), "int16", scale, 0)


def test_16x8_operators():
    """16x8 operators side by side with chosen scales: convolutions (per-channel, int64 bias), depthwise with a
    multiplier, fully connected, ADD/SUB/MUL with broadcasting, pooling, QUANTIZE int8 <-> int16, CONCATENATION,
    data movement."""
    rng = np.random.default_rng(9)

    def weights(shape, axis_len):
        return T(shape, "int8", list(rng.uniform(0.002, 0.02, axis_len)), [0] * axis_len,
                 rng.integers(-127, 128, shape).astype(np.int8), axis=0 if shape[0] == axis_len else 3)

    def bias(n, scales):
        return T((n,), "int64", list(scales), [0] * n, rng.integers(-2**20, 2**20, n).astype(np.int64))

    w = weights((6, 3, 3, 4), 6)
    conv = Op("CONV_2D", [q16((1, 7, 6, 4), 0.002), w, bias(6, np.array(w.scale) * 0.002)], [q16((1, 4, 3, 6), 0.01)],
              "Conv2DOptions", {"padding": 0, "strideH": 2, "strideW": 2, "fusedActivationFunction": 1}, version=4)
    dw_w = T((1, 3, 3, 8), "int8", list(rng.uniform(0.002, 0.02, 8)), [0] * 8,
             rng.integers(-127, 128, (1, 3, 3, 8)).astype(np.int8), axis=3)
    dw = Op("DEPTHWISE_CONV_2D", [q16((1, 6, 6, 4), 0.003), dw_w, bias(8, np.array(dw_w.scale) * 0.003)],
            [q16((1, 4, 4, 8), 0.02)], "DepthwiseConv2DOptions",
            {"padding": 1, "strideH": 1, "strideW": 1, "depthMultiplier": 2}, version=5)
    fc_w = T((5, 12), "int8", 0.01, 0, rng.integers(-127, 128, (5, 12)).astype(np.int8))
    fc = Op("FULLY_CONNECTED", [q16((2, 12), 0.004), fc_w, T((5,), "int64", 0.00004, 0,
                                                              rng.integers(-9999, 9999, 5).astype(np.int64))],
            [q16((2, 5), 0.05)], "FullyConnectedOptions", {"fusedActivationFunction": 0}, version=5)
    add = _binary16("ADD", (2, 3, 4), (1, 3, 1), (0.001, 0.002, 0.003), "AddOptions", 3)
    sub = _binary16("SUB", (2, 3, 4), (2, 3, 4), (0.002, 0.0005, 0.002), "SubOptions", 3)
    mul = _binary16("MUL", (3, 5), (5,), (0.01, 0.02, 0.05), "MulOptions", 4)
    pools = [Op(code, [q16((1, 6, 5, 3), 0.01)], [q16((1, 3, 3, 3), 0.01)], "Pool2DOptions",
                {"padding": 0, "strideH": 2, "strideW": 2, "filterHeight": 2, "filterWidth": 2}, version=3)
             for code in ("AVERAGE_POOL_2D", "MAX_POOL_2D")]
    requant = [Op("QUANTIZE", [q8((3, 4), 0.05, 7)], [q16((3, 4), 0.0004)], version=3),
               Op("QUANTIZE", [q16((3, 4), 0.0004)], [q8((3, 4), 0.03, -5)], version=3),
               Op("QUANTIZE", [q16((3, 4), 0.0004)], [q16((3, 4), 0.0011)], version=3)]
    parts = [q16((1, 2, 3), 0.01), q16((1, 4, 3), 0.01)]
    concat = Op("CONCATENATION", parts, [q16((1, 6, 3), 0.01)], "ConcatenationOptions", {"axis": 1}, version=3)
    transpose = Op("TRANSPOSE", [q16((2, 3, 4), 0.01), const([2, 0, 1])], [q16((4, 2, 3), 0.01)], version=5)

    def sample(graph, rng):
        return [rng.integers(-128, 128, size=graph.t(n).shape).astype(np.int8) if graph.t(n).dtype == "int8" else
                rng.integers(-32768, 32768, size=graph.t(n).shape).astype(np.int16) for n in graph.inputs]
    _check([conv, dw, fc, add, sub, mul, *pools, *requant, concat, transpose], n=6, sample=sample)


def _binary16(code, a_shape, b_shape, scales, options, version):
    y = q16(np.broadcast_shapes(a_shape, b_shape), scales[2])
    return Op(code, [q16(a_shape, scales[0]), q16(b_shape, scales[1])], [y], options, version=version)


def test_16x8_activations_and_pad():
    op_list = [Op("RELU", [q16((4, 9), 0.001)], [q16((4, 9), 0.0007)], version=3),
               Op("RELU6", [q16((4, 9), 0.0003)], [q16((4, 9), 0.0003)], version=3),
               Op("LEAKY_RELU", [q16((4, 9), 0.001)], [q16((4, 9), 0.0009)], "LeakyReluOptions", {"alpha": 0.15},
                  version=2),
               Op("PAD", [q16((1, 3, 4, 2), 0.01), const([[0, 0], [1, 2], [0, 1], [0, 0]])],
                  [q16((1, 6, 5, 2), 0.01)], version=4)]
    _check(op_list, n=6, sample=_int16_samples)


def _every_int8(graph, rng):
    """Each input holds all 256 int8 values (in a random order): every entry of a table is checked."""
    return [rng.permutation(np.arange(-128, 128)).astype(np.int8).reshape(graph.t(n).shape) for n in graph.inputs]


def test_exp_log_against_litert():
    """EXP and LOG in int8: TFLite Micro has neither; LiteRT's tables (float32 arithmetic) are the oracle."""
    cases = [((0.05, 3), (0.1, -100)), ((0.02, -128), (0.05, -128)), ((0.1, 20), (0.5, 0)), ((0.01, 0), (0.004, -50))]
    _check_litert([Op(code, [q8((16, 16), s_in, zp_in)], [q8((16, 16), s_out, zp_out)], version=1)
                   for code in ("EXP", "LOG") for (s_in, zp_in), (s_out, zp_out) in cases], n=2, sample=_every_int8)


def test_gelu_against_litert():
    cases = [((0.05, 3), (0.03, -40)), ((0.02, -20), (0.01, -100)), ((0.1, 0), (0.06, -90))]
    _check_litert([Op("GELU", [q8((16, 16), s_in, zp_in)], [q8((16, 16), s_out, zp_out)], "GeluOptions",
                      {"approximate": approx}, version=1)
                   for approx in (False, True) for (s_in, zp_in), (s_out, zp_out) in cases], n=2, sample=_every_int8)


def test_16x8_mean_and_sum():
    op_list = []
    for shape, axes, keep in [((1, 5, 6, 3), [1, 2], True), ((2, 7, 4), [1], False), ((3, 4, 5), [0, 2], False)]:
        y_shape = np.zeros(shape).mean(axis=tuple(axes), keepdims=keep).shape
        op_list.append(Op("MEAN", [q16(shape, 0.001), const(axes)], [q16(y_shape, 0.0007)], "ReducerOptions",
                          {"keepDims": keep}, version=3))
        op_list.append(Op("SUM", [q16(shape, 0.0002), const(axes)], [q16(y_shape, 0.004)], "ReducerOptions",
                          {"keepDims": keep}, version=2))
    _check(op_list, n=6, sample=_int16_samples)


@pytest.mark.skipif(not all(__import__("shutil").which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm", "cmake")),
                    reason="needs arm-none-eabi-gcc, qemu-system-arm and cmake")
@pytest.mark.usefixtures("cmsis_nn")  # auto on the M7 measures CMSIS-NN
def test_16x8_and_typed_outputs_on_the_emulated_m7(tmp_path):
    """Firmware for the emulated Cortex-M7 with int16 inputs and outputs (16x8 layers) and int32 ARG_MAX indices
    beside int8 ones: over the serial link, every output equal to TFLite Micro's."""
    import subprocess
    import sys

    from tests.oracles import tflm_run

    rng = np.random.default_rng(11)
    w = T((4, 3, 3, 2), "int8", 0.01, 0, rng.integers(-127, 128, (4, 3, 3, 2)).astype(np.int8))
    conv = Op("CONV_2D", [q16((1, 5, 5, 2), 0.002), w, T((4,), "int64", 0.00002, 0, np.arange(4, dtype=np.int64))],
              [q16((1, 5, 5, 4), 0.01)], "Conv2DOptions", {"padding": 0, "strideH": 1, "strideW": 1}, version=4)
    arg = Op("ARG_MAX", [q8((3, 7), 0.1, 0), const([1])], [T((3,), "int32")], "ArgMaxOptions", {"outputType": 2},
             version=2)
    model = build([conv, arg])
    (tmp_path / "typed.tflite").write_bytes(model)
    xs = rng.integers(-32768, 32768, (3, 1, 5, 5, 2)).astype(np.int16)
    xb = rng.integers(-128, 128, (3, 3, 7)).astype(np.int8)
    np.savez(tmp_path / "x.npz", t0=xs, t4=xb)

    def edgeq(*args):
        return subprocess.run([sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True)

    proc = edgeq("build", tmp_path / "typed.tflite", "--board", "qemu-mps2-an500", "-o", tmp_path / "fw")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = edgeq("run", tmp_path / "fw", "--input", tmp_path / "x.npz", "--output", tmp_path / "y.npz")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with np.load(tmp_path / "y.npz") as y:
        outs = [y[name] for name in y.files]
        for k in range(3):
            want = tflm_run(model, [xs[k], xb[k]], 2)
            got = sorted((o[k] for o in outs), key=lambda a: a.dtype.itemsize)  # int32 indices, int16 conv output
            for g, w_ in zip(got, sorted(want, key=lambda a: a.dtype.itemsize)):
                np.testing.assert_array_equal(g.reshape(-1), w_.reshape(-1))
