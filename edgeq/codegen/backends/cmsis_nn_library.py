"""Kernel libraries with CMSIS-NN's API, pinned to one commit each: Arm's CMSIS-NN, and muRISCV-NN (its RISC-V
port). Where a library's sources are, which of them a model needs, and its own `*_get_buffer_size*` functions,
called through ctypes so scratch sizes are never re-derived in Python."""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgeq.errors import EdgeqError
from edgeq.targets import process

FETCH_TIMEOUT_S = 120


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgeq"


@dataclass(frozen=True)
class KernelLibrary:
    title: str
    repository: str
    commit: str
    env: str  # the environment variable naming a local copy
    marker: str  # a file that identifies a source tree of the library
    prefix: str  # of its C functions
    size_functions: tuple[str, ...]  # get_buffer_size functions, without the prefix
    # code path -> (suffix of its size functions, host compiler flags that select it)
    variants: dict[str, tuple[str, tuple[str, ...]]] = field(hash=False)
    # (header, flag, replacement): a source that includes header is built for the host with the replacement
    # flag, for a header the host cannot compile under flag (muRISCV-NN's riscv_vector.h)
    host_swap: tuple[str, str, str] | None = None

    @property
    def cache_name(self) -> str:
        return f"{self.repository.rsplit('/', 1)[-1]}-{self.commit[:12]}"

    def is_library(self, path: Path) -> bool:
        return (path / self.marker).is_file() and (path / "Source").is_dir()

    def locate(self) -> Path:
        """The local copy named by the environment variable, else edgeq's cached checkout, else a fresh fetch."""
        return _locate(self, os.environ.get(self.env) or "")

    def sources_for(self, functions: list[str], root: Path | None = None) -> list[str]:
        """The library's sources (paths relative to its root) that define functions and everything they call."""
        root = root or self.locate()
        defined, calls = _index(root, self.prefix)
        todo, files = list(functions), set()
        while todo:
            rel = defined.get(todo.pop())
            if rel is None or rel in files:
                continue
            files.add(rel)
            todo.extend(calls[rel])
        return sorted(files)

    def buffer_size(self, function: str, isa: str, *args) -> int:
        """`<function>_get_buffer_size` for the code path isa, with ctypes args; function may be given with
        CMSIS-NN's `arm_` prefix, which stands for this library's."""
        if isa not in self.variants:
            raise AssertionError(f"{self.title} has no {isa} code path")
        suffix, flags = self.variants[isa]
        name = self.prefix + function.removeprefix("arm_").removeprefix(self.prefix)
        fn = getattr(_sizes_library(self, self.locate(), flags), f"{name}_get_buffer_size{suffix}")
        fn.restype = ctypes.c_int32
        return int(fn(*[ctypes.byref(a) if isinstance(a, ctypes.Structure) else a for a in args]))


@functools.lru_cache(maxsize=None)
def _locate(library: KernelLibrary, given: str) -> Path:
    if given:
        path = Path(given).expanduser().resolve()
        if not library.is_library(path):
            raise EdgeqError(f"{library.env}={given} is not a {library.title} source tree (no {library.marker} and "
                             f"Source/); point it at a checkout of {library.repository} at commit {library.commit[:8]}.")
        return path
    cached = cache_dir() / library.cache_name
    if library.is_library(cached):
        return cached
    return _fetch(library, cached)


def _fetch(library: KernelLibrary, dest: Path) -> Path:
    git = shutil.which("git")
    problem = "git is not installed" if git is None else ""
    if git:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{library.cache_name}.", dir=dest.parent))
        try:
            for args in (["init", "-q"], ["fetch", "-q", "--depth", "1", library.repository, library.commit],
                         ["checkout", "-q", "FETCH_HEAD"]):
                proc = subprocess.run([git, "-C", str(tmp), *args], capture_output=True, text=True,
                                      timeout=process.timeout_for(FETCH_TIMEOUT_S))
                if proc.returncode != 0:
                    problem = (proc.stderr.strip().splitlines() or ["git failed"])[-1]
                    break
            else:
                tmp.rename(dest)
                return dest
        except subprocess.TimeoutExpired:
            problem = (f"fetching took over {process.timeout_for(FETCH_TIMEOUT_S):g} s; {process.TIMEOUT_ENV} "
                       "sets the bound")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    raise EdgeqError(f"{library.title} (commit {library.commit[:8]}) is needed for these kernels and could not be "
                     f"fetched from {library.repository} ({problem}): connect to the network, or set {library.env} to "
                     "a local checkout of that commit (or build with --kernels ref).")


