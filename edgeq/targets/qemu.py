"""Emulated boards: qemu-system-arm or qemu-system-riscv32 (the board's arch) with the firmware ELF, the UART
on a pseudo-terminal, and `-icount shift=0` so that virtual time counts executed instructions and every figure
repeats."""
from __future__ import annotations

import os
import re
import select
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from edgeq.errors import EdgeqError
from edgeq.targets import process
from edgeq.targets.arch import arch_of
from edgeq.targets.boards import Board

PTY_LINE = re.compile(rb"char device redirected to (\S+) \(label serial0\)")


class QemuBoard:
    """A running emulated board; use as a context manager so the emulator always stops.

    monitor: a QEMU monitor socket (in a temporary folder, removed by stop()) for reset(). An emulator
    left running for later commands (`edgeq flash`) has none, so nothing is left behind when it is killed."""

    def __init__(self, board: Board, elf: Path, monitor: bool = True):
        self.board, self.elf = board, Path(elf)
        self.proc: subprocess.Popen | None = None
        self.pty = ""
        self._tmp = tempfile.mkdtemp(prefix="edgeq-qemu-") if monitor else None
        self.monitor_path = os.path.join(self._tmp, "monitor.sock") if monitor else None

    def command(self) -> list[str]:
        monitor = f"unix:{self.monitor_path},server,nowait" if self.monitor_path else "none"
        return [*arch_of(self.board).qemu_command(self.board), "-nographic",
                "-monitor", monitor, "-serial", "pty",
                "-icount", "shift=0,align=off,sleep=off", "-kernel", str(self.elf)]

    def start(self, timeout: float = 10.0) -> "QemuBoard":
        qemu = arch_of(self.board).qemu
        if shutil.which(qemu) is None:
            package = "qemu-system-arm" if qemu == "qemu-system-arm" else "qemu-system-misc"
            raise EdgeqError(f"{qemu} is not installed; `apt-get install {package}` (make test does).")
        if not self.elf.exists():
            raise EdgeqError(f"No firmware {self.elf}; build it with `edgeq build MODEL --board {self.board.name}`.")
        timeout = process.timeout_for(timeout)
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        out, deadline = b"", time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                out += chunk
                m = PTY_LINE.search(out)
                if m:
                    self.pty = m.group(1).decode()
                    return self
        self.stop()
        raise EdgeqError(f"QEMU did not start the {self.board.name} board within {timeout:g} s: "
                         f"{out.decode(errors='replace').strip()[-1000:] or 'no output'}. If the machine is only slow, set "
                         f"{process.TIMEOUT_ENV}=SECONDS.")

    def reset(self) -> None:
        """system_reset through the QEMU monitor: the firmware restarts from its reset vector."""
        if self.monitor_path is None:
            raise EdgeqError(f"This {self.board.name} emulator was started without a monitor and cannot be reset.")
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.monitor_path)
            s.sendall(b"system_reset\n")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "QemuBoard":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()
