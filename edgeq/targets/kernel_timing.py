"""Measured kernel choice: each candidate library's per-layer instruction counts on the board's emulated core.

`--kernels auto` takes, for each layer, the fastest library that implements it. Fastest is measured, not
guessed: the model is built once per candidate library for the emulated board with the same core (the
board itself, or its twin for a real board: the Nucleo-H7's M7 on mps2-an500), run once on a fixed
random input under QEMU with `-icount shift=0`, and each layer's count read back over the serial link.
Counts go into a cache (~/.cache/edgeq/layer-timings, or $EDGEQ_CACHE), keyed by everything they depend
on, so the second build of a model costs nothing. Instructions are not cycles: the choice is right for
the emulator and usually, not always, for the silicon (README, "Latency on the emulated cores").
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import edgeq
from edgeq.errors import EdgeqError
from edgeq.ir import Graph
from edgeq.lowering import KernelCall
from edgeq.targets.boards import Board, all_boards

# what a measurement depends on besides the model: the kernels' own sources and the selection code
SOURCES = [edgeq.ROOT / "runtime_c", edgeq.ROOT / "edgeq" / "codegen", edgeq.ROOT / "edgeq" / "lowering",
           edgeq.ROOT / "templates"]


def emulated_twin(board: Board) -> Board | None:
    """The emulated board with board's core and instruction set, or None (the host, an unemulated core)."""
    if board.kind != "mcu":
        return None
    if board.emulated:
        return board
    for other in all_boards():
        if other.emulated and other.kind == "mcu" and other.core == board.core and \
                set(board.features) <= set(other.features) and set(board.kernels) <= set(other.kernels):
            return other
    return None


def _sources_digest() -> str:
    h = hashlib.sha256()
    for root in SOURCES:
        for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            h.update(str(path.relative_to(edgeq.ROOT)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _cache_dir() -> Path:
    return Path(os.environ.get("EDGEQ_CACHE") or Path.home() / ".cache" / "edgeq") / "layer-timings"


def _calls_digest(calls: list[KernelCall]) -> str:
    """What the generated code of the layers depends on: each kernel call's kind, parameters and constants."""
    h = hashlib.sha256()
    for call in calls:
        h.update(json.dumps([call.layer, call.kernel, call.requant, call.alias, call.inputs, call.outputs,
                             sorted(call.params.items())]).encode())
        for name in sorted(call.arrays):
            h.update(name.encode() + call.arrays[name].dtype.str.encode() + call.arrays[name].tobytes())
        for k in sorted(call.constants):
            h.update(f"operand{k}".encode() + call.constants[k].dtype.str.encode() + call.constants[k].tobytes())
    return h.hexdigest()


def _cache_key(graph: Graph, calls: list[KernelCall], quant: str, twin: Board, libraries: list[str]) -> str:
    what = {"edgeq": edgeq.__version__, "calls": _calls_digest(calls), "io": [graph.inputs, graph.outputs],
            "quant": quant, "board": twin.name, "cflags": twin.cflags, "libraries": libraries,
            "sources": _sources_digest()}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:32]


def can_measure(twin: Board) -> bool:
    from edgeq.targets.arch import arch_of
    from edgeq.targets.firmware import have_toolchain
    return have_toolchain(twin) and shutil.which(arch_of(twin).qemu) is not None


def layer_timings(graph: Graph, calls: list[KernelCall], quant: str, board: Board, libraries: list[str],
                  progress=None) -> dict[str, dict[str, int]] | None:
    """library -> layer name -> instructions on board's emulated twin; None when there is no twin or its
    toolchain or emulator is missing (the caller then keeps the board's list order)."""
    twin = emulated_twin(board)
    if twin is None or not can_measure(twin):
        return None
    path = _cache_dir() / f"{_cache_key(graph, calls, quant, twin, libraries)}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    timings = {}
    for k, library in enumerate(libraries, 1):
        if progress:
            progress(f"measuring {library} kernels on {twin.name} ({k}/{len(libraries)}) ...")
        timings[library] = _measure(graph, quant, twin, library)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(timings, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache costs time next build, nothing else
    return timings


def _measure(graph: Graph, quant: str, twin: Board, library: str) -> dict[str, int]:
    from edgeq.build import compile_graph, load_manifest, write_project
    from edgeq.targets.device import open_device, profile

    with tempfile.TemporaryDirectory(prefix="edgeq-timing-") as tmp:
        out = Path(tmp) / "fw"
        write_project(compile_graph(graph, quant, twin, library), twin, quant, out, echo=lambda *_: None)
        manifest = load_manifest(out)
        try:
            with open_device(out, manifest) as (link, board):
                report = profile(link, board, manifest)
        except EdgeqError as e:
            raise EdgeqError(f"Measuring the {library} kernels of {graph.name} on {twin.name} failed: {e} Build "
                             f"with --kernels {library} or another library to skip the measurement.") from None
    per_tick = 1_000_000_000 // twin.clock_hz  # -icount shift=0: one instruction per virtual nanosecond
    return {layer["name"]: layer["cycles"] * per_tick for layer in report["layers"]}
