"""Issue 12: batch norms the exporter keeps (ONNX's BatchNormalization with constant folding off or training=PRESERVE,
torch.export's aten.batch_norm / _native_batch_norm_legit_no_training). One after a Conv1d, Conv2d, depthwise conv or
Linear is folded into its weights and bias, its statistics kept in graph.bn_stats; one after anything else becomes a
1x1 depthwise convolution. The float graph against PyTorch and onnxruntime, and power-of-two builds whose numpy golden
model equals the host C (ASan/UBSan) bit for bit."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
nn = torch.nn

from edgeq.frontends import load_model  # noqa: E402
from edgeq.ir import ops  # noqa: E402
from edgeq.quant.executor import run_float_graph  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                                        "ignore::FutureWarning", "ignore::torch.jit.TracerWarning")
LAYERS = (ops.Conv2D, ops.DepthwiseConv2D, ops.FullyConnected)


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    """Batch-norm statistics and affine parameters far from the identity, and eval mode."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=g) * 2 - 1)
            m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.25)
            m.weight.data.copy_(torch.rand(c, generator=g) * 1.5 - 0.5)  # a negative gamma too
            m.bias.data.copy_(torch.rand(c, generator=g) - 0.5)
    return model.eval()


def _export(model: nn.Module, x: torch.Tensor, tmp_path, kind: str) -> str:
    """The model as .pt2 or as ONNX with its BatchNormalization nodes kept."""
    path = str(tmp_path / f"model.{kind}")
    if kind == "pt2":
        torch.export.save(torch.export.export(model, (x,)), path)
    else:
        torch.onnx.export(model, (x,), path, dynamo=False, do_constant_folding=False, input_names=["x"],
                          training=torch.onnx.TrainingMode.PRESERVE, opset_version=17)
        import onnx
        assert any(n.op_type == "BatchNormalization" for n in onnx.load(path).graph.node)
    return path


def _reference(model: nn.Module, path: str, x: np.ndarray) -> np.ndarray:
    if path.endswith(".onnx"):
        return ort.InferenceSession(path).run(None, {"x": x})[0]
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def _check_float(graph, model: nn.Module, path: str, shape, seeds=range(3)) -> None:
    for seed in seeds:
        x = np.random.default_rng(seed).normal(0, 1, shape).astype(np.float32)
        ref = _reference(model, path, x)
        out = run_float_graph(graph, [x])[graph.outputs[0]]
        if ref.ndim > 2 and out.shape != ref.shape:  # a conv's output stays channels-last (edgeq notes it)
            ref = np.moveaxis(ref, 1, -1)
        assert out.shape == ref.shape and np.abs(out - ref).max() <= 1e-4, (path, np.abs(out - ref).max())


def _bn_params(model: nn.Module) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(m.bias.detach().numpy(), np.abs(m.weight.detach().numpy())) for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)]


class Seq(nn.Module):
    def __init__(self, *layers):
        super().__init__()
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


class PerStep(nn.Module):
    """A Linear on each step of [N, L, F] and a BatchNorm1d over its features, permuted to [N, C, L] and back."""

    def __init__(self):
        super().__init__()
        self.fc, self.bn = nn.Linear(6, 8), nn.BatchNorm1d(8)

    def forward(self, x):
        return self.bn(self.fc(x).permute(0, 2, 1)).permute(0, 2, 1)


FOLDED = {  # name: (model, input shape)
    "conv1d": (lambda: Seq(nn.Conv1d(6, 8, 3, padding=1), nn.BatchNorm1d(8), nn.ReLU()), (1, 6, 12)),
    "depthwise1d": (lambda: Seq(nn.Conv1d(6, 6, 3, groups=6), nn.BatchNorm1d(6)), (1, 6, 12)),
    "conv2d": (lambda: Seq(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()), (1, 3, 6, 5)),
    "linear": (lambda: Seq(nn.Linear(10, 8), nn.BatchNorm1d(8)), (1, 10)),
    "linear_per_step": (PerStep, (1, 5, 6)),
}


@pytest.mark.parametrize("kind", ["pt2", "onnx"])
@pytest.mark.parametrize("case", sorted(FOLDED))
def test_folded_into_the_layer_before(tmp_path, case, kind):
    """No op is left of the BN (nor of the ReLU after it); bn_stats hold (beta, |gamma|) under the layer's output,
    which data-free calibration then takes; the float graph equals PyTorch / onnxruntime within 1e-4."""
    from edgeq.quant.data_free import data_free_stats, synthetic_inputs

    make, shape = FOLDED[case]
    torch.manual_seed(1)
    model = _randomize(make(), 2)
    path = _export(model, torch.randn(*shape), tmp_path, kind)
    graph = load_model(path)
    assert not any(isinstance(op, (ops.Mul, ops.Add, ops.Relu)) for op in graph.ops), graph.ops
    layers = [op for op in graph.ops if isinstance(op, LAYERS) and not op.name.endswith("_to_nhwc")]  # not the
    assert len(layers) == 1  # one-hot conv that reorders an NCHW input
    layer = layers[0]
    (beta, gamma), = _bn_params(model)
    assert list(graph.bn_stats) == [layer.outputs[0]]
    np.testing.assert_allclose(graph.bn_stats[layer.outputs[0]][0], beta, rtol=0, atol=0)
    np.testing.assert_allclose(graph.bn_stats[layer.outputs[0]][1], gamma, rtol=0, atol=0)
    assert data_free_stats(graph, synthetic_inputs(graph, (-1.0, 1.0), 4))[1] == 1
    _check_float(graph, model, path, shape)


