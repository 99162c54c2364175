"""Issue 12: ONNX's LSTM (PyTorch's nn.LSTM through torch.onnx.export) as UNIDIRECTIONAL_SEQUENCE_LSTM: edgeq's
float executor against onnxruntime, and the variants edgeq refuses by name."""
from __future__ import annotations

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
                                        "ignore::FutureWarning")
STEPS, FEATURES, UNITS, CLASSES = 12, 6, 16, 4


class Tagger(nn.Module):
    """nn.LSTM (batch first, `layers` layers: one ONNX node each) and a Linear head on the last step, read from
    the output sequence (Y) or from the final hidden state (Y_h)."""

    def __init__(self, layers: int = 1, from_hidden: bool = False, bidirectional: bool = False):
        super().__init__()
        self.lstm = nn.LSTM(FEATURES, UNITS, num_layers=layers, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(UNITS * (2 if bidirectional else 1), CLASSES)
        self.from_hidden = from_hidden

    def forward(self, x):
        y, (h, _) = self.lstm(x)
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


@pytest.mark.parametrize("layers, from_hidden", [(1, False), (2, True)])
def test_float_matches_onnxruntime(tmp_path, layers, from_hidden):
    torch.manual_seed(layers)
    path = export(Tagger(layers, from_hidden), tmp_path / "lstm.onnx")
    graph = load_model(path)
    lstms = [op for op in graph.ops if isinstance(op, ops.UnidirectionalSequenceLstm)]
    assert len(lstms) == layers and all(op.reset_state for op in lstms)
    sess = ort.InferenceSession(path)
    for x in sequences(6):
        ref = sess.run(None, {"x": x})[0]
        out = run_float_graph(graph, [x])[graph.outputs[0]]
        assert np.abs(out - ref).max() <= 1e-4, (out, ref)


def _onnx_lstm(tmp_path, **attrs) -> str:
    """One hand-made ONNX LSTM node, [steps, 1, features] -> Y; attrs: node attributes, plus `peephole`."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    peephole = attrs.pop("peephole", False)
    dirs = 2 if attrs.get("direction") == "bidirectional" else 1
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, s).astype(np.float32), n) for n, s in
             (("W", (dirs, 4 * UNITS, FEATURES)), ("R", (dirs, 4 * UNITS, UNITS)), ("B", (dirs, 8 * UNITS)),
              ("P", (dirs, 3 * UNITS)))]
    inputs = ["x", "W", "R", "B"] + (["", "", "", "P"] if peephole else [])
    node = helper.make_node("LSTM", inputs, ["y"], hidden_size=UNITS, **attrs)
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
])
def test_unsupported_variants_refused(tmp_path, attrs, named):
    with pytest.raises(EdgeqError, match="LSTM") as e:
        load_model(_onnx_lstm(tmp_path, **attrs))
    assert named in str(e.value) and "\n" not in str(e.value)


def test_hand_made_node_matches_onnxruntime(tmp_path):
    """A time-major LSTM node straight from the graph input (no transpose before it), its Y the graph output."""
    path = _onnx_lstm(tmp_path)
    graph = load_model(path)
    x = sequences(1)[0, 0][:, None, :]  # [steps, 1, features]
    ref = ort.InferenceSession(path).run(None, {"x": x})[0]
    out = run_float_graph(graph, [x])[graph.outputs[0]]
    assert out.shape == ref.shape and np.abs(out - ref).max() <= 1e-4
