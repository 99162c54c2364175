"""Boards: one declarative TOML file each in boards/."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field

import edgeq
from edgeq.errors import EdgeqError

BOARDS_DIR = edgeq.ROOT / "boards"


@dataclass
class Board:
    name: str
    description: str
    kind: str  # "host", "mcu" or "npu" (a Cortex-M with an Ethos-U, compiled by Vela: targets/npu.py)
    emulated: bool = False
    arch: str = "arm"  # "arm" or "riscv": toolchain, emulator, startup and linker script (targets/arch.py)
    core: str = ""
    features: list[str] = field(default_factory=list)
    kernels: list[str] = field(default_factory=lambda: ["ref"])  # kernel libraries, in order of preference
    aliases: list[str] = field(default_factory=list)
    clock_hz: int = 0
    flash: dict = field(default_factory=lambda: {"origin": 0, "length": 0})  # code + constants region
    ram: dict = field(default_factory=lambda: {"origin": 0, "length": 0})
    cflags: list[str] = field(default_factory=list)
    cycle_counter: str = ""  # "dwt" or "systick" (Arm); "instret" or "mcycle" (RISC-V)
    vlen: int = 0  # RISC-V vector length in bits (emulated vector boards: QEMU's vlen)
    uart: dict = field(default_factory=dict)  # driver and registers of the serial port
    flasher: dict = field(default_factory=dict)  # tool ("qemu", "openocd", "pyocd") and its arguments
    raw: dict = field(default_factory=dict, repr=False)  # the whole file, for target-specific keys


def all_boards() -> list[Board]:
    boards = []
    for path in sorted(BOARDS_DIR.glob("*.toml")):
        data = tomllib.loads(path.read_text())
        known = {k: data[k] for k in Board.__dataclass_fields__ if k in data and k != "raw"}
        boards.append(Board(**known, raw=data))
    return boards


def get_board(name: str) -> Board:
    boards = all_boards()
    for b in boards:
        if name == b.name or name in b.aliases:
            return b
    names = ", ".join(b.name for b in boards)
    raise EdgeqError(f"Unknown board '{name}'. Known boards: {names} (see `edgeq boards`).")
