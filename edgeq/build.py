"""The pipeline behind `edgeq build`: load, lower, plan, render, write atomically, compile."""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import edgeq
from edgeq.codegen import backends
from edgeq.codegen.render import CModel, build_cmodel, render_sources
from edgeq.errors import EdgeqError
from edgeq.ir import Graph
from edgeq.memory.arena import ArenaPlan, plan_arena
from edgeq.lowering import lower_graph
from edgeq.lowering import KernelCall
from edgeq.targets.boards import Board, get_board

QUANT_MODES = ("keep", "pot")


@dataclass
class Compiled:
    graph: Graph
    calls: list[KernelCall]
    impls: list[backends.Impl | None]  # per call; None for aliases
    board: str  # the board the implementations were chosen for
    plan: ArenaPlan
    cmodel: CModel


def compile_graph(graph: Graph, quant: str = "keep", board: Board | None = None, kernels: str = "auto",
                  progress=None) -> Compiled:
    """Lowers, picks each layer's kernel (auto: measured on the board's emulated core where libraries
    compete; progress gets a line per measurement), plans the arena and renders the C model."""
    if quant not in QUANT_MODES:
        raise EdgeqError(f"Unknown --quant mode '{quant}'; available: {', '.join(QUANT_MODES)}.")
    if not graph.is_integer:
        raise EdgeqError(
            f"{graph.name} has float activations, so it must be quantized first: build it with --quant pot "
            "--calib DATA (power-of-two quantization), or convert it with the TFLite converter to full int8.")
    board = board or get_board("host")
    calls = lower_graph(graph)

    def measure(libraries: list[str]):
        from edgeq.targets.kernel_timing import layer_timings
        return layer_timings(graph, calls, quant, board, libraries, progress)

    impls = backends.select(calls, board, kernels, measure if kernels == "auto" else None)
    plan = plan_arena(graph, calls, {i: impl.scratch_bytes for i, impl in enumerate(impls) if impl is not None})
    cmodel = build_cmodel(graph, calls, impls, plan, f"quant={quant}, board={board.name}, kernels={kernels}")
    return Compiled(graph, calls, impls, board.name, plan, cmodel)


def manifest(c: Compiled, board: Board, quant: str) -> dict:
    if c.board != board.name:
        raise AssertionError(f"kernels were chosen for {c.board}, not for {board.name}: pass the board to compile_graph")
    g = c.graph

    def tensor(name: str) -> dict:
        t = g.t(name)
        q = t.quant
        return {
            "name": name, "dtype": t.dtype, "shape": list(t.shape),
            "scale": [float(s) for s in q.scale] if q is not None else None,
            "zero_point": [int(z) for z in q.zero_point] if q is not None else None,
            "quantized_dimension": q.axis if q is not None and not q.per_tensor else None,
            "const": t.is_const,
        }

    return {
        "edgeq_version": edgeq.__version__,
        "model": g.name, "model_sha256": g.source_hash, "prefix": c.cmodel.prefix,
        "board": board.name, "quant": quant,
        "inputs": [tensor(n) for n in g.inputs], "outputs": [tensor(n) for n in g.outputs],
        "layers": [_layer(call, impl, c.plan.scratch.get(step)) for step, (call, impl) in enumerate(zip(c.calls, c.impls))],
        "tensors": [tensor(n) for n in sorted(g.tensors)],
        "arena": c.plan.to_json(g),
        # kept across invokes in static buffers beside the arena (<model>_reset() restores the initial values)
        "states": [{"name": n, "dtype": t.dtype, "shape": list(t.shape), "bytes": t.nbytes}
                   for n, t in sorted(g.states.items())],
        "notes": g.notes,
    }


def _layer(call: KernelCall, impl: backends.Impl | None, scratch: tuple[int, int] | None) -> dict:
    entry = {"name": call.layer, "kernel": "alias" if call.alias else call.kernel,
             "inputs": call.inputs, "outputs": call.outputs}
    if impl is not None:
        entry.update(backend=impl.backend, impl=impl.function, requant=call.requant,
                     scratch_bytes=scratch[1] if scratch else 0, declined=impl.declined)
        if impl.measured:
            entry["measured_instructions"] = impl.measured
    return entry


