"""Mixed int8/int16 activations under a budget (`--mixed-precision --max-arena BYTES` and/or `--max-latency N`).

A power-of-two int8 graph gets 16-bit activations where they matter most and the budgets allow: each candidate
tensor's sensitivity is the error at the model's output when that tensor alone is rounded to its int8 grid in
the float model; tensors are taken greedily, most sensitive first, whenever the widened graph's planned arena
(edgeq's memory planner) and its estimated latency stay within the budgets. The latency comes from the kernel
tables: each layer's instructions measured on the board's emulated core (edgeq.targets.kernel_timing) once with
every activation int8 and once with every candidate int16, plus the width conversions' instructions per element;
the chosen graph is then measured itself, and while it is over budget its least sensitive int16 tensor goes back
to int8.

An int16 tensor keeps its int8 grid's top and gets 2^8 times finer steps (2^7 for unsigned ones, which int16
stores with zero point 0), so every rescale stays a power of two. An operator that touches an int16 tensor
runs TFLite's 16x8 kernel: its other activations are converted (an int8 input into an int16 copy at the same
scale, exactly; its output, when it is not chosen, written in int16 and rounded once to its int8 grid), and its
bias becomes int64 at the finer input scale. Operators without a 16x8 kernel read an int8 copy.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Callable

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, Quant, Tensor, ops
from edgeq.quant.pot import UNSIGNED_OFFSET

# operators with a 16x8 kernel that power-of-two scales drive as they are (pass-through ones keep the input's grid)
WIDE_OPS = (ops.Conv2D, ops.DepthwiseConv2D, ops.FullyConnected, ops.AveragePool2D, ops.MaxPool2D, ops.Mean,
            ops.Add, ops.Reshape, ops.Squeeze)
PASS_THROUGH = (ops.AveragePool2D, ops.MaxPool2D, ops.Reshape, ops.Squeeze)
LAYERS = (ops.Conv2D, ops.DepthwiseConv2D, ops.FullyConnected)
SENSITIVITY_SAMPLES = 16
CONVERSION = "to_{dtype}_"  # the names widen gives the operators converting between the widths


@dataclass
class MixedPrecision:
    """What `--mixed-precision` chose, for the report and model.json's notes."""
    max_arena: int | None
    int8_arena: int  # the all-int8 graph's arena
    arena: int  # the chosen graph's
    int16_tensors: list[str] = field(default_factory=list)
    sensitivity: dict[str, float] = field(default_factory=dict)  # candidate -> output MSE with it alone int8
    max_latency: int | None = None  # instructions on the board's emulated core
    int8_latency: int | None = None  # the all-int8 graph's, measured
    latency: int | None = None  # the chosen graph's, measured
    estimated_latency: int | None = None  # the chosen graph's, from the kernel tables before it was measured
    taken: list[str] = field(default_factory=list)  # the candidates widened, in the order taken (most sensitive first)
    table: LatencyTable | None = field(default=None, repr=False, compare=False)  # --max-latency's kernel tables

    def figures(self) -> dict:
        """The choice as plain data, for the report and the summary: every field but the kernel tables."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name != "table"}

    def note(self) -> str:
        budgets = [f"--max-arena {self.max_arena} B"] if self.max_arena is not None else []
        budgets += [f"--max-latency {self.max_latency:,} instructions"] if self.max_latency is not None else []
        result = f"arena {self.arena} B (int8: {self.int8_arena} B)"
        if self.latency is not None:
            result += (f", {self.latency:,} instructions measured (estimated {self.estimated_latency:,}; int8: "
                       f"{self.int8_latency:,})")
        return (f"mixed precision: {len(self.int16_tensors)} activation tensor(s) int16 "
                f"({', '.join(self.int16_tensors) or 'none'}), chosen by output sensitivity within "
                f"{' and '.join(budgets)}: {result}")


def wide_quant(q: Quant) -> Quant:
    """The int16 grid of an int8 power-of-two grid: the same top, 2^8 (unsigned: 2^7) times finer, zero point 0."""
    finer = 7 if int(q.zp) == UNSIGNED_OFFSET else 8
    return Quant([float(q.s) * 2.0 ** -finer], [0])


def candidates(g: Graph) -> list[str]:
    """Activation tensors that may become int16: made by a 16x8 operator that sets its own scale and read only by
    16x8 operators (else the int8 copy a reader needs would keep the int8 error); never a graph input or output."""
    consumers = g.consumers()
    ends = set(g.inputs) | set(g.outputs)
    return [op.outputs[0] for op in g.ops
            if isinstance(op, WIDE_OPS) and not isinstance(op, PASS_THROUGH) and op.outputs[0] not in ends
            and consumers.get(op.outputs[0]) and all(isinstance(c, WIDE_OPS) for c in consumers[op.outputs[0]])]


def closure(g: Graph, wide: set[str]) -> set[str]:
    """wide with the outputs of pass-through operators (pools, reshapes) of its tensors, which share their grid."""
    wide = set(wide)
    for op in g.ops:
        if isinstance(op, PASS_THROUGH) and op.inputs[0] in wide and op.outputs[0] not in g.outputs:
            wide.add(op.outputs[0])
    return wide


def widen(qgraph: Graph, wide: set[str]) -> Graph:
    """A copy of the int8 power-of-two graph with the tensors in wide (closed under pass-through operators) int16,
    the operators that touch them on 16x8 kernels, and conversions where the widths meet."""
    g = copy.deepcopy(qgraph)
    wide = closure(g, wide)
    narrow = {name: g.t(name).quant for name in wide}
    for name in wide:
        t = g.t(name)
        t.quant, t.dtype = wide_quant(t.quant), "int16"
    new_ops: list[ops.Op] = []
    copies: dict[tuple[str, str], str] = {}

    def as_dtype(name: str, dtype: str) -> str:
        t = g.t(name)
        if t.dtype == dtype:
            return name
        if (name, dtype) not in copies:
            new = f"{name}/{dtype}"
            quant = Quant([float(t.quant.s)], [0]) if dtype == "int16" else copy.deepcopy(narrow[name])
            g.tensors[new] = Tensor(new, t.shape, dtype, quant)
            new_ops.append(ops.Quantize(CONVERSION.format(dtype=dtype) + str(len(new_ops)), [name], [new]))
            copies[(name, dtype)] = new
        return copies[(name, dtype)]

    for op in g.ops:
        acts = [n for n in op.inputs if n and not g.t(n).is_const]
        runs_wide = isinstance(op, WIDE_OPS) and (op.outputs[0] in wide or any(n in wide for n in acts))
        dtype = "int16" if runs_wide else "int8"
        first = narrow.get(op.inputs[0]) or g.t(op.inputs[0]).quant if acts else None
        s_in = float(first.s) if first is not None else 1.0  # the scale the int8 bias was quantized at
        op.inputs = [as_dtype(n, dtype) if n in acts and g.t(n).dtype in ("int8", "int16") else n
                     for n in op.inputs]
        if runs_wide and isinstance(op, LAYERS) and len(op.inputs) > 2 and op.inputs[2]:
            b, w = g.t(op.inputs[2]), g.t(op.inputs[1])
            factor = int(round(s_in / float(g.t(op.inputs[0]).quant.s)))  # 1, or 2^7 / 2^8 for a widened input
            b.data, b.dtype = b.data.astype(np.int64) * factor, "int64"
            b.quant = Quant(float(g.t(op.inputs[0]).quant.s) * w.quant.scale.astype(np.float64), [0])
        out = op.outputs[0]
        if runs_wide and out not in wide:
            temp = f"{out}/int16"
            g.tensors[temp] = Tensor(temp, g.t(out).shape, "int16", wide_quant(g.t(out).quant))
            op.outputs = [temp]
            new_ops += [op, ops.Quantize(CONVERSION.format(dtype="int8") + str(len(new_ops)), [temp], [out])]
        else:
            new_ops.append(op)
    g.ops = new_ops
    return g


def sensitivities(float_graph: Graph, qgraph: Graph, x: np.ndarray, names: list[str]) -> dict[str, float]:
    """Per tensor: the float model's output mean squared error, on the first calibration samples, when that tensor
    alone is rounded to its int8 grid in qgraph."""
    from edgeq.lowering import run_float
    from edgeq.quant.executor import batched_graph, batches_exactly, run_float_graph

    xs = x[:SENSITIVITY_SAMPLES].astype(np.float32)
    shape = float_graph.t(float_graph.inputs[0]).shape
    if len(xs) > 1 and batches_exactly(float_graph, xs[0].reshape(shape)):
        runs = [(batched_graph(float_graph, len(xs)), xs.reshape(len(xs), *shape[1:]))]
    else:
        runs = [(float_graph, s.reshape(shape)) for s in xs]
    producer = {op.outputs[0]: i for i, op in enumerate(float_graph.ops)}
    out = float_graph.outputs[0]
    errors = dict.fromkeys(names, 0.0)
    with np.errstate(all="ignore"):
        for g, sample in runs:
            base = run_float_graph(g, [sample], keep_all=True)
            for name in names:
                q = qgraph.t(name).quant
                s, zp = float(q.s), int(q.zp)
                values = dict(base)
                values[name] = ((np.clip(np.round(base[name] / s) + zp, -128, 127) - zp) * s).astype(np.float32)
                dirty = {name}
                for op in float_graph.ops[producer[name] + 1:]:
                    if dirty & set(op.inputs):
                        args = [values[n] if n in values else g.t(n).data for n in op.inputs]
                        values[op.outputs[0]] = run_float(op, g, args).astype(np.float32)
                        dirty.add(op.outputs[0])
                errors[name] += float(np.sum((values[out].astype(np.float64) - base[out]) ** 2))
    return {n: e / len(xs) for n, e in errors.items()}


def arena_bytes(graph: Graph) -> int:
    """The arena edgeq's memory planner gives the graph with the reference kernels (which need no scratch)."""
    from edgeq.lowering import lower_graph
    from edgeq.memory.arena import plan_arena

    return plan_arena(graph, lower_graph(graph)).size


