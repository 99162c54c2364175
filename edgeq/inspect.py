"""The report behind `edgeq inspect`: operators, shapes, MACs, weight bytes, the planned arena."""
from __future__ import annotations

from edgeq.ir import Graph, ops
from edgeq.ir.stats import macs
from edgeq.codegen.backends import select
from edgeq.memory.arena import plan_arena
from edgeq.targets.boards import Board
from edgeq.lowering import KernelCall


def inspect_graph(graph: Graph, board: Board | None = None, kernels: str = "auto", progress=None) -> dict:
    """With a board, integer graphs also report each layer's implementation on it (and the arena with the
    scratch memory those need); auto measures competing libraries as `edgeq build` does."""
    impls = [None] * len(graph.ops)
    if graph.is_integer:
        from edgeq.lowering import lower_graph
        calls = lower_graph(graph)
        weights = [c.const_nbytes for c in calls]
        if board is not None:
            from edgeq.targets.kernel_timing import layer_timings
            quant = "pot" if graph.requant == "shift" else "keep"
            impls = select(calls, board, kernels, (lambda libraries: layer_timings(
                graph, calls, quant, board, libraries, progress)) if kernels == "auto" else None)
    else:  # float model: what it would take before quantization
        calls = [KernelCall(op.name, op.kind, [n for n in op.inputs if not graph.t(n).is_const], op.outputs,
                            alias=isinstance(op, (ops.Reshape, ops.Squeeze))) for op in graph.ops]
        weights = [sum(graph.t(n).nbytes for n in op.inputs if graph.t(n).is_const) for op in graph.ops]
    plan = plan_arena(graph, calls, {i: impl.scratch_bytes for i, impl in enumerate(impls) if impl is not None})
    op_reports = []
    for i, (op, w, impl) in enumerate(zip(graph.ops, weights, impls)):
        op_reports.append({
            "index": i, "name": op.name, "kind": op.kind,
            "input_shapes": [list(graph.t(n).shape) for n in op.inputs if not graph.t(n).is_const],
            "output_shape": list(graph.t(op.outputs[0]).shape) if op.outputs else [],  # ASSIGN_VARIABLE: none
            "macs": macs(op, graph), "weights_bytes": int(w),
            **({"backend": impl.backend, "impl": impl.function, "scratch_bytes": impl.scratch_bytes,
                "declined": impl.declined, "measured_instructions": impl.measured} if impl is not None else {}),
        })
    return {
        "model": graph.name, "integer": graph.is_integer,
        "inputs": [{"name": n, "shape": list(graph.t(n).shape), "dtype": graph.t(n).dtype} for n in graph.inputs],
        "outputs": [{"name": n, "shape": list(graph.t(n).shape), "dtype": graph.t(n).dtype} for n in graph.outputs],
        "arena_bytes": plan.size, "arena_lower_bound_bytes": plan.lower_bound,
        "state_bytes": sum(t.nbytes for t in graph.states.values()),  # static, beside the arena
        "weights_bytes": int(sum(weights)), "macs": int(sum(r["macs"] for r in op_reports)),
        "ops": op_reports, "notes": graph.notes,
    }
