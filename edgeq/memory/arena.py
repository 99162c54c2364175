"""The arena plan of a lowered graph: tensor lifetimes -> buffers -> offsets in one arena.

Reshape/squeeze outputs alias their input (one buffer, the union of the lifetimes). Graph inputs
are live from step 0 (copied in before the first kernel), outputs until the last step (copied out).
A kernel's scratch memory is one more buffer, live during its own step only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from edgeq.ir import Graph
from edgeq.memory.planner import ArenaPlanner
from edgeq.lowering import KernelCall

ALIGNMENT = 16


@dataclass
class ArenaPlan:
    size: int  # bytes of the arena
    lower_bound: int  # largest sum of simultaneously live tensors for this operator order
    offsets: dict[str, int]  # activation tensor name -> byte offset in the arena
    lifetimes: dict[str, tuple[int, int]]  # tensor name -> (first, last) kernel step, inclusive
    scratch: dict[int, tuple[int, int]] = field(default_factory=dict)  # step -> (offset, bytes)

    def to_json(self, graph: Graph) -> dict:
        return {
            "arena_bytes": self.size,
            "lower_bound_bytes": self.lower_bound,
            "scratch_bytes": max((size for _, size in self.scratch.values()), default=0),
            "alignment": ALIGNMENT,
            "scratch": [{"step": step, "offset": off, "bytes": size}
                        for step, (off, size) in sorted(self.scratch.items())],
            "tensors": [
                {"name": n, "offset": self.offsets[n], "bytes": graph.t(n).nbytes,
                 "first_use": self.lifetimes[n][0], "last_use": self.lifetimes[n][1]}
                for n in sorted(self.offsets, key=lambda n: (self.offsets[n], n))
            ],
        }


def plan_arena(graph: Graph, calls: list[KernelCall], scratch: dict[int, int] | None = None) -> ArenaPlan:
    """scratch: kernel step -> bytes of scratch memory that step's implementation needs."""
    root: dict[str, str] = {}  # alias -> the tensor that owns the memory

    def owner(name: str) -> str:
        while name in root:
            name = root[name]
        return name

    last_step = max(len(calls) - 1, 0)
    spans: dict[str, list[int]] = {}

    def touch(name: str, step: int) -> None:
        span = spans.setdefault(name, [step, step])
        span[0], span[1] = min(span[0], step), max(span[1], step)

    for name in graph.inputs:
        touch(name, 0)
    for step, call in enumerate(calls):
        if call.alias:
            root[call.outputs[0]] = call.inputs[0]
        for name in call.inputs + call.outputs:
            touch(name, step)
    for name in graph.outputs:
        touch(name, last_step)

    buffers: dict[str, list[int]] = {}
    for name, (first, last) in spans.items():
        span = buffers.setdefault(owner(name), [first, last])
        span[0], span[1] = min(span[0], first), max(span[1], last)

    planner = ArenaPlanner(ALIGNMENT)
    ids = {name: planner.add_buffer(graph.t(name).nbytes, first, last)
           for name, (first, last) in sorted(buffers.items(), key=lambda kv: (kv[1][0], kv[0]))}
    scratch_ids = {step: planner.add_buffer(size, step, step) for step, size in sorted((scratch or {}).items()) if size}
    planner.plan()
    offsets = {name: planner.offset(ids[owner(name)]) for name in spans}
    return ArenaPlan(planner.peak(), planner.lower_bound(), offsets, {n: tuple(s) for n, s in spans.items()},
                     {step: (planner.offset(i), scratch[step]) for step, i in scratch_ids.items()})
