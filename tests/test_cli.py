"""The command line as a user meets it: inspect, build, run, boards, and the errors for bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.oracles import convert_int8, tflm_run

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digits_cnn_int8.tflite"


def edgeq(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def assert_clean_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: "), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)


def test_boards_lists_every_board_file():
    proc = edgeq("boards")
    assert proc.returncode == 0
    names = {line.split()[0] for line in proc.stdout.splitlines()[1:]}
    assert names == {p.stem for p in (ROOT / "boards").glob("*.toml")}
    assert "nucleo-h7" in proc.stdout and "4,096 KiB" in proc.stdout
    # every row's columns line up under the header's, whatever the length of the board's name
    lines = proc.stdout.splitlines()
    for word in ("kind", "core"):
        col = lines[0].index(word)
        assert all(line[col - 1] == " " and line[col] != " " for line in lines[1:]), (word, lines)


def test_inspect_json_reports_the_example():
    proc = edgeq("inspect", EXAMPLE, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    kinds = [op["kind"] for op in report["ops"]]
    assert kinds[:3] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D"]
    # 8x8x8 conv 3x3x1 + depthwise 3x3 on 8x8x8 + 1x1 8->16 + 4x4x16 conv 3x3x16 + dense 16->10
    assert report["macs"] == 8 * 8 * 8 * 9 + 8 * 8 * 8 * 9 + 8 * 8 * 16 * 8 + 4 * 4 * 16 * 9 * 16 + 16 * 10
    assert report["weights_bytes"] > 8 * 9 + 8 * 9 + 16 * 8 + 16 * 9 * 16 + 160
    assert report["arena_bytes"] >= report["arena_lower_bound_bytes"] > 0


def test_build_run_matches_tflm(tmp_path):
    out = tmp_path / "digits"
    proc = edgeq("build", EXAMPLE, "--board", "host", "-o", out)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "model.json").read_text())
    assert (out / "model.tflite").read_bytes() == Path(EXAMPLE).read_bytes()
    assert manifest["arena"]["arena_bytes"] >= manifest["arena"]["lower_bound_bytes"]
    for t in manifest["tensors"]:
        assert {"name", "dtype", "shape", "scale", "zero_point"} <= set(t)
    x = np.random.default_rng(1).integers(-128, 128, size=(5, 1, 8, 8, 1)).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    proc = edgeq("run", out, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert proc.returncode == 0, proc.stderr
    y = np.load(tmp_path / "y.npy")
    model = EXAMPLE.read_bytes()
    for k in range(len(x)):
        np.testing.assert_array_equal(y[k], tflm_run(model, [x[k]])[0])
    # float inputs are quantized with the input scale; --dequantize gives probabilities
    digits = np.load(ROOT / "examples" / "digits_samples.npz")
    np.save(tmp_path / "xf.npy", digits["x"])
    proc = edgeq("run", out, "--input", tmp_path / "xf.npy", "--output", tmp_path / "yf.npy", "--dequantize")
    assert proc.returncode == 0, proc.stderr
    probs = np.load(tmp_path / "yf.npy").reshape(len(digits["x"]), 10)
    assert probs.dtype == np.float32 and np.allclose(probs.sum(axis=1), 1.0, atol=0.05)
    assert (probs.argmax(axis=1) == digits["y"]).mean() >= 0.8


def test_generated_sources_are_deterministic(tmp_path):
    for d in ("a", "b"):
        assert edgeq("build", EXAMPLE, "-o", tmp_path / d).returncode == 0
    for f in sorted((tmp_path / "a").glob("*.[ch]")):
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name


def test_not_a_tflite_file(tmp_path):
    bad = tmp_path / "notes.tflite"
    bad.write_text("hello, this is not a model")
    assert_clean_error(edgeq("inspect", bad), "not a TFLite model")
    out = tmp_path / "out"
    assert_clean_error(edgeq("build", bad, "-o", out), "not a TFLite model")
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_truncated_model(tmp_path):
    data = EXAMPLE.read_bytes()
    bad = tmp_path / "cut.tflite"
    bad.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    assert_clean_error(edgeq("build", bad, "-o", out), "cut.tflite", "damaged")
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_missing_file(tmp_path):
    assert_clean_error(edgeq("inspect", tmp_path / "nope.tflite"), "Cannot read")


def test_unsupported_operators_are_all_listed(tmp_path):
    import tensorflow as tf

    x = tf.keras.Input((8, 8, 2))
    y = tf.keras.layers.UpSampling2D(2)(x)  # TILE, EXPAND_DIMS and SUB are supported since issue 12
    z = tf.keras.layers.Subtract()([y, y * 0.5])
    w = tf.keras.layers.Lambda(lambda t: tf.math.cumsum(tf.reverse(t, axis=[2]), axis=1))(z)
    model = tf.keras.Model(x, w)
    path = tmp_path / "upsample.tflite"
    path.write_bytes(convert_int8(model, [(8, 8, 2)]))
    proc = edgeq("build", path, "-o", tmp_path / "out")
    assert_clean_error(proc, "2 operator(s)", "#14 REVERSE_V2", "#16 CUMSUM")
    assert not (tmp_path / "out").exists()


def test_float_model_is_refused_with_the_fix(tmp_path):
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3)])
    path = tmp_path / "float.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    assert_clean_error(edgeq("build", path, "-o", tmp_path / "out"), "float", "int8")


def test_run_rejects_wrong_input_shape(tmp_path):
    out = tmp_path / "digits"
    assert edgeq("build", EXAMPLE, "-o", out).returncode == 0
    np.save(tmp_path / "x.npy", np.zeros((2, 7, 7), np.int8))
    assert_clean_error(edgeq("run", out, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy"), "shape")


def test_unknown_board(tmp_path):
    assert_clean_error(edgeq("build", EXAMPLE, "--board", "nosuch", "-o", tmp_path / "o"), "nosuch", "edgeq boards")


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_generated_c_is_warning_free_c99(tmp_path, cc):
    """-std=c99 -pedantic -Wall -Wextra -Werror under both compilers, as the host Makefile demands."""
    import shutil

    if shutil.which(cc) is None:
        pytest.skip(f"{cc} is not installed (make test installs it)")
    from edgeq.frontends.tflite import load_tflite_file
    from edgeq.build import build_and_run_host

    graph = load_tflite_file(EXAMPLE)
    x = np.zeros(graph.t(graph.inputs[0]).shape, np.int8)
    outs = build_and_run_host(graph, tmp_path / cc, [[x]], sanitize=False, cc=cc)
    np.testing.assert_array_equal(outs[0][0], tflm_run(EXAMPLE.read_bytes(), [x])[0].reshape(-1))
