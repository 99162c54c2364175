"""RISC-V boards: firmware built with clang-19 and picolibc, run in qemu-system-riscv32 over the serial port,
checked bit for bit against TFLite Micro; the real board's firmware builds."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.oracles import shared_path
from tests.test_boards_qemu import EXAMPLE, SHARED_INT8, build, check_against_tflm, profile_twice

ROOT = Path(__file__).resolve().parents[1]
EMULATED = ["qemu-riscv32-virt", "qemu-riscv32-virt-rvv"]

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("clang-19", "ld.lld-19", "qemu-system-riscv32", "cmake")),
    reason="needs clang-19, lld-19, picolibc-riscv64-unknown-elf, qemu-system-misc and cmake (make test installs them)")


@pytest.fixture(scope="module")
def example_builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("rvfw")
    return {b: build(EXAMPLE, b, root / b, "ref" if b == "qemu-riscv32-virt" else "rvv") for b in EMULATED}


@pytest.mark.parametrize("board", EMULATED)
def test_example_over_serial_matches_tflm_and_profiles(example_builds, board):
    from edgeq.targets.boards import get_board

    check_against_tflm(EXAMPLE, example_builds[board], n=10, seed=1)
    report = profile_twice(example_builds[board])  # identical in two fresh emulators: rdinstret under -icount
    assert report["clock_hz"] == get_board(board).clock_hz and len(report["layers"]) == 8
    assert report["instructions_per_inference"] == report["cycles_per_inference"]  # 1 GHz: one count per instruction


@pytest.mark.parametrize("board,kernels", [(b, k) for b in EMULATED for k in ("auto", "cmsis-nn")])
@pytest.mark.parametrize("name", sorted(SHARED_INT8))
@pytest.mark.usefixtures("muriscv_nn")
def test_shared_model_on_riscv_board(tmp_path, name, board, kernels):
    """auto: edgeq's own kernels (rvv on the vector board, rv32 on the scalar one) where they measure faster than
    muRISCV-NN's; cmsis-nn: muRISCV-NN (vector path on the vector board). Layers a library declines run on ref and
    say why."""
    from edgeq.build import load_manifest

    model = shared_path(SHARED_INT8[name])
    out = build(model, board, tmp_path / "fw", kernels)
    layers = [layer for layer in load_manifest(out)["layers"] if "backend" in layer]
    first = {"qemu-riscv32-virt-rvv": "rvv", "qemu-riscv32-virt": "rv32"}[board] if kernels == "auto" else "cmsis-nn"
    assert any(layer["backend"] == first for layer in layers)
    assert all(layer["declined"] for layer in layers if layer["backend"] == "ref"), layers
    if kernels == "cmsis-nn":
        assert all(layer["impl"].startswith("muriscv_nn_") for layer in layers if layer["backend"] == "cmsis-nn")
    check_against_tflm(model, out, n=2, seed=5)


def test_power_of_two_float_model_validates_on_both_boards(tmp_path):
    model = shared_path("models/mlperf_tiny/ad01_fp32.tflite")
    calib = shared_path("data/ad01/calib.npz")
    data = np.load(shared_path("data/ad01/eval.npz"))
    np.savez(tmp_path / "eval.npz", x=data["x"][:24])
    for board in EMULATED:
        out = tmp_path / board
        for args in (["build", str(model), "--board", board, "--calib", str(calib), "-o", str(out)],
                     ["validate", str(out), "--data", str(tmp_path / "eval.npz")]):
            proc = subprocess.run([sys.executable, "-m", "edgeq", *args], capture_output=True, text=True)
            assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "24 of 24 samples bit-exact" in proc.stdout, proc.stdout


# The other shared float models (float or hybrid): each quantized once with edgeq's defaults, as `edgeq build`
# quantizes it, and built for both boards with edgeq's own kernels there (ref where they decline). Not `auto`: its
# measurement builds would triple the test's time; muRISCV-NN's power-of-two layers are checked by the kernel
# plan and by ad01 above.
POT_MODELS = {"kws_ds_cnn_hybrid": "kws_ds_cnn", "resnet_ic_fp32": "resnet_ic", "vww_96_fp32": "vww_96"}
OWN_KERNELS = {"qemu-riscv32-virt": "rv32", "qemu-riscv32-virt-rvv": "rvv"}


@pytest.mark.parametrize("model", sorted(POT_MODELS))
def test_power_of_two_shared_float_model_validates_on_both_boards(tmp_path, model):
    """What `edgeq validate` checks (edgeq.run.validate_build): the board's outputs for two held-out samples equal
    the golden model's, bit for bit."""
    from edgeq.build import compile_graph, write_project
    from edgeq.frontends.tflite import load_tflite_file
    from edgeq.quant.driver import quantize
    from edgeq.run import validate_build
    from edgeq.targets.boards import get_board

    data = POT_MODELS[model]
    graph = quantize(load_tflite_file(shared_path(f"models/mlperf_tiny/{model}.tflite")),
                     shared_path(f"data/{data}/calib.npz"), echo=lambda *_: None).graph
    x = np.load(shared_path(f"data/{data}/eval.npz"))["x"][:2]
    for name, kernels in OWN_KERNELS.items():
        board = get_board(name)
        write_project(compile_graph(graph, "pot", board, kernels), board, "pot", tmp_path / name, echo=lambda *_: None)
        report = validate_build(tmp_path / name, [x])
        assert report["bit_exact"] == report["samples"] == 2, (name, report)


