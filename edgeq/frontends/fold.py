"""IR rewrites the ONNX/PyTorch frontends run after translation.

- per-channel Mul/Add by constants right after a Conv2D, DepthwiseConv2D or FullyConnected are
  folded into its weights and bias (BatchNormalization arrives as such a Mul+Add; MatMul+Add
  becomes a FullyConnected with bias the same way);
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


def _replace_const(graph: Graph, op: ops.Op, pos: int, data: np.ndarray, users: dict) -> None:
    """Give op its own copy of constant input `pos` holding data (other readers keep the old one)."""
    old = op.inputs[pos] if pos < len(op.inputs) else None
    if old is not None and len(users.get(old, [])) == 1:
        graph.tensors[old].data = data.astype(np.float32)
        return
    name = f"{op.name}_{'bias' if pos == 2 else 'weights'}_folded"
    while name in graph.tensors:
        name += "_"
    graph.tensors[name] = Tensor(name, data.shape, "float32", None, data.astype(np.float32))
    if old is None:
        op.inputs.append(name)
    else:
        op.inputs[pos] = name


def fold_affine(graph: Graph) -> set[str]:
    """Fold per-channel Mul/Add constants into the layer before them. Returns the folded layers."""
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
            layer = producers.get(x)
            if not isinstance(layer, LAYERS) or layer.activation != ops.Activation.NONE:
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
            layer.outputs = list(op.outputs)
            layer.activation = op.activation
            graph.ops.remove(op)
            graph.tensors.pop(x, None)
            folded.add(layer.name)
            changed = True
            break
    return folded


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
