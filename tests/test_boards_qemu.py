"""Firmware on emulated boards (real QEMU, real serial pseudo-terminal) and builds for real boards."""
from __future__ import annotations

import os
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from edgeq.errors import EdgeqError
from tests.oracles import shared_path, tflm_run

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digits_cnn_int8.tflite"
EMULATED = ["qemu-mps2-an500", "qemu-mps2-an386"]
EXAMPLE_BOARDS = EMULATED + ["qemu-mps3-an547"]
REAL = ["nucleo-h743zi", "nucleo-f446re", "nucleo-l4r5zi", "nrf52840dk"]
SHARED_INT8 = {
    "ad01_int8": "models/mlperf_tiny/ad01_int8.tflite",
    "kws_ds_cnn_int8": "models/mlperf_tiny/kws_ds_cnn_int8.tflite",
    "resnet_ic_int8": "models/mlperf_tiny/resnet_ic_int8.tflite",
    "vww_96_int8": "models/mlperf_tiny/vww_96_int8.tflite",
    "person_detect": "models/tflm/person_detect.tflite",
    "micro_speech_quantized": "models/tflm/micro_speech_quantized.tflite",
}

pytestmark = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm") and shutil.which("cmake")),
    reason="needs gcc-arm-none-eabi, qemu-system-arm and cmake (make test installs them)")


def build(model: Path, board: str, out: Path, kernels: str = "auto") -> Path:
    from edgeq.build import compile_graph, write_project
    from edgeq.frontends.tflite import load_tflite_file
    from edgeq.targets.boards import get_board

    graph = load_tflite_file(model)
    b = get_board(board)
    write_project(compile_graph(graph, "keep", b, kernels), b, "keep", out, model, echo=lambda *_: None)
    return out


@pytest.fixture(scope="module")
def example_builds(tmp_path_factory, cmsis_nn):  # auto measures CMSIS-NN on these boards
    root = tmp_path_factory.mktemp("fw")
    return {b: build(EXAMPLE, b, root / b) for b in EXAMPLE_BOARDS}


def random_int8(shape, n, seed):
    return np.random.default_rng(seed).integers(-128, 128, size=(n, *shape)).astype(np.int8)


def check_against_tflm(model: Path, build_dir: Path, n: int, seed: int) -> None:
    from edgeq.build import load_manifest
    from edgeq.run import run_build

    shape = tuple(load_manifest(build_dir)["inputs"][0]["shape"])
    x = random_int8(shape, n, seed)
    y = run_build(build_dir, [x])[0]
    data = model.read_bytes()
    for k in range(n):
        np.testing.assert_array_equal(y[k].reshape(-1), tflm_run(data, [x[k]])[0].reshape(-1),
                                      err_msg=f"sample {k} over serial != TFLite Micro")


def profile_twice(build_dir: Path) -> dict:
    from edgeq.build import load_manifest
    from edgeq.targets.device import open_device, profile

    m = load_manifest(build_dir)
    reports = []
    for _ in range(2):  # each in a fresh emulator: identical figures
        with open_device(build_dir, m) as (link, board):
            reports.append(profile(link, board, m))
    assert reports[0] == reports[1]
    report = reports[0]
    layer_sum = sum(layer["cycles"] for layer in report["layers"])
    # outside the layers: the copies of the model's input and output (ad01: 640 B each way, ~33 ticks on the M55)
    assert abs(report["cycles_per_inference"] - layer_sum) <= 0.01 * report["cycles_per_inference"] + 64, report
    return report


@pytest.mark.parametrize("board", EXAMPLE_BOARDS)
def test_example_over_serial_matches_tflm_and_profiles(example_builds, board):
    from edgeq.targets.boards import get_board

    check_against_tflm(EXAMPLE, example_builds[board], n=20, seed=1)
    report = profile_twice(example_builds[board])
    assert report["clock_hz"] == get_board(board).clock_hz and len(report["layers"]) == 8