def _conversion_into(op: ops.Op) -> str | None:
    """The width a conversion widen inserted converts into (int8, int16), or None for every other operator."""
    return next((d for d in ("int8", "int16") if op.name.startswith(CONVERSION.format(dtype=d))), None)


@dataclass
class LatencyTable:
    """Per layer the instructions of the all-int8 graph and of the graph with every candidate int16 (the kernel
    tables), and the width conversions' instructions per element, from which a choice's latency is estimated."""
    int8: dict[str, int]
    int16: dict[str, int]
    per_element: dict[str, float]  # the conversion into "int8" / "int16", per element converted

    @classmethod
    def measure(cls, qgraph: Graph, names: list[str], latency_of) -> "LatencyTable":
        wide = widen(qgraph, set(names))
        int8, int16 = latency_of(qgraph), latency_of(wide)
        per_element = {}
        for dtype in ("int8", "int16"):
            ops_ = [op for op in wide.ops if _conversion_into(op) == dtype]
            size = sum(int(np.prod(wide.t(op.outputs[0]).shape)) for op in ops_)
            per_element[dtype] = sum(int16.get(op.name, 0) for op in ops_) / size if size else 0.0
        return cls(int8, int16, per_element)

    def estimate(self, g: Graph) -> int:
        total = 0.0
        for op in g.ops:
            out = g.t(op.outputs[0])
            if _conversion_into(op):
                total += self.per_element[out.dtype] * int(np.prod(out.shape))
            elif any(g.t(n).dtype == "int16" for n in [*op.inputs, *op.outputs] if n and not g.t(n).is_const):
                total += self.int16.get(op.name, self.int8.get(op.name, 0))
            else:
                total += self.int8.get(op.name, 0)
        return int(round(total))


