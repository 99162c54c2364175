"""The numpy executors: integer (the golden model the C must match) and float."""
from __future__ import annotations

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, ops
from edgeq.lowering import KernelCall, lower_graph, run_float, run_kernel

STATE_KEY = "state:"  # prefix of a state's values among a float run's tensors (calibration statistics)


def _check_inputs(graph: Graph, inputs: list[np.ndarray], dtype: str | None) -> None:
    """dtype None: each input its own tensor's (int8, or a 16x8 model's int16)."""
    if len(inputs) != len(graph.inputs):
        raise EdgeqError(f"The model takes {len(graph.inputs)} inputs, {len(inputs)} were given.")
    for name, x in zip(graph.inputs, inputs):
        t = graph.t(name)
        if tuple(x.shape) != t.shape:
            raise EdgeqError(f"Input '{name}' has shape {t.shape}; got an array of shape {tuple(x.shape)}.")
        if x.dtype != np.dtype(dtype or t.dtype):
            raise EdgeqError(f"Input '{name}' must be {dtype or t.dtype}; got {x.dtype}.")


def initial_state(graph: Graph) -> dict[str, np.ndarray]:
    """Fresh copies of the graph's persistent state (Graph.states), for run_int's `state`."""
    return {name: t.data.copy() for name, t in graph.states.items()}


def op_states(op: ops.Op) -> list[str]:
    """The graph states (Graph.states) an operator reads and updates, in the order its kernels take them."""
    return [name for name in (getattr(op, a, "") for a in ("state", "hidden_state", "cell_state")) if name]


def stateful(graph: Graph) -> bool:
    """Whether an invoke depends on earlier ones: state that carries over (an ONNX LSTM's restarts every invoke)."""
    return any(op_states(op) and not getattr(op, "reset_state", False) for op in graph.ops)


