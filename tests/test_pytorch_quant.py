"""A PyTorch model trained on real data keeps its accuracy through edgeq's power-of-two quantization,
with calibration data and without (data-free, from its batch-norm statistics)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn


@pytest.fixture(scope="module")
def digits_torch(tmp_path_factory):
    """A BN/ReLU CNN trained on scikit-learn's digits, saved with torch.export (.pt2), and its data."""
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]  # NCHW
    y = d.target
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
        nn.Conv2d(16, 32, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    xt, yt = torch.from_numpy(x[:1400]), torch.from_numpy(y[:1400])
    for _ in range(25):
        for i in torch.randperm(1400).split(32):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[i]), yt[i]).backward()
            opt.step()
    model.eval()
    root = tmp_path_factory.mktemp("torch_digits")
    path = root / "digits.pt2"
    torch.export.save(torch.export.export(model, (torch.from_numpy(x[:1]),)), path)
    np.savez(root / "calib.npz", x=x[1400:1528])
    return path, root, x[1500:], y[1500:]


def _accuracy(float_graph, qgraph, x, y) -> tuple[float, float]:
    from edgeq.quant.pot import paired_outputs

    f, q = paired_outputs(float_graph, qgraph, x.reshape(len(x), *float_graph.t(float_graph.inputs[0]).shape))
    return 100 * float(np.mean(f.argmax(1) == y)), 100 * float(np.mean(q.argmax(1) == y))


def test_calibrated_quantization_keeps_accuracy(digits_torch):
    from edgeq.frontends import load_model
    from edgeq.quant.driver import quantize

    path, root, x, y = digits_torch
    graph = load_model(path)
    qgraph = quantize(graph, root / "calib.npz", echo=lambda *a: None).graph
    float_acc, quant_acc = _accuracy(graph, qgraph, x, y)
    assert float_acc > 90, float_acc
    print(f"float {float_acc:.1f}%, quantized {quant_acc:.1f}%")
    assert quant_acc >= float_acc - 1, (float_acc, quant_acc)


def test_data_free_quantization_from_batch_norm_statistics(digits_torch):
    from edgeq.frontends import load_model
    from edgeq.quant.driver import QuantOptions, quantize

    path, _, x, y = digits_torch
    graph = load_model(path)
    assert len(graph.bn_stats) == 4
    messages = []
    result = quantize(graph, None, QuantOptions(data_free=True, input_range="0,1"), messages.append)
    qgraph = result.graph
    assert result.summary.data_free and result.summary.bias_correction == "analytic"
    assert any("warning: data-free" in m and "4 of" in m for m in messages), messages
    float_acc, quant_acc = _accuracy(graph, qgraph, x, y)
    print(f"float {float_acc:.1f}%, quantized {quant_acc:.1f}%")
    assert quant_acc >= float_acc - 1, (float_acc, quant_acc)


def test_data_free_from_the_command_line(digits_torch, tmp_path):
    """`edgeq build --data-free` needs only the input range, says what it guessed, builds bit-exact C;
    without the range it stops with one line naming the flag."""
    import json
    import subprocess
    import sys

    def edgeq(*args):
        return subprocess.run([sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True)

    path, root, x, _ = digits_torch
    proc = edgeq("build", path, "--board", "host", "--data-free", "-o", tmp_path / "no_range")
    assert proc.returncode == 1 and "--input-range" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "no_range").exists()
    out = tmp_path / "df"
    proc = edgeq("build", path, "--board", "host", "--data-free", "--input-range", "0,1",
                 "--report", tmp_path / "report.html", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "warning: data-free" in proc.stdout and "batch-norm statistics" in proc.stdout
    assert "<img" in (tmp_path / "report.html").read_text()
    assert json.loads((out / "model.json").read_text())["quant"] == "pot"
    np.savez(tmp_path / "eval.npz", x=x[:8])
    proc = edgeq("validate", out, "--data", tmp_path / "eval.npz")
    assert proc.returncode == 0 and "8 of 8 samples bit-exact" in proc.stdout, proc.stdout + proc.stderr