def choose(float_graph: Graph, qgraph: Graph, x: np.ndarray, max_arena: int | None,
           arena_of: Callable[[Graph], int] = arena_bytes, echo=print, max_latency: int | None = None,
           latency_of: Callable[[Graph], dict[str, int]] | None = None) -> tuple[Graph, MixedPrecision]:
    """The widened graph and the choice: candidates most sensitive first, each kept when the arena stays within
    max_arena (bytes) and the latency within max_latency (instructions on the board's emulated core, latency_of
    giving a graph's per-layer counts)."""
    int8_arena = arena_of(qgraph)
    if max_arena is not None and int8_arena > max_arena:
        raise EdgeqError(f"--max-arena {max_arena} is below the {int8_arena} B arena of {qgraph.name} with int8 "
                         "activations alone, and int16 ones only add memory: give a budget of at least "
                         f"{int8_arena} (for instance {int(int8_arena * 1.25)}, 1.25x), or build without "
                         "--mixed-precision.")
    names = candidates(qgraph)
    table = None
    if max_latency is not None:
        echo(f"measuring {qgraph.name}'s layers with int8 and with int16 activations for --max-latency ...")
        table = LatencyTable.measure(qgraph, names, latency_of)
        int8_latency = sum(table.int8.values())
        if int8_latency > max_latency:
            raise EdgeqError(f"--max-latency {max_latency:,} is below the {int8_latency:,} instructions {qgraph.name} "
                             "takes with int8 activations alone on the board's emulated core, and int16 layers are "
                             f"slower: give a budget of at least {int8_latency:,} (for instance "
                             f"{int(int8_latency * 1.25):,}, 1.25x), or build without --mixed-precision.")
    sens = sensitivities(float_graph, qgraph, x, names)
    order: list[str] = []  # the tensors kept, in the order taken
    graph, arena = qgraph, int8_arena
    for name in sorted(names, key=lambda n: (-sens[n], n)):
        trial = widen(qgraph, set(order) | {name})
        size = arena_of(trial)
        if (max_arena is None or size <= max_arena) and (table is None or table.estimate(trial) <= max_latency):
            order.append(name)
            graph, arena = trial, size
    info = MixedPrecision(max_arena, int8_arena, arena, [], sens, max_latency, taken=order)
    if table is not None:
        info.int8_latency, info.estimated_latency = int8_latency, table.estimate(graph)
        info.table = table
    _chosen(info, qgraph)
    echo(f"{info.note()}; candidates {len(names)}")
    return graph, info


