"""Shape checks: every operator's stored output shape against what its semantics give from its inputs, as
TFLite Micro's Prepare() does. A model whose file disagrees with itself (a corrupted dimension) is refused
here, before the planner sizes an arena from it."""
from __future__ import annotations

import math

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, ops

MAX_RANK = 6


class _Bad(Exception):
    pass


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise _Bad(what)


def _window_out(size: int, k: int, stride: int, dilation: int, padding: ops.Padding) -> int:
    _need(stride >= 1 and dilation >= 1 and k >= 1, f"stride {stride}, dilation {dilation}, window {k} must be >= 1")
    if padding == ops.Padding.SAME:
        return -(-size // stride)
    span = dilation * (k - 1) + 1
    _need(size >= span, f"a window of {span} does not fit in {size}")
    return (size - span) // stride + 1


def _rank(shape, n: int, what: str) -> None:
    _need(len(shape) == n, f"{what} has shape {list(shape)}, not rank {n}")


def expected_shape(op: ops.Op, graph: Graph) -> tuple[int, ...]:
    """The output shape op's semantics give from its inputs' shapes (raises _Bad when they disagree)."""
    shapes = [graph.t(n).shape for n in op.inputs]
    if isinstance(op, ops.ReadVariable):
        _need(op.state in graph.states, f"it reads variable '{op.state}', which the model does not have")
        out, state = graph.t(op.outputs[0]).shape, graph.states[op.state].shape
        _need(math.prod(out) == math.prod(state), f"it reads variable {list(state)} into {list(out)}")
        return out
    _need(len(shapes) >= 1, "it has no input")
    x = shapes[0]
    if isinstance(op, ops.Svdf):
        _need(len(shapes) in (3, 4) and op.state in graph.states, "it lacks weights, time weights or its state")
        _rank(x, 2, "the input")
        (filters, inputs), (filters_t, memory) = shapes[1], shapes[2]
        _need(inputs == x[1] and filters_t == filters and op.rank >= 1 and filters % op.rank == 0,
              f"weights {list(shapes[1])} and time weights {list(shapes[2])} do not fit the input {list(x)} and "
              f"rank {op.rank}")
        _need(graph.states[op.state].shape == (x[0], memory * filters), "its state is not [batch, memory x filters]")
        return (x[0], filters // op.rank)
    if isinstance(op, (ops.UnidirectionalSequenceLstm, ops.Gru)):
        gates, biases = (4, 4) if isinstance(op, ops.UnidirectionalSequenceLstm) else (3, 6)
        _need(len(shapes) == 1 + 2 * gates + biases,
              f"it has {len(shapes)} operands, not the input, {2 * gates} weights and {biases} biases")
        _rank(x, 3, "the input")
        units = shapes[1][0]
        _need(all(s == (units, x[2]) for s in shapes[1:1 + gates]) and
              all(s == (units, units) for s in shapes[1 + gates:1 + 2 * gates]) and
              all(math.prod(s) == units for s in shapes[1 + 2 * gates:]),
              f"its weights and biases do not all fit {units} units and {x[2]} inputs")
        if isinstance(op, ops.UnidirectionalSequenceLstm):
            batch = x[1] if op.time_major else x[0]
            _need(all(math.prod(graph.states[n].shape) == batch * units for n in (op.hidden_state, op.cell_state)),
                  "its hidden and cell states are not [batch, units]")
        return (x[0], x[1], units)
    if isinstance(op, (ops.Conv2D, ops.DepthwiseConv2D)):
        _need(len(shapes) in (2, 3), f"it has {len(shapes)} inputs, not 2 or 3")
        w = shapes[1]
        _rank(x, 4, "the input")
        _rank(w, 4, "the weights")
        if isinstance(op, ops.Conv2D):
            _need(w[3] >= 1 and x[3] % w[3] == 0, f"input channels {x[3]} are not a multiple of the weights' {w[3]}")
            groups = x[3] // w[3]
            _need(w[0] % groups == 0, f"{w[0]} output channels do not divide into {groups} groups")
        else:
            _need(w[0] == 1, f"depthwise weights {list(w)} must start with 1")
            _need(w[3] == x[3] * op.depth_multiplier,
                  f"weights have {w[3]} channels, not input channels {x[3]} x depth multiplier {op.depth_multiplier}")
        if len(shapes) == 3:
            _need(math.prod(shapes[2]) == w[3] if isinstance(op, ops.DepthwiseConv2D) else math.prod(shapes[2]) == w[0],
                  f"the bias {list(shapes[2])} does not have one value per output channel")
        cout = w[3] if isinstance(op, ops.DepthwiseConv2D) else w[0]
        return (x[0], _window_out(x[1], w[1], op.stride_h, op.dilation_h, op.padding),
                _window_out(x[2], w[2], op.stride_w, op.dilation_w, op.padding), cout)
    if isinstance(op, ops.TransposeConv):
        _need(len(shapes) in (2, 3), f"it has {len(shapes)} inputs, not 2 or 3")
        w, out = shapes[1], graph.t(op.outputs[0]).shape
        _rank(x, 4, "the input")
        _rank(w, 4, "the weights")
        _rank(out, 4, "the output")
        _need(w[3] == x[3], f"the weights' {w[3]} input channels are not the input's {x[3]}")
        if len(shapes) == 3:
            _need(math.prod(shapes[2]) == w[0], f"the bias {list(shapes[2])} does not have {w[0]} values")
        for size, k, stride, inner in ((out[1], w[1], op.stride_h, x[1]), (out[2], w[2], op.stride_w, x[2])):
            _need(_window_out(size, k, stride, 1, op.padding) == inner,
                  f"an output of {list(out)} does not convolve back to the input {list(x)}")
        return (x[0], out[1], out[2], w[0])
    if isinstance(op, ops.BatchMatMul):
        _need(len(shapes) == 2 and len(x) >= 2 and len(shapes[1]) >= 2, "it needs two inputs of rank 2 or more")
        (m, k), (k2, n) = x[-2:][::-1] if op.adj_x else x[-2:], shapes[1][-2:][::-1] if op.adj_y else shapes[1][-2:]
        _need(k == k2, f"inputs {list(x)} and {list(shapes[1])} do not multiply")
        try:
            return (*np.broadcast_shapes(x[:-2], shapes[1][:-2]), m, n)
        except ValueError:
            raise _Bad(f"batch dimensions {list(x[:-2])} and {list(shapes[1][:-2])} do not broadcast") from None
    if isinstance(op, ops.FullyConnected):
        _need(len(shapes) in (2, 3), f"it has {len(shapes)} inputs, not 2 or 3")
        w = shapes[1]
        _rank(w, 2, "the weights")
        size = math.prod(x)
        _need(w[1] >= 1 and size % w[1] == 0, f"the input's {size} values are not rows of {w[1]}")
        if len(shapes) == 3:
            _need(math.prod(shapes[2]) == w[0], f"the bias {list(shapes[2])} does not have {w[0]} values")
        if op.keep_num_dims:
            _need(x[-1] == w[1], f"the input's last dimension {x[-1]} is not the weights' {w[1]}")
            return (*x[:-1], w[0])
        return (size // w[1], w[0])
    if isinstance(op, (ops.AveragePool2D, ops.MaxPool2D)):
        _rank(x, 4, "the input")
        return (x[0], _window_out(x[1], op.filter_h, op.stride_h, 1, op.padding),
                _window_out(x[2], op.filter_w, op.stride_w, 1, op.padding), x[3])
    if isinstance(op, ops.MOVEMENT_OPS):
        from edgeq.lowering.movement import movement_shape
        try:
            return movement_shape(op, graph)
        except ValueError as e:
            raise _Bad(str(e)) from None
    if isinstance(op, ops.ResizeBilinear):
        out = graph.t(op.outputs[0]).shape
        _rank(x, 4, "the input")
        _rank(out, 4, "the output")
        return (x[0], out[1], out[2], x[3])
    if isinstance(op, ops.Pack):
        _need(all(s == x for s in shapes), f"inputs {[list(s) for s in shapes]} differ in shape")
        _need(0 <= op.axis <= len(x), f"axis {op.axis} is outside rank {len(x) + 1}")
        return (*x[:op.axis], len(shapes), *x[op.axis:])
    if isinstance(op, (ops.Add, ops.Mul, ops.Sub, ops.SquaredDifference, ops.Prelu, ops.Maximum, ops.Minimum)):
        _need(len(shapes) == 2, f"it has {len(shapes)} inputs, not 2")
        try:
            return tuple(np.broadcast_shapes(*shapes))
        except ValueError:
            raise _Bad(f"inputs {list(shapes[0])} and {list(shapes[1])} do not broadcast") from None
    if isinstance(op, ops.Reshape):
        out = graph.t(op.outputs[0]).shape
        _need(math.prod(out) == math.prod(x), f"it turns {math.prod(x)} values into {math.prod(out)}")
        return out
    if isinstance(op, ops.Squeeze):
        _need(all(0 <= a < len(x) and x[a] == 1 for a in op.axes), f"axes {list(op.axes)} are not all of size 1")
        axes = set(op.axes) if op.axes else {k for k, d in enumerate(x) if d == 1}
        return tuple(d for k, d in enumerate(x) if k not in axes)
    if isinstance(op, ops.Pad):
        _need(len(op.paddings) == len(x), f"{len(op.paddings)} padding pairs for rank {len(x)}")
        _need(all(a >= 0 and b >= 0 for a, b in op.paddings), f"negative paddings {list(op.paddings)}")
        return tuple(d + a + b for d, (a, b) in zip(x, op.paddings))
    if isinstance(op, ops.ArgMax):
        _need(0 <= op.axis < len(x), f"axis {op.axis} is outside rank {len(x)}")
        return tuple(d for k, d in enumerate(x) if k != op.axis)
    if isinstance(op, (ops.Mean, ops.ReduceMax, ops.Sum)):
        _need(all(0 <= a < len(x) for a in op.axes), f"axes {list(op.axes)} are outside rank {len(x)}")
        if op.keep_dims:
            return tuple(1 if k in op.axes else d for k, d in enumerate(x))
        return tuple(d for k, d in enumerate(x) if k not in op.axes)
    if isinstance(op, ops.Concatenation):
        _need(0 <= op.axis < len(x), f"axis {op.axis} is outside rank {len(x)}")
        for s in shapes[1:]:
            _need(len(s) == len(x) and all(a == b for k, (a, b) in enumerate(zip(s, x)) if k != op.axis),
                  f"inputs {list(x)} and {list(s)} differ outside axis {op.axis}")
        return tuple(sum(s[op.axis] for s in shapes) if k == op.axis else d for k, d in enumerate(x))
    return x  # elementwise: softmax, activations, quantize, dequantize


def check_graph(graph: Graph, origin: str = "the model") -> None:
    """Refuses a graph whose tensors or operators are inconsistent, naming the first problem."""
    def refuse(what: str) -> None:
        raise EdgeqError(f"{origin} is inconsistent: {what}. TFLite Micro refuses such a model too; it is probably "
                         "corrupted (export or copy it again) or was edited by hand.")

    for t in graph.tensors.values():
        if len(t.shape) > MAX_RANK or any(d < 1 for d in t.shape):
            refuse(f"tensor '{t.name}' has shape {list(t.shape)} (every dimension must be at least 1, rank at "
                   f"most {MAX_RANK})")
        q = t.quant
        if q is not None:
            if not np.all(np.isfinite(q.scale)) or not np.all(q.scale > 0):
                refuse(f"tensor '{t.name}' has quantization scale(s) {q.scale[:4].tolist()} (must be positive)")
            per_axis_ok = (0 <= q.axis < len(t.shape) and t.shape[q.axis] == q.scale.size) or \
                (len(t.shape) == 1 and t.shape[0] == q.scale.size)  # converters leave biases the weights' axis
            if not q.per_tensor and not per_axis_ok:
                refuse(f"tensor '{t.name}' {list(t.shape)} has {q.scale.size} scales along axis {q.axis}")
            if q.zero_point.size != q.scale.size:
                refuse(f"tensor '{t.name}' has {q.zero_point.size} zero points for {q.scale.size} scales")
            if t.dtype == "int8" and (q.zero_point.min() < -128 or q.zero_point.max() > 127):
                refuse(f"int8 tensor '{t.name}' has zero point(s) outside -128..127")
    available = {n for n, t in graph.tensors.items() if t.is_const} | set(graph.inputs)
    for name in graph.inputs + graph.outputs:
        if name not in graph.tensors:
            refuse(f"graph input or output '{name}' is not a tensor of the model")
    writes: dict[str, int] = {}
    for op in graph.ops:
        for name in op.outputs:
            writes[name] = writes.get(name, 0) + 1
    for op in graph.ops:
        where = f"operator {op.name} ({op.kind})"
        for name in op.inputs:
            if name not in graph.tensors:
                refuse(f"{where} reads tensor '{name}', which does not exist")
            if name not in available:
                refuse(f"{where} reads tensor '{name}' before any operator writes it")
        if isinstance(op, ops.AssignVariable) and not op.outputs:  # writes state only
            if op.state not in graph.states or graph.t(op.inputs[0]).size != graph.states[op.state].size:
                refuse(f"{where} writes {list(graph.t(op.inputs[0]).shape)} into variable '{op.state}'")
            continue
        if len(op.outputs) != 1 or op.outputs[0] not in graph.tensors:
            refuse(f"{where} has outputs {op.outputs}, not one tensor of the model")
        out = graph.t(op.outputs[0])
        if out.is_const or out.name in available or writes[out.name] > 1:
            refuse(f"{where} writes tensor '{out.name}', which is a constant, an input or written twice")
        try:
            want = expected_shape(op, graph)
        except _Bad as e:
            refuse(f"{where}: {e}")
        if tuple(want) != out.shape:
            refuse(f"{where} stores output '{out.name}' with shape {list(out.shape)}, but its inputs give "
                   f"{list(want)}")
        available.add(out.name)
    for name in graph.outputs:
        if name not in available:
            refuse(f"graph output '{name}' is never written")


def check_sizes(graph: Graph, board) -> None:
    """Before calibration or planning: the int8 weights and the largest operator's activations, each a lower
    bound of what the build needs, against the board's flash and RAM (for the host board, the largest of any
    board edgeq knows: beyond that no microcontroller can hold the model)."""
    from edgeq.targets.boards import all_boards

    flash, ram = board.flash["length"], board.ram["length"]
    if not flash or not ram:
        mcus = [b for b in all_boards() if b.flash["length"] and b.ram["length"]]
        flash, ram = max(b.flash["length"] for b in mcus), max(b.ram["length"] for b in mcus)
    weights = sum(t.size for t in graph.tensors.values() if t.is_const)
    live = max((sum(graph.t(n).size for n in op.inputs + op.outputs if not graph.t(n).is_const)
                for op in graph.ops), default=0)
    where = board.name if board.flash["length"] else "any board edgeq knows"
    if weights > flash or live > ram:
        raise EdgeqError(f"{graph.name} cannot fit on {where}: at int8 its weights alone take {weights:,} B of "
                         f"{flash:,} B flash and its largest layer's activations {live:,} B of {ram:,} B RAM "
                         "(`edgeq inspect` lists them per layer). Choose a smaller model or a board with more "
                         "memory.")
