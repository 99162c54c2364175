"""Issue 12: nn.LSTM and nn.GRU in torch.export programs (.pt2: one aten.lstm / aten.gru call for all layers) as the
IR's UNIDIRECTIONAL_SEQUENCE_LSTM and GRU, one op per layer: the float executor against PyTorch itself, the variants
edgeq refuses by name, and power-of-two builds equal to the ONNX export's and whose host C (ASan/UBSan) equals the
numpy golden model bit for bit."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from edgeq.errors import EdgeqError  # noqa: E402
from edgeq.frontends import load_model  # noqa: E402
from edgeq.ir import ops  # noqa: E402
from edgeq.quant.executor import run_float_graph  # noqa: E402
from tests.test_onnx_lstm import FEATURES, UNITS, Tagger, export, golden_outputs, sequences  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                                        "ignore::FutureWarning", "ignore::torch.jit.TracerWarning")


class Sequence(nn.Module):
    """The recurrent layer alone, returning its output sequence (the shape the caller gave: batch first, time major
    or unbatched) or, with `final`, its stacked final hidden states."""

    def __init__(self, rnn: nn.Module, final: bool = False):
        super().__init__()
        self.rnn, self.final = rnn, final

    def forward(self, x):
        y, h = self.rnn(x)
        h = h[0] if isinstance(h, tuple) else h
        return h if self.final else y


def save(model: nn.Module, x: torch.Tensor, path, train: bool = False) -> str:
    model.train(train)
    torch.export.save(torch.export.export(model, (x,)), str(path))
    return str(path)


def _sequence(batch_first: bool | None, seed: int = 3) -> torch.Tensor:
    """[1, steps, features] (batch first), [steps, 1, features] (time major) or [steps, features] (None)."""
    x = torch.from_numpy(sequences(1, seed)[0, 0])
    return x[None] if batch_first else x if batch_first is None else x[:, None]


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("layers, batch_first, bias, final", [
    (1, True, True, False), (2, False, True, False), (2, True, False, True), (1, None, True, False)])
def test_float_matches_torch(tmp_path, cell, layers, batch_first, bias, final):
    """One IR op per layer; output sequence or stacked final hidden states, batch first, time major or unbatched
    (batch_first None), with and without biases: edgeq's float executor equals the module within 1e-4."""
    torch.manual_seed(layers)
    rnn = getattr(nn, cell)(FEATURES, UNITS, num_layers=layers, batch_first=bool(batch_first), bias=bias)
    model = Sequence(rnn, final)
    graph = load_model(save(model, _sequence(batch_first), tmp_path / "rnn.pt2"))
    kind = ops.UnidirectionalSequenceLstm if cell == "LSTM" else ops.Gru
    assert sum(isinstance(op, kind) for op in graph.ops) == layers
    for seed in range(4):
        x = _sequence(batch_first, seed)
        with torch.no_grad():
            ref = model(x).numpy()
        out = run_float_graph(graph, [x.numpy()])[graph.outputs[0]]
        assert out.shape == ref.shape and np.abs(out - ref).max() <= 1e-4, (cell, np.abs(out - ref).max())


