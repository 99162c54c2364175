"""Arm's CMSIS-NN, pinned to one commit: where its sources are, which of them a model needs, and its own
`*_get_buffer_size*` functions, called through ctypes so scratch sizes are never re-derived in Python."""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from edgeq.errors import EdgeqError

REPOSITORY = "https://github.com/ARM-software/CMSIS-NN"
COMMIT = "4ab83cc3cc98fb85ed6dafb55e8ca02f1628dcae"
ENV = "EDGEQ_CMSIS_NN"
FETCH_TIMEOUT_S = 120
_DEFINITION = re.compile(r"^[A-Za-z_][\w \t\*]*?\b(arm_\w+)\s*\(", re.M)
_CALL = re.compile(r"\b(arm_\w+)\s*\(")


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgeq"


def _is_library(path: Path) -> bool:
    return (path / "Include" / "arm_nnfunctions.h").is_file() and (path / "Source").is_dir()


@functools.lru_cache(maxsize=None)
def locate() -> Path:
    """The local copy named by $EDGEQ_CMSIS_NN, else edgeq's cached checkout, else a fresh fetch of COMMIT."""
    given = os.environ.get(ENV)
    if given:
        path = Path(given).expanduser().resolve()
        if not _is_library(path):
            raise EdgeqError(f"{ENV}={given} is not a CMSIS-NN source tree (no Include/arm_nnfunctions.h and "
                             f"Source/); point it at a checkout of {REPOSITORY} at commit {COMMIT[:8]}.")
        return path
    cached = cache_dir() / f"CMSIS-NN-{COMMIT[:12]}"
    if _is_library(cached):
        return cached
    return _fetch(cached)


def _fetch(dest: Path) -> Path:
    git = shutil.which("git")
    problem = "git is not installed" if git is None else ""
    if git:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".cmsis-nn.", dir=dest.parent))
        try:
            for args in (["init", "-q"], ["fetch", "-q", "--depth", "1", REPOSITORY, COMMIT],
                         ["checkout", "-q", "FETCH_HEAD"]):
                proc = subprocess.run([git, "-C", str(tmp), *args], capture_output=True, text=True,
                                      timeout=FETCH_TIMEOUT_S)
                if proc.returncode != 0:
                    problem = (proc.stderr.strip().splitlines() or ["git failed"])[-1]
                    break
            else:
                tmp.rename(dest)
                return dest
        except subprocess.TimeoutExpired:
            problem = f"fetching took over {FETCH_TIMEOUT_S} s"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    raise EdgeqError(f"CMSIS-NN (commit {COMMIT[:8]}) is needed for these kernels and could not be fetched from "
                     f"{REPOSITORY} ({problem}): connect to the network, or set {ENV} to a local checkout of that "
                     "commit (or build with --kernels ref).")


@functools.lru_cache(maxsize=None)
def _index(root: Path) -> tuple[dict[str, str], dict[str, frozenset[str]]]:
    """function -> defining source (relative path), and source -> the arm_ functions it calls."""
    defined, calls = {}, {}
    for path in sorted((root / "Source").rglob("*.c")):
        rel = path.relative_to(root).as_posix()
        text = path.read_text(errors="replace")
        for name in _DEFINITION.findall(text):
            defined.setdefault(name, rel)
        calls[rel] = frozenset(_CALL.findall(text))
    return defined, calls


def sources_for(functions: list[str], root: Path | None = None) -> list[str]:
    """The CMSIS-NN sources (paths relative to its root) that define functions and everything they call."""
    root = root or locate()
    defined, calls = _index(root)
    todo, files = list(functions), set()
    while todo:
        rel = defined.get(todo.pop())
        if rel is None or rel in files:
            continue
        files.add(rel)
        todo.extend(calls[rel])
    return sorted(files)


@functools.lru_cache(maxsize=None)
def _sizes_library(root: Path) -> ctypes.CDLL:
    """CMSIS-NN's buffer-size functions (all variants: plain C, DSP, MVE) built for this host, cached."""
    files = sources_for(_SIZE_FUNCTIONS, root)
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise EdgeqError("A C compiler is needed to ask CMSIS-NN for its buffer sizes; install gcc.")
    key = hashlib.sha256("\n".join([str(root), cc, *files]).encode()).hexdigest()[:16]
    lib = cache_dir() / f"cmsis-nn-sizes-{COMMIT[:8]}-{key}.so"
    if not lib.exists():
        lib.parent.mkdir(parents=True, exist_ok=True)
        tmp = lib.with_suffix(f".{os.getpid()}.tmp")
        proc = subprocess.run([cc, "-shared", "-fPIC", "-O1", "-w", "-I", str(root / "Include"), "-o", str(tmp),
                               *(str(root / f) for f in files)], capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise EdgeqError(f"Building CMSIS-NN's buffer-size functions for the host failed:\n{proc.stderr[-2000:]}")
        tmp.replace(lib)
    return ctypes.CDLL(str(lib))


class Dims(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int32), ("h", ctypes.c_int32), ("w", ctypes.c_int32), ("c", ctypes.c_int32)]


class _Tile(ctypes.Structure):
    _fields_ = [("w", ctypes.c_int32), ("h", ctypes.c_int32)]


class ConvParams(ctypes.Structure):
    _fields_ = [("input_offset", ctypes.c_int32), ("output_offset", ctypes.c_int32), ("stride", _Tile),
                ("padding", _Tile), ("dilation", _Tile), ("activation", _Tile)]


class DwConvParams(ctypes.Structure):
    _fields_ = [("input_offset", ctypes.c_int32), ("output_offset", ctypes.c_int32), ("ch_mult", ctypes.c_int32),
                ("stride", _Tile), ("padding", _Tile), ("dilation", _Tile), ("activation", _Tile)]


_SIZE_FUNCTIONS = [f"{base}{variant}" for base in (
    "arm_convolve_wrapper_s8_get_buffer_size", "arm_depthwise_conv_wrapper_s8_get_buffer_size",
    "arm_fully_connected_s8_get_buffer_size", "arm_avgpool_s8_get_buffer_size") for variant in ("", "_dsp", "_mve")]


def buffer_size(function: str, isa: str, *args) -> int:
    """CMSIS-NN's `<function>_get_buffer_size` for the code path isa ("c", "dsp" or "mve"), with ctypes args."""
    suffix = {"c": "", "dsp": "_dsp", "mve": "_mve"}[isa]
    fn = getattr(_sizes_library(locate()), f"{function}_get_buffer_size{suffix}")
    fn.restype = ctypes.c_int32
    return int(fn(*[ctypes.byref(a) if isinstance(a, ctypes.Structure) else a for a in args]))
