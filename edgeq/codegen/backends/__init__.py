"""Kernel libraries: which C function implements each semantic kernel call on a board.

A lowered KernelCall says what to compute (edgeq.lowering, checked by the numpy golden model). A
backend says how, on a given target: the C function, the constant structs it takes, its constants
(repacked where the function wants another layout) and the scratch memory it needs, or why it cannot
run that call. Selection tries the libraries in order (the board's preference for `--kernels auto`,
else the one asked for) and ends at `ref`, which runs everything, so every layer has an implementation
and a recorded reason for each library that declined it.

Adding a backend: its C sources in a folder of runtime_c/ (or an external library), a module here with
a `Backend` subclass registered in BACKENDS, the library's name in the boards' `kernels` lists, and
per-kernel tests (tests/test_kernels.py runs every backend against the golden model).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.lowering import KernelCall
from edgeq.targets.boards import Board

KERNEL_CHOICES = ("auto", "ref", "cmsis-nn", "arm-dsp", "arm-mve", "rvv", "rv32")


@dataclass
class CStruct:
    """A `static const` struct passed by address. Field values are C expressions in which `$name` stands for
    the symbol of the call's array or struct `name`, or for `$in0`, `$out0`, `$scratch` (see codegen)."""
    ctype: str
    name: str
    fields: list[tuple[str, str]]


@dataclass
class Impl:
    """One layer's implementation: `status = function(args)`, 0 on success."""
    backend: str
    function: str
    args: list[str]  # C expressions, with the same `$name` references as CStruct fields
    structs: list[CStruct] = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    scratch_bytes: int = 0
    returns_status: bool = True  # False for the few library functions that return void
    # an inline kernel, specialised by the compiler for the layer's constants: it gets a function of its own,
    # so the registers of one layer's loops do not compete with the rest of the model's
    inline: bool = False
    declined: list[str] = field(default_factory=list)  # "library: reason" for each library tried before
    measured: dict[str, int] = field(default_factory=dict)  # library -> instructions, where auto measured them
    isa: str = ""  # the code path it was chosen for, where the library's build depends on it (muRISCV-NN)


@dataclass(frozen=True)
class Target:
    """What a backend needs to know of the board: its name and ISA features ("dsp", "mve")."""
    board: str
    features: frozenset[str]
    host: bool

    @property
    def isa(self) -> str:
        """The code path the target compiles: "mve", "dsp" (Arm), "rvv" (RISC-V vector) or plain C."""
        return next((isa for isa in ("mve", "dsp", "rvv") if isa in self.features), "c")

    @staticmethod
    def of(board: Board) -> "Target":
        # The host compiles every library's portable C path whatever it runs on.
        return Target(board.name, frozenset() if board.kind == "host" else frozenset(board.features),
                      board.kind == "host")


class Backend:
    name = ""
    include = ""  # the header the generated model includes

    def implement(self, call: KernelCall, target: Target) -> Impl | str:
        """The implementation of call on target, or the reason this library does not take it."""
        raise NotImplementedError

    def require(self, target: Target) -> None:
        """Raises EdgeqError when the library cannot be used at all (e.g. its sources are missing)."""

    def write_sources(self, impls: list[Impl], folder: Path) -> dict:
        """Puts what the build needs for impls into folder; returns build facts (source lists, paths)."""
        raise NotImplementedError


def _registry() -> dict[str, Backend]:
    from edgeq.codegen.backends.arm_dsp import ArmDsp
    from edgeq.codegen.backends.arm_mve import ArmMve
    from edgeq.codegen.backends.cmsis_nn import CmsisNN
    from edgeq.codegen.backends.ref import Ref
    from edgeq.codegen.backends.rv32 import Rv32
    from edgeq.codegen.backends.rvv import Rvv
    return {b.name: b for b in (Ref(), CmsisNN(), ArmDsp(), ArmMve(), Rvv(), Rv32())}


def backend(name: str) -> Backend:
    backends = _registry()
    if name not in backends:
        raise EdgeqError(f"Unknown kernel library '{name}'; edgeq has: {', '.join(backends)}.")
    return backends[name]


def library_order(board: Board, kernels: str) -> list[str]:
    if kernels not in KERNEL_CHOICES:
        raise EdgeqError(f"Unknown --kernels '{kernels}'; choose one of {', '.join(KERNEL_CHOICES)}.")
    if kernels == "auto":
        order = list(board.kernels)
    elif kernels not in board.kernels:
        raise EdgeqError(f"--kernels {kernels} is not available on {board.name}, whose libraries are "
                         f"{', '.join(board.kernels)} (boards/{board.name}.toml); choose one of those or auto.")
    else:
        order = [kernels]
    for name in order:
        backend(name)
    return order if "ref" in order else order + ["ref"]


Measure = Callable[[list[str]], "dict[str, dict[str, int]] | None"]


def select(calls: list[KernelCall], board: Board, kernels: str = "auto",
           measure: Measure | None = None) -> list[Impl | None]:
    """One Impl per call (None for aliases, which emit no code). The first library in order that implements
    a layer takes it; with `measure` (auto on a board with an emulated core), every library is asked, and
    where two or more implement a layer the one with the fewest measured instructions takes it."""
    target = Target.of(board)
    order = library_order(board, kernels)
    libs = {name: backend(name) for name in order}
    required: set[str] = set()
    found: list[list[Impl]] = []
    for call in calls:
        if call.alias:
            found.append([])
            continue
        declined, options = [], []
        for name in order:
            if name not in required:  # only a library that is asked for a layer must be there
                libs[name].require(target)
                required.add(name)
            result = libs[name].implement(call, target)
            if isinstance(result, Impl):
                result.declined = list(declined)
                options.append(result)
                if measure is None or name == "ref":
                    break
            else:
                declined.append(f"{name}: {result}")
        if not options:  # ref implements every kernel the lowering emits
            raise AssertionError(f"no implementation of {call.kernel} for {call.layer}")
        found.append(options)
    contested = [o.backend for options in found if len([i for i in options if i.backend != "ref"]) > 1
                 for o in options if o.backend != "ref"]
    timings = measure([n for n in order if n in contested]) if measure and contested else None
    impls: list[Impl | None] = []
    for call, options in zip(calls, found):
        if not options:
            impls.append(None)
            continue
        chosen = options[0]
        ranked = [o for o in options if o.backend != "ref"]
        if timings and ranked and all(call.layer in timings.get(o.backend, {}) for o in ranked):
            chosen = min(ranked, key=lambda o: (timings[o.backend][call.layer], ranked.index(o)))
            chosen.measured = {o.backend: timings[o.backend][call.layer] for o in ranked}
        impls.append(chosen)
    return impls


def substitute(text: str, symbols: dict[str, str]) -> str:
    """Replaces each `$name` in a C expression by its symbol."""
    return re.sub(r"\$(\w+)", lambda m: symbols[m.group(1)], text)
