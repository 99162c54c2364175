"""The int8 .tflite export of power-of-two graphs, checked against LiteRT and TFLite Micro, and compiled by
Arm's Vela for an Ethos-U55 (the corstone300-u55 board).

edgeq requantizes a power-of-two graph with one rounding shift per layer, rounded as LiteRT's reference
kernels round a multiplier of 2^-n, so the exported file runs bit-exact in LiteRT end to end. TFLM rounds
fully connected layers differently from LiteRT (twice, through its Q31 multiplier), so there one LSB can
differ. Each operator is also checked on its own: the runtime's inputs to it (every tensor preserved)
through edgeq's kernel must give the runtime's output within one LSB (LiteRT's int8 LOGISTIC is its own
table, not TFLM's integer code that edgeq follows).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.models import branchy_model, digits_cnn, digits_data

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, Quant, Tensor, ops

tf = pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert.interpreter")
L = tf.keras.layers
ROOT = Path(__file__).resolve().parents[1]
SAMPLES = 200


def quantize_and_export(graph: Graph, calib: np.ndarray, tmp: Path, equalization: str = "auto"):
    from edgeq.export import to_tflite
    from edgeq.quant.driver import QuantOptions, quantize

    np.savez(tmp / f"{graph.name}_calib.npz", x=calib)
    qgraph = quantize(graph, tmp / f"{graph.name}_calib.npz", QuantOptions(equalization), echo=lambda *a: None).graph
    assert qgraph.requant == "shift"
    return qgraph, to_tflite(qgraph)


def quantize_inputs(qgraph: Graph, x: np.ndarray) -> list[np.ndarray]:
    from edgeq.quant.pot import quantize_sample

    t = qgraph.t(qgraph.inputs[0])
    return [quantize_sample(s, t.quant).reshape(t.shape) for s in x]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The digits CNN of test_quant_pot (conv, depthwise with ReLU6, max/average pool, dense, softmax),
    quantized without equalization so that its fused ReLU6 stays a ReLU6."""
    from edgeq.frontends.tflite import load_tflite

    x, _ = digits_data()
    model = digits_cnn(epochs=5)
    graph = load_tflite(tf.lite.TFLiteConverter.from_keras_model(model).convert(), "digits")
    qgraph, data = quantize_and_export(graph, x[1400:1464], tmp_path_factory.mktemp("digits"), "off")
    assert any(getattr(op, "activation", None) == ops.Activation.RELU6 for op in qgraph.ops)
    return qgraph, data, quantize_inputs(qgraph, x[1500:1500 + SAMPLES])


@pytest.fixture(scope="module")
def branchy(tmp_path_factory):
    """test_quant_pot's branchy model: residual ADD, MUL by a sigmoid gate, LeakyReLU, concatenation of
    differently scaled tensors (so a requantizing QUANTIZE), tanh, ReLU, global average pool (MEAN)."""
    from edgeq.frontends.tflite import load_tflite

    graph = load_tflite(tf.lite.TFLiteConverter.from_keras_model(branchy_model()).convert(), "branchy")
    rng = np.random.default_rng(0)
    qgraph, data = quantize_and_export(graph, rng.uniform(0, 1, (32, 8, 8, 1)).astype(np.float32),
                                       tmp_path_factory.mktemp("branchy"))
    return qgraph, data, quantize_inputs(qgraph, rng.uniform(0, 1, (SAMPLES, 8, 8, 1)).astype(np.float32))