class AfterPool(nn.Module):
    """A BN after a max pool (NHWC: the depthwise conv runs on the pooled tensor as it is)."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)

    def forward(self, x):
        return self.bn(nn.functional.max_pool2d(torch.relu(self.conv(x)), 2))


class Residual(nn.Module):
    """The conv's output is read by the BN and by the ADD, so the BN cannot go into the conv."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)

    def forward(self, x):
        y = self.conv(x)
        return torch.relu(self.bn(y)) + y


class AfterAdd(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 8, 1), nn.BatchNorm2d(8)

    def forward(self, x):
        return self.bn(self.a(x) + self.b(x))


STANDALONE = {
    "after_pool": (AfterPool, (1, 3, 6, 4)),
    "after_add": (AfterAdd, (1, 3, 5, 4)),
    "residual": (Residual, (1, 3, 5, 4)),
    "input_1d": (lambda: Seq(nn.BatchNorm1d(6)), (1, 6, 12)),  # channels not last: one conv channel per value
    "input_2d": (lambda: Seq(nn.BatchNorm2d(3)), (1, 3, 5, 4)),  # after the one-hot conv that makes it NHWC
    "after_flatten": (lambda: Seq(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.BatchNorm1d(24), nn.Linear(24, 5)),
                      (1, 3, 5, 4)),  # its channels in the NHWC flatten order
}


@pytest.mark.parametrize("kind", ["pt2", "onnx"])
@pytest.mark.parametrize("case", sorted(STANDALONE))
def test_standalone_becomes_depthwise(tmp_path, case, kind):
    """A BN after no foldable layer is one 1x1 depthwise conv (scale as weights, shift as bias), its statistics under
    that conv's output; the float graph equals PyTorch / onnxruntime within 1e-4."""
    make, shape = STANDALONE[case]
    torch.manual_seed(1)
    model = _randomize(make(), 3)
    path = _export(model, torch.randn(*shape), tmp_path, kind)
    graph = load_model(path)
    assert not any(isinstance(op, ops.Mul) for op in graph.ops), graph.ops
    bn = [op for op in graph.ops if isinstance(op, ops.DepthwiseConv2D)]
    assert len(bn) == 1 and graph.t(bn[0].inputs[1]).shape[:3] == (1, 1, 1)
    assert bn[0].outputs[0] in graph.bn_stats
    (beta, gamma), = _bn_params(model)
    width = graph.t(bn[0].outputs[0]).shape[-1]
    stats_beta = graph.bn_stats[bn[0].outputs[0]][0]
    assert stats_beta.size == width and set(np.round(stats_beta, 6)) == set(np.round(beta, 6))
    _check_float(graph, model, path, shape)


# --- power-of-two builds ------------------------------------------------------------------------------------

class Crnn(nn.Module):
    """An audio front end: a BN on the raw features (standalone), Conv1d + BatchNorm1d + ReLU, then an LSTM over the
    frames and a Linear head on the last step."""

    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm1d(6)
        self.conv, self.bn = nn.Conv1d(6, 12, 3, padding=1), nn.BatchNorm1d(12)
        self.rnn, self.head = nn.LSTM(12, 16, batch_first=True), nn.Linear(16, 4)

    def forward(self, x):
        y, _ = self.rnn(torch.relu(self.bn(self.conv(self.norm(x)))).permute(0, 2, 1))
        return self.head(y[:, -1])


