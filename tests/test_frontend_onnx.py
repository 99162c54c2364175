"""ONNX and PyTorch (.pt2) frontends: PyTorch models defined here, exported both ways, imported by
edgeq and run by its float executor, against onnxruntime on the same inputs."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
nn = torch.nn

from edgeq.errors import EdgeqError  # noqa: E402
from edgeq.frontends import load_model  # noqa: E402
from edgeq.ir import ops  # noqa: E402
from edgeq.quant.executor import run_float_graph  # noqa: E402
from tests.test_cli import assert_clean_error  # noqa: E402
from tests.oracles import assert_rescales_are_shifts  # noqa: E402

TOL = 1e-5  # max |edgeq - onnxruntime| relative to the output's max |value|
# torch.onnx.export(dynamo=False) is deprecated in favour of the exporter that needs onnxscript
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                                        "ignore::FutureWarning")


# --- models -------------------------------------------------------------------------------------

def conv_bn(cin, cout, k=3, stride=1, groups=1, act=nn.ReLU6):
    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    # in place, as torchvision does: torch.export then records relu_/hardtanh_
    return nn.Sequential(*layers, act(inplace=True)) if act else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = [conv_bn(cin, hidden, 1)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, cout, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2ish(nn.Module):
    input_shape = (1, 3, 32, 32)

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(3, 8, 3, 2), InvertedResidual(8, 8, 1, 1), InvertedResidual(8, 12, 2, 4),
            InvertedResidual(12, 12, 1, 4), InvertedResidual(12, 16, 2, 4), InvertedResidual(16, 16, 1, 4),
            conv_bn(16, 32, 1))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(32, 10))

    def forward(self, x):
        return self.head(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, cout, 3, stride, act=nn.ReLU), conv_bn(cout, cout, 3, act=None))
        self.shortcut = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet8(nn.Module):
    """MLPerf Tiny's image-classification ResNet: 3 residual stacks, average pool, dense."""

    input_shape = (1, 3, 32, 32)

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 16, 3, act=nn.ReLU)
        self.stacks = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 64, 2))
        self.pool = nn.AvgPool2d(8)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.stacks(self.stem(x))), 1))


class DSCNN(nn.Module):
    """Keyword spotter on 49x10 MFCCs: a strided 10x4 conv, depthwise-separable blocks, average, dense."""

    input_shape = (1, 1, 49, 10)

    def __init__(self, width=32, blocks=4):
        super().__init__()
        layers = [nn.Conv2d(1, width, (10, 4), 2, (5, 1), bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        for _ in range(blocks):
            layers += [conv_bn(width, width, 3, groups=width, act=nn.ReLU), conv_bn(width, width, 1, act=nn.ReLU)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, 12)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


class Autoencoder(nn.Module):
    """MLPerf Tiny's anomaly-detection autoencoder: dense + batch norm + ReLU, 640 -> 8 -> 640."""

    input_shape = (1, 640)

    def __init__(self):
        super().__init__()
        widths = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128]
        layers = []
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.Linear(128, 640))

    def forward(self, x):
        return self.body(x)


MODELS = {"mobilenetv2": MobileNetV2ish, "resnet8": ResNet8, "dscnn": DSCNN, "autoencoder": Autoencoder}


def _prepared(cls, seed=0):
    """The model in eval mode with batch-norm statistics far from the identity."""
    torch.manual_seed(seed)
    model = cls()
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_((torch.rand(c, generator=g) * 2 - 1) * 1.5)  # some negative gammas
            m.bias.data.copy_(torch.rand(c, generator=g) - 0.5)
    return model.eval()