def every_op_float_graph() -> Graph:
    """A float IR graph with every op kind the exporter writes, including those Keras models do not keep
    as such (standalone RELU, PAD, SQUEEZE, RESHAPE, MEAN with keep_dims, HARD_SWISH, depth multiplier 2)."""
    rng = np.random.default_rng(3)
    tensors: dict[str, Tensor] = {}

    def act(name, shape):
        tensors[name] = Tensor(name, shape, "float32")
        return name

    def const(name, shape, std=0.3):
        tensors[name] = Tensor(name, shape, "float32", None, rng.normal(0, std, shape).astype(np.float32))
        return name

    A, P = ops.Activation, ops.Padding
    layers = [
        ops.Conv2D("conv", [act("x", (1, 8, 8, 3)), const("conv_w", (8, 3, 3, 3)), const("conv_b", (8,), 0.1)],
                   [act("c1", (1, 8, 8, 8))], padding=P.SAME),
        ops.Relu("relu", ["c1"], [act("r1", (1, 8, 8, 8))]),
        ops.DepthwiseConv2D("dw", ["r1", const("dw_w", (1, 3, 3, 16)), const("dw_b", (16,), 0.1)],
                            [act("d1", (1, 4, 4, 16))], stride_h=2, stride_w=2, depth_multiplier=2,
                            padding=P.SAME, activation=A.RELU6),
        ops.Pad("pad", ["d1"], [act("p1", (1, 6, 6, 16))], paddings=((0, 0), (1, 1), (1, 1), (0, 0))),
        ops.MaxPool2D("maxpool", ["p1"], [act("m1", (1, 3, 3, 16))], 2, 2, 2, 2),
        ops.Conv2D("conv1x1", ["m1", const("c2_w", (16, 1, 1, 16)), const("c2_b", (16,), 0.1)],
                   [act("c2", (1, 3, 3, 16))]),
        ops.HardSwish("hard_swish", ["c2"], [act("h1", (1, 3, 3, 16))]),
        ops.LeakyRelu("leaky_relu", ["c2"], [act("l1", (1, 3, 3, 16))], alpha=0.2),
        ops.Add("add_relu", ["h1", "l1"], [act("a1", (1, 3, 3, 16))], activation=A.RELU),
        ops.Logistic("logistic", ["c2"], [act("s1", (1, 3, 3, 16))]),
        ops.Mul("mul", ["a1", "s1"], [act("mu1", (1, 3, 3, 16))]),
        ops.Tanh("tanh", ["c2"], [act("t1", (1, 3, 3, 16))]),
        ops.Concatenation("concat", ["mu1", "t1"], [act("cat", (1, 3, 3, 32))], axis=3),
        # not global: a global average pool is quantized as a MEAN (edgeq.passes.global_pool)
        ops.AveragePool2D("avgpool", ["cat"], [act("ap", (1, 3, 3, 32))], 3, 3, 1, 1, padding=P.SAME),
        ops.Add("add", ["ap", "cat"], [act("a2", (1, 3, 3, 32))]),
        ops.Mean("mean", ["a2"], [act("mn", (1, 1, 1, 32))], axes=(1, 2), keep_dims=True),
        ops.Squeeze("squeeze", ["mn"], [act("sq", (1, 32))], axes=(1, 2)),
        ops.FullyConnected("fc1", ["sq", const("f1_w", (16, 32)), const("f1_b", (16,), 0.1)],
                           [act("f1", (1, 16))], activation=A.RELU6),
        ops.Reshape("reshape", ["f1"], [act("rs", (1, 4, 4))]),
        ops.FullyConnected("fc2", ["rs", const("f2_w", (10, 16)), const("f2_b", (10,), 0.1)], [act("f2", (1, 10))]),
        ops.Softmax("softmax", ["f2"], [act("y", (1, 10))]),
    ]
    return Graph("every_op", tensors, layers, ["x"], ["y"])


@pytest.fixture(scope="module")
def every_op(tmp_path_factory):
    rng = np.random.default_rng(0)
    qgraph, data = quantize_and_export(every_op_float_graph(), rng.uniform(-1, 1, (32, 1, 8, 8, 3)).astype(np.float32),
                                       tmp_path_factory.mktemp("every_op"), "off")
    return qgraph, data, quantize_inputs(qgraph, rng.uniform(-1, 1, (SAMPLES, 1, 8, 8, 3)).astype(np.float32))


# --- running the exported file -------------------------------------------------------------------------

def tensor_indices(model: bytes) -> dict[str, int]:
    import tflite
    g = tflite.Model.GetRootAs(model, 0).Subgraphs(0)
    return {g.Tensors(i).Name().decode(): i for i in range(g.TensorsLength())}


def litert(model: bytes):
    """LiteRT with every tensor kept; its reference kernels where this build offers them (the optimized
    int8 LOGISTIC/TANH/SOFTMAX use float-made tables, the reference ones TFLite's integer code)."""
    from ai_edge_litert import interpreter as lr

    ref = getattr(getattr(lr, "OpResolverType", None), "BUILTIN_REF", None)
    kwargs = {"experimental_op_resolver_type": ref} if ref is not None else {}
    it = lr.Interpreter(model_content=model, experimental_preserve_all_tensors=True, **kwargs)
    it.allocate_tensors()
    index = tensor_indices(model)
    names = [d["name"] for d in it.get_input_details()]

    def run(xs: list[np.ndarray]):
        for name, x in zip(names, xs):
            it.set_tensor(index[name], x)
        it.invoke()
        return lambda name: it.get_tensor(index[name])
    return run


