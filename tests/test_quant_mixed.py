"""Mixed int8/int16 power-of-two activations under an arena or latency budget (issue 15, item 3): the choice, the
budget in model.json, and bit-exact builds on the host and on an emulated Cortex-M7."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgeq.errors import EdgeqError

tf = pytest.importorskip("tensorflow")
L = tf.keras.layers

from tests.test_quant_issue15 import edgeq  # noqa: E402  (the CLI in a subprocess)


@pytest.fixture(scope="module")
def residual_model(tmp_path_factory):
    """A small float CNN with what the shared models have: padded and depthwise convolutions, a residual ADD,
    a global average pool and a dense layer; its feature maps shrink, so later tensors are cheap to widen."""
    tf.keras.utils.set_random_seed(3)
    inp = tf.keras.Input((16, 16, 3), batch_size=1)
    h = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    r = L.DepthwiseConv2D(3, padding="same", activation="relu")(h)
    r = L.Conv2D(8, 1)(r)
    h = L.ReLU()(L.Add()([h, r]))
    h = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(h)
    out = L.Dense(5)(L.GlobalAveragePooling2D()(h))
    root = tmp_path_factory.mktemp("mixed")
    path = root / "residual.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(inp, out)).convert())
    rng = np.random.default_rng(1)
    np.savez(root / "calib.npz", x=rng.uniform(0, 1, (32, 16, 16, 3)).astype(np.float32))
    np.savez(root / "eval.npz", x=rng.uniform(0, 1, (24, 16, 16, 3)).astype(np.float32))
    return path, root


def _quantize(path, root, latency_of=None, **options):
    from edgeq.frontends.tflite import load_tflite_file
    from edgeq.quant.driver import QuantOptions, quantize

    return quantize(load_tflite_file(path), root / "calib.npz", QuantOptions(equalization="off", **options),
                    echo=lambda *_: None, latency_of=latency_of)


def test_choice_within_budget_and_more_accurate(residual_model):
    """With room for int16, the most sensitive tensors get it, the arena stays within the budget, every int16
    tensor keeps a power-of-two scale 2^8 (unsigned 2^7) times finer than its int8 grid, and the output error on
    the calibration data falls; with a budget equal to the int8 arena only tensors that cost no arena widen."""
    from edgeq.quant.mixed import arena_bytes

    path, root = residual_model
    plain = _quantize(path, root)
    a8 = arena_bytes(plain.graph)
    budget = int(a8 * 1.5)
    mixed = _quantize(path, root, mixed_precision=True, max_arena=budget)
    info = mixed.summary.mixed_precision
    assert info["int8_arena"] == a8 and a8 < info["arena"] == arena_bytes(mixed.graph) <= budget
    wide = [n for n, t in mixed.graph.tensors.items() if t.dtype == "int16"]
    assert set(info["int16_tensors"]) <= set(wide) and info["int16_tensors"]
    for name in info["int16_tensors"]:
        q8, q16 = plain.graph.t(name).quant, mixed.graph.t(name).quant
        assert q16.zp == 0 and float(q8.s) / float(q16.s) == (128 if q8.zp == -128 else 256), name
    assert max(info["sensitivity"], key=info["sensitivity"].get) in info["int16_tensors"]
    assert mixed.summary.output_sqnr_db > plain.summary.output_sqnr_db + 1.0
    same = _quantize(path, root, mixed_precision=True, max_arena=a8)
    assert same.summary.mixed_precision["arena"] == arena_bytes(same.graph) == a8
    assert len(same.summary.mixed_precision["int16_tensors"]) < len(info["int16_tensors"])


def test_mixed_precision_widens_the_int8_build_kept(residual_model):
    """Under auto, mixed precision takes the int8 build's variant as SELECTION_RULE kept it (equalization and
    rounding, chosen on the int8 candidates alone) and only adds int16 to it."""
    from edgeq.frontends.tflite import load_tflite_file
    from edgeq.quant.driver import QuantOptions, quantize

    path, root = residual_model
    graph = load_tflite_file(path)
    plain = quantize(graph, root / "calib.npz", QuantOptions(), echo=lambda *_: None)
    mixed = quantize(graph, root / "calib.npz", QuantOptions(mixed_precision=True, max_arena=1 << 20),
                     echo=lambda *_: None)
    kept = (plain.summary.equalization, plain.summary.rounding)
    assert (mixed.summary.equalization, mixed.summary.rounding) == kept
    int8 = [(c.equalization, c.rounding, c.output_sqnr_db) for c in mixed.summary.candidates[:-1]]
    assert int8 == [(c.equalization, c.rounding, c.output_sqnr_db) for c in plain.summary.candidates]
    assert mixed.summary.candidates[-1].output_sqnr_db == mixed.summary.output_sqnr_db > plain.summary.output_sqnr_db


def test_options_refused_with_reason(residual_model, tmp_path):
    from edgeq.quant.mixed import arena_bytes

    path, root = residual_model
    with pytest.raises(EdgeqError, match="goes with a budget"):
        _quantize(path, root, mixed_precision=True)
    with pytest.raises(EdgeqError, match="goes with a budget"):
        _quantize(path, root, max_arena=10_000)
    with pytest.raises(EdgeqError, match="goes with a budget"):
        _quantize(path, root, max_latency=10_000)
    with pytest.raises(EdgeqError, match="give it to `edgeq build` with --board"):
        _quantize(path, root, mixed_precision=True, max_latency=10_000)
    proc = edgeq("build", path, "--board", "host", "--calib", root / "calib.npz", "--mixed-precision",
                 "--max-latency", 10_000, "-o", tmp_path / "h")
    assert proc.returncode != 0 and "host has none" in proc.stderr and "Traceback" not in proc.stderr
    a8 = arena_bytes(_quantize(path, root).graph)
    with pytest.raises(EdgeqError, match=f"below the {a8} B arena"):
        _quantize(path, root, mixed_precision=True, max_arena=a8 - 1)
    from edgeq.quant.driver import QuantOptions
    from edgeq.quant.mixed import check_budget
    check_budget(a8 + 1, QuantOptions())  # no budget without --mixed-precision
    with pytest.raises(EdgeqError, match=f"is {a8 + 1} B, over --max-arena {a8}"):  # the build's final plan
        check_budget(a8 + 1, QuantOptions(mixed_precision=True, max_arena=a8))
    proc = edgeq("quantize", path, "--calib", root / "calib.npz", "--mixed-precision", "--max-arena", 2 * a8,
                 "-o", tmp_path / "q", "--tflite", tmp_path / "m.tflite")
    assert proc.returncode != 0 and "--tflite writes int8 models" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "q").exists()


def _build_and_validate(path, root, out, budget, *board):
    proc = edgeq("build", path, *board, "--calib", root / "calib.npz", "--equalization", "off", "--mixed-precision",
                 "--max-arena", budget, "-o", out)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["arena"]["arena_bytes"] <= budget
    assert any(t["dtype"] == "int16" for t in manifest["tensors"])
    assert any(n.startswith("mixed precision:") for n in manifest["notes"])
    assert {layer["kernel"] for layer in manifest["layers"]} >= {"conv_s16", "rescale", "conv_s8"}
    proc = edgeq("validate", out, "--data", root / "eval.npz")
    assert proc.returncode == 0 and "24 of 24 samples bit-exact" in proc.stdout, proc.stdout + proc.stderr


def test_host_build_bit_exact(residual_model, tmp_path):
    """The host C of a mixed build (16x8 kernels, int8<->int16 conversions, int64 biases) equals the golden model."""
    from edgeq.quant.mixed import arena_bytes

    path, root = residual_model
    _build_and_validate(path, root, tmp_path / "host", int(arena_bytes(_quantize(path, root).graph) * 1.5),
                        "--board", "host")


@pytest.mark.skipif(not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm") and shutil.which("cmake")),
                    reason="needs arm-none-eabi-gcc, cmake and qemu-system-arm")
def test_emulated_board_bit_exact(residual_model, tmp_path):
    """The same on the emulated Cortex-M7 (reference kernels), compared over the serial link."""
    from edgeq.quant.mixed import arena_bytes

    path, root = residual_model
    _build_and_validate(path, root, tmp_path / "m7", int(arena_bytes(_quantize(path, root).graph) * 1.5),
                        "--board", "qemu-mps2-an500", "--kernels", "ref")


@pytest.mark.skipif(not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm") and shutil.which("cmake")),
                    reason="needs arm-none-eabi-gcc, cmake and qemu-system-arm")
def test_latency_budget_on_emulated_board(residual_model, tmp_path, monkeypatch):
    """--max-latency: the choice's latency, measured on the emulated Cortex-M7, stays within the budget; a budget
    between the int8 and the all-int16 latency widens some tensors, the most sensitive first; one below the int8
    latency is refused with the figure; the build reports the measured count and is bit-exact over the serial link."""
    from edgeq.quant.mixed import board_latency, candidates, widen
    from edgeq.targets.boards import get_board

    monkeypatch.setenv("EDGEQ_CACHE", str(tmp_path / "cache"))
    path, root = residual_model
    latency_of = board_latency(get_board("qemu-mps2-an500"), "ref")
    plain = _quantize(path, root)
    l8 = sum(latency_of(plain.graph).values())
    l16 = sum(latency_of(widen(plain.graph, set(candidates(plain.graph)))).values())
    assert l16 > l8 > 0
    budget = (l8 + l16) // 2
    info = _quantize(path, root, mixed_precision=True, max_latency=budget, latency_of=latency_of) \
        .summary.mixed_precision
    # the kernels' work depends a little on the values, which rounding and bias correction change
    assert abs(info["int8_latency"] - l8) < 1e-3 * l8 and info["latency"] <= budget, info
    with pytest.raises(EdgeqError, match=f"below the {info['int8_latency']:,} instructions"):
        _quantize(path, root, mixed_precision=True, max_latency=info["int8_latency"] - 1, latency_of=latency_of)
    assert 0 < len(info["int16_tensors"]) < len(candidates(plain.graph)), info
    assert abs(info["estimated_latency"] - info["latency"]) < 0.05 * info["latency"], info
    assert max(info["sensitivity"], key=info["sensitivity"].get) in info["int16_tensors"]
    out = tmp_path / "m7"
    proc = edgeq("build", path, "--board", "qemu-mps2-an500", "--kernels", "ref", "--calib", root / "calib.npz",
                 "--equalization", "off", "--mixed-precision", "--max-latency", budget, "-o", out)
    assert proc.returncode == 0, proc.stderr
    notes = json.loads((out / "model.json").read_text())["notes"]
    assert any(f"within --max-latency {budget:,} instructions" in n and "instructions measured" in n for n in notes)
    proc = edgeq("validate", out, "--data", root / "eval.npz")
    assert proc.returncode == 0 and "24 of 24 samples bit-exact" in proc.stdout, proc.stdout + proc.stderr
