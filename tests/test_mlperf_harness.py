"""`--harness mlperf-tiny` firmware on the emulated Cortex-M7 (real QEMU, real serial pseudo-terminal), driven
through MLPerf Tiny's performance-mode protocol as its runner drives it; results against TFLite Micro."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.oracles import shared_path, tflm_run

ROOT = Path(__file__).resolve().parents[1]
BOARD = "qemu-mps2-an500"
MODELS = {  # benchmark: (model, eval data)
    "ad01": ("models/mlperf_tiny/ad01_int8.tflite", "data/ad01/eval.npz"),
    "kws01": ("models/mlperf_tiny/kws_ds_cnn_int8.tflite", "data/kws_ds_cnn/eval.npz"),
    "ic01": ("models/mlperf_tiny/resnet_ic_int8.tflite", "data/resnet_ic/eval.npz"),
    "vww01": ("models/mlperf_tiny/vww_96_int8.tflite", "data/vww_96/eval.npz"),
}

needs_tools = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm") and shutil.which("cmake")),
    reason="needs gcc-arm-none-eabi, qemu-system-arm and cmake (make test installs them)")


def build(model: Path, out: Path, board: str = BOARD, **firmware) -> dict:
    from edgeq.build import compile_graph, load_manifest, write_project
    from edgeq.frontends.tflite import load_tflite_file
    from edgeq.targets.boards import get_board

    b = get_board(board)
    # reference kernels: no library to fetch, and TFLite Micro's arithmetic either way
    write_project(compile_graph(load_tflite_file(model), "keep", b, "ref"), b, "keep", out, model,
                  echo=lambda *_: None, firmware=dict(harness="mlperf-tiny", **firmware))
    return load_manifest(out)


def host_sample(bench: str, x: np.ndarray, manifest: dict) -> tuple[bytes, np.ndarray, np.ndarray | None]:
    """What the runner sends for one eval sample, the int8 tensor the model then gets, and ad01's features."""
    from edgeq.targets.mlperf_tiny import quantize_float

    inp = manifest["inputs"][0]
    if bench == "ad01":  # float32 features; the firmware quantizes them
        f = x.astype(np.float32).reshape(-1)
        return f.tobytes(), quantize_float(f, inp["scale"][0], inp["zero_point"][0]), f
    if bench == "kws01":  # int8 MFCC features, quantized by the host
        q = quantize_float(x.reshape(-1), inp["scale"][0], inp["zero_point"][0])
        return q.tobytes(), q, None
    pixels = np.clip(np.round(x * (255 if x.max() <= 1 else 1)), 0, 255).astype(np.uint8).reshape(-1)
    return pixels.tobytes(), (pixels.astype(np.int16) - 128).astype(np.int8), None


@pytest.fixture(scope="module", params=sorted(MODELS))
def device(request, tmp_path_factory):
    from edgeq.targets.boards import get_board
    from edgeq.targets.mlperf_tiny import MlperfDut
    from edgeq.targets.qemu import QemuBoard

    if not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm") and shutil.which("cmake")):
        pytest.skip("needs gcc-arm-none-eabi, qemu-system-arm and cmake (make test installs them)")
    bench = request.param
    model = shared_path(MODELS[bench][0])
    data = np.load(shared_path(MODELS[bench][1]))["x"]
    out = tmp_path_factory.mktemp(bench)
    m = build(model, out)
    assert m["firmware"]["harness"] == "mlperf-tiny" and m["firmware"]["mlperf_model"] == bench
    with QemuBoard(get_board(BOARD), out / m["firmware"]["elf"]) as qemu, MlperfDut(qemu.pty) as dut:
        boot = dut.wait_ready()
        yield bench, model, data, m, dut, boot


