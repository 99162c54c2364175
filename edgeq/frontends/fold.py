"""IR rewrites the ONNX/PyTorch frontends run after translation.

- per-channel Mul/Add by constants right after a Conv2D, DepthwiseConv2D or FullyConnected, or after
  a reshape of its output that keeps the channels last (a Conv1d's), are folded into its weights and
  bias (BatchNormalization arrives as such a Mul+Add; MatMul+Add becomes a FullyConnected with bias
  the same way);
- a BatchNormalization's Mul+Add that followed no such layer becomes one 1x1 depthwise convolution,
  which the power-of-two quantizer takes (a Mul by a per-channel float constant it does not);
- a Relu/Relu6 after a layer, Add or Mul becomes that op's fused activation;
- operators whose results nothing uses are dropped.
A fold needs the layer's output to have no other reader, so residual branches stay exact.
"""
from __future__ import annotations

import numpy as np

from edgeq.ir import Graph, Tensor, ops

LAYERS = (ops.Conv2D, ops.DepthwiseConv2D, ops.FullyConnected)
FUSES_INTO = (ops.Conv2D, ops.DepthwiseConv2D, ops.FullyConnected, ops.Add, ops.Mul)
_ACTIVATION = {ops.Relu: ops.Activation.RELU, ops.Relu6: ops.Activation.RELU6}


def _single_reader(graph: Graph, name: str, consumers: dict) -> bool:
    return len(consumers.get(name, [])) == 1 and name not in graph.outputs


def _per_channel(c: np.ndarray, channels: int) -> np.ndarray | None:
    """c as one value per output channel (the last axis), if it broadcasts only along that axis."""
    c = np.asarray(c, dtype=np.float64)
    if c.size == 1:
        return np.full(channels, c.reshape(-1)[0])
    if c.ndim >= 1 and c.shape[-1] == channels and c.size == channels:
        return c.reshape(channels)
    return None


def _unused(name: str, taken) -> str:
    while name in taken:
        name += "_"
    return name


def _replace_const(graph: Graph, op: ops.Op, pos: int, data: np.ndarray, users: dict) -> None:
    """Give op its own copy of constant input `pos` holding data (other readers keep the old one)."""
    old = op.inputs[pos] if pos < len(op.inputs) else None
    if old is not None and len(users.get(old, [])) == 1:
        graph.tensors[old].data = data.astype(np.float32)
        return
    name = _unused(f"{op.name}_{'bias' if pos == 2 else 'weights'}_folded", graph.tensors)
    graph.tensors[name] = Tensor(name, data.shape, "float32", None, data.astype(np.float32))
    if old is None:
        op.inputs.append(name)
    else:
        op.inputs[pos] = name


def _layer_of(graph: Graph, x: str, producers: dict, consumers: dict) -> tuple[ops.Op | None, ops.Op | None]:
    """The op whose output x is, or, when x is a reshape of a layer's output that keeps the last (channel) axis, that
    layer and the reshape. Both last axes being C, element i is in channel i % C on either side."""
    op = producers.get(x)
    if isinstance(op, (ops.Reshape, ops.Squeeze)) and _single_reader(graph, op.inputs[0], consumers) and \
            graph.t(op.inputs[0]).shape[-1:] == graph.t(x).shape[-1:]:
        return producers.get(op.inputs[0]), op
    return op, None


def fold_affine(graph: Graph, keep: set[str] = frozenset()) -> set[str]:
    """Fold per-channel Mul/Add constants into the layer before them, except into the layers named in keep.
    Returns the folded layers."""
    folded: set[str] = set()
    changed = True
    while changed:
        changed = False
        producers, consumers = graph.producers(), graph.consumers()
        for op in graph.ops:
            if not isinstance(op, (ops.Mul, ops.Add)):
                continue
            consts = [n for n in op.inputs if graph.t(n).is_const]
            if len(consts) != 1 or len(op.inputs) != 2:
                continue
            x = next(n for n in op.inputs if n != consts[0])
            layer, reshape = _layer_of(graph, x, producers, consumers)
            if not isinstance(layer, LAYERS) or layer.activation != ops.Activation.NONE or layer.name in keep:
                continue
            if not _single_reader(graph, x, consumers) or graph.t(op.outputs[0]).shape != graph.t(x).shape:
                continue
            w = graph.t(layer.inputs[1]).data.astype(np.float64)
            channels = w.shape[3] if isinstance(layer, ops.DepthwiseConv2D) else w.shape[0]
            vec = _per_channel(graph.t(consts[0]).data, channels)
            if vec is None:
                continue
            bias = graph.t(layer.inputs[2]).data.astype(np.float64) if len(layer.inputs) > 2 else np.zeros(channels)
            if isinstance(op, ops.Mul):
                scale = vec.reshape((1, 1, 1, -1) if isinstance(layer, ops.DepthwiseConv2D) else
                                    (-1,) + (1,) * (w.ndim - 1))
                _replace_const(graph, layer, 1, w * scale, consumers)
                bias = bias * vec
            else:
                bias = bias + vec
            _replace_const(graph, layer, 2, bias, consumers)
            (reshape or layer).outputs = list(op.outputs)
            if reshape is not None and op.outputs[0] in graph.bn_stats:  # they describe the layer's output
                graph.bn_stats[layer.outputs[0]] = graph.bn_stats.pop(op.outputs[0])
            layer.activation = op.activation
            graph.ops.remove(op)
            graph.tensors.pop(x, None)
            folded.add(layer.name)
            changed = True
            break
    return folded


