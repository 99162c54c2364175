"""ONNX LayerNormalization (opset 17, as PyTorch exports nn.LayerNorm) and ATen's layer_norm as edgeq's MEAN, SUB,
MUL, RSQRT and 1x1 depthwise ops: the float executor against onnxruntime and PyTorch, and the power-of-two build's
host C (ASan/UBSan) bit-exact with edgeq's numpy executor (edgeq validate)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
nn = torch.nn

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                                        "ignore::FutureWarning")


class Block(nn.Module):
    """A transformer-style block on [1, 8, 12] tokens: LayerNorm over the features (with and without bias), a
    LayerNorm over the last two axes, and GELU between linear layers."""

    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(12)
        self.fc1 = nn.Linear(12, 16)
        self.fc2 = nn.Linear(16, 12)
        self.ln2 = nn.LayerNorm(12, bias=False, eps=1e-3)
        self.ln3 = nn.LayerNorm((8, 12))

    def forward(self, x):
        h = x + self.fc2(nn.functional.gelu(self.fc1(self.ln1(x))))
        return self.ln3(self.ln2(h) + h)


@pytest.fixture(scope="module")
def block_onnx(tmp_path_factory):
    torch.manual_seed(0)
    model = Block().eval()
    with torch.no_grad():  # affine parameters away from their 1 and 0 defaults
        for ln in (model.ln1, model.ln2, model.ln3):
            ln.weight.uniform_(0.5, 1.5)
            if ln.bias is not None:
                ln.bias.uniform_(-0.5, 0.5)
    path = tmp_path_factory.mktemp("layernorm") / "block.onnx"
    torch.onnx.export(model, (torch.randn(1, 8, 12),), str(path), dynamo=False, input_names=["x"],
                      output_names=["y"], opset_version=20)
    return path


def test_layernorm_matches_onnxruntime(block_onnx):
    import onnx

    from edgeq.frontends import load_model
    from edgeq.quant.executor import run_float_graph

    assert [node.op_type for node in onnx.load(str(block_onnx)).graph.node].count("LayerNormalization") == 3
    graph = load_model(block_onnx)
    assert [op.kind for op in graph.ops].count("RSQRT") == 3
    sess = ort.InferenceSession(str(block_onnx), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for scale in (0.1, 1.0, 10.0):
        x = (rng.standard_normal((1, 8, 12)) * scale).astype(np.float32)
        want = sess.run(None, {"x": x})[0]
        got = run_float_graph(graph, [x])[graph.outputs[0]].reshape(want.shape)
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), np.abs(got - want).max()


def test_layernorm_power_of_two_build_is_bit_exact_on_host(block_onnx, tmp_path):
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((32, 1, 8, 12)).astype(np.float32))

    def edgeq(*args):
        return subprocess.run([sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True)

    out = tmp_path / "out"
    proc = edgeq("build", block_onnx, "--board", "host", "--calib", tmp_path / "calib.npz", "-o", out)
    assert proc.returncode == 0, proc.stderr
    proc = edgeq("validate", out, "--data", tmp_path / "calib.npz")
    assert proc.returncode == 0 and "32 of 32 samples bit-exact" in proc.stdout, proc.stdout + proc.stderr


def test_layernorm_torch_export_matches_torch(tmp_path):
    """aten.layer_norm (torch.export) and, after run_decompositions, aten.native_layer_norm: the same mapping."""
    from edgeq.frontends import load_model
    from edgeq.quant.executor import run_float_graph

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(12, 12)
            self.ln = nn.LayerNorm(12)
            self.plain = nn.LayerNorm((8, 12), elementwise_affine=False)

        def forward(self, x):
            return self.plain(self.ln(self.fc(x)))

    torch.manual_seed(0)
    model = Net().eval()
    x = torch.randn(1, 8, 12)
    program = torch.export.export(model, (x,))
    for name, prog in (("ln.pt2", program), ("ln_core.pt2", program.run_decompositions())):
        torch.export.save(prog, str(tmp_path / name))
        graph = load_model(tmp_path / name)
        assert [op.kind for op in graph.ops].count("RSQRT") == 2, (name, [op.kind for op in graph.ops])
        xs = np.random.default_rng(4).standard_normal((1, 8, 12)).astype(np.float32)
        with torch.no_grad():
            want = model(torch.from_numpy(xs)).numpy()
        got = run_float_graph(graph, [xs])[graph.outputs[0]].reshape(want.shape)
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), (name, np.abs(got - want).max())
