"""The host board: compile the generated C with the system compiler and run it through pipes."""
from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import numpy as np

from edgeq.codegen.render import CModel, render_template
from edgeq.errors import EdgeqError
from edgeq.targets import process

COMPILE_TIMEOUT = 600.0  # seconds; a large model's weight arrays take minutes at -O2


def write_host_harness(model: CModel, out: Path) -> None:
    (out / "main.c").write_text(render_template("host_main.c.j2", m=model))
    (out / "Makefile").write_text(render_template("host.mk.j2", m=model))


def compile_host(out: Path, prefix: str, sanitize: bool = False, cc: str | None = None) -> Path:
    cc = cc or os.environ.get("CC") or "cc"
    if shutil.which(cc) is None:
        raise EdgeqError(f"No C compiler '{cc}' found for the host board; install gcc (apt-get install gcc) or set CC.")
    make = shutil.which("make")
    if make is None:
        raise EdgeqError("`make` is needed to build for the host board; install it (apt-get install make).")
    args = [make, "-s", "-C", str(out), f"CC={cc}", f"{prefix}_host"]
    if sanitize:
        args.append("SANITIZE=1")
    proc = process.run(args, "Compiling the generated C for the host", COMPILE_TIMEOUT, text=True)
    if proc.returncode != 0:
        raise EdgeqError(f"Compiling the generated C for the host failed (this is a bug in edgeq; please report it "
                         f"with the model):\n{proc.stderr.strip()[-4000:]}")
    return out / f"{prefix}_host"


def run_host(out: Path, prefix: str, samples: list[list[np.ndarray]], output_sizes: list[int]) -> list[list[np.ndarray]]:
    """Runs samples (each a list of int8 input arrays) through the host executable; raw int8 outputs."""
    exe = out / f"{prefix}_host"
    if not exe.exists():
        raise EdgeqError(f"{out} has no host executable {exe.name}; rebuild with `edgeq build --board host`.")
    payload = b"".join(np.ascontiguousarray(x).tobytes() for xs in samples for x in xs)  # int8, or 16x8's int16
    proc = process.run([str(exe)], f"The host executable {exe.name}", 60.0 + 0.5 * len(samples), input=payload)
    if proc.returncode != 0:
        how = f"was killed by signal {signal.Signals(-proc.returncode).name}" if proc.returncode < 0 else \
            f"failed with exit {proc.returncode}"
        raise EdgeqError(f"The host executable {exe.name} {how} (a bug in edgeq or a damaged build; rebuild it and "
                         f"report it with the model if it persists): "
                         f"{proc.stderr.decode(errors='replace').strip()[-4000:] or 'no message'}")
    per_sample = sum(output_sizes)
    if len(proc.stdout) != per_sample * len(samples):
        raise EdgeqError(f"The host executable returned {len(proc.stdout)} bytes for {len(samples)} samples; "
                         f"expected {per_sample * len(samples)}.")
    raw = np.frombuffer(proc.stdout, dtype=np.int8)
    results = []
    for k in range(len(samples)):
        chunk, outs, pos = raw[k * per_sample:(k + 1) * per_sample], [], 0
        for size in output_sizes:
            outs.append(chunk[pos:pos + size].copy())
            pos += size
        results.append(outs)
    return results