def affine_to_depthwise(graph: Graph, affines: dict[str, tuple[str, np.ndarray, np.ndarray]]) -> None:
    """Each x * scale + shift still in the graph, keyed by its output and given as (the Mul's output, then the
    BatchNormalization's beta and |gamma| in x's layout), becomes a 1x1 DepthwiseConv2D with the scale as weights
    and the shift as bias: over x itself when x is NHWC, else over x seen as [1, 1, rows, width], where width
    spans the axes from the channel axis on and the constants are repeated over it. bn_stats follow the conv."""
    producers = graph.producers()
    for out, (scaled, beta, gamma) in affines.items():
        add, mul = producers.get(out), producers.get(scaled)
        if not isinstance(add, ops.Add) or not isinstance(mul, ops.Mul):
            continue  # folded into the layer before it
        x = next(n for n in mul.inputs if not graph.t(n).is_const)
        scale, shift = (next(graph.t(n).data for n in op.inputs if graph.t(n).is_const) for op in (mul, add))
        shape = graph.t(x).shape
        varying = [a for a, d in enumerate(np.shape(scale)) if d != 1]
        width = int(np.prod(shape[varying[0] if varying else -1:]))
        rows = int(np.prod(shape)) // width

        def repeated(c: np.ndarray) -> np.ndarray:
            return np.broadcast_to(np.asarray(c, np.float32), shape).reshape(rows, width)[0].copy()

        def tensor(name: str, tshape, data=None) -> str:
            name = _unused(name, graph.tensors)
            graph.tensors[name] = Tensor(name, tshape, "float32", None, data)
            return name

        direct = len(shape) == 4 and width == shape[-1]  # NHWC already
        names = {op.name for op in graph.ops} - {mul.name, add.name}
        src = x if direct else tensor(f"{out}_rows", (1, 1, rows, width))
        conv = out if direct else tensor(f"{out}_conv", (1, 1, rows, width))
        w = tensor(f"{out}_bn_weights", (1, 1, 1, width), repeated(scale).reshape(1, 1, 1, width))
        b = tensor(f"{out}_bn_bias", (width,), repeated(shift))
        new = [ops.DepthwiseConv2D(mul.name, [src, w, b], [conv], activation=add.activation)]
        if not direct:
            new = [ops.Reshape(_unused(f"{mul.name}_rows", names), [x], [src])] + new + \
                  [ops.Reshape(_unused(f"{mul.name}_back", names), [conv], [out])]
        at = graph.ops.index(mul)
        graph.ops[at:at + 1] = new
        graph.ops.remove(add)  # remove_dead drops the old constants
        if out in graph.bn_stats:
            del graph.bn_stats[out]
            graph.bn_stats[conv] = (repeated(beta), repeated(gamma))


def fuse_activations(graph: Graph) -> None:
    changed = True
    while changed:
        changed = False
        producers, consumers = graph.producers(), graph.consumers()
        for op in graph.ops:
            act = _ACTIVATION.get(type(op))
            if act is None:
                continue
            x = op.inputs[0]
            if not _single_reader(graph, x, consumers):
                continue
            layer, reshape = producers.get(x), None
            if isinstance(layer, (ops.Reshape, ops.Squeeze)) and _single_reader(graph, layer.inputs[0], consumers):
                # layer -> reshape -> relu (core ATen's 3-D linear): the activation moves past the reshape
                reshape, layer = layer, producers.get(layer.inputs[0])
            # relu6(relu(y)) == relu6(y) and relu(relu(y)) == relu(y): a clamp can tighten, not loosen
            if not isinstance(layer, FUSES_INTO) or layer.activation not in (ops.Activation.NONE,
                                                                              ops.Activation.RELU):
                continue
            layer.activation = act
            (reshape or layer).outputs = list(op.outputs)
            graph.ops.remove(op)
            graph.tensors.pop(x, None)
            if x in graph.bn_stats:  # the statistics describe the layer, now named by its fused output
                graph.bn_stats[op.outputs[0]] = graph.bn_stats.pop(x)
            changed = True
            break


def remove_dead(graph: Graph) -> None:
    producers = graph.producers()
    live, stack = set(), list(graph.outputs)
    while stack:
        op = producers.get(stack.pop())
        if op is None or id(op) in live:
            continue
        live.add(id(op))
        stack.extend(op.inputs)
    graph.ops = [op for op in graph.ops if id(op) in live]
    used = set(graph.inputs) | set(graph.outputs)
    for op in graph.ops:
        used.update(op.inputs)
        used.update(op.outputs)
    graph.tensors = {k: v for k, v in graph.tensors.items() if k in used}
