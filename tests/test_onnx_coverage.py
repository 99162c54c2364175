"""Issue 12's operators from ONNX (PyTorch's TorchScript exporter): Slice, Split, Gather, Tile, Max, Min, Abs,
Neg, PRelu, ReduceMax, ReduceSum, DepthToSpace (CRD and DCR), SpaceToDepth, Resize (nearest and linear),
ConvTranspose, MatMul of two computed tensors, and layouts that now take a TRANSPOSE at run time. edgeq's float
executor against onnxruntime; the power-of-two build's host C (ASan/UBSan) against edgeq's numpy executor."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
nn = torch.nn
F = torch.nn.functional

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                                        "ignore::FutureWarning")


class Movement(nn.Module):
    """Slices with steps, split, maximum/minimum (of two tensors, of a constant), transposed convolution with PReLU, nearest and bilinear
    resizing, pixel shuffle, abs and negation, a permute + reshape, a product of two computed tensors,
    reductions, a gather, tiling, a slice of a flattened NCHW tensor."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.convt = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
        self.prelu = nn.PReLU(4)
        self.register_buffer("cap", torch.tensor([0.8, 1.5]).reshape(1, 2, 1, 1))

    def forward(self, x):
        y = self.conv(x)                                                      # [1, 8, 16, 16]
        a = y[:, :, 1:13:2, ::3]                                              # [1, 8, 6, 6]
        b, c = torch.split(y, [3, 5], dim=1)
        m = torch.maximum(b[:, :2], c[:, 1:3])                                # [1, 2, 16, 16]
        t = self.prelu(self.convt(y))                                         # [1, 4, 32, 32]
        u = F.interpolate(m, scale_factor=2, mode="nearest")                  # [1, 2, 32, 32]
        v = F.interpolate(t, size=(16, 16), mode="bilinear", align_corners=False)
        p = F.pixel_shuffle(torch.cat([v, v], 1), 2)                          # [1, 2, 32, 32]
        z = torch.abs(u - p) + torch.minimum(u, -p)
        z = torch.minimum(torch.maximum(z, torch.tensor(-0.5)), self.cap)   # Max/Min of a constant
        q = z.permute(0, 2, 3, 1).reshape(1, 32, 64)
        r = torch.matmul(q, q.transpose(1, 2))                                # [1, 32, 32]
        s = r.amax(dim=-1) + r.sum(dim=1)                                     # [1, 32]
        g = s[:, [3, 1, 4, 1]]
        d = F.pixel_unshuffle(m, 2).repeat(1, 1, 1, 2)  # [1, 8, 8, 16]; a 6-D reshape + transpose, and Tile
        return torch.cat([g, a.flatten(1)[:, 5:9], d.mean((2, 3))], 1)


def _export(model, shape, path):
    torch.manual_seed(0)
    model.eval()
    torch.onnx.export(model, (torch.randn(*shape),), str(path), dynamo=False, input_names=["x"],
                      output_names=["y"], opset_version=17)


@pytest.fixture(scope="module")
def movement_onnx(tmp_path_factory):
    torch.manual_seed(0)
    model = Movement()
    path = tmp_path_factory.mktemp("onnx12") / "movement.onnx"
    _export(model, (1, 3, 16, 16), path)
    return path


def test_float_matches_onnxruntime(movement_onnx):
    import onnx

    from edgeq.frontends import load_model
    from edgeq.quant.executor import run_float_graph

    kinds = {node.op_type for node in onnx.load(str(movement_onnx)).graph.node}
    assert {"Slice", "Split", "Max", "Min", "Abs", "Neg", "PRelu", "ConvTranspose", "Resize", "DepthToSpace",
            "MatMul", "ReduceMax", "ReduceSum", "Gather", "Tile", "Transpose"} <= kinds, kinds
    graph = load_model(movement_onnx)
    ir = {op.kind for op in graph.ops}
    assert {"TRANSPOSE", "STRIDED_SLICE", "GATHER", "BATCH_MATMUL", "TRANSPOSE_CONV", "RESIZE_BILINEAR",
            "RESIZE_NEAREST_NEIGHBOR", "DEPTH_TO_SPACE", "PRELU", "MAXIMUM", "MINIMUM", "ABS",
            "REDUCE_MAX", "SUM", "TILE"} <= ir, ir
    sess = ort.InferenceSession(str(movement_onnx), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = rng.standard_normal((1, 3, 16, 16)).astype(np.float32)
        want = sess.run(None, {"x": x})[0]
        got = run_float_graph(graph, [x])[graph.outputs[0]].reshape(want.shape)
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), np.abs(got - want).max()


