"""Talking to a built model on its board: flash, run, profile, validate, over the serial protocol.

Emulated boards are started in QEMU for the duration of a command (or reused when `edgeq flash`
left one running for the build folder); real boards are reached on the serial port given.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.targets import process
from edgeq.targets.boards import Board, get_board
from edgeq.targets.serial_link import SerialLink

DEVICE_FILE = ".edgeq-device.json"  # a QEMU board left running by `edgeq flash`
# A generous bound for one inference on QEMU, whose speed varies with the machine (EDGEQ_TIMEOUT overrides).
INFER_TIMEOUT = 120.0
FLASH_TIMEOUT = 300.0


def _elf(build_dir: Path, manifest: dict) -> Path:
    board = get_board(manifest["board"])
    if board.kind == "host":
        raise EdgeqError(f"{build_dir} is a build for the host board: there is no firmware to flash or device to "
                         f"talk to; its executable {manifest['prefix']}_host runs on this computer through "
                         "`edgeq run` or `edgeq validate`. Build with --board BOARD for a microcontroller.")
    if "firmware" not in manifest and board.kind != "npu":
        raise EdgeqError(f"{build_dir} holds only the model's sources (built with --lib), no firmware; build it "
                         f"again without --lib for {board.name}.")
    fw = manifest.get("firmware") or {}
    if not fw.get("elf"):
        from edgeq.targets.arch import arch_of
        raise EdgeqError(f"{build_dir} has no firmware ELF: the {board.arch} toolchain was missing when it was built. "
                         f"Install {arch_of(board).packages}, then run `edgeq build` again.")
    return build_dir / fw["elf"]


def _running_qemu(build_dir: Path) -> str | None:
    path = build_dir / DEVICE_FILE
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text())
        pid, pty = int(info["pid"]), str(info["pty"])
        # only an emulator this build folder started counts: the file must not steer edgeq to another process
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if not f.read().startswith((b"qemu-system-arm\0", b"qemu-system-riscv32\0")):
                raise OSError
    except (OSError, ValueError, KeyError, TypeError):
        path.unlink()
        return None
    return pty if pty.startswith("/dev/pts/") and os.path.exists(pty) else None


@contextlib.contextmanager
def open_device(build_dir: Path, manifest: dict, port: str | None = None):
    """Yields (SerialLink, Board) for the build's board, checking the firmware matches the build."""
    board = get_board(manifest["board"])
    if board.kind == "host":
        raise EdgeqError("The host board has no serial device; use `edgeq run` for host builds.")
    if port is None and board.emulated:
        pty = _running_qemu(build_dir)
        if pty is None:
            from edgeq.targets.qemu import QemuBoard
            with QemuBoard(board, _elf(build_dir, manifest)) as qemu, SerialLink(qemu.pty) as link:
                _check_hello(link, manifest, board)
                yield link, board
            return
        port = pty
    if board.kind == "npu":
        raise EdgeqError(f"{board.name} is an NPU target that edgeq compiles with Vela but cannot run: there is no "
                         f"device firmware for it yet and no FVP here. Vela's estimates are in "
                         f"{build_dir}/npu_report.json; to run the model, build it for another board.")
    if port is None:
        raise EdgeqError(f"{board.name} is a real board: give its serial port with --port (for example "
                         "--port /dev/ttyACM0, the ST-LINK or J-Link virtual COM port).")
    with SerialLink(port) as link:
        _check_hello(link, manifest, board)
        yield link, board


def _check_hello(link: SerialLink, manifest: dict, board: Board) -> None:
    hello = link.hello()
    if hello.model_hash != manifest["model_sha256"][:16] or hello.board != board.name:
        raise EdgeqError(f"The device on {link.port} runs {hello.board} firmware for model {hello.model_hash}, not "
                         f"this build ({board.name}, model {manifest['model_sha256'][:16]}); flash it with "
                         "`edgeq flash`.")


def run_samples(link: SerialLink, samples: list[bytes]) -> list[bytes]:
    outs = []
    for k, data in enumerate(samples):
        status, _, out = link.infer(data, process.timeout_for(INFER_TIMEOUT))
        if status != 0:
            raise EdgeqError(f"The model returned error {status} on the device for sample {k}.")
        outs.append(out)
    return outs