@pytest.mark.parametrize("board,kernels", [(b, "auto") for b in EXAMPLE_BOARDS] +
                         [("qemu-mps2-an386", "cmsis-nn"), ("qemu-mps3-an547", "cmsis-nn"), ("qemu-mps2-an500", "arm-dsp")])
@pytest.mark.parametrize("name", sorted(SHARED_INT8))
def test_shared_model_on_emulated_board(tmp_path, name, board, kernels):
    """auto picks per layer among edgeq's own DSP kernels and CMSIS-NN on the M4/M7 (measured), edgeq's own
    Helium kernels and CMSIS-NN on the M55, ref where all decline; CMSIS-NN alone on the M4 and M55, edgeq's DSP
    kernels alone on the M7 (ref runs the whole kernel plan on the host: tests/test_kernels.py)."""
    from edgeq.build import load_manifest

    model = shared_path(SHARED_INT8[name])
    out = build(model, board, tmp_path / "fw", kernels)
    layers = [layer for layer in load_manifest(out)["layers"] if "backend" in layer]
    used = {layer["backend"] for layer in layers}
    assert kernels == "auto" or used <= {kernels, "ref"}, used
    for layer in layers:  # auto: where libraries compete, the fewest measured instructions win
        counts = layer.get("measured_instructions", {})
        assert not counts or counts[layer["backend"]] == min(counts.values()), layer
    assert all(layer["declined"] for layer in layers if layer["backend"] == "ref"), layers  # and says why
    check_against_tflm(model, out, n=6, seed=5)
    profile_twice(out)


def test_validate_cli_reports_bit_exact(example_builds, tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "edgeq", "validate", str(example_builds["qemu-mps2-an500"]),
                           "--data", str(ROOT / "examples" / "digits_samples.npz"), "--json",
                           str(tmp_path / "v.json")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "16 of 16 samples bit-exact" in proc.stdout


# --- faults on the line, against the running emulated board -----------------------------------------

@pytest.fixture
def device(example_builds):
    from edgeq.build import load_manifest
    from edgeq.targets.boards import get_board
    from edgeq.targets.qemu import QemuBoard
    from edgeq.targets.serial_link import SerialLink

    d = example_builds["qemu-mps2-an500"]
    m = load_manifest(d)
    with QemuBoard(get_board(m["board"]), d / m["firmware"]["elf"]) as qemu, SerialLink(qemu.pty) as link:
        link.hello()
        yield qemu, link


def timed(fn):
    start = time.monotonic()
    result = fn()
    return result, time.monotonic() - start


def test_garbage_on_the_line_is_skipped(device):
    _, link = device
    garbage = bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8))
    garbage = garbage.replace(b"\xa5", b"\x00")  # no sync byte: pure noise
    link.write_raw(garbage)
    hello, seconds = timed(link.hello)
    assert hello.layers == 8 and seconds < 5


def test_false_sync_with_short_length_is_recovered(device):
    _, link = device
    link.write_raw(b"\xa5\x5a" + struct.pack("<I", 20) + b"\x01" * 5)  # a bogus frame that swallows bytes
    hello, seconds = timed(link.hello)
    assert hello.board == "qemu-mps2-an500" and seconds < 15


def test_wrong_crc_gets_an_error_reply_then_works(device):
    from edgeq.targets import protocol as P

    _, link = device
    bad = bytearray(P.frame(bytes([P.CMD_HELLO])))
    bad[-1] ^= 0xFF
    link.write_raw(bytes(bad))
    reply = link.read_frame(5.0)
    assert reply == bytes([P.REPLY_ERROR, P.ERR_CRC])
    assert link.hello().layers == 8