def test_power_of_two_build_is_bit_exact_on_host(movement_onnx, tmp_path):
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((32, 1, 3, 16, 16)).astype(np.float32))

    def edgeq(*args):
        return subprocess.run([sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True)

    out = tmp_path / "out"
    proc = edgeq("build", movement_onnx, "--board", "host", "--calib", tmp_path / "calib.npz", "-o", out)
    assert proc.returncode == 0, proc.stderr
    proc = edgeq("validate", out, "--data", tmp_path / "calib.npz")
    assert proc.returncode == 0 and "32 of 32 samples bit-exact" in proc.stdout, proc.stdout + proc.stderr


def test_torch_export_matches_torch(tmp_path):
    """The same model saved with torch.export (ATen operators mapped onto the same IR), against PyTorch itself.
    (After run_decompositions, PReLU becomes gt + where, which edgeq does not map.)"""
    from edgeq.frontends import load_model
    from edgeq.quant.executor import run_float_graph

    torch.manual_seed(0)
    model = Movement().eval()
    x = torch.randn(1, 3, 16, 16)
    program = torch.export.export(model, (x,))
    for name, prog in (("movement.pt2", program),):
        torch.export.save(prog, str(tmp_path / name))
        graph = load_model(tmp_path / name)
        rng = np.random.default_rng(3)
        for _ in range(2):
            xs = rng.standard_normal((1, 3, 16, 16)).astype(np.float32)
            with torch.no_grad():
                want = model(torch.from_numpy(xs)).numpy()
            got = run_float_graph(graph, [xs])[graph.outputs[0]].reshape(want.shape)
            assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), (name, np.abs(got - want).max())


class Conv1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv1d(4, 6, 3, padding=1)
        self.b = nn.Conv1d(6, 5, 5, stride=2, dilation=1, padding=2)
        self.fc = nn.Linear(5 * 8, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.b(torch.relu(self.a(x)))).flatten(1))


def test_conv1d_matches_onnxruntime(tmp_path):
    from edgeq.frontends import load_model
    from edgeq.quant.executor import run_float_graph

    torch.manual_seed(0)
    path = tmp_path / "conv1d.onnx"
    _export(Conv1d(), (1, 4, 16), path)
    graph = load_model(path)
    assert [op.kind for op in graph.ops].count("CONV_2D") == 2
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(5).standard_normal((1, 4, 16)).astype(np.float32)
    want = sess.run(None, {"x": x})[0]
    got = run_float_graph(graph, [x])[graph.outputs[0]].reshape(want.shape)
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def test_gelu_onnx_and_torch_export(tmp_path):
    """Gelu (ONNX opset 20, both forms) and aten.gelu: edgeq's float executor against onnxruntime and PyTorch."""
    from edgeq.frontends import load_model
    from edgeq.quant.executor import run_float_graph

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 8)

        def forward(self, x):
            y = self.fc(x)
            return F.gelu(y) + F.gelu(y, approximate="tanh")

    torch.manual_seed(0)
    model = Net().eval()
    x = torch.randn(1, 6)
    path = tmp_path / "gelu.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"], opset_version=20)
    torch.export.save(torch.export.export(model, (x,)), str(tmp_path / "gelu.pt2"))
    want = model(x).detach().numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for p in (path, tmp_path / "gelu.pt2"):
        graph = load_model(p)
        assert [op.kind for op in graph.ops].count("GELU") == 2, [op.kind for op in graph.ops]
        got = run_float_graph(graph, [x.numpy()])[graph.outputs[0]]
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    np.testing.assert_allclose(sess.run(None, {"x": x.numpy()})[0], want, rtol=1e-5, atol=1e-6)
