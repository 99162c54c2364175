"""Firmware projects for microcontroller boards: startup, linker script, serial driver, cycle counter,
harness and a CMake project around the generated model; built to an ELF with the board's architecture's
toolchain (arm-none-eabi-gcc, or clang-19 with picolibc for RISC-V: targets/arch.py)."""
from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import edgeq
from edgeq.codegen.render import CModel, render_template
from edgeq.errors import EdgeqError
from edgeq.targets import mlperf_tiny, process, protocol
from edgeq.targets.arch import arch_of
from edgeq.targets.boards import Board
from edgeq.targets.clocks import ClockPlan, clock_plan
from edgeq.targets.mlperf_tiny import Benchmark

STACK_BYTES = 8192
HARNESSES = ("edgeq", "mlperf-tiny")
CODE_ALLOWANCE = 48 * 1024  # kernels, harness and libc, measured at 20-40 KiB with -O2
FIRMWARE_TEMPLATES = {
    "firmware/startup.c": "firmware/startup.c.j2",
    "firmware/board.c": "firmware/board.c.j2",
    "firmware/board.h": "firmware/board.h.j2",
    "firmware/harness.c": "firmware/harness.c.j2",
    "firmware/eq_profile.h": "firmware/eq_profile.h.j2",
    "firmware/linker.ld": "firmware/linker.ld.j2",
    "CMakeLists.txt": "firmware/CMakeLists.txt.j2",
}


@dataclass
class MemoryUse:
    flash: int
    ram: int


def _fmt(n: int) -> str:
    return f"{n:,} B ({n / 1024:.1f} KiB)"


def check_fits(model: CModel, board: Board, graph, weights_bytes: int, fw: FirmwareOptions | None = None) -> None:
    """Fails before compiling when the model cannot fit, with the numbers and the largest tensors."""
    io_bytes = sum(t["bytes"] for t in model.inputs + model.outputs)
    rx_bytes = fw.db_bytes if fw is not None and fw.bench else max(t["bytes"] for t in model.inputs)
    ram = model.arena_bytes + io_bytes + rx_bytes + STACK_BYTES
    flash = weights_bytes + CODE_ALLOWANCE
    problems = []
    if ram > board.ram["length"]:
        largest = sorted((t for t in graph.activations()), key=lambda t: -t.nbytes)[:3]
        problems.append(
            f"RAM: needs about {_fmt(ram)} (arena {_fmt(model.arena_bytes)}, input/output buffers {_fmt(io_bytes)}, "
            f"receive buffer and stack), has {_fmt(board.ram['length'])}: {_fmt(ram - board.ram['length'])} too much; "
            f"largest activations: " + ", ".join(f"{t.name} {list(t.shape)} {t.nbytes:,} B" for t in largest))
    if flash > board.flash["length"]:
        largest = sorted((t for t in graph.tensors.values() if t.is_const), key=lambda t: -t.nbytes)[:3]
        problems.append(
            f"flash: needs about {_fmt(flash)} (constants {_fmt(weights_bytes)} plus about {_fmt(CODE_ALLOWANCE)} "
            f"of code), has {_fmt(board.flash['length'])}: {_fmt(flash - board.flash['length'])} too much; "
            f"largest constants: " + ", ".join(f"{t.name} {list(t.shape)} {t.nbytes:,} B" for t in largest))
    if problems:
        raise EdgeqError(f"{graph.name} does not fit on {board.name}. " + " ".join(problems) +
                         ". Choose a board with more memory or a smaller model.")


@dataclass
class FirmwareOptions:
    """What `edgeq build` was asked for beyond the model: the clock (--clock) and the harness (--harness)."""
    clock: ClockPlan
    harness: str = "edgeq"  # "edgeq" (edgeq's framed protocol) or "mlperf-tiny"
    bench: Benchmark | None = None  # the MLPerf Tiny benchmark the mlperf-tiny harness serves
    db_bytes: int = 0

    def manifest(self) -> dict:
        info = {"clock": self.clock.mode, "clock_hz": self.clock.core_hz, "caches": self.clock.caches,
                "clock_settings": self.clock.settings, "harness": self.harness}
        if self.bench is not None:
            info["mlperf_model"] = self.bench.name
        return info


def firmware_options(model: CModel, board: Board, clock: str = "max", harness: str = "edgeq",
                     mlperf_model: str | None = None, model_name: str = "") -> FirmwareOptions:
    if harness not in HARNESSES:
        raise EdgeqError(f"Unknown --harness '{harness}'; choose one of {', '.join(HARNESSES)}.")
    if mlperf_model is not None and harness != "mlperf-tiny":
        raise EdgeqError("--mlperf-model names the benchmark of the MLPerf Tiny harness; add --harness mlperf-tiny.")
    fw = FirmwareOptions(clock_plan(board, clock), harness)
    if harness == "mlperf-tiny":
        fw.bench = mlperf_tiny.choose(model.inputs, model.outputs, mlperf_model, model_name or model.prefix)
        fw.db_bytes = mlperf_tiny.db_bytes(fw.bench, model.inputs)
    return fw


def _c_float(value) -> str:
    """A float32 as an exact C99 hexadecimal literal."""
    return float(np.float32(float(value))).hex() + "f"