def profile(link: SerialLink, board: Board, manifest: dict, runs: int = 1, seed: int = 0) -> dict:
    """Per-layer and total cycles of one inference on a random input (after `runs` repetitions)."""
    layers = [layer for layer in manifest["layers"] if layer["kernel"] != "alias"]
    n_in = sum(int(np.prod(t["shape"])) for t in manifest["inputs"])
    x = np.random.default_rng(seed).integers(-128, 128, n_in).astype(np.int8)
    run_samples(link, [x.tobytes()])
    status, cycles, per_layer = link.profile(runs, len(layers), process.timeout_for(INFER_TIMEOUT) * max(runs, 1))
    if status != 0:
        raise EdgeqError(f"The model returned error {status} on the device while profiling.")
    report = {
        # the clock the firmware set up (--clock max on a real board), else the board file's
        "board": board.name, "emulated": board.emulated,
        "clock_hz": manifest.get("firmware", {}).get("clock_hz") or board.clock_hz,
        "cycles_per_inference": cycles,
        "layers": [{"name": layer["name"], "kernel": layer["kernel"], "cycles": c}
                   for layer, c in zip(layers, per_layer)],
    }
    if board.emulated:
        # -icount shift=0: one instruction per virtual nanosecond, and the counter ticks at clock_hz.
        report["instructions_per_inference"] = cycles * 1_000_000_000 // board.clock_hz
    return report


def flash(build_dir: Path, manifest: dict, port: str | None = None, echo=print) -> None:
    board = get_board(manifest["board"])
    if board.kind == "npu":
        raise EdgeqError(f"{board.name} is an NPU target that edgeq compiles with Vela but cannot run or flash yet; "
                         f"Vela's estimates are in {build_dir}/npu_report.json.")
    elf = _elf(build_dir, manifest)
    if board.emulated:
        from edgeq.targets.qemu import QemuBoard
        old = _running_qemu(build_dir)
        if old is not None:  # _running_qemu checked the pid is an emulator
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(json.loads((build_dir / DEVICE_FILE).read_text())["pid"]), signal.SIGTERM)
        qemu = QemuBoard(board, elf, monitor=False).start()
        (build_dir / DEVICE_FILE).write_text(json.dumps({"pid": qemu.proc.pid, "pty": qemu.pty}))
        echo(f"{board.name} is running {elf.name} in QEMU (pid {qemu.proc.pid}), serial port {qemu.pty}; "
             f"stop it with `kill {qemu.proc.pid}`")
        return
    tool, args = board.flasher.get("tool"), list(board.flasher.get("args", []))
    candidates = [(tool, args)] + [(alt.split(":")[0], alt.split(":")[1:]) for alt in board.flasher.get("alternatives", [])]
    for name, extra in candidates:
        if shutil.which(name):
            cmd = _flash_command(name, extra, elf, board)
            echo(" ".join(cmd))
            proc = process.run(cmd, f"Flashing {board.name} with {name}", FLASH_TIMEOUT, text=True)
            if proc.returncode != 0:
                raise EdgeqError(f"{name} could not flash {board.name}: {proc.stderr.strip()[-1500:]}")
            echo(f"flashed {elf.name} to {board.name}")
            return
    raise EdgeqError(f"No flashing tool for {board.name} is installed: install one of "
                     f"{', '.join(c[0] for c in candidates)} (openocd and stlink-tools are Debian packages, "
                     "pyocd is on PyPI).")


def _flash_command(tool: str, extra: list[str], elf: Path, board: Board) -> list[str]:
    if tool == "dfu-util":  # USB DFU takes a raw image at the address the board file gives (-s)
        return ["dfu-util", *extra, "-D", str(_objcopy(elf, board, "binary", ".bin"))]
    if tool == "openocd":
        return ["openocd", *extra, "-c", f"program {elf} verify reset exit"]
    if tool == "pyocd":
        target = extra if extra and extra[0].startswith("--") else (["--target", extra[0]] if extra else [])
        return ["pyocd", "flash", *target, str(elf)]
    if tool == "st-flash":
        return ["st-flash", "--format", "ihex", "write", str(_objcopy(elf, board, "ihex", ".hex"))]
    if tool == "nrfjprog":
        return ["nrfjprog", "--program", str(_objcopy(elf, board, "ihex", ".hex")), "--sectorerase", "--verify",
                "--reset"]
    raise EdgeqError(f"Unknown flashing tool '{tool}' in the board file.")


def _objcopy(elf: Path, board: Board, fmt: str, suffix: str) -> Path:
    from edgeq.targets.arch import arch_of
    arch = arch_of(board)
    out = elf.with_suffix(suffix)
    proc = process.run([arch.objcopy, "-O", fmt, str(elf), str(out)], arch.objcopy, 120.0, text=True)
    if proc.returncode != 0:
        raise EdgeqError(f"{arch.objcopy} could not convert {elf.name} to {fmt}: {proc.stderr.strip()}; "
                         f"install {arch.packages} or rebuild the folder.")
    return out