def tflm(model: bytes):
    from tflite_micro.python.tflite_micro import runtime

    # The default arena (10x the file) is too small for tiny models with every tensor kept, and TFLM crashes.
    it = runtime.Interpreter.from_bytes(model, arena_size=1 << 20,
                                        intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    index = tensor_indices(model)

    def run(xs: list[np.ndarray]):
        for i, x in enumerate(xs):
            it.set_input(x, i)
        it.invoke()
        return lambda name: np.asarray(it.GetTensor(index[name], 0)["tensor_data"])
    return run


class Diff:
    def __init__(self):
        self.max, self.one_lsb, self.total = 0, 0, 0

    def add(self, got: np.ndarray, want: np.ndarray) -> None:
        d = np.abs(got.astype(np.int64).reshape(want.shape) - want.astype(np.int64))
        self.max = max(self.max, int(d.max(initial=0)))
        self.one_lsb += int(np.sum(d == 1))
        self.total += d.size

    @property
    def rate(self) -> float:
        return self.one_lsb / max(self.total, 1)


def compare(qgraph: Graph, model: bytes, samples: list[np.ndarray], runtime) -> tuple[dict[str, Diff], Diff, float]:
    """Per operator: edgeq's kernel on the runtime's own inputs to it against the runtime's output.
    End to end: edgeq's executor against the runtime's outputs, and the top-1 agreement of the first."""
    from edgeq.lowering import lower_graph
    from edgeq.quant.executor import run_int
    from edgeq.lowering import run_kernel

    calls = lower_graph(qgraph)
    run = runtime(model)
    per_op = {call.layer: Diff() for call in calls}
    end_to_end, agree = Diff(), 0
    for x in samples:
        get = run([x])
        for call in calls:
            out = qgraph.t(call.outputs[0])
            ins = [get(n).reshape(qgraph.t(n).shape) for n in call.inputs]
            per_op[call.layer].add(get(out.name), run_kernel(call, ins, out.shape))
        ours = run_int(qgraph, [x], calls)
        for name in qgraph.outputs:
            end_to_end.add(get(name), ours[name])
        first = qgraph.outputs[0]
        agree += int(get(first).argmax() == ours[first].argmax())
    return per_op, end_to_end, agree / len(samples)


def summary(name: str, runtime: str, per_op: dict[str, Diff], e2e: Diff, agree: float) -> str:
    values = sum(d.total for d in per_op.values())
    ones = sum(d.one_lsb for d in per_op.values())
    rows = ", ".join(f"{op} {100 * d.rate:.2f}%" + (f" (max {d.max})" if d.max > 1 else "") for op, d in per_op.items())
    return (f"{name} vs {runtime}: one-LSB differences in {100 * ones / values:.2f}% of {values:,} operator outputs "
            f"(per op: {rows}); end to end {100 * e2e.rate:.2f}% one-LSB, max {e2e.max} LSB over {e2e.total:,} "
            f"values, top-1 agreement {100 * agree:.1f}%")


EXPECTED_KINDS = {
    "digits": {ops.Conv2D, ops.DepthwiseConv2D, ops.MaxPool2D, ops.Mean, ops.FullyConnected, ops.Softmax},
    "branchy": {ops.Add, ops.Mul, ops.Concatenation, ops.Quantize, ops.Mean, ops.LeakyRelu, ops.Tanh, ops.Logistic,
                ops.Relu},
}


@pytest.mark.parametrize("runtime", ["litert", "tflm"])
@pytest.mark.parametrize("model", ["digits", "branchy", "every_op"])
def test_runtimes_match_edgeq_per_op_within_one_lsb_and_litert_exactly(model, runtime, request):
    qgraph, data, samples = request.getfixturevalue(model)
    assert {type(op) for op in qgraph.ops} >= EXPECTED_KINDS.get(model, set())
    per_op, e2e, agree = compare(qgraph, data, samples, {"litert": litert, "tflm": tflm}[runtime])
    report = summary(model, runtime, per_op, e2e, agree)
    print(report)
    assert all(d.max <= 1 for d in per_op.values()), report
    if runtime == "litert":
        assert e2e.max == 0, report
    # TFLM's one-LSB steps in fully connected layers compound downstream; the classification must hold.
    assert agree >= 0.95, report


def test_every_op_kind_is_written_with_its_options(every_op):
    """The file read back by edgeq's TFLite frontend is the same graph: kinds, attributes, quantization,
    constants (DEPTHWISE weights [1, KH, KW, C*M]); constant operands (shape, paddings, axes) are in it."""
    import tflite

    from edgeq.frontends.tflite import load_tflite
    from edgeq.export.tflite_writer import SUPPORTED

    qgraph, data, _ = every_op
    # RELU6 is fused here; a standalone one is covered by test_what_cannot_be_exported_is_refused_by_name
    assert {op.kind for op in qgraph.ops} == set(SUPPORTED) - {"RELU6"}
    back = load_tflite(data, "back")
    assert [type(op) for op in back.ops] == [type(op) for op in qgraph.ops]
    def attributes(op):  # TFLite stores float options as float32, which is also what the kernels use
        return {k: np.float32(v) if isinstance(v, float) else v for k, v in vars(op).items()
                if k not in ("name", "inputs", "outputs")}

    for a, b in zip(qgraph.ops, back.ops):
        assert attributes(a) == attributes(b), a.name
        for n, m in zip(a.inputs + a.outputs, b.inputs + b.outputs):
            ta, tb = qgraph.t(n), back.t(m)
            assert (ta.shape, ta.dtype) == (tb.shape, tb.dtype), n
            if ta.quant is not None:
                assert ta.quant.axis == tb.quant.axis or ta.quant.per_tensor, n
                np.testing.assert_array_equal(ta.quant.scale, tb.quant.scale, err_msg=n)
                np.testing.assert_array_equal(ta.quant.zero_point, tb.quant.zero_point, err_msg=n)
            if ta.is_const:
                np.testing.assert_array_equal(ta.data, tb.data, err_msg=n)
    m = tflite.Model.GetRootAs(data, 0)
    assert m.Version() == 3 and m.SubgraphsLength() == 1 and m.Buffers(0).DataLength() == 0
    codes = [m.OperatorCodes(i) for i in range(m.OperatorCodesLength())]
    assert all(c.DeprecatedBuiltinCode() == min(c.BuiltinCode(), 127) for c in codes)


def test_a_tflite_int8_model_exports_to_an_equivalent_file():
    """A converter-made int8 model (per-channel weights) loaded and written again runs in LiteRT bit for bit
    like the original."""
    from edgeq.export import to_tflite
    from edgeq.frontends.tflite import load_tflite_file

    original = (ROOT / "examples" / "digits_cnn_int8.tflite").read_bytes()
    graph = load_tflite_file(ROOT / "examples" / "digits_cnn_int8.tflite")
    assert any(not graph.t(op.inputs[1]).quant.per_tensor for op in graph.ops if isinstance(op, ops.Conv2D))
    exported = to_tflite(graph)
    a, b = litert(original), litert(exported)
    rng = np.random.default_rng(1)
    for _ in range(50):
        x = rng.integers(-128, 128, graph.t(graph.inputs[0]).shape).astype(np.int8)
        np.testing.assert_array_equal(a([x])(graph.outputs[0]), b([x])(graph.outputs[0]))


def test_what_cannot_be_exported_is_refused_by_name():
    """A float op, and a power-of-two RELU6 whose output is quantized unlike its input (edgeq and TFLM clamp
    it without requantizing, LiteRT requantizes): clean errors naming the operator."""
    from edgeq.export import to_tflite
    from edgeq.quant.executor import run_int

    q = Quant([2.0 ** -4], [0])
    unsigned = Quant([2.0 ** -5], [-128])
    for name, op, out in (("deq", ops.Dequantize("deq", ["x"], ["y"]), Tensor("y", (4,), "float32")),
                          ("relu6", ops.Relu6("relu6", ["x"], ["y"]), Tensor("y", (4,), "int8", unsigned))):
        g = Graph("g", {"x": Tensor("x", (4,), "int8", q), "y": out}, [op], ["x"], ["y"], requant="shift")
        with pytest.raises(EdgeqError, match=name):
            to_tflite(g)
    # A RELU6 that keeps its input's quantization means the same everywhere, and exports.
    g = Graph("g", {"x": Tensor("x", (1, 256), "int8", q), "y": Tensor("y", (1, 256), "int8", q)},
              [ops.Relu6("relu6", ["x"], ["y"])], ["x"], ["y"], requant="shift")
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    want = run_int(g, [x])["y"]
    for runtime in (litert, tflm):
        np.testing.assert_array_equal(runtime(to_tflite(g))([x])("y").reshape(want.shape), want)


# --- Arm Vela and the corstone300-u55 board ------------------------------------------------------------

@pytest.fixture(scope="module")
def vela():
    pytest.importorskip("ethosu.vela", reason="Arm Vela is not installed (pip install ethos-u-vela)")
    from edgeq.targets.boards import get_board
    from edgeq.targets.npu import run_vela
    return lambda model, out: run_vela(model, out, get_board("corstone300-u55").raw["npu"])


@pytest.mark.parametrize("model", ["digits", "branchy", "every_op"])
def test_vela_puts_every_operator_on_the_ethos_u55(model, vela, request, tmp_path):
    _, data, _ = request.getfixturevalue(model)
    path = tmp_path / f"{model}_int8.tflite"
    path.write_bytes(data)
    r = vela(path, tmp_path / "vela")
    print(f"{model}: Vela {r['npu_operators']} NPU / {r['cpu_operators']} CPU operators, "
          f"{r['cycles_per_inference']:,} cycles ({1e6 * r['inference_time_s']:.1f} us at "
          f"{r['npu_clock_hz'] / 1e6:g} MHz), SRAM {r['sram_bytes']:,} B, flash {r['off_chip_flash_bytes']:,} B")
    assert r["cpu_operators"] == 0 and r["cpu_fallback_ops"] == [], r["cpu_fallback_reasons"]
    assert r["npu_operators"] > 0 and r["cycles_per_inference"] > 0 and r["sram_bytes"] > 0


def test_vela_cpu_fallback_is_reported_with_its_reason(vela, tmp_path):
    """An average pool with a 10x10 SAME window is beyond the Ethos-U55 (at most 8x8 with padding)."""
    from edgeq.export import write_tflite

    q = Quant([2.0 ** -4], [0])
    g = Graph("pool", {"x": Tensor("x", (1, 16, 16, 4), "int8", q), "y": Tensor("y", (1, 16, 16, 4), "int8", q)},
              [ops.AveragePool2D("pool", ["x"], ["y"], 10, 10, 1, 1, ops.Padding.SAME)], ["x"], ["y"],
              requant="shift")
    write_tflite(g, tmp_path / "pool.tflite")
    r = vela(tmp_path / "pool.tflite", tmp_path / "vela")
    assert r["cpu_fallback_ops"] == ["AVERAGE_POOL_2D"] and r["cpu_operators"] == 1
    assert any("AVERAGE_POOL_2D" in reason and "8" in reason for reason in r["cpu_fallback_reasons"]), r


def edgeq(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True)


@pytest.mark.usefixtures("cmsis_nn")  # the board's C takes CMSIS-NN where arm-mve declines a layer
def test_build_for_corstone300_u55_and_quantize_to_tflite(vela, tmp_path):
    """`edgeq build --board corstone300-u55` quantizes a float model, exports it, compiles it with Vela and
    reports the NPU's estimate beside edgeq's own arena; `edgeq quantize --tflite` writes the same file."""
    from edgeq.frontends.tflite import load_tflite_file

    tf.keras.utils.set_random_seed(4)
    x = tf.keras.Input((8, 8, 1), batch_size=1)
    y = L.Dense(4)(L.Flatten()(L.MaxPooling2D(2)(L.Conv2D(4, 3, activation="relu")(x))))
    model = tmp_path / "small.tflite"
    model.write_bytes(tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(x, y)).convert())
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(0).uniform(0, 1, (16, 8, 8, 1)).astype(np.float32))

    out = tmp_path / "npu"
    proc = edgeq("build", model, "--board", "corstone300-u55", "--calib", tmp_path / "calib.npz", "-o", out)
    assert proc.returncode == 0, proc.stderr
    for needle in ("cycles", "SRAM", "arena", "not run"):
        assert needle in proc.stdout, proc.stdout
    report = json.loads((out / "npu_report.json").read_text())
    assert json.loads((out / "model.json").read_text())["npu"] == report
    assert report["cpu_operators"] == 0 and report["cycles_per_inference"] > 0
    assert report["edgeq_c"]["arena_bytes"] > 0 and (out / report["files"]["vela_tflite"]).exists()
    assert f"{report['cycles_per_inference']:,} cycles" in proc.stdout
    proc = edgeq("profile", out)  # nothing can run it here: one clear line, not a serial-port hint
    assert proc.returncode == 1 and "npu_report.json" in proc.stderr and "Traceback" not in proc.stderr

    proc = edgeq("quantize", model, "--calib", tmp_path / "calib.npz", "-o", tmp_path / "q",
                 "--tflite", tmp_path / "q.tflite")
    assert proc.returncode == 0, proc.stderr
    assert [op.kind for op in load_tflite_file(tmp_path / "q.tflite").ops] == \
        [op.kind for op in load_tflite_file(out / "model_int8.tflite").ops]


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("kind", ["conv", "fully_connected", "mul"])
def test_ties_round_as_litert_at_every_small_shift(kind, k):
    """Small accumulators and shifts of 1-3, where many values are ties or one below a tie and the rounding
    rules differ: LiteRT's output equals edgeq's executor exactly, signs included (no activation clamps)."""
    from edgeq.export import to_tflite
    from edgeq.quant.executor import run_int

    rng = np.random.default_rng(k)
    sx, sw = 2.0 ** -4, 2.0 ** -6
    qx, qy = Quant([sx], [0]), Quant([sx * sw * 2.0 ** k], [0])
    tensors = {"x": Tensor("x", (1, 4, 4, 16), "int8", qx), "y": None}
    w = rng.integers(-3, 4, (8, 16)).astype(np.int8)
    bias = Tensor("b", (8,), "int32", Quant([sx * sw], [0]), rng.integers(-4, 5, 8).astype(np.int32))
    if kind == "conv":
        tensors["w"] = Tensor("w", (8, 1, 1, 16), "int8", Quant([sw], [0]), w.reshape(8, 1, 1, 16))
        tensors["y"] = Tensor("y", (1, 4, 4, 8), "int8", qy)
        op = ops.Conv2D("conv", ["x", "w", "b"], ["y"])
    elif kind == "fully_connected":
        tensors["x"] = Tensor("x", (16, 16), "int8", qx)
        tensors["w"] = Tensor("w", (8, 16), "int8", Quant([sw], [0]), w)
        tensors["y"] = Tensor("y", (16, 8), "int8", qy)
        op = ops.FullyConnected("fully_connected", ["x", "w", "b"], ["y"])
    else:
        tensors["w"] = Tensor("w", (1, 4, 4, 16), "int8", Quant([sw], [0]))
        tensors["y"] = Tensor("y", (1, 4, 4, 16), "int8", Quant([sx * sw * 2.0 ** k], [0]))
        op = ops.Mul("mul", ["x", "w"], ["y"])
    if kind != "mul":
        tensors["b"] = bias
    inputs = ["x", "w"] if kind == "mul" else ["x"]
    g = Graph(kind, tensors, [op], inputs, ["y"], requant="shift")
    xs = [rng.integers(-12, 13, g.t(n).shape).astype(np.int8) for n in inputs]
    want = run_int(g, xs)["y"]
    model = to_tflite(g)
    np.testing.assert_array_equal(litert(model)(xs)("y").reshape(want.shape), want)
    assert np.abs(want).max() < 127  # nothing saturated: every value was rounded, not clamped
    # TFLM rounds convolutions and MUL as LiteRT does, but fully connected layers twice (Q31 0.5, then a
    # rounding divide): one above on negative ties (k = 1) or on positive values just under a tie (k >= 2).
    diff = tflm(model)(xs)("y").reshape(want.shape).astype(int) - want
    if kind == "fully_connected":
        assert set(np.unique(diff)) == {0, 1}
        assert np.all(want[diff == 1] < 0) if k == 1 else np.all(want[diff == 1] >= 0)
    else:
        assert not diff.any()