def write_firmware(model: CModel, board: Board, model_sha256: str, folder: Path,
                   fw: FirmwareOptions | None = None) -> dict:
    """Writes the firmware project; returns model.json's facts about it (clock, caches, harness)."""
    fw = fw or firmware_options(model, board)
    (folder / "firmware").mkdir(exist_ok=True)
    hash_bytes = [str(b) for b in bytes.fromhex(model_sha256[:16] or "0" * 16)]
    extra = {}
    if fw.bench is not None:
        extra = dict(bench=fw.bench, db_bytes=fw.db_bytes, vendor=mlperf_tiny.VENDOR,
                     fw_version=mlperf_tiny.FW_VERSION, cmd_size=256,
                     n_in=int(np.prod(model.inputs[0]["shape"])), n_out=int(np.prod(model.outputs[0]["shape"])),
                     in_scale=_c_float(model.inputs[0]["scale"]), in_zp=int(model.inputs[0]["zero_point"]),
                     out_scale=_c_float(model.outputs[0]["scale"]), out_zp=int(model.outputs[0]["zero_point"]))
    arch = arch_of(board)
    for target, template in FIRMWARE_TEMPLATES.items():
        if target == "firmware/harness.c" and fw.harness == "mlperf-tiny":
            template = "firmware/mlperf_harness.c.j2"
        elif target in ("firmware/startup.c", "firmware/linker.ld") and arch.name != "arm":
            template = template.replace(".", f"_{arch.name}.", 1)
        text = render_template(template, m=model, board=board, protocol=protocol, model_hash_bytes=hash_bytes,
                               stack_bytes=STACK_BYTES, clk=fw.clock, harness=fw.harness, arch=arch, **extra)
        (folder / target).write_text(text)
    shutil.copy(edgeq.ROOT / "templates" / "firmware" / arch.toolchain_file, folder / arch.toolchain_file)
    return fw.manifest()


def have_toolchain(board: Board) -> bool:
    return arch_of(board).have_toolchain()


def library_defines(model: CModel) -> dict[str, str]:
    """CMake cache entries pointing FetchContent at the local copies of external kernel libraries."""
    cmsis = model.libraries.get("cmsis-nn")
    if not cmsis:
        return {}
    return {f"FETCHCONTENT_SOURCE_DIR_{cmsis.get('cmake_name', 'cmsis_nn').upper()}": cmsis["root"]}


# seconds, unless EDGEQ_TIMEOUT says otherwise: a large model's weights make big C files for the compiler
CONFIGURE_TIMEOUT = 120.0
COMPILE_TIMEOUT = 900.0


def build_elf(folder: Path, prefix: str, board: Board, defines: dict[str, str] | None = None) -> tuple[Path, MemoryUse]:
    """Configures and builds the CMake project out of tree; the ELF (and map) land in folder."""
    with tempfile.TemporaryDirectory(prefix="edgeq-fw-") as tmp:
        elf = _cmake_build(folder, Path(tmp), prefix, board, defines or {})
        shutil.copy(elf, folder / elf.name)
        shutil.copy(elf.with_suffix(".map"), folder / f"{prefix}.map")
    return folder / elf.name, elf_memory(folder / elf.name, board)


def _cmake_build(folder: Path, build: Path, prefix: str, board: Board, defines: dict[str, str]) -> Path:
    folder = folder.resolve()
    steps = [["cmake", "-S", str(folder), "-B", str(build), f"-DCMAKE_TOOLCHAIN_FILE={arch_of(board).toolchain_file}",
              "-DCMAKE_BUILD_TYPE=", "-G", "Unix Makefiles", *(f"-D{k}={v}" for k, v in sorted(defines.items()))],
             ["cmake", "--build", str(build), "--", "-j2"]]
    for args, what, seconds in zip(steps, ("Configuring the firmware's CMake project", "Compiling the firmware"),
                                   (CONFIGURE_TIMEOUT, COMPILE_TIMEOUT)):
        proc = process.run(args, f"{what} for {board.name}", seconds, cwd=folder, text=True)
        if proc.returncode != 0:
            log = proc.stdout + proc.stderr
            over = re.findall(r"region `(\w+)' overflowed by (\d+) bytes", log)
            if over:
                raise EdgeqError(f"The firmware does not fit on {board.name}: " + ", ".join(
                    f"{region} overflowed by {int(n):,} B" for region, n in over) +
                    ". Choose a board with more memory or a smaller model.")
            raise EdgeqError(f"Building the firmware for {board.name} failed (a bug in edgeq; please report it):\n"
                             + log.strip()[-3000:])
    return build / f"{prefix}.elf"


def elf_memory(elf: Path, board: Board | None = None) -> MemoryUse:
    size = arch_of(board).size if board is not None else "arm-none-eabi-size"
    proc = process.run([size, "-B", str(elf)], size, 60.0, text=True)
    if proc.returncode != 0:
        raise EdgeqError(f"{size} could not read {elf}: {proc.stderr.strip()[-500:]}. Rebuild the firmware.")
    out = proc.stdout
    text, data, bss = (int(v) for v in out.splitlines()[1].split()[:3])
    return MemoryUse(flash=text + data, ram=data + bss)
