"""Issue 12: ONNX's LSTM and GRU (PyTorch's nn.LSTM and nn.GRU through torch.onnx.export) as
UNIDIRECTIONAL_SEQUENCE_LSTM and edgeq's GRU: the float executor against onnxruntime, the variants edgeq refuses by
name, and power-of-two builds whose numpy golden model and host C (ASan/UBSan) agree bit for bit."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
nn = torch.nn

from edgeq.errors import EdgeqError  # noqa: E402
from edgeq.frontends import load_model  # noqa: E402
from edgeq.ir import ops  # noqa: E402
from edgeq.quant.executor import run_float_graph  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                                        "ignore::FutureWarning", "ignore::torch.jit.TracerWarning")
STEPS, FEATURES, UNITS, CLASSES = 12, 6, 16, 4


class Tagger(nn.Module):
    """nn.LSTM or nn.GRU (batch first, `layers` layers: one ONNX node each) and a Linear head on the last step,
    read from the output sequence (Y) or from the final hidden state (Y_h)."""

    def __init__(self, layers: int = 1, from_hidden: bool = False, cell: str = "LSTM"):
        super().__init__()
        self.rnn = getattr(nn, cell)(FEATURES, UNITS, num_layers=layers, batch_first=True)
        self.head = nn.Linear(UNITS, CLASSES)
        self.from_hidden = from_hidden

    def forward(self, x):
        y, h = self.rnn(x)
        h = h[0] if isinstance(h, tuple) else h  # an LSTM's (h, c)
        return self.head(h[-1] if self.from_hidden else y[:, -1])


def export(model: nn.Module, path) -> str:
    torch.manual_seed(0)
    model.eval()
    torch.onnx.export(model, (torch.randn(1, STEPS, FEATURES),), str(path), dynamo=False, input_names=["x"],
                      output_names=["y"], opset_version=17)
    return str(path)


def sequences(n: int, seed: int = 0) -> np.ndarray:
    """Smooth random walks, [n, 1, steps, features]."""
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(0, 0.4, (n, 1, STEPS, FEATURES)), axis=2).astype(np.float32)


@pytest.mark.parametrize("layers, from_hidden, cell", [(1, False, "LSTM"), (2, True, "LSTM"), (2, True, "GRU")])
def test_float_matches_onnxruntime(tmp_path, layers, from_hidden, cell):
    torch.manual_seed(layers)
    path = export(Tagger(layers, from_hidden, cell), tmp_path / "rnn.onnx")
    graph = load_model(path)
    rnns = [op for op in graph.ops if isinstance(op, (ops.UnidirectionalSequenceLstm, ops.Gru))]
    assert len(rnns) == layers and all(isinstance(op, ops.Gru) or op.reset_state for op in rnns)
    sess = ort.InferenceSession(path)
    for x in sequences(6):
        ref = sess.run(None, {"x": x})[0]
        out = run_float_graph(graph, [x])[graph.outputs[0]]
        assert np.abs(out - ref).max() <= 1e-4, (out, ref)


def _onnx_lstm(tmp_path, op: str = "LSTM", **attrs) -> str:
    """One hand-made ONNX LSTM (or GRU) node, [steps, 1, features] -> Y; attrs: node attributes, plus
    `peephole`."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    peephole = attrs.pop("peephole", False)
    dirs = 2 if attrs.get("direction") == "bidirectional" else 1
    gates = 4 if op == "LSTM" else 3
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, s).astype(np.float32), n) for n, s in
             (("W", (dirs, gates * UNITS, FEATURES)), ("R", (dirs, gates * UNITS, UNITS)),
              ("B", (dirs, 2 * gates * UNITS)), ("P", (dirs, 3 * UNITS)))]
    inputs = ["x", "W", "R", "B"] + (["", "", "", "P"] if peephole else [])
    node = helper.make_node(op, inputs, ["y"], hidden_size=UNITS, **attrs)
    graph = helper.make_graph([node], "lstm", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                             [STEPS, 1, FEATURES])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    path = tmp_path / "hand.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path)


@pytest.mark.parametrize("attrs, named", [
    ({"direction": "bidirectional"}, "is bidirectional; edgeq runs forward LSTMs"),
    ({"direction": "reverse"}, "is reverse; edgeq runs forward LSTMs"),
    ({"peephole": True}, "has peephole weights"),
    ({"activations": ["Sigmoid", "Relu", "Tanh"]}, "uses activations ['Sigmoid', 'Relu', 'Tanh']"),
    ({"clip": 3.0}, "clips its gate inputs"),
    ({"input_forget": 1}, "couples the input and forget gates"),
    ({"op": "GRU", "direction": "bidirectional"}, "this GRU is bidirectional; edgeq runs forward GRUs"),
    ({"op": "GRU", "linear_before_reset": 0}, "applies the reset gate before the recurrent product"),
    ({"op": "GRU", "linear_before_reset": 1, "activations": ["Sigmoid", "Sigmoid"]}, "uses activations"),
])
def test_unsupported_variants_refused(tmp_path, attrs, named):
    with pytest.raises(EdgeqError, match=attrs.get("op", "LSTM")) as e:
        load_model(_onnx_lstm(tmp_path, **attrs))
    assert named in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("attrs", [{}, {"op": "GRU", "linear_before_reset": 1}])
def test_hand_made_node_matches_onnxruntime(tmp_path, attrs):
    """A time-major node straight from the graph input (no transpose before it), its Y the graph output."""
    path = _onnx_lstm(tmp_path, **attrs)
    graph = load_model(path)
    x = sequences(1)[0, 0][:, None, :]  # [steps, 1, features]
    ref = ort.InferenceSession(path).run(None, {"x": x})[0]
    out = run_float_graph(graph, [x])[graph.outputs[0]]
    assert out.shape == ref.shape and np.abs(out - ref).max() <= 1e-4