def write_sources(c: Compiled, folder: Path) -> dict:
    """The model's C sources plus the kernels it calls: edgeq's own copied into runtime/ (only those used),
    external libraries referenced where they are. Returns each library's build facts."""
    used = sorted({impl.backend for impl in c.impls if impl is not None} | {"ref"})
    libraries = {name: backends.backend(name).write_sources([i for i in c.impls if i], folder / "runtime")
                 for name in used}
    c.cmodel.libraries = libraries
    for fname, text in render_sources(c.cmodel).items():
        (folder / fname).write_text(text)
    return libraries


BUILD_SIGNATURE = "edgeq build folder"  # model.json's "edgeq_build" marker: only such folders are edgeq's
REFERENCE_FILES = ("reference_graph.json", "reference_graph.npz")  # the integer graph, as data
STAGING_PREFIX = ".edgeq-staging-"


def write_project(c: Compiled, board: Board, quant: str, out_dir: Path, model_file: Path | None = None,
                  lib_only: bool = False, echo=print, firmware: dict | None = None) -> None:
    """Builds everything in a staging folder inside out_dir, then moves each file into place, replacing only
    files an earlier edgeq build of out_dir wrote (its model.json lists them); nothing else there is touched.
    On any failure or interruption out_dir is as it was. model_file, the source model, is copied in as
    model.<its suffix>."""
    from edgeq.ir.serialize import save_graph

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise EdgeqError(f"-o {out_dir} is a file, not a folder; choose a folder for the build.")
    previous = _previous_build_files(out_dir)
    created = [p for p in [out_dir, *out_dir.parents] if not p.exists()]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
    except OSError as e:
        _remove_empty(created)
        raise EdgeqError(f"Cannot write the build into {out_dir}: {e.strerror}. Choose a folder you may write to "
                         "with -o.") from None
    try:
        write_sources(c, tmp)
        info = manifest(c, board, quant)
        if model_file is not None:
            shutil.copyfile(model_file, tmp / f"model{Path(model_file).suffix.lower()}")
        save_graph(c.graph, *(tmp / f for f in REFERENCE_FILES))  # what `edgeq validate` checks against
        if lib_only:
            pass
        elif board.kind == "host":
            from edgeq.targets.host import write_host_harness, compile_host
            write_host_harness(c.cmodel, tmp)
            compile_host(tmp, c.cmodel.prefix)
        elif board.kind == "npu":
            from edgeq.targets.npu import write_npu
            info["npu"] = write_npu(c, board, tmp, echo)
        else:
            info["firmware"] = _firmware(c, board, tmp, echo, **(firmware or {}))
        files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file() or p.is_symlink())
        info["edgeq_build"] = {"signature": BUILD_SIGNATURE, "files": sorted(files + ["model.json"])}
        (tmp / "model.json").write_text(json.dumps(info, indent=1) + "\n")
        clashes = [f for f in info["edgeq_build"]["files"] if f not in previous and os.path.lexists(out_dir / f)]
        if clashes:
            raise EdgeqError(
                f"{out_dir} holds {len(clashes)} file(s) that an edgeq build writes but that no earlier edgeq build "
                f"there wrote ({', '.join(clashes[:5])}{', ...' if len(clashes) > 5 else ''}); edgeq does not "
                "overwrite files it did not write. Choose a new or empty -o folder, or move those files away.")
        _swap_in(tmp, out_dir, info["edgeq_build"]["files"], previous)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise
    shutil.rmtree(tmp, ignore_errors=True)