def test_protocol_results_and_laps(device):
    from edgeq.targets.mlperf_tiny import BENCHMARKS, results_line

    bench, model, data, m, dut, boot = device
    assert boot[0] == "m-timestamp-mode-performance" and boot[1].startswith("m-lap-us-") and boot[2:] == [
        "m-init-done", "m-ready"]
    assert dut.command("name") == ["m-name-dut-[edgeq]", "m-ready"]
    assert dut.command("profile") == ["m-profile-[ULPMark for tinyML Firmware V0.0.1]", f"m-model-[{bench}]",
                                      "m-ready"]
    out_t = m["outputs"][0]
    last_lap = int(boot[1][len("m-lap-us-"):])
    for k in (0, 1):
        payload, x_int8, features = host_sample(bench, data[k], m)
        lines = dut.load(payload)
        assert lines[0] == f"m-[Expecting {len(payload)} bytes]" and lines[-2:] == ["m-load-done", "m-ready"]
        expected = results_line(BENCHMARKS[bench], tflm_run(model.read_bytes(), [x_int8.reshape(m["inputs"][0]["shape"])])[0],
                                out_t["scale"][0], out_t["zero_point"][0], features)
        one = dut.infer(1, 0)
        assert [line for line in one.lines if not line.startswith("m-lap-us-")] == [
            "m-warmup-start-0", "m-warmup-done", "m-infer-start-1", "m-infer-done", expected, "m-ready"]
        assert one.lines[3].startswith("m-lap-us-") and one.lines[4].startswith("m-lap-us-")
        three = dut.infer(3, 2)
        assert three.results_line == expected and dut.command("results") == [expected, "m-ready"]
        # the laps frame the timed inferences, not the warm-ups: 3 take three times as long as 1 (QEMU's
        # -icount makes every inference on the same input take the same time; laps are whole microseconds, which
        # alone allows 3 us, and the window's few serial-port waits depend on how fast the host drains the port:
        # a full suite on two busy cores has given 4 us, on ad01 and kws01 alike)
        assert one.elapsed_us > 100 and abs(three.elapsed_us - 3 * one.elapsed_us) <= 8, (one.elapsed_us,
                                                                                       three.elapsed_us)
        assert last_lap <= one.start_us < one.end_us <= three.start_us < three.end_us
        last_lap = three.end_us


def test_errors_are_reported_and_the_dut_stays_ready(device):
    bench, _, _, m, dut, _ = device
    if bench != "ad01":
        pytest.skip("once is enough")
    assert dut.command("fly") == ["e-[Unknown command: fly]", "m-ready"]
    assert dut.command("db load 99999999")[0].startswith("e-[Supplied buffer size 99999999 exceeds maximum of 2560")
    assert dut.command("db load 4") == ["m-[Expecting 4 bytes]", "m-ready"]
    assert dut.command("db 123")[0].startswith("e-[Insufficient number of hex digits")
    assert dut.command("db zz")[0].startswith("e-[Invalid hex digit")
    assert dut.command("infer 1 0")[0] == "e-[Input db has 0 bytes, expected 2560]"
    assert dut.command("infer 0")[0] == "e-[Inference iterations must be >0]"
    assert dut.command("db 0102030405") == ["m-load-done", "m-ready"]
    assert dut.command("db print") == ["m-buffer-01-02-03-04", "m-ready"]
    assert dut.command("x" * 300)[0].startswith("e-[Command longer than")
    assert dut.command("name") == ["m-name-dut-[edgeq]", "m-ready"]


def test_fixed3_is_printf_rounding():
    """The firmware's %.3f (tested on the device above through the results) rounds as printf: half to even on
    the float's exact value; numpy's float32 steps give the host's expectation."""
    from edgeq.targets.mlperf_tiny import BENCHMARKS, results_line

    q = np.array([-128, -112, -96, 127], np.int8)  # softmax-like outputs, scale 1/256: 0.0625 is a tie
    assert results_line(BENCHMARKS["ic01"], q, 1 / 256, -128) == "m-results-[0.000,0.062,0.125,0.996]"
    assert results_line(BENCHMARKS["vww01"], q[:2], 1 / 256, -128) == "m-results-[0.000,0.062,]"
    assert results_line(BENCHMARKS["kws01"], q, 1 / 256, -128) == "m-results-[0.000,0.062,0.125,0.996]"


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edgeq", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_refuses_what_it_cannot_build(tmp_path):
    example = ROOT / "examples" / "digits_cnn_int8.tflite"
    cases = [
        (["--board", "host", "--harness", "mlperf-tiny"], "is no microcontroller board"),
        (["--board", BOARD, "--harness", "mlperf-tiny"], "name the benchmark with --mlperf-model"),
        (["--board", BOARD, "--harness", "mlperf-tiny", "--mlperf-model", "ad01"], "mean squared error"),
        (["--board", BOARD, "--mlperf-model", "ic01"], "add --harness mlperf-tiny"),
    ]
    for extra, message in cases:
        out = tmp_path / "out"
        proc = run_cli("build", str(example), "-o", str(out), "--kernels", "ref", *extra)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
        assert not (out / "model.json").exists()


@needs_tools
def test_mlperf_firmware_builds_for_mlperfs_reference_board(tmp_path):
    """The MLPerf Tiny reference board (Nucleo-L4R5ZI) at 120 MHz: kws01 builds, the benchmark named explicitly."""
    m = build(shared_path("models/mlperf_tiny/kws_ds_cnn_int8.tflite"), tmp_path / "fw", "nucleo-l4r5zi",
              mlperf_model="kws01")
    fw = m["firmware"]
    assert fw["clock_hz"] == 120_000_000 and fw["mlperf_model"] == "kws01" and (tmp_path / "fw" / fw["elf"]).exists()