@functools.lru_cache(maxsize=None)
def _index(root: Path, prefix: str) -> tuple[dict[str, str], dict[str, frozenset[str]]]:
    """function -> defining source (relative path), and source -> the library functions it calls."""
    definition = re.compile(rf"^[A-Za-z_][\w \t\*]*?\b({prefix}\w+)\s*\(", re.M)
    call = re.compile(rf"\b({prefix}\w+)\s*\(")
    defined, calls = {}, {}
    for path in sorted((root / "Source").rglob("*.c")):
        rel = path.relative_to(root).as_posix()
        text = path.read_text(errors="replace")
        for name in definition.findall(text):
            defined.setdefault(name, rel)
        calls[rel] = frozenset(call.findall(text))
    return defined, calls


@functools.lru_cache(maxsize=None)
def _sizes_library(library: KernelLibrary, root: Path, flags: tuple[str, ...]) -> ctypes.CDLL:
    """The library's buffer-size functions built for this host with flags (one code path's), cached."""
    names = [f"{library.prefix}{f}{suffix}" for f in library.size_functions
             for suffix in sorted({s for s, fl in library.variants.values() if fl == flags})]
    files = library.sources_for(names, root)
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise EdgeqError(f"A C compiler is needed to ask {library.title} for its buffer sizes; install gcc.")
    key = hashlib.sha256("\n".join([str(root), cc, *flags, *files]).encode()).hexdigest()[:16]
    lib = cache_dir() / f"{library.cache_name.lower()}-sizes-{key}.so"
    if not lib.exists():
        lib.parent.mkdir(parents=True, exist_ok=True)
        tmp = lib.with_suffix(f".{os.getpid()}.tmp")
        with tempfile.TemporaryDirectory(prefix="edgeq-sizes-") as objdir:
            commands = []
            for k, f in enumerate(files):
                file_flags = flags
                swap = library.host_swap
                if swap and f'"{swap[0]}"' in (root / f).read_text(errors="replace"):
                    file_flags = tuple(swap[2] if x == swap[1] else x for x in flags)
                commands.append([cc, "-c", "-fPIC", "-O1", "-w", "-I", str(root / "Include"), *file_flags,
                                 "-o", f"{objdir}/{k}.o", str(root / f)])
            commands.append([cc, "-shared", "-o", str(tmp), *(f"{objdir}/{k}.o" for k in range(len(files)))])
            for command in commands:
                proc = process.run(command, f"Compiling {library.title}'s buffer-size functions for the host", 300.0,
                                   text=True)
                if proc.returncode != 0:
                    raise EdgeqError(f"Building {library.title}'s buffer-size functions for the host failed:\n"
                                     f"{proc.stderr[-2000:]}")
        tmp.replace(lib)
    return ctypes.CDLL(str(lib))


CMSIS_NN = KernelLibrary(
    "CMSIS-NN", "https://github.com/ARM-software/CMSIS-NN", "4ab83cc3cc98fb85ed6dafb55e8ca02f1628dcae",
    "EDGEQ_CMSIS_NN", "Include/arm_nnfunctions.h", "arm_",
    ("convolve_wrapper_s8_get_buffer_size", "depthwise_conv_wrapper_s8_get_buffer_size",
     "fully_connected_s8_get_buffer_size", "avgpool_s8_get_buffer_size"),
    {"c": ("", ()), "dsp": ("_dsp", ()), "mve": ("_mve", ())})
# CMSIS-NN's module-level names, as before the library was parameterised
REPOSITORY, COMMIT, ENV = CMSIS_NN.repository, CMSIS_NN.commit, CMSIS_NN.env


def locate() -> Path:
    return CMSIS_NN.locate()


def sources_for(functions: list[str], root: Path | None = None) -> list[str]:
    return CMSIS_NN.sources_for(functions, root)


def buffer_size(function: str, isa: str, *args) -> int:
    """CMSIS-NN's `<function>_get_buffer_size` for the code path isa ("c", "dsp" or "mve"), with ctypes args."""
    return CMSIS_NN.buffer_size(function, isa, *args)


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
