"""Issue 14's careless and hostile user: build folders that lose nothing and run nothing, bad data refused with
one clear line, shapes checked, every subprocess bounded in time, signals cleaned up."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgeq.errors import EdgeqError
from tests.test_cli import EXAMPLE, assert_clean_error, edgeq

REF = ["--kernels", "ref"]


def build(out, *extra, cwd=None, env=None, model=EXAMPLE):
    return subprocess.run([sys.executable, "-m", "edgeq", "build", str(model), "-o", str(out), *REF, *extra],
                          capture_output=True, text=True, cwd=cwd, env=env)


@pytest.fixture
def built(tmp_path):
    out = tmp_path / "out"
    proc = build(out)
    assert proc.returncode == 0, proc.stderr
    return out


def test_foreign_model_json_folder_is_not_touched(tmp_path):
    tfjs = tmp_path / "tfjs"
    tfjs.mkdir()
    (tfjs / "model.json").write_text('{"format": "layers-model"}')
    (tfjs / "group1-shard1of1.bin").write_bytes(b"weights")
    assert_clean_error(build(tfjs), "model.json", "does not overwrite")
    assert (tfjs / "model.json").read_text() == '{"format": "layers-model"}'
    assert sorted(p.name for p in tfjs.iterdir()) == ["group1-shard1of1.bin", "model.json"]


def test_rebuild_keeps_user_files_and_replaces_only_its_own(built):
    (built / "notes.txt").write_text("mine")
    (built / "runtime" / "my_kernel.h").write_text("mine")
    before = json.loads((built / "model.json").read_text())["edgeq_build"]["files"]
    proc = build(built)
    assert proc.returncode == 0, proc.stderr
    assert (built / "notes.txt").read_text() == "mine" and (built / "runtime" / "my_kernel.h").read_text() == "mine"
    assert json.loads((built / "model.json").read_text())["edgeq_build"]["files"] == before
    assert not [p for p in built.iterdir() if p.name.startswith(".edgeq-staging")]


def test_output_dot_and_relative_paths(tmp_path):
    (tmp_path / "keep.txt").write_text("keep")
    for _ in range(2):  # a build, then a rebuild in place
        proc = build(".", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "keep.txt").read_text() == "keep" and (tmp_path / "model.json").exists()
    proc = build("a/b", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a" / "b" / "model.json").exists()


def test_failed_build_leaves_the_previous_build_intact(built):
    snapshot = {p: p.read_bytes() for p in built.rglob("*") if p.is_file()}
    proc = build(built, env={**os.environ, "CC": "false"})  # the real compiler step fails
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert {p: p.read_bytes() for p in built.rglob("*") if p.is_file()} == snapshot


@pytest.mark.parametrize("folder", [".", "runtime"])
def test_unwritable_existing_build_is_left_intact(built, folder):
    """chmod does not stop root (CI runs as root): the immutable attribute does, where the filesystem has it."""
    target = built / folder
    snapshot = {p: p.read_bytes() for p in built.rglob("*") if p.is_file()}
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(target)], capture_output=True).returncode:
        pytest.skip("cannot make a folder unwritable here (no chattr, or the filesystem has no immutable attribute)")
    try:
        proc = build(built)
    finally:
        subprocess.run(["chattr", "-i", str(target)], check=True)
    assert_clean_error(proc, str(built))
    assert {p: p.read_bytes() for p in built.rglob("*") if p.is_file()} == snapshot


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_build_cleans_up(tmp_path, built, sig):
    cc = tmp_path / "slowcc"
    cc.write_text("#!/bin/sh\nsleep 30\n")
    cc.chmod(0o755)
    snapshot = {p: p.read_bytes() for p in built.rglob("*") if p.is_file()}
    # SIGINT as from Ctrl-C (a shell's background jobs start with it ignored, so restore it)
    proc = subprocess.Popen([sys.executable, "-m", "edgeq", "build", str(EXAMPLE), "-o", str(built), *REF],
                            env={**os.environ, "CC": str(cc)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".edgeq-staging") for p in built.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # inside the compiler step
    proc.send_signal(sig)
    assert proc.wait(30) != 0
    assert "Traceback" not in proc.stderr.read().decode()
    assert not [p for p in built.iterdir() if p.name.startswith(".")]
    assert {p: p.read_bytes() for p in built.rglob("*") if p.is_file()} == snapshot
    assert not subprocess.run(["pgrep", "-f", str(cc)], capture_output=True).stdout  # the compiler was stopped


def test_no_pickle_and_nothing_executed_from_a_build_folder(built, tmp_path):
    assert not list(built.rglob("*.pkl"))
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    import pickle
    (built / "reference_graph.pkl").write_bytes(pickle.dumps(Evil()))  # an old-style crafted folder
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 8, 8, 1), np.float32))
    proc = edgeq("validate", built, "--data", tmp_path / "x.npz")
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    doc = json.loads((built / "reference_graph.json").read_text())
    doc["ops"][0]["class"] = "os.system"
    (built / "reference_graph.json").write_text(json.dumps(doc))
    assert_clean_error(edgeq("validate", built, "--data", tmp_path / "x.npz"), "damaged reference graph")


def test_bad_inputs_are_refused(built, tmp_path):
    cases = {
        "nan": (np.where(np.arange(128).reshape(2, 8, 8, 1) == 70, np.nan, 0.5).astype(np.float32),
                "sample 1 at position (0, 0, 6, 0)"),
        "uint8": (np.full((2, 8, 8, 1), 255, np.uint8), "uint8"),
        "scaling": (np.full((2, 8, 8, 1), 255, np.float32), "far outside"),
        "empty": (np.zeros((0, 8, 8, 1), np.float32), "no samples"),
    }
    for name, (x, needle) in cases.items():
        np.save(tmp_path / f"{name}.npy", x)
        assert_clean_error(edgeq("run", built, "--input", tmp_path / f"{name}.npy", "--output", tmp_path / "y.npy"),
                           needle)
    assert_clean_error(edgeq("validate", built, "--data", tmp_path / "empty.npy"), "no samples")


def test_run_takes_npz_like_validate(built, tmp_path):
    x = np.random.default_rng(0).uniform(0, 1, (3, 8, 8, 1)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    np.save(tmp_path / "x.npy", x)
    for name in ("x.npz", "x.npy"):
        proc = edgeq("run", built, "--input", tmp_path / name, "--output", tmp_path / f"y_{name}.npy")
        assert proc.returncode == 0, proc.stderr
    assert np.array_equal(np.load(tmp_path / "y_x.npz.npy"), np.load(tmp_path / "y_x.npy.npy"))


def test_flash_on_a_host_build_names_the_real_problem(built):
    assert_clean_error(edgeq("flash", built), "build for the host board")


def test_model_named_main_builds_and_runs(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "main.tflite")
    proc = build(tmp_path / "out", model=tmp_path / "main.tflite")
    assert proc.returncode == 0, proc.stderr
    np.save(tmp_path / "x.npy", np.zeros((1, 8, 8, 1), np.int8))
    proc = edgeq("run", tmp_path / "out", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert proc.returncode == 0, proc.stderr


def test_host_binary_that_never_returns_times_out(built, tmp_path):
    exe = built / "digits_cnn_int8_host"
    exe.write_text("#!/bin/sh\nsleep 100\n")
    np.save(tmp_path / "x.npy", np.zeros((1, 8, 8, 1), np.int8))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "edgeq", "run", str(built), "--input", str(tmp_path / "x.npy"),
                           "--output", str(tmp_path / "y.npy")], capture_output=True, text=True,
                          env={**os.environ, "EDGEQ_TIMEOUT": "2"})
    assert time.monotonic() - start < 20
    assert_clean_error(proc, "did not finish within 2 s", "EDGEQ_TIMEOUT")


def test_every_subprocess_has_a_timeout():
    """edgeq runs other programs through targets/process.run (timeout, EDGEQ_TIMEOUT, process group stopped on
    a timeout or a signal). Elsewhere only QEMU (bounded by its start-up wait and the serial link's reply
    timeouts) and git (its own timeout) are started."""
    import ast

    calls = []
    for path in sorted((Path(__file__).parents[1] / "edgeq").rglob("*.py")):
        if path.name == "process.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    isinstance(node.func.value, ast.Name) and node.func.value.id in ("subprocess", "os") and \
                    node.func.attr in ("run", "call", "check_call", "check_output", "Popen", "system", "popen"):
                bounded = any(k.arg == "timeout" for k in node.keywords)
                if not bounded and not (path.name == "qemu.py" and node.func.attr == "Popen"):
                    calls.append(f"{path.name}:{node.lineno} {node.func.value.id}.{node.func.attr}")
    assert not calls, f"unbounded subprocesses (use edgeq.targets.process.run): {calls}"


def test_a_hanging_firmware_build_times_out(tmp_path):
    """cmake that never returns: a clear error within EDGEQ_TIMEOUT, the program stopped, no output left."""
    fake = tmp_path / "bin"
    fake.mkdir()
    cmake = fake / "cmake"
    cmake.write_text("#!/bin/sh\nsleep 60\n")
    cmake.chmod(0o755)
    out = tmp_path / "fw"
    start = time.monotonic()
    proc = build(out, "--board", "qemu-mps2-an500",
                 env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "EDGEQ_TIMEOUT": "3"})
    assert time.monotonic() - start < 60
    assert_clean_error(proc, "Configuring the firmware's CMake project for qemu-mps2-an500 did not finish within 3 s",
                       "EDGEQ_TIMEOUT")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert not subprocess.run(["pgrep", "-f", str(cmake)], capture_output=True).stdout


def test_vela_is_bounded_in_time(tmp_path, monkeypatch):
    pytest.importorskip("ethosu.vela")
    from edgeq.targets.npu import run_vela

    monkeypatch.setenv("EDGEQ_TIMEOUT", "0.05")  # less than Vela takes to start
    with pytest.raises(EdgeqError, match=r"Vela compiling digits_cnn_int8\.tflite did not finish within 0\.05 s.*"
                                         r"set EDGEQ_TIMEOUT=SECONDS"):
        run_vela(EXAMPLE, tmp_path / "vela", {"accelerator": "ethos-u55-128"})


def test_inconsistent_shapes_are_refused():
    from edgeq.frontends import load_model
    from edgeq.ir.shapes import check_graph

    graph = load_model(EXAMPLE)
    out = graph.t(graph.ops[0].outputs[0])
    out.shape = (1, 8, 8, 80000)  # one corrupted dimension: an arena of gigabytes
    with pytest.raises(EdgeqError, match="inputs give"):
        check_graph(graph, "fuzzed.tflite")


def test_calibration_data_checks(tmp_path):
    from edgeq.frontends import load_model
    from edgeq.quant.calibration import load_calibration

    graph = load_model(EXAMPLE)
    cases = {"const": (np.full((4, 8, 8, 1), 1e30, np.float32), "all 4 samples are the same"),
             "uint8": (np.zeros((4, 8, 8, 1), np.uint8) + np.arange(4, dtype=np.uint8)[:, None, None, None],
                       "uint8"),
             "inf": (np.where(np.arange(256).reshape(4, 8, 8, 1) == 200, np.inf, 0.1).astype(np.float32),
                     "sample 3 at position (1, 0, 0)"),
             "empty": (np.zeros((0, 8, 8, 1), np.float32), "no samples")}
    for name, (x, needle) in cases.items():
        np.save(tmp_path / f"{name}.npy", x)
        with pytest.raises(EdgeqError, match=needle.replace("(", r"\(").replace(")", r"\)")):
            load_calibration(tmp_path / f"{name}.npy", graph)


def test_outputs_that_collapse_on_the_calibration_data_are_an_error():
    """A quantized model giving one output for every calibration sample while the float model's differ (the
    issue's uint8-scaled calibration data) is refused; outputs that differ by less than two steps are not."""
    from edgeq.quant.calibration import check_outcome, collapse_error

    x = np.random.default_rng(0).uniform(0, 255, (8, 8, 8, 1)).astype(np.float32)
    reference = np.linspace(0, 1, 8 * 3).reshape(8, 3)  # the float model tells the samples apart
    same = np.zeros((8, 3))
    assert check_outcome("m", x, reference, same, output_step=1 / 256)
    assert not check_outcome("m", x, reference, same, output_step=1.0)  # within two int8 steps: no evidence
    assert not check_outcome("m", x, reference, reference)
    assert not check_outcome("m", x[:1], reference[:1], same[:1])
    message = str(collapse_error("m", x))
    assert "same output for all 8 calibration samples" in message and "wrong scaling" in message
    with pytest.raises(EdgeqError, match="NaN or infinite outputs on calibration sample 2"):
        check_outcome("m", x, np.where(np.arange(24).reshape(8, 3) == 7, np.inf, reference))


def test_models_beyond_the_board_are_refused_before_calibration():
    from edgeq.frontends import load_model
    from edgeq.ir.shapes import check_sizes
    from edgeq.targets.boards import get_board

    graph = load_model(EXAMPLE)
    check_sizes(graph, get_board("nucleo-f446re"))
    w = next(t for t in graph.tensors.values() if t.is_const and len(t.shape) == 4)
    w.shape = (50_000_000,)  # 50M parameters (check_sizes reads the shapes only)
    with pytest.raises(EdgeqError, match="cannot fit on nucleo-f446re: at int8 its weights alone take 50,0"):
        check_sizes(graph, get_board("nucleo-f446re"))
    check_sizes(graph, get_board("host"))  # the Corstone-300's 256 MiB would hold it
    w.shape = (300_000_000,)
    with pytest.raises(EdgeqError, match="any board edgeq knows"):
        check_sizes(graph, get_board("host"))