def run_int(graph: Graph, inputs: list[np.ndarray], calls: list[KernelCall] | None = None,
            keep_all: bool = False, state: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Run one sample through the lowered integer graph. Returns the outputs (or every tensor).
    state: the persistent state (initial_state(graph)), updated in place, so a sequence of calls sharing it runs
    as successive invokes of the C model; None starts from the initial state."""
    calls = calls if calls is not None else lower_graph(graph)
    _check_inputs(graph, inputs, None)
    state = initial_state(graph) if state is None else state
    values: dict[str, np.ndarray] = dict(zip(graph.inputs, inputs))
    for call in calls:
        args = [values[n] for n in call.inputs] + [state[n] for n in call.states]
        if not call.outputs:  # writes state only
            run_kernel(call, args, ())
            continue
        out = graph.t(call.outputs[0])
        values[call.outputs[0]] = run_kernel(call, args, out.shape)
        assert values[call.outputs[0]].dtype == np.dtype(out.dtype), (call.layer, values[call.outputs[0]].dtype)
    return values if keep_all else {n: values[n] for n in graph.outputs}


def run_float_graph(graph: Graph, inputs: list[np.ndarray], keep_all: bool = False,
                    state: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """One invoke of the float graph. state: as run_int's (float32 arrays, updated in place); None starts from the
    initial state."""
    _check_inputs(graph, inputs, "float32")
    state = initial_state(graph) if state is None else state
    values: dict[str, np.ndarray] = dict(zip(graph.inputs, inputs))
    for op in graph.ops:
        args = [values[n] if n in values else graph.t(n).data for n in op.inputs] + [state[n] for n in op_states(op)]
        out = run_float(op, graph, args)
        if op.outputs:  # ASSIGN_VARIABLE writes its state only
            values[op.outputs[0]] = out.astype(np.float32)
    return values if keep_all else {n: values[n] for n in graph.outputs}


BATCH = 16  # samples per batched float pass (memory: a few patch matrices of BATCH samples)


def batched_graph(graph: Graph, n: int) -> Graph | None:
    """A shallow copy of graph whose activations carry n samples in their leading (batch) axis, or None when
    some activation has no leading axis of 1 (then samples run one at a time)."""
    import copy

    acts = {t.name for t in graph.activations()}
    if any(not graph.t(a).shape or graph.t(a).shape[0] != 1 for a in acts):
        return None
    g = copy.copy(graph)
    g.tensors = dict(graph.tensors)
    for a in acts:
        g.tensors[a] = copy.copy(graph.t(a))
        g.tensors[a].shape = (n, *graph.t(a).shape[1:])
    return g


def batches_exactly(graph: Graph, sample: np.ndarray) -> bool:
    """Whether running two samples at once gives, for every tensor, what running them one by one gives: some
    operators' semantics (or lowerings) may read the batch axis, and those graphs run sample by sample.
    sample: one input, float32 for a float graph, else the integer graph's input type."""
    if stateful(graph):  # the samples are successive invokes, each reading the state the one before left
        return False
    # equalized, absorbed and corrected copies share the answer: it depends on operators and shapes only
    key = (graph.t(graph.inputs[0]).dtype, tuple((type(op).__name__, tuple(op.inputs), tuple(op.outputs),
                                                  tuple(graph.t(o).shape for o in op.outputs)) for op in graph.ops))
    if key not in _BATCHES:
        _BATCHES[key] = _batches_exactly(graph, sample)
    return _BATCHES[key]


_BATCHES: dict[tuple, bool] = {}


def _batches_exactly(graph: Graph, sample: np.ndarray) -> bool:
    g2 = batched_graph(graph, 2)
    if g2 is None:
        return False
    pair = np.concatenate([sample.reshape(1, *sample.shape[1:])] * 2)
    try:
        with np.errstate(all="ignore"):
            if graph.t(graph.inputs[0]).dtype == "float32":
                one, two = run_float_graph(graph, [sample], keep_all=True), run_float_graph(g2, [pair], keep_all=True)
            else:
                one, two = run_int(graph, [sample], keep_all=True), run_int(g2, [pair], keep_all=True)
    except Exception:  # an operator that refuses a batch axis
        return False
    floating = graph.t(graph.inputs[0]).dtype == "float32"

    def same(a: np.ndarray, b: np.ndarray) -> bool:  # float: BLAS may block a larger product differently
        a = a.reshape(b.shape)
        return np.allclose(a, b, rtol=1e-5, atol=1e-6 * float(np.abs(b).max(initial=1.0)), equal_nan=True) \
            if floating else np.array_equal(a, b)

    return all(two[k].shape[0] == 2 and same(two[k][:1], v) and same(two[k][1:], v) for k, v in one.items())


def run_float_batch(graph: Graph, x: np.ndarray, keep_all: bool = False, each=None) -> dict[str, np.ndarray]:
    """The float graph on every sample of x ([N, *input_shape]), BATCH samples per pass where the graph allows:
    per tensor [N, *shape[1:]] (with keep_all every tensor, else the outputs). each(start, values), when given,
    sees every pass's tensors instead and nothing is kept.
    A stateful graph runs the samples in order as successive invokes from the initial state, as the C model runs
    them after <model>_reset(); with keep_all each state's value after every invoke is kept too, under
    STATE_KEY + its name."""
    shape = graph.t(graph.inputs[0]).shape
    single = len(x) < 2 or not batches_exactly(graph, x[0].reshape(shape).astype(np.float32))
    state = initial_state(graph) if stateful(graph) else None
    out: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(x), BATCH):
        chunk = x[start:start + BATCH]
        if single:
            runs = [_invoke(graph, s.reshape(shape), keep_all, state) for s in chunk]
            # a tensor whose leading axis is not 1 (an LSTM's [steps, 1, units]) gains a sample axis
            values = {k: np.concatenate([r[k].reshape(1, *r[k].shape[1:]) if r[k].ndim and r[k].shape[0] == 1
                                         else r[k][None] for r in runs]) for k in runs[0]}
        else:
            g = batched_graph(graph, len(chunk))
            values = run_float_graph(g, [chunk.reshape(len(chunk), *shape[1:]).astype(np.float32)], keep_all)
        if each is not None:
            each(start, values)
        else:
            for k, v in values.items():
                out.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in out.items()}


def _invoke(graph: Graph, sample: np.ndarray, keep_all: bool, state: dict[str, np.ndarray] | None):
    values = run_float_graph(graph, [sample], keep_all, state)
    if keep_all and state is not None:
        values.update({STATE_KEY + name: v.copy() for name, v in state.items()})
    return values