def _chosen(info: MixedPrecision, qgraph: Graph) -> None:
    """info.int16_tensors: the candidates taken (in graph order; the sensitivities' keys) and what follows them."""
    wide, names = closure(qgraph, set(info.taken)), list(info.sensitivity)
    info.int16_tensors = [n for n in names if n in wide] + sorted(wide - set(names))


def within_latency(narrow: Graph, graph: Graph, info: MixedPrecision, latency_of, arena_of, echo=print) -> Graph | None:
    """After weight rounding and bias correction, which change a layer's instructions a little where the kernels'
    work depends on the values: graph's measured latency into info; None when it is within the budget (or no int16
    tensor is left), else the int8 graph narrow widened without the least sensitive int16 tensor taken. Refuses an
    all-int8 graph over the budget (rounding moved it past a budget just above the int8 build's latency)."""
    info.latency = sum(latency_of(graph).values())
    if info.latency <= info.max_latency:
        return None
    if not info.taken:
        raise EdgeqError(f"--max-latency {info.max_latency:,}: the all-int8 build itself measures {info.latency:,} "
                         f"instructions after weight rounding and bias correction, {info.latency - info.max_latency:,}"
                         f" over the budget, so no int16 tensor fits; give at least {info.latency:,} instructions.")
    echo(f"measured {info.latency:,} instructions, over --max-latency; retrying with {len(info.taken) - 1} int16 "
         "tensor(s) ...")
    info.taken.pop()
    graph = widen(narrow, set(info.taken))
    info.arena, info.estimated_latency = arena_of(graph), info.table.estimate(graph)
    _chosen(info, narrow)
    return graph


def board_arena(board, kernels: str) -> Callable[[Graph], int]:
    """arena_of for `edgeq build`: the arena with the scratch memory of the kernels the board's libraries give each
    layer; under auto, whose choice is measured later, each layer's largest scratch among the board's libraries, so
    the build's own plan stays within what was budgeted (check_budget makes sure)."""
    from edgeq.codegen import backends
    from edgeq.lowering import lower_graph
    from edgeq.memory.arena import plan_arena

    order = backends.library_order(board, kernels)
    libraries = order[:order.index("ref")] or ["ref"]  # the ones that may take a layer (select stops at ref)

    def arena_of(graph: Graph) -> int:
        calls = lower_graph(graph)
        scratch: dict[int, int] = {}
        for library in libraries:
            for step, impl in enumerate(backends.select(calls, board, library)):
                if impl is not None:
                    scratch[step] = max(scratch.get(step, 0), impl.scratch_bytes)
        return plan_arena(graph, calls, scratch).size
    return arena_of


def board_latency(board, kernels: str, progress=None) -> Callable[[Graph], dict[str, int]]:
    """latency_of for `edgeq build --max-latency`: a graph's per-layer instructions on the board's emulated core with
    the kernels the build would choose (edgeq.targets.kernel_timing: measured once, then cached)."""
    from edgeq.codegen import backends
    from edgeq.lowering import lower_graph
    from edgeq.targets.kernel_timing import emulated_twin, layer_timings

    if emulated_twin(board) is None:
        raise EdgeqError(f"--max-latency counts instructions on the board's emulated core, and {board.name} has none "
                         "(boards/*.toml): build for a microcontroller board whose core edgeq emulates, or budget "
                         "the arena alone with --max-arena.")
    order = backends.library_order(board, kernels)

    def latency_of(graph: Graph) -> dict[str, int]:
        calls = lower_graph(graph)
        timings = layer_timings(graph, calls, "pot", board, order, progress)
        if timings is None:
            raise EdgeqError(f"--max-latency: the emulator or toolchain of {board.name}'s core is missing, so its "
                             "layers cannot be measured; install them (`make toolchains`) or drop --max-latency.")
        impls = backends.select(calls, board, kernels, lambda _libraries: timings)
        return {call.layer: timings[impl.backend][call.layer] for call, impl in zip(calls, impls)
                if impl is not None and call.layer in timings.get(impl.backend, {})}
    return latency_of


def check_budget(arena: int, options) -> None:
    """The built arena against --max-arena (auto may pick a library whose scratch differs from the one planned)."""
    if options.mixed_precision and options.max_arena is not None and arena > options.max_arena:
        raise EdgeqError(f"The arena of the mixed-precision build is {arena} B, over --max-arena {options.max_arena}: "
                         "the kernels chosen while measuring need more scratch memory than the ones the budget was "
                         "planned with. Name one library with --kernels, or give a larger --max-arena.")