def _export(model, shape, root, name):
    x = torch.randn(*shape)
    paths = {"onnx": root / f"{name}.onnx", "onnx_bn": root / f"{name}_bn.onnx", "pt2": root / f"{name}.pt2",
             "pt2_core": root / f"{name}_core.pt2"}
    with torch.no_grad():
        # the TorchScript exporter (no onnxscript needed); by default it folds BN into the convs itself
        torch.onnx.export(model, (x,), str(paths["onnx"]), dynamo=False, input_names=["x"], output_names=["y"])
        # without constant folding the BatchNormalization nodes stay, for edgeq to fold
        torch.onnx.export(model, (x,), str(paths["onnx_bn"]), dynamo=False, do_constant_folding=False,
                          input_names=["x"], output_names=["y"])
    program = torch.export.export(model, (x,))
    torch.export.save(program, str(paths["pt2"]))
    # the core ATen set: convolution, _native_batch_norm_legit_no_training, addmm, clamp, view, ...
    torch.export.save(program.run_decompositions(), str(paths["pt2_core"]))
    return paths


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("torch_models")
    result = {}
    for name, cls in MODELS.items():
        model = _prepared(cls)
        result[name] = (model, _export(model, cls.input_shape, root, name))
    return result


def _ort(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _rel_err(a, b):
    return float(np.abs(a.reshape(b.shape) - b).max() / np.abs(b).max())


def _samples(shape, n=3, seed=7):
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


# --- float equivalence --------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["onnx", "onnx_bn", "pt2", "pt2_core"])
@pytest.mark.parametrize("name", list(MODELS))
def test_model_matches_onnxruntime(exported, name, fmt):
    model, paths = exported[name]
    graph = load_model(paths[fmt])
    assert graph.name == paths[fmt].stem and len(graph.source_hash) == 64
    assert graph.t(graph.inputs[0]).shape == MODELS[name].input_shape  # the user's NCHW layout is kept
    for x in _samples(MODELS[name].input_shape):
        y = run_float_graph(graph, [x])[graph.outputs[0]]
        assert _rel_err(y, _ort(paths["onnx"], x)) < TOL
    kinds = [op.kind for op in graph.ops]
    # every BN folded into its layer and every ReLU/ReLU6 fused: no stray Mul, Relu or Relu6 ops
    assert not {"MUL", "RELU", "RELU6"} & set(kinds), kinds
    bns = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    if fmt == "onnx" and name != "autoencoder":
        assert graph.bn_stats == {}  # the exporter folded BN into the convs: no statistics left to keep
    else:  # the exporter keeps BN after Linear; the other files keep every BN
        assert len(graph.bn_stats) == len(bns)
        def key(beta, gamma):
            return tuple(np.round(beta, 6)), tuple(np.round(np.abs(gamma), 6))

        expected = sorted(key(m.bias.detach().numpy(), m.weight.detach().numpy()) for m in bns)
        got = sorted(key(beta, gamma) for beta, gamma in graph.bn_stats.values())
        assert got == expected
        producers = graph.producers()
        for key, (beta, gamma) in graph.bn_stats.items():
            layer = producers[key]
            assert isinstance(layer, (ops.Conv2D, ops.DepthwiseConv2D, ops.FullyConnected))
            assert beta.dtype == gamma.dtype == np.float32 and beta.shape == (graph.t(key).shape[-1],)
    if name in ("mobilenetv2", "dscnn"):
        dws = [op for op in graph.ops if isinstance(op, ops.DepthwiseConv2D)]
        assert dws and all(op.activation in (ops.Activation.RELU, ops.Activation.RELU6) for op in dws)


def test_pt2_and_onnx_give_the_same_ir(exported):
    _, paths = exported["resnet8"]
    a, b = load_model(paths["onnx_bn"]), load_model(paths["pt2"])
    assert [op.kind for op in a.ops] == [op.kind for op in b.ops]
    for attr in ("activation", "padding", "stride_h"):
        assert [getattr(op, attr, None) for op in a.ops] == [getattr(op, attr, None) for op in b.ops], attr
    # the same weights, laid out the same way
    for op_a, op_b in zip(a.ops, b.ops):
        for ta, tb in zip(op_a.inputs, op_b.inputs):
            assert a.t(ta).is_const == b.t(tb).is_const
            if a.t(ta).is_const:
                np.testing.assert_allclose(a.t(ta).data, b.t(tb).data, rtol=1e-5, atol=1e-6)


def test_nchw_input_is_reordered_by_one_layer_or_given_nhwc(exported):
    _, paths = exported["mobilenetv2"]
    x = _samples((1, 3, 32, 32), n=1)[0]
    ref = _ort(paths["onnx"], x)
    kept = load_model(paths["onnx"])
    # one one-hot conv between two free reshapes reorders the NCHW input; no other layout op anywhere
    assert [op.kind for op in kept.ops[:3]] == ["RESHAPE", "CONV_2D", "RESHAPE"]
    assert any("--input-layout nhwc" in note for note in kept.notes)
    nhwc = load_model(paths["onnx"], input_layout="nhwc")
    assert nhwc.t(nhwc.inputs[0]).shape == (1, 32, 32, 3)
    assert len(nhwc.ops) == len(kept.ops) - 3
    assert any("NHWC" in note for note in nhwc.notes)
    y = run_float_graph(nhwc, [np.ascontiguousarray(x.transpose(0, 2, 3, 1))])[nhwc.outputs[0]]
    assert _rel_err(y, ref) < TOL
    # a one-channel input (the keyword spotter's MFCCs) is the same bytes in both layouts
    dscnn = load_model(exported["dscnn"][1]["onnx"])
    assert dscnn.t(dscnn.inputs[0]).shape == (1, 1, 49, 10)
    # a free reshape, the (5, 1) padding TFLite's SAME cannot express, the 10x4 conv
    assert [op.kind for op in dscnn.ops[:3]] == ["RESHAPE", "PAD", "CONV_2D"]
    assert dscnn.t(dscnn.ops[2].inputs[1]).shape == (32, 10, 4, 1)


# --- operator coverage --------------------------------------------------------------------------

class OpZoo(nn.Module):
    """The remaining supported operators, with the layouts and paddings that need care."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(4, 8, 3, 2, 1)  # stride 2, pad 1 on an even size: not TFLite SAME, so Pad + VALID
        self.grouped = nn.Conv2d(8, 8, 3, 1, 2, dilation=2, groups=2)
        self.dw_mult = nn.Conv2d(8, 16, 3, 1, 1, groups=8)  # depthwise with depth multiplier 2
        self.c_same = nn.Conv2d(16, 8, 3, 1, "same")
        self.bn_alone = nn.BatchNorm2d(8)  # after an Add, nothing to fold into: a 1x1 depthwise conv
        self.fc = nn.Linear(16 * 4 * 4, 6)  # after an NCHW flatten: its weight columns are permuted
        self.fc2 = nn.Linear(6, 5)

    def forward(self, x):
        y = torch.relu(self.c1(x))
        y = nn.functional.max_pool2d(y, 3, 2, 1)  # padded max pool: zero padding is exact after the ReLU
        y = nn.functional.leaky_relu(self.grouped(y), 0.1)
        y = nn.functional.hardswish(self.dw_mult(y))
        s = self.c_same(y)
        y = self.bn_alone(torch.sigmoid(s) + torch.tanh(s))
        z = nn.functional.avg_pool2d(y, 3, 1, 1)  # count_include_pad: Pad + VALID
        w = nn.functional.avg_pool2d(y, 3, 1, 1, count_include_pad=False)  # TFLite's SAME
        y = (z - w) / 2.0 + (1.0 - w)
        # padding TFLite's SAME does not place: Pad + VALID, then rescaled to the count of real inputs
        e = nn.functional.avg_pool2d(y, 3, 2, 1, count_include_pad=False)
        f = nn.functional.max_pool2d(y, 3, 2, ceil_mode=True)  # the partial last window is TFLite's SAME
        ef = (e + f).mean(dim=(2, 3))
        y = nn.functional.hardsigmoid(y) * y
        y = nn.functional.avg_pool2d(nn.functional.pad(y, (1, 0, 0, 1)), 2, 1)
        c = torch.cat([y, y * 0.5 - 1.0], dim=1)
        c = torch.softmax(c.permute(0, 2, 3, 1), -1).permute(0, 3, 1, 2)  # transposes are only bookkeeping
        h = torch.softmax(self.fc(torch.flatten(c, 1)), dim=-1)
        g = c.mean(dim=(2, 3), keepdim=True).squeeze(-1).squeeze(-1)
        return torch.cat([self.fc2(h), g, ef], dim=1)


def test_operator_zoo_matches_onnxruntime(tmp_path):
    model = _prepared(OpZoo, seed=3)
    paths = _export(model, (1, 4, 16, 16), tmp_path, "zoo")
    for fmt in ("onnx", "onnx_bn", "pt2", "pt2_core"):
        graph = load_model(paths[fmt])
        for x in _samples((1, 4, 16, 16)):
            y = run_float_graph(graph, [x])[graph.outputs[0]]
            assert _rel_err(y, _ort(paths["onnx"], x)) < TOL, fmt
        kinds = {op.kind for op in graph.ops}
        assert {"PAD", "MAX_POOL_2D", "AVERAGE_POOL_2D", "LEAKY_RELU", "LOGISTIC", "TANH", "SOFTMAX", "MEAN",
                "CONCATENATION", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= kinds, (fmt, kinds)
        assert ("HARD_SWISH" in kinds) == (fmt != "pt2_core")  # core ATen spells hardswish out in clamps
        assert any(isinstance(op, ops.DepthwiseConv2D) and op.depth_multiplier == 2 for op in graph.ops)
        assert any(isinstance(op, ops.Conv2D) and graph.t(op.inputs[1]).shape == (8, 3, 3, 4) for op in graph.ops)
        assert any("flattening" in note for note in graph.notes)


@pytest.mark.parametrize("opset", [11, 18])
def test_operator_zoo_across_opsets(tmp_path, opset):
    """Older opsets give Clip bounds, Squeeze and ReduceMean axes as attributes; newer ones as inputs."""
    model = _prepared(OpZoo, seed=4)
    path = tmp_path / f"zoo{opset}.onnx"
    with torch.no_grad():
        torch.onnx.export(model, (torch.randn(1, 4, 16, 16),), str(path), dynamo=False, opset_version=opset)
    graph = load_model(path)
    x = _samples((1, 4, 16, 16), n=1)[0]
    assert _rel_err(run_float_graph(graph, [x])[graph.outputs[0]], _ort(path, x)) < TOL


# --- errors -------------------------------------------------------------------------------------

def edgeq(*args):
    return subprocess.run([sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True)


class Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = nn.functional.interpolate(self.conv(x), scale_factor=2.0, mode="nearest")
        return torch.floor(torch.exp(torch.erf(y)).mean(dim=2))


def test_unsupported_operators_are_all_listed(tmp_path):
    model = Unsupported().eval()
    x = torch.randn(1, 3, 4, 4)
    onnx_path = tmp_path / "bad_ops.onnx"
    torch.onnx.export(model, (x,), str(onnx_path), dynamo=False, opset_version=17)
    proc = edgeq("inspect", onnx_path)
    # (its nearest-neighbour Resize, upsample_nearest2d in torch.export, Exp and LayerNorm are supported since
    # issue 12)
    assert_clean_error(proc, "bad_ops.onnx", "2 operator(s)", "'/Erf' (Erf)", "(Floor)", "Supported: ")
    pt2_path = tmp_path / "bad_ops.pt2"
    torch.export.save(torch.export.export(model, (x,)), str(pt2_path))
    with pytest.raises(EdgeqError) as e:
        load_model(pt2_path)
    for needle in ("'erf' (aten.erf)", "(aten.floor)"):
        assert needle in str(e.value), str(e.value)
    assert_clean_error(edgeq("build", pt2_path, "-o", tmp_path / "out"), "aten.erf")
    assert not (tmp_path / "out").exists()


def test_bad_files(tmp_path, exported):
    text = tmp_path / "notes.onnx"
    text.write_text("hello, this is not a model")
    assert_clean_error(edgeq("inspect", text), "notes.onnx", "not an ONNX model")
    data = exported["resnet8"][1]["onnx"].read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    assert_clean_error(edgeq("build", cut, "-o", tmp_path / "out"), "cut.onnx")
    assert not (tmp_path / "out").exists()
    fake = tmp_path / "fake.pt2"
    fake.write_bytes(data)  # an ONNX file under the wrong name
    assert_clean_error(edgeq("inspect", fake), "not a PyTorch .pt2 file")
    zipped = tmp_path / "zipped.pt2"
    pt2 = exported["resnet8"][1]["pt2"].read_bytes()
    zipped.write_bytes(pt2[: len(pt2) // 2])
    assert_clean_error(edgeq("inspect", zipped), "zipped.pt2", "cannot be loaded")
    other = tmp_path / "model.h5"
    other.write_bytes(b"\x89HDF\r\n")
    assert_clean_error(edgeq("inspect", other), "'.h5'", ".onnx", ".pt2", ".tflite")
    assert_clean_error(edgeq("inspect", tmp_path / "nope.onnx"), "Cannot read")


def test_inspect_an_onnx_model_from_the_cli(exported):
    path = exported["dscnn"][1]["onnx"]
    proc = edgeq("inspect", path, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    kinds = [op["kind"] for op in report["ops"]]
    assert kinds.count("DEPTHWISE_CONV_2D") == 4 and kinds[-1] == "FULLY_CONNECTED"
    proc = edgeq("inspect", exported["mobilenetv2"][1]["onnx"], "--input-layout", "nhwc")
    assert proc.returncode == 0, proc.stderr
    assert "note: input 'x' is NHWC" in proc.stdout


# --- quantized builds ---------------------------------------------------------------------------

def _dequantized_run(out_dir, x_path, y_path):
    proc = edgeq("run", out_dir, "--input", x_path, "--output", y_path, "--dequantize")
    assert proc.returncode == 0, proc.stderr
    return np.load(y_path)


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
@pytest.mark.parametrize("name", list(MODELS))
def test_pot_build_is_bit_exact(exported, tmp_path, name, fmt):
    """Power-of-two quantization of each model from each format (NCHW input kept): host C == numpy reference."""
    path = exported[name][1][fmt]
    shape = MODELS[name].input_shape
    rng = np.random.default_rng(5)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((24, *shape)).astype(np.float32))
    x = rng.standard_normal((6, *shape)).astype(np.float32)
    np.savez(tmp_path / "eval.npz", x=x)
    out = tmp_path / "pot"
    proc = edgeq("build", path, "--board", "host", "--calib", tmp_path / "calib.npz", "-o", out)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["quant"] == "pot" and manifest["inputs"][0]["shape"] == list(shape)
    assert (out / f"model{path.suffix}").read_bytes() == path.read_bytes()  # the source model, under its own suffix
    assert_rescales_are_shifts(out)
    proc = edgeq("validate", out, "--data", tmp_path / "eval.npz")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(x)} of {len(x)} samples bit-exact" in proc.stdout
    # and the C, fed NCHW floats, stays close to the float model
    np.save(tmp_path / "x.npy", x)
    y = _dequantized_run(out, tmp_path / "x.npy", tmp_path / "y.npy")
    ref = np.stack([_ort(exported[name][1]["onnx"], s) for s in x])
    assert np.abs(y.reshape(ref.shape) - ref).max() < 0.1 * np.abs(ref).max()


def test_qdq_model_builds_with_its_own_quantization(exported, tmp_path):
    """onnxruntime's static QDQ quantization: int8 tensors with the file's scales, --quant keep."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self, xs):
            self.it = iter([{"x": s} for s in xs])

        def get_next(self):
            return next(self.it, None)

    rng = np.random.default_rng(6)
    qdq_path = tmp_path / "mnv2_qdq.onnx"
    quantize_static(str(exported["mobilenetv2"][1]["onnx"]), str(qdq_path),
                    Reader(rng.standard_normal((8, 1, 3, 32, 32)).astype(np.float32)), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True)
    graph = load_model(qdq_path)
    assert graph.is_integer
    convs = [op for op in graph.ops if isinstance(op, (ops.Conv2D, ops.DepthwiseConv2D)) and op.name != "x_to_nhwc"]
    assert convs and all(not graph.t(op.inputs[1]).quant.per_tensor for op in convs)  # per-channel kept
    assert all(graph.t(op.inputs[2]).dtype == "int32" for op in convs)
    out = tmp_path / "qdq"
    proc = edgeq("build", qdq_path, "--board", "host", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "model.json").read_text())["quant"] == "keep"
    x = rng.standard_normal((4, 1, 3, 32, 32)).astype(np.float32)
    np.savez(tmp_path / "eval.npz", x=x)
    proc = edgeq("validate", out, "--data", tmp_path / "eval.npz")
    assert proc.returncode == 0 and "4 of 4 samples bit-exact" in proc.stdout, proc.stdout + proc.stderr
    # onnxruntime runs the same QDQ model with its integer kernels: within two output steps
    np.save(tmp_path / "x.npy", x)
    y = _dequantized_run(out, tmp_path / "x.npy", tmp_path / "y.npy")
    step = graph.t(graph.outputs[0]).quant.s
    for k in range(len(x)):
        assert np.abs(y[k].reshape(-1) - _ort(qdq_path, x[k]).reshape(-1)).max() <= 2 * step + 1e-6