class Crnn(nn.Module):
    """A keyword-spotting shape: Conv1d over [1, channels, time], the frames to a recurrent layer, a Linear head."""

    def __init__(self, cell: str, padding, stride: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(FEATURES, 12, 3, stride=stride, padding=padding, dilation=dilation)
        self.rnn = getattr(nn, cell)(12, UNITS, batch_first=True)
        self.head = nn.Linear(UNITS, 4)

    def forward(self, x):
        y, _ = self.rnn(torch.relu(self.conv(x)).permute(0, 2, 1))
        return self.head(y.mean(1))


@pytest.mark.parametrize("cell, padding, stride, dilation", [("LSTM", 1, 1, 1), ("GRU", "same", 1, 2),
                                                              ("LSTM", 0, 2, 1)])
def test_conv1d_front_end_matches_torch(tmp_path, cell, padding, stride, dilation):
    torch.manual_seed(4)
    model = Crnn(cell, padding, stride, dilation)
    x = _sequence(True).permute(0, 2, 1).contiguous()  # [1, features, steps]
    graph = load_model(save(model, x, tmp_path / "crnn.pt2"))
    for seed in range(3):
        x = _sequence(True, seed).permute(0, 2, 1).contiguous()
        with torch.no_grad():
            ref = model(x).numpy()
        assert np.abs(run_float_graph(graph, [x.numpy()])[graph.outputs[0]] - ref).max() <= 1e-4


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_tagger_matches_torch_and_onnx_graph(tmp_path, cell):
    """The ONNX tests' model (two layers, a Linear head on h_n[-1]): from its .pt2 the float executor equals PyTorch,
    and the graph has the same recurrent ops with the same weights as the one from its ONNX export."""
    torch.manual_seed(2)
    model = Tagger(2, from_hidden=True, cell=cell).eval()
    x = torch.from_numpy(sequences(1, 5)[0])
    from_pt2 = load_model(save(model, x, tmp_path / "tagger.pt2"))
    from_onnx = load_model(export(model, tmp_path / "tagger.onnx"))
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.abs(run_float_graph(from_pt2, [x.numpy()])[from_pt2.outputs[0]] - ref).max() <= 1e-4
    rnns = [[op for op in g.ops if isinstance(op, (ops.UnidirectionalSequenceLstm, ops.Gru))]
            for g in (from_pt2, from_onnx)]
    assert len(rnns[0]) == len(rnns[1]) == 2
    for a, b in zip(*rnns):
        assert type(a) is type(b) and len(a.inputs) == len(b.inputs)
        for na, nb in zip(a.inputs[1:], b.inputs[1:]):
            np.testing.assert_allclose(from_pt2.t(na).data, from_onnx.t(nb).data, rtol=0, atol=1e-7)


def _refused(tmp_path, model: nn.Module, x: torch.Tensor, train: bool = False) -> str:
    with pytest.raises(EdgeqError) as e:
        load_model(save(model, x, tmp_path / "bad.pt2", train))
    assert "\n" not in str(e.value)
    return str(e.value)


@pytest.mark.parametrize("rnn, train, named", [
    (nn.LSTM(FEATURES, UNITS, bidirectional=True), False, "node 'lstm' (aten.lstm): this LSTM is bidirectional"),
    (nn.GRU(FEATURES, UNITS, bidirectional=True), False, "node 'gru' (aten.gru): this GRU is bidirectional"),
    (nn.LSTM(FEATURES, UNITS, proj_size=4), False, "this LSTM has a projection (proj_size)"),
    (nn.GRU(FEATURES, UNITS, num_layers=2, dropout=0.3), True, "training mode with dropout; call model.eval()"),
])
def test_unsupported_modules_refused(tmp_path, rnn, train, named):
    assert named in _refused(tmp_path, Sequence(rnn), _sequence(False), train)


class CellState(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(FEATURES, UNITS)

    def forward(self, x):
        return self.rnn(x)[1][1]


def test_read_cell_state_refused(tmp_path):
    assert "has its final cell state (Y_c) read" in _refused(tmp_path, CellState(), _sequence(False))


def test_training_mode_without_dropout_taken(tmp_path):
    """Without dropout a module in training mode computes what it computes in eval mode."""
    model = Sequence(nn.GRU(FEATURES, UNITS, num_layers=2))
    graph = load_model(save(model, _sequence(False), tmp_path / "train.pt2", train=True))
    assert sum(isinstance(op, ops.Gru) for op in graph.ops) == 2


class GivenState(nn.Module):
    """An nn.GRU called with an initial state: a constant of the module, or the model's second input."""

    def __init__(self, h0: torch.Tensor | None):
        super().__init__()
        self.rnn, self.h0 = nn.GRU(FEATURES, UNITS), h0

    def forward(self, x, h0=None):
        return self.rnn(x, self.h0 if h0 is None else h0)[0]


def test_initial_state_and_batch_refused(tmp_path):
    x = _sequence(False)
    assert "initial state that is not zero" in _refused(tmp_path, GivenState(torch.ones(1, 1, UNITS)), x)
    model = GivenState(None).eval()
    torch.export.save(torch.export.export(model, (x, torch.zeros(1, 1, UNITS))), str(tmp_path / "h0.pt2"))
    with pytest.raises(EdgeqError, match="initial state computed in the model"):
        load_model(tmp_path / "h0.pt2")
    zero = GivenState(torch.zeros(1, 1, UNITS))  # an explicit zero state is the default one
    assert any(isinstance(op, ops.Gru) for op in load_model(save(zero, x, tmp_path / "zero.pt2")).ops)
    assert "runs a batch of 2; edgeq runs batch 1" in _refused(tmp_path, Sequence(nn.GRU(FEATURES, UNITS)),
                                                               torch.cat([x, x], 1))


class Filled(nn.Module):
    def forward(self, x):
        index = torch.full((2,), 1, dtype=torch.long)
        return torch.index_select(x, 1, index) + torch.full((1, 2, FEATURES), 0.5) + torch.zeros(1, 2, FEATURES)


def test_constants_made_in_forward(tmp_path):
    """aten.full and aten.zeros (an nn.LSTM's initial state) become constants: a Gather's indices, two addends."""
    x = _sequence(False)[:4].reshape(1, 4, FEATURES)
    graph = load_model(save(Filled(), x, tmp_path / "filled.pt2"))
    np.testing.assert_allclose(run_float_graph(graph, [x.numpy()])[graph.outputs[0]], Filled()(x).numpy(), atol=1e-6)


def test_unrolled_program_refused(tmp_path):
    """run_decompositions() writes an LSTM as its time steps; edgeq asks for the program before that."""
    model = Sequence(nn.LSTM(FEATURES, UNITS)).eval()
    ep = torch.export.export(model, (_sequence(False),)).run_decompositions()
    torch.export.save(ep, str(tmp_path / "unrolled.pt2"))
    with pytest.raises(EdgeqError, match="the LSTM 'rnn' is unrolled into its time steps .* without "
                                         r"run_decompositions\(\)"):
        load_model(tmp_path / "unrolled.pt2")


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_power_of_two_equals_onnx_and_host_c(tmp_path, cell):
    """The two-layer model with its head on h_n[-1], power-of-two quantized from its .pt2: the golden model equals the
    ONNX export's bit for bit (same IR, same calibration), and the host C under ASan/UBSan equals the golden model
    over 16 invokes in sequence."""
    from edgeq.build import build_and_run_host
    from edgeq.quant.driver import QuantOptions, quantize

    torch.manual_seed(2)
    model = Tagger(2, from_hidden=True, cell=cell).eval()
    calib, xs = sequences(64, 1), sequences(16, 7)
    golden = {}
    for kind, path in (("pt2", save(model, torch.from_numpy(calib[0]), tmp_path / "rnn.pt2")),
                       ("onnx", export(model, tmp_path / "rnn.onnx"))):
        q = quantize(load_model(path), calib, QuantOptions(equalization="off"), echo=lambda s: None).graph
        samples, golden[kind] = golden_outputs(q, xs)
        if kind == "pt2":
            outs = build_and_run_host(q, tmp_path / "c", samples, sanitize=True)
            for k, (got, want) in enumerate(zip(outs, golden[kind])):
                np.testing.assert_array_equal(got[0].view(np.int8).reshape(want.shape), want, err_msg=f"invoke {k}")
    for k, (a, b) in enumerate(zip(golden["pt2"], golden["onnx"])):
        np.testing.assert_array_equal(a, b, err_msg=f"sample {k}: .pt2 and .onnx builds differ")