def test_truncated_frame_then_retry(device):
    from edgeq.targets import protocol as P

    _, link = device
    frame = P.frame(bytes([P.CMD_INFER]) + bytes(64))
    link.write_raw(frame[: len(frame) // 2])
    x = np.zeros(64, np.int8).tobytes()
    (status, _, out), seconds = timed(lambda: link.infer(x, 10.0))
    assert status == 0 and len(out) == 10 and seconds < 30


def test_device_reset_mid_transfer(device):
    from edgeq.targets import protocol as P

    qemu, link = device
    frame = P.frame(bytes([P.CMD_INFER]) + bytes(64))
    link.write_raw(frame[:20])
    qemu.reset()
    hello, seconds = timed(link.hello)
    assert hello.layers == 8 and seconds < 15


def test_no_device_answering_fails_within_bounded_time():
    from edgeq.targets.serial_link import SerialLink

    master, slave = os.openpty()
    try:
        with SerialLink(os.ttyname(slave), retries=1) as link:
            with pytest.raises(EdgeqError, match="no reply"):
                timed(lambda: link.hello(timeout=1.0))
    finally:
        os.close(master)
        os.close(slave)


def test_corrupt_reply_is_detected():
    from edgeq.targets import protocol as P
    from edgeq.targets.serial_link import FrameError, SerialLink

    master, slave = os.openpty()
    try:
        with SerialLink(os.ttyname(slave)) as link:
            bad = bytearray(P.frame(bytes([0x81, 1, 2, 3])))
            bad[8] ^= 0x40
            os.write(master, bytes(bad))
            with pytest.raises(FrameError, match="CRC"):
                link.read_frame(2.0)
    finally:
        os.close(master)
        os.close(slave)


# --- real boards: the firmware builds; a model that does not fit is refused before compiling --------

@pytest.mark.parametrize("board", REAL)
def test_real_board_firmware_builds(tmp_path, board):
    model = shared_path("models/mlperf_tiny/kws_ds_cnn_int8.tflite")
    out = build(model, board, tmp_path / board)
    from edgeq.build import load_manifest
    from edgeq.targets.boards import get_board

    fw = load_manifest(out)["firmware"]
    b = get_board(board)
    assert (out / fw["elf"]).exists()
    assert 0 < fw["flash_bytes"] <= b.flash["length"] and 0 < fw["ram_bytes"] <= b.ram["length"]


@pytest.mark.usefixtures("cmsis_nn")  # auto measures CMSIS-NN on the board
def test_model_that_does_not_fit_is_refused(tmp_path):
    import subprocess
    import sys

    tf = pytest.importorskip("tensorflow")
    from tests.oracles import convert_int8

    x = tf.keras.Input((1024,), batch_size=1)
    model = tf.keras.Model(x, tf.keras.layers.Dense(600)(x))  # 600 KiB of weights
    path = tmp_path / "big.tflite"
    path.write_bytes(convert_int8(model, [(1024,)], n_rep=4))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "edgeq", "build", str(path), "--board", "nucleo-f446re", "-o",
                           str(out)], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "fit on nucleo-f446re" in proc.stderr and "524,288 B flash" in proc.stderr
    assert not out.exists()


@pytest.mark.usefixtures("cmsis_nn")
def test_cli_build_into_a_relative_folder(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "edgeq", "build", str(EXAMPLE), "--board", "qemu-mps2-an386",
                           "-o", "rel/fw"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "rel" / "fw" / "digits_cnn_int8.elf").exists()
    assert "flash" in proc.stdout and "RAM" in proc.stdout


@pytest.mark.parametrize("kernels", ["ref", "auto"])
def test_lib_writes_only_sources_that_compile_from_its_make_fragment(tmp_path, kernels, request):
    import subprocess
    import sys

    if kernels == "auto":
        request.getfixturevalue("cmsis_nn")

    out = tmp_path / "lib"
    proc = subprocess.run([sys.executable, "-m", "edgeq", "build", str(EXAMPLE), "--board", "nucleo-h7", "--lib",
                           "--kernels", kernels, "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert not (out / "firmware").exists() and not list(out.glob("*.elf"))
    ref_sources = {p.name for p in (out / "runtime").glob("*.c")}
    fragment = (out / "digits_cnn_int8.mk").read_text()
    if kernels == "ref":
        assert "eq_conv_s8.c" in ref_sources and "CMSIS_NN_DIR" not in fragment
    else:  # edgeq's own DSP kernels (inline headers) and CMSIS-NN take every layer on the M7: no ref kernel
        assert not ref_sources and (out / "runtime" / "arm_dsp" / "eq_dsp_kernels.h").exists()
        assert "arm_max_pool_s8.c" in fragment
    # a user's Makefile includes the fragment and compiles what it lists for the board's core
    (tmp_path / "Makefile").write_text(
        "include lib/digits_cnn_int8.mk\n"
        "SRCS := $(DIGITS_CNN_INT8_SRCS) $(DIGITS_CNN_INT8_LIB_SRCS)\n"
        "all: $(notdir $(SRCS:.c=.o))\n"
        "list: ; @echo $(SRCS)\n"
        "vpath %.c $(sort $(dir $(SRCS)))\n"
        "%.o: %.c\n\tarm-none-eabi-gcc -mcpu=cortex-m7 -mthumb -O2 -std=c99 -Wall -Wextra -Werror "
        "$(DIGITS_CNN_INT8_INC) -c $< -o $@\n")
    proc = subprocess.run(["make", "-s", "-C", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    listed = subprocess.run(["make", "-s", "-C", str(tmp_path), "list"], capture_output=True, text=True).stdout.split()
    assert {Path(p).name for p in listed} >= ref_sources | {"digits_cnn_int8.c", "digits_cnn_int8_weights.c"}
    assert sorted(p.name for p in tmp_path.glob("*.o")) == sorted(Path(p).name[:-2] + ".o" for p in listed)


def test_flash_leaves_qemu_running_for_later_commands(example_builds, tmp_path):
    import signal
    import subprocess
    import sys

    from edgeq.targets.device import DEVICE_FILE

    d = example_builds["qemu-mps2-an386"]
    proc = subprocess.run([sys.executable, "-m", "edgeq", "flash", str(d)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    info = __import__("json").loads((d / DEVICE_FILE).read_text())
    try:
        np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8, 1), np.int8))
        proc = subprocess.run([sys.executable, "-m", "edgeq", "run", str(d), "--input", str(tmp_path / "x.npy"),
                               "--output", str(tmp_path / "y.npy")], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        os.kill(info["pid"], 0)  # the flashed emulator served the run and is still up
        # and it has no monitor socket, whose temporary folder nobody would remove after `kill`
        args = Path(f"/proc/{info['pid']}/cmdline").read_bytes().split(b"\0")
        assert args[args.index(b"-monitor") + 1] == b"none", args
    finally:
        os.kill(info["pid"], signal.SIGTERM)
        (d / DEVICE_FILE).unlink()


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_during_run_stops_the_emulator(example_builds, tmp_path, sig):
    """Ctrl-C or SIGTERM while `edgeq run` talks to an emulated board: edgeq exits without a traceback and the
    QEMU it started is gone, with its monitor socket's temporary folder."""
    import signal
    import subprocess
    import sys

    elf = next(example_builds["qemu-mps2-an500"].glob("*.elf"))

    def qemus() -> set[str]:
        return set(subprocess.run(["pgrep", "-f", str(elf)], capture_output=True, text=True).stdout.split())

    before = qemus()
    np.save(tmp_path / "x.npy", np.zeros((20000, 1, 8, 8, 1), np.int8))  # long enough to be interrupted
    proc = subprocess.Popen([sys.executable, "-m", "edgeq", "run", str(elf.parent), "--input", str(tmp_path / "x.npy"),
                             "--output", str(tmp_path / "y.npy")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not qemus() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    started = qemus() - before
    assert started, "edgeq run did not start QEMU"
    args = Path(f"/proc/{next(iter(started))}/cmdline").read_bytes().decode().split("\0")
    monitor = Path(args[args.index("-monitor") + 1].split(",")[0].removeprefix("unix:")).parent
    assert monitor.is_dir()
    time.sleep(1.0)  # inside the samples
    proc.send_signal(getattr(signal, sig))
    assert proc.wait(30) != 0
    assert "Traceback" not in proc.stderr.read().decode()
    assert not started & qemus(), "the emulator outlived edgeq"
    assert not monitor.exists() and not (tmp_path / "y.npy").exists()