def test_validate_flash_and_profile_cli(example_builds, tmp_path):
    """`edgeq flash` leaves the emulator running; profile and validate then talk to it."""
    d = example_builds["qemu-riscv32-virt-rvv"]

    def edgeq(*args):
        proc = subprocess.run([sys.executable, "-m", "edgeq", *args], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    edgeq("flash", str(d))
    pid = json.loads((d / ".edgeq-device.json").read_text())["pid"]
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert f.read().startswith(b"qemu-system-riscv32\0")
        out = edgeq("validate", str(d), "--data", str(ROOT / "examples" / "digits_samples.npz"))
        assert "16 of 16 samples bit-exact" in out
        edgeq("profile", str(d), "--json", str(tmp_path / "p.json"))
        report = json.loads((tmp_path / "p.json").read_text())
        assert [layer["kernel"] for layer in report["layers"]][0] == "conv_s8" and report["instructions_per_inference"]
    finally:
        os.kill(pid, signal.SIGTERM)


@pytest.mark.parametrize("clock", ["max", "reset"])
@pytest.mark.usefixtures("muriscv_nn")  # auto measures muRISCV-NN on the board's emulated twin
def test_longan_nano_firmware_builds(tmp_path, clock):
    """The real board's firmware compiles and links (nothing runs it here: no board is attached)."""
    from edgeq.build import compile_graph, load_manifest, write_project
    from edgeq.frontends.tflite import load_tflite_file
    from edgeq.targets import firmware
    from edgeq.targets.boards import get_board

    board = get_board("sipeed-longan-nano")
    c = compile_graph(load_tflite_file(EXAMPLE), "keep", board)
    fw = firmware.firmware_options(c.cmodel, board, clock)
    write_project(c, board, "keep", tmp_path / "fw", EXAMPLE, echo=lambda *_: None, firmware={"clock": clock})
    m = load_manifest(tmp_path / "fw")
    assert m["firmware"]["elf"] and m["firmware"]["flash_bytes"] < board.flash["length"]
    assert m["firmware"]["ram_bytes"] < board.ram["length"]
    assert fw.clock.core_hz == (108_000_000 if clock == "max" else 8_000_000)
    startup = (tmp_path / "fw" / "firmware" / "startup.c").read_text()
    assert ("RCU_CFG0" in startup) == (clock == "max")
    assert "0x40013800" in (tmp_path / "fw" / "firmware" / "board.c").read_text()  # USART0
    # dfu-util takes a raw image of flash, made by llvm-objcopy
    from edgeq.targets import device
    elf = tmp_path / "fw" / m["firmware"]["elf"]
    cmd = device._flash_command("dfu-util", board.flasher["args"], elf, board)
    assert cmd[:5] == ["dfu-util", "-a", "0", "-s", "0x08000000:leave"] and cmd[-2] == "-D"
    assert 0 < Path(cmd[-1]).stat().st_size <= m["firmware"]["flash_bytes"]


def test_longan_nano_flash_names_its_tools(tmp_path, monkeypatch):
    """dfu-util (with a raw image) or openocd; without either, a one-paragraph message names them."""
    from edgeq.errors import EdgeqError
    from edgeq.targets import device
    from edgeq.targets.boards import get_board

    board = get_board("sipeed-longan-nano")
    elf = tmp_path / "m.elf"
    cmd = device._flash_command("openocd", ["-f", "target/gd32vf103.cfg"], elf, board)
    assert cmd[:3] == ["openocd", "-f", "target/gd32vf103.cfg"] and str(elf) in cmd[-1]
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EdgeqError, match="dfu-util, openocd"):
        device.flash(tmp_path, {"board": board.name, "firmware": {"elf": "m.elf"}, "prefix": "m"})