# --- power-of-two quantization ------------------------------------------------------------------------

def quantized_tagger(cell: str, path):
    """A two-layer Tagger with its head on Y_h, exported to path, and its power-of-two build on 64 sequences."""
    from edgeq.quant.driver import QuantOptions, quantize

    torch.manual_seed(2)
    graph = load_model(export(Tagger(2, from_hidden=True, cell=cell), path))
    return graph, quantize(graph, sequences(64, 1), QuantOptions(equalization="off"), echo=lambda s: None).graph


def golden_outputs(q, xs: np.ndarray) -> tuple[list, list]:
    """The int8 samples of float sequences xs and the golden model's outputs over them, invoked in turn."""
    from edgeq.quant.executor import initial_state, run_int
    from edgeq.quant.pot import quantize_sample

    samples = [[quantize_sample(x, q.t(q.inputs[0]).quant)] for x in xs]
    state = initial_state(q)
    return samples, [run_int(q, s, state=state)[q.outputs[0]] for s in samples]


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_power_of_two_golden_equals_host_c(tmp_path, cell):
    """A two-layer nn.LSTM (TFLite's integer LSTM kernel) or nn.GRU (edgeq's integer GRU), the head on Y_h,
    quantized with power-of-two scales: the numpy golden model over 24 invokes in sequence (an LSTM's state buffer
    restarts every invoke, so each equals a fresh run) against the generated C under ASan/UBSan, bit for bit; the
    output's SQNR against the float model is reported and must stay above 25 dB (measured 38.8 and 37.6 dB)."""
    from edgeq.build import build_and_run_host
    from edgeq.quant.driver import output_sqnr
    from edgeq.quant.executor import run_int
    from edgeq.quant.pot import dequantize

    graph, q = quantized_tagger(cell, tmp_path / "rnn2.onnx")
    rnns = [op for op in q.ops if isinstance(op, (ops.UnidirectionalSequenceLstm, ops.Gru))]
    assert len(rnns) == 2
    for op in rnns:  # every free scale a power of two, an LSTM's cell state int16
        weights = op.inputs[:9] if cell == "LSTM" else op.inputs[:7]
        states = [q.states[op.hidden_state], q.states[op.cell_state]] if cell == "LSTM" else []
        for t in [q.t(n) for n in weights + op.outputs] + states:
            assert np.log2(t.quant.s) == np.round(np.log2(t.quant.s)), t.name
        assert not states or states[1].dtype == "int16"
    xs = sequences(24, 7)
    samples, golden = golden_outputs(q, xs)
    for s, g in zip(samples[:4], golden[:4]):  # the state restarted: a fresh run agrees
        np.testing.assert_array_equal(run_int(q, s)[q.outputs[0]], g)
    outs = build_and_run_host(q, tmp_path / "c", samples, sanitize=True)
    for k, (got, want) in enumerate(zip(outs, golden)):
        np.testing.assert_array_equal(got[0].view(np.int8).reshape(want.shape), want, err_msg=f"invoke {k}")
    reference = np.stack([run_float_graph(graph, [x])[graph.outputs[0]] for x in xs]).reshape(len(xs), -1)
    dequant = np.stack([dequantize(g, q.t(q.outputs[0]).quant) for g in golden]).reshape(len(xs), -1)
    sqnr = output_sqnr(reference, dequant)
    print(f"power-of-two {cell} output SQNR vs float: {sqnr:.1f} dB over {len(xs)} held-out sequences")
    assert sqnr > 25.0, sqnr


def test_command_line_build_and_validate(tmp_path):
    """edgeq build model.onnx --calib and edgeq validate, on the host."""
    from tests.test_cli import edgeq

    torch.manual_seed(1)
    model = export(Tagger(1), tmp_path / "lstm.onnx")
    np.savez(tmp_path / "calib.npz", x=sequences(32, 1))
    out = tmp_path / "out"
    proc = edgeq("build", model, "--board", "host", "--calib", tmp_path / "calib.npz", "-o", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = edgeq("validate", out, "--data", tmp_path / "calib.npz")
    assert proc.returncode == 0 and "32 of 32 samples bit-exact" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.skipif(not all(shutil.which(tool) for tool in ("arm-none-eabi-gcc", "qemu-system-arm", "cmake")),
                    reason="needs gcc-arm-none-eabi, qemu-system-arm and cmake (make test installs them)")
@pytest.mark.parametrize("cell, board", [("LSTM", "qemu-mps2-an386"), ("GRU", "qemu-mps2-an500")])
@pytest.mark.usefixtures("cmsis_nn")  # auto measures CMSIS-NN against edgeq's kernels for the Linear head
def test_power_of_two_on_emulated_board(tmp_path, cell, board):
    """The same power-of-two models as firmware for an emulated Cortex-M4 (LSTM) and Cortex-M7 (GRU), kernels
    chosen by auto: 12 sequences sent in turn over the serial link, each output equal to the golden model's."""
    from edgeq.build import compile_graph, write_project
    from edgeq.run import run_build
    from edgeq.targets.boards import get_board

    path = tmp_path / "rnn2.onnx"
    _, q = quantized_tagger(cell, path)
    b = get_board(board)
    write_project(compile_graph(q, "pot", b, "auto"), b, "pot", tmp_path / "fw", path, echo=lambda *_: None)
    samples, golden = golden_outputs(q, sequences(12, 7))
    outs = run_build(tmp_path / "fw", [np.stack([s[0] for s in samples])])[0]
    for k, want in enumerate(golden):
        np.testing.assert_array_equal(outs[k].reshape(want.shape), want, err_msg=f"invoke {k} on {board}")