def _previous_build_files(out_dir: Path) -> set[str]:
    """The files an earlier edgeq build wrote into out_dir, per its model.json's marker; empty when out_dir is
    not an edgeq build folder (a foreign model.json, for instance a TensorFlow.js model's, does not count)."""
    try:
        info = json.loads((out_dir / "model.json").read_text())
        marker = info["edgeq_build"]
        if marker["signature"] != BUILD_SIGNATURE:
            return set()
        files = {str(f) for f in marker["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    root = out_dir.resolve()
    # a crafted list must not reach outside the folder (../x, /etc/x, or through a symlinked subfolder)
    return {f for f in files if f and not os.path.isabs(f) and ".." not in Path(f).parts
            and (out_dir / f).parent.resolve().is_relative_to(root) and not f.startswith(STAGING_PREFIX)}


def _swap_in(tmp: Path, out_dir: Path, files: list[str], previous: set[str]) -> None:
    """Moves the staged files into out_dir and removes files only the previous build had; the files it
    replaces wait in tmp until everything is in place, and go back if anything fails."""
    backup = tmp / (STAGING_PREFIX + "previous")
    moved_old: list[str] = []
    placed: list[str] = []
    try:
        for f in sorted(previous | set(files)):
            if f in previous and os.path.lexists(out_dir / f):
                (backup / f).parent.mkdir(parents=True, exist_ok=True)
                os.replace(out_dir / f, backup / f)
                moved_old.append(f)
        for f in sorted(files, key=lambda f: f == "model.json"):  # the marker last
            (out_dir / f).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / f, out_dir / f)
            placed.append(f)
    except BaseException as e:
        for f in placed:
            with contextlib.suppress(OSError):
                os.remove(out_dir / f)
        for f in moved_old:
            with contextlib.suppress(OSError):
                os.replace(backup / f, out_dir / f)
        if isinstance(e, OSError):
            raise EdgeqError(f"Cannot write the build into {out_dir} ({e.filename}: {e.strerror}); the previous "
                             "contents are unchanged. Choose a folder you may write to with -o.") from None
        raise
    _remove_empty(sorted({(out_dir / f).parent for f in previous - set(files)}, key=lambda p: -len(p.parts)),
                  stop=out_dir)


def _remove_empty(folders, stop: Path | None = None) -> None:
    """Removes each folder that is empty (and its empty parents up to stop); never anything with files."""
    for folder in folders:
        while folder != stop and folder.is_dir() and not any(folder.iterdir()):
            with contextlib.suppress(OSError):
                folder.rmdir()
            folder = folder.parent
            if stop is None:
                break


def _firmware(c: Compiled, board: Board, folder: Path, echo, clock: str = "max", harness: str = "edgeq",
              mlperf_model: str | None = None) -> dict:
    """firmware options: --clock (reset|max), --harness (edgeq|mlperf-tiny), --mlperf-model."""
    from edgeq.targets import firmware
    weights = sum(call.const_nbytes for call in c.calls)
    fw = firmware.firmware_options(c.cmodel, board, clock, harness, mlperf_model, c.graph.name)
    firmware.check_fits(c.cmodel, board, c.graph, weights, fw)
    fw_info = firmware.write_firmware(c.cmodel, board, c.graph.source_hash, folder, fw)
    if not firmware.have_toolchain(board):
        packages = firmware.arch_of(board).packages
        echo(f"note: the {board.arch} toolchain or cmake is missing, so the firmware project in {folder.name} was "
             f"written but not built (apt-get install {packages})")
        return {"elf": None, **fw_info}
    echo(f"building firmware for {board.name} ...")
    elf, use = firmware.build_elf(folder, c.cmodel.prefix, board, firmware.library_defines(c.cmodel))
    flash, ram = board.flash["length"], board.ram["length"]
    echo(f"flash {use.flash:,} of {flash:,} B ({100 * use.flash / flash:.1f}%), "
         f"RAM {use.ram:,} of {ram:,} B ({100 * use.ram / ram:.1f}%)")
    return {"elf": elf.name, "flash_bytes": use.flash, "ram_bytes": use.ram, **fw_info}


def load_manifest(build_dir: Path) -> dict:
    """model.json of an edgeq build folder, refused unless it carries edgeq's marker and names only plain
    files inside the folder (so no command is led outside it)."""
    path = Path(build_dir) / "model.json"
    if not Path(build_dir).is_dir():
        raise EdgeqError(f"{build_dir} {'is not a folder' if Path(build_dir).exists() else 'does not exist'}; give "
                         "the folder `edgeq build -o` wrote.")
    if not path.exists():
        raise EdgeqError(f"{build_dir} is not an edgeq build folder (no model.json); run `edgeq build` first.")
    try:
        m = json.loads(path.read_text())
        ok = m["edgeq_build"]["signature"] == BUILD_SIGNATURE
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise EdgeqError(f"{build_dir} is not an edgeq build folder: its model.json lacks edgeq's build marker (it "
                         "is another tool's file, or from an edgeq older than this one); build it again with "
                         "`edgeq build -o FOLDER`.")
    elf = (m.get("firmware") or {}).get("elf")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", str(m.get("prefix"))) or (elf is not None and (
            not isinstance(elf, str) or Path(elf).name != elf or elf in ("", ".", ".."))):
        raise EdgeqError(f"{path} is damaged (its prefix or firmware names a path, not a file of the folder); "
                         "rebuild the folder with `edgeq build`.")
    return m