def test_gd32vf103_at_108_mhz():
    """The Longan Nano's clock steps replayed on RCU's reset values (GD32VF103 user manual 5.3): PLL from
    IRC8M/2 x 27, enabled and locked before the switch; AHB and APB2 at 108 MHz, APB1 within its 54 MHz."""
    from edgeq.targets.boards import get_board
    from edgeq.targets.clocks import clock_plan
    from tests.test_clocks import check_baud, first, replay

    board = get_board("sipeed-longan-nano")
    plan = clock_plan(board, "max")
    r, trace = replay(plan, {"RCU_CTL": 0x00000083, "RCU_CFG0": 0})  # IRC8MEN and IRC8MSTB at reset
    cfg = r["RCU_CFG0"]
    pllmf = (cfg >> 18 & 0xF) | (cfg >> 29 & 1) << 4
    mult = pllmf + 2 if pllmf <= 12 else pllmf + 1  # the manual's table: x2..x14, then x17..x32 from 0b10000
    assert (cfg >> 16 & 1) == 0 and 4_000_000 * mult == 108_000_000 == plan.core_hz
    assert cfg & 3 == 2 and cfg >> 2 & 3 == 2  # SCS = SCSS = PLL
    assert (cfg >> 4 & 0xF) < 8 and (cfg >> 11 & 7) < 4  # AHB, APB2 undivided
    assert (cfg >> 8 & 7) == 4 and plan.settings["apb1_hz"] == 54_000_000  # APB1 /2
    pll_on = first(trace, "RCU_CTL", lambda v: v & 1 << 24)
    locked = first(trace, "RCU_CTL", lambda v: v & 1 << 25)
    switch = first(trace, "RCU_CFG0", lambda v: v & 3 == 2)
    assert pll_on < locked < switch
    check_baud(board, plan, 108_000_000)
    assert clock_plan(board, "reset").core_hz == 8_000_000 and not clock_plan(board, "reset").steps


def test_mlperf_tiny_harness_on_riscv(tmp_path):
    """The MLPerf Tiny harness (float features quantized on the device, %0.3f printed in software, timestamps by
    64-bit division) links against libgcc's helpers and answers as the reference does, on the scalar board."""
    from edgeq.targets.boards import get_board
    from edgeq.targets.mlperf_tiny import BENCHMARKS, MlperfDut, results_line
    from edgeq.targets.qemu import QemuBoard
    from tests.oracles import tflm_run
    from tests.test_mlperf_harness import build as mlperf_build
    from tests.test_mlperf_harness import host_sample

    model = shared_path("models/mlperf_tiny/ad01_int8.tflite")
    data = np.load(shared_path("data/ad01/eval.npz"))["x"]
    m = mlperf_build(model, tmp_path / "fw", board="qemu-riscv32-virt")
    with QemuBoard(get_board("qemu-riscv32-virt"), tmp_path / "fw" / m["firmware"]["elf"]) as qemu, \
            MlperfDut(qemu.pty) as dut:
        dut.wait_ready()
        payload, x_int8, features = host_sample("ad01", data[0], m)
        dut.load(payload)
        out_t = m["outputs"][0]
        expected = results_line(BENCHMARKS["ad01"], tflm_run(model.read_bytes(), [x_int8.reshape(m["inputs"][0]["shape"])])[0],
                                out_t["scale"][0], out_t["zero_point"][0], features)
        one = dut.infer(1, 0)
        assert one.results_line == expected and one.elapsed_us > 100