class Cnn(nn.Module):
    """Conv2d + BatchNorm2d + ReLU, a max pool, a BatchNorm2d after it, a Linear head."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.bn2, self.head = nn.BatchNorm2d(8), nn.Linear(8 * 3 * 2, 5)

    def forward(self, x):
        y = self.bn2(nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2))
        return self.head(torch.relu(y).flatten(1))


def _quantized(graph, calib: np.ndarray):
    from edgeq.quant.driver import QuantOptions, quantize

    return quantize(graph, calib, QuantOptions(equalization="off"), echo=lambda s: None).graph


def _golden(q, xs: np.ndarray):
    from edgeq.quant.executor import run_int
    from edgeq.quant.pot import quantize_sample

    samples = [[quantize_sample(x, q.t(q.inputs[0]).quant)] for x in xs]
    return samples, [run_int(q, s)[q.outputs[0]] for s in samples]


def _host_equals_golden(q, tmp_path, xs: np.ndarray, graph) -> list:
    """Host C under ASan/UBSan equals the golden model on every sample; the output SQNR against the float graph."""
    from edgeq.build import build_and_run_host
    from edgeq.quant.driver import output_sqnr
    from edgeq.quant.pot import dequantize

    samples, golden = _golden(q, xs)
    outs = build_and_run_host(q, tmp_path / "c", samples, sanitize=True)
    for k, (got, want) in enumerate(zip(outs, golden)):
        np.testing.assert_array_equal(got[0].view(np.int8).reshape(want.shape), want, err_msg=f"sample {k}")
    reference = np.stack([run_float_graph(graph, [x])[graph.outputs[0]] for x in xs]).reshape(len(xs), -1)
    dequant = np.stack([dequantize(g, q.t(q.outputs[0]).quant) for g in golden]).reshape(len(xs), -1)
    return golden, output_sqnr(reference, dequant)


def test_crnn_power_of_two_pt2_and_onnx(tmp_path):
    """The CRNN from .pt2 and from ONNX (BNs kept): same IR ops, power-of-two golden models equal bit for bit, and
    the .pt2 build's host C equals its golden model over 12 sequences."""
    torch.manual_seed(5)
    model = _randomize(Crnn(), 5)
    rng = np.random.default_rng(0)
    calib = np.cumsum(rng.normal(0, 0.4, (48, 1, 6, 10)), axis=3).astype(np.float32)
    xs = np.cumsum(rng.normal(0, 0.4, (12, 1, 6, 10)), axis=3).astype(np.float32)
    graphs = {kind: load_model(_export(model, torch.from_numpy(calib[0]), tmp_path, kind)) for kind in ("pt2", "onnx")}
    for kind, graph in graphs.items():
        assert not any(isinstance(op, (ops.Mul, ops.Add)) for op in graph.ops), (kind, graph.ops)
        assert sum(isinstance(op, ops.DepthwiseConv2D) for op in graph.ops) == 1  # the BN on the features
        _check_float(graph, model, str(tmp_path / f"model.{kind}"), (1, 6, 10), seeds=[0])
    golden, sqnr = _host_equals_golden(_quantized(graphs["pt2"], calib), tmp_path, xs, graphs["pt2"])
    print(f"CRNN with BNs, power-of-two output SQNR vs float: {sqnr:.1f} dB over {len(xs)} held-out sequences")
    assert sqnr > 20.0
    for k, (a, b) in enumerate(zip(golden, _golden(_quantized(graphs["onnx"], calib), xs)[1])):
        np.testing.assert_array_equal(a, b, err_msg=f"sample {k}: .pt2 and .onnx builds differ")


def test_cnn_power_of_two_pt2(tmp_path):
    """Conv2d + BatchNorm2d folded and a BatchNorm2d after the pool as a depthwise conv, from .pt2: the host C equals
    the golden model on 16 images."""
    torch.manual_seed(6)
    model = _randomize(Cnn(), 6)
    rng = np.random.default_rng(1)
    calib, xs = rng.uniform(0, 1, (64, 1, 3, 6, 4)).astype(np.float32), rng.uniform(0, 1, (16, 1, 3, 6, 4))
    graph = load_model(_export(model, torch.from_numpy(calib[0]), tmp_path, "pt2"))
    assert not any(isinstance(op, ops.Mul) for op in graph.ops)
    _, sqnr = _host_equals_golden(_quantized(graph, calib), tmp_path, xs.astype(np.float32), graph)
    print(f"CNN with BNs, power-of-two output SQNR vs float: {sqnr:.1f} dB over {len(xs)} held-out images")
    assert sqnr > 20.0


def test_hand_made_onnx(tmp_path):
    """A hand-written ONNX graph: 1-D Conv, BatchNormalization (epsilon 1e-3), Relu, and a second BatchNormalization
    after the Relu (not foldable): one conv, one depthwise conv, equal to onnxruntime within 1e-4."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)
    c = 5
    params = {"w": rng.normal(0, 0.5, (c, 4, 3)), "b": rng.normal(0, 0.1, c)}
    for k in (1, 2):
        params.update({f"g{k}": rng.uniform(-1, 1.5, c), f"beta{k}": rng.normal(0, 0.5, c),
                       f"m{k}": rng.normal(0, 0.5, c), f"v{k}": rng.uniform(0.2, 2, c)})
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1]),
             helper.make_node("BatchNormalization", ["c", "g1", "beta1", "m1", "v1"], ["n1"], epsilon=1e-3),
             helper.make_node("Relu", ["n1"], ["r"]),
             helper.make_node("BatchNormalization", ["r", "g2", "beta2", "m2", "v2"], ["y"])]
    graph = helper.make_graph(nodes, "bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v.astype(np.float32), k) for k, v in params.items()])
    path = str(tmp_path / "model.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)]), path)
    g = load_model(path)
    assert [op.kind for op in g.ops if isinstance(op, LAYERS)] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    assert not any(isinstance(op, (ops.Mul, ops.Add, ops.Relu)) for op in g.ops)
    _check_float(g, None, path, (1, 4, 9))
