"""What a board's architecture decides about its firmware: compiler, C library, link flags, size and objcopy
tools, and the emulator that runs its QEMU boards. Boards name theirs with `arch` ("arm" by default)."""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgeq.errors import EdgeqError
from edgeq.targets.boards import Board

PICOLIBC = Path("/usr/lib/picolibc/riscv64-unknown-elf")  # Debian's picolibc-riscv64-unknown-elf
LIBGCC = Path("/usr/lib/gcc/riscv64-unknown-elf")  # Debian's gcc-riscv64-unknown-elf: <version>/<multilib>/libgcc.a


@dataclass(frozen=True)
class Arch:
    name: str
    toolchain_file: str  # CMake toolchain file in templates/firmware/, copied into the project
    build_tools: tuple[str, ...]  # executables a firmware build needs
    packages: str  # the Debian packages that provide them
    size: str
    objcopy: str
    qemu: str

    def have_toolchain(self) -> bool:
        return all(shutil.which(t) for t in self.build_tools)

    def link_flags(self, board: Board) -> list[str]:
        if self.name == "arm":
            return [*board.cflags, "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs"]
        # clang + lld + picolibc: no GCC driver specs; libc from the multilib without the vector extension, and
        # the compiler's helpers (64-bit division, soft float) from the libgcc of gcc-riscv64-unknown-elf, which
        # picolibc's package depends on (Debian ships no compiler-rt for bare-metal RISC-V)
        return [*board.cflags, "-fuse-ld=lld", "-nostdlib", f"-L{PICOLIBC}/lib/{multilib(board)}",
                *(f"-L{d}" for d in libgcc_dirs(board)[:1])]

    def link_libraries(self) -> list[str]:
        return [] if self.name == "arm" else ["c", "gcc"]

    def qemu_command(self, board: Board) -> list[str]:
        f = board.flasher
        if self.name == "arm":
            return [self.qemu, "-machine", f["machine"]]
        return [self.qemu, "-machine", f["machine"], "-cpu", f["cpu"].format(vlen=board.vlen), "-bios", "none"]


ARCHES = {
    "arm": Arch("arm", "arm-none-eabi.cmake", ("arm-none-eabi-gcc", "arm-none-eabi-size", "cmake"),
                "gcc-arm-none-eabi libnewlib-arm-none-eabi cmake", "arm-none-eabi-size", "arm-none-eabi-objcopy",
                "qemu-system-arm"),
    "riscv": Arch("riscv", "riscv32-clang.cmake", ("clang-19", "ld.lld-19", "llvm-size-19", "cmake"),
                  "clang-19 lld-19 picolibc-riscv64-unknown-elf cmake", "llvm-size-19", "llvm-objcopy-19",
                  "qemu-system-riscv32"),
}


def arch_of(board: Board) -> Arch:
    arch = ARCHES.get(board.arch)
    if arch is None:
        raise EdgeqError(f"{board.name}: unknown arch '{board.arch}' in its board file; known: {', '.join(ARCHES)}.")
    return arch


def multilib(board: Board) -> str:
    """picolibc's multilib folder for the board's -march/-mabi, e.g. rv32imac/ilp32 (the vector extension
    adds nothing libc uses, so rv32imacv links rv32imac's)."""
    flags = " ".join(board.cflags)
    march = re.search(r"-march=(rv32\w+)", flags)
    mabi = re.search(r"-mabi=(\w+)", flags)
    if not (march and mabi):
        raise EdgeqError(f"{board.name}: a RISC-V board's cflags need -march=rv32... and -mabi=...")
    base = re.match(r"rv32[a-z]*?(?=v|$|_)", march.group(1))
    name = (base.group(0) if base else march.group(1)).replace("g", "imafd")
    return f"{name}/{mabi.group(1)}"


def libgcc_dirs(board: Board) -> list[Path]:
    """The folders holding libgcc.a for the board's multilib, newest GCC first."""
    return sorted((p.parent for p in LIBGCC.glob(f"*/{multilib(board)}/libgcc.a")), reverse=True)