def tflite_round(x: np.ndarray) -> np.ndarray:
    """std::round, halves away from zero, as TFLite's QUANTIZE rounds (np.round takes halves to even). In float64,
    where |x| + 0.5 is exact for every float32 x."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_inputs(x: np.ndarray, tensor: dict, echo=None) -> np.ndarray:
    """float32 -> int8 with the input's scale and zero point (as TFLite's QUANTIZE does); int8 as is. Refuses
    other dtypes, NaN/Inf, and values far outside what the input's quantization represents (wrong scaling);
    echo, when given, gets a warning when more than 1% of the values clip."""
    from edgeq.quant.calibration import check_finite

    if len(x) == 0:
        raise EdgeqError("The inputs hold no samples; give [N, *input_shape] with N >= 1.")
    if x.dtype == np.int8:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise EdgeqError(f"The inputs are {x.dtype}; give int8 (used as is) or float32 in the model's input scaling "
                         "(quantized with the input's scale and zero point), for example x.astype(np.float32).")
    check_finite(x, "The input data")
    scale, zp = np.float32(tensor["scale"][0]), tensor["zero_point"][0]
    lo, hi = float(scale) * (-128 - zp), float(scale) * (127 - zp)
    xmin, xmax = float(x.min()), float(x.max())
    if max(-xmin, xmax) > 32 * max(-lo, hi):  # clipping beyond 32x is no outlier but another scaling
        raise EdgeqError(f"The inputs span [{xmin:.4g}, {xmax:.4g}], far outside [{lo:.4g}, {hi:.4g}], all that the "
                         f"model's int8 input (scale {float(scale):.4g}, zero point {zp}) represents: they are in "
                         "another scaling than the model's (0..255 pixels for a model trained on 0..1, say). "
                         "Rescale them, or give int8 inputs to use as is.")
    q = tflite_round(x.astype(np.float32) / scale).astype(np.int64) + zp
    clipped = float(np.mean((q < -128) | (q > 127)))
    if echo is not None and clipped > 0.01:
        echo(f"warning: {100 * clipped:.1f}% of the input values fall outside [{lo:.4g}, {hi:.4g}], the range of the "
             f"model's int8 input, and are clipped (inputs span [{xmin:.4g}, {xmax:.4g}]); check their scaling.")
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize_outputs(y: np.ndarray, tensor: dict) -> np.ndarray:
    scale, zp = np.float32(tensor["scale"][0]), tensor["zero_point"][0]
    return ((y.astype(np.int32) - zp).astype(np.float32) * scale).astype(np.float32)


def build_and_run_host(graph: Graph, out: Path, samples, sanitize: bool = True, cc: str | None = None,
                       kernels: str = "ref") -> list[list[np.ndarray]]:
    """Compile a graph for the host (sanitized by default, as the tests want) and run samples (lists of int8
    inputs) through it; kernels "cmsis-nn" runs CMSIS-NN's portable C path."""
    from edgeq.targets.host import compile_host, run_host, write_host_harness
    c = compile_graph(graph, "keep" if graph.requant != "shift" else "pot", get_board("host"), kernels)
    out.mkdir(parents=True, exist_ok=True)
    write_sources(c, out)
    write_host_harness(c.cmodel, out)
    compile_host(out, c.cmodel.prefix, sanitize=sanitize, cc=cc)
    return run_host(out, c.cmodel.prefix, samples, [graph.t(n).nbytes for n in graph.outputs])