# --- layouts at the graph's edges ---------------------------------------------------------------

class SequenceMLP(nn.Module):
    """Linear layers on a [batch, time, features] tensor: ONNX MatMul + Add, kept 3-D."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(16, 24), nn.Linear(24, 8)

    def forward(self, x):
        return self.b(torch.relu(self.a(x))).mean(dim=1)


class NHWCInput(nn.Module):
    """A model that takes NHWC itself and permutes: the permute costs nothing in edgeq."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x.permute(0, 3, 1, 2)))  # a 4-D NCHW output


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_edges_matmul_add_and_layouts(tmp_path, fmt):
    paths = _export(_prepared(SequenceMLP), (1, 5, 16), tmp_path, "seq")
    graph = load_model(paths[fmt])
    assert [op.kind for op in graph.ops] == ["FULLY_CONNECTED", "FULLY_CONNECTED", "MEAN"]  # Add -> bias
    assert graph.ops[0].keep_num_dims and graph.ops[0].activation == ops.Activation.RELU
    x = _samples((1, 5, 16), n=1)[0]
    assert _rel_err(run_float_graph(graph, [x])[graph.outputs[0]], _ort(paths["onnx"], x)) < TOL

    paths = _export(_prepared(NHWCInput), (1, 8, 8, 3), tmp_path, "nhwc_in")
    graph = load_model(paths[fmt])
    assert [op.kind for op in graph.ops] == ["CONV_2D"]  # no input reordering: the permute is the layout
    assert graph.t(graph.inputs[0]).shape == (1, 8, 8, 3)
    assert graph.t(graph.outputs[0]).shape == (1, 8, 8, 4)  # NHWC, with a note saying so
    assert any("NHWC layout" in note for note in graph.notes)
    x = _samples((1, 8, 8, 3), n=1)[0]
    y = run_float_graph(graph, [x])[graph.outputs[0]]
    assert _rel_err(y.transpose(0, 3, 1, 2), _ort(paths["onnx"], x)) < TOL
