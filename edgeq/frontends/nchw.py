"""Graphs of ONNX operators in NCHW layout into the NHWC graph IR: the shared half of the ONNX and
PyTorch (.pt2) frontends, which each turn their file into a `SourceGraph` of ONNX-semantics nodes.

Layout. The IR is NHWC and has no transpose, so layout is settled at import time:
- every value carries a permutation `perm` with IR tensor = transpose(ONNX value, perm); 4-D
  activations made by convolutions and pools are NHWC (perm 0,2,3,1), and weights, biases, axes,
  paddings and constant operands are transposed to match. A Transpose node only changes `perm`;
- flattening an NHWC tensor with H*W > 1 and C > 1 keeps the NHWC element order and records it
  (`order`); the FullyConnected that consumes it gets its weight columns permuted to match;
- the model's input keeps the user's NCHW layout by default. When C == 1 or H == W == 1 NCHW and
  NHWC are the same bytes and a free reshape converts it. Otherwise one Conv2D with one-hot weights
  (C*C MACs per pixel, exact also in int8) reorders the input to NHWC; `input_layout="nhwc"`
  (`--input-layout nhwc`) instead makes the graph input NHWC and drops that layer. Either is
  recorded in Graph.notes;
- a 4-D output that is not byte-identical in both layouts is left NHWC, with a note.

Import-time rewrites (recorded in Graph.notes where they change what the user sees):
- constant subgraphs (shape arithmetic, casts, transposed weights) are evaluated (constfold.py);
- BatchNormalization becomes Mul+Add with per-channel constants, which fold.py folds into the
  preceding Conv/Gemm (1-D or 2-D), keeping (beta, |gamma|) in Graph.bn_stats, or, after anything
  else, turns into a 1x1 depthwise convolution; Relu/Clip(0,6) after a layer becomes its fused activation;
- HardSigmoid is Add(+3 scaled) with fused RELU6 then Mul(1/6); Sub and Div by constants become
  Add and Mul; padding ONNX expresses and TFLite's SAME/VALID cannot becomes an explicit Pad
  (zero padding in max pools only where the input is known non-negative);
- QDQ models (QuantizeLinear/DequantizeLinear pairs) become int8 tensors with the pairs' scales
  and zero points, and int8 weights with theirs (qdq.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.frontends import constfold, fold, qdq
from edgeq.frontends.constfold import axes_of, flatten_shape, reshape_target, squeeze_shape, unsqueeze_shape
from edgeq.frontends.layout import NHWC, Val, flatten_order, identity, nontrivial, reshape_perm
from edgeq.ir import Graph, Quant, Tensor, ops
from edgeq.lowering.common import out_size, pad_before

RESHAPES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")
UNARY = {"Relu": ops.Relu, "Sigmoid": ops.Logistic, "Tanh": ops.Tanh, "HardSwish": ops.HardSwish}
TRANSLATED = sorted([
    "Conv", "Gemm", "MatMul", "BatchNormalization", "Relu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid",
    "Tanh", "LeakyRelu", "Add", "Sub", "Mul", "Div", "Concat", "MaxPool", "AveragePool", "GlobalAveragePool",
    "GlobalMaxPool", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Pad", "Softmax", "ReduceMean",
    "Identity", "Dropout", "Constant", "Shape", "Size", "QuantizeLinear", "DequantizeLinear",
    "Slice", "Split", "Gather", "Max", "Min", "Abs", "Neg", "ReduceMax", "ReduceSum", "PRelu", "DepthToSpace",
    "SpaceToDepth", "Resize", "Upsample", "ConvTranspose", "Tile", "Expand", "Exp", "Log", "Gelu",
    "LayerNormalization", "LSTM", "GRU",
])  # Conv takes 1-D convolutions ([N, C, L]) too
# Resize: (mode, coordinate transformation, nearest rounding) -> the TFLite op and its (align_corners,
# half_pixel_centers) that compute the same source positions
RESIZE_MODES = {
    ("linear", "align_corners", None): (ops.ResizeBilinear, True, False),
    ("linear", "asymmetric", None): (ops.ResizeBilinear, False, False),
    ("linear", "half_pixel", None): (ops.ResizeBilinear, False, True),
    ("linear", "pytorch_half_pixel", None): (ops.ResizeBilinear, False, True),
    ("nearest", "asymmetric", "floor"): (ops.ResizeNearestNeighbor, False, False),
    ("nearest", "align_corners", "round_prefer_ceil"): (ops.ResizeNearestNeighbor, True, False),
    ("nearest", "half_pixel", "round_prefer_ceil"): (ops.ResizeNearestNeighbor, False, True),
    ("nearest", "pytorch_half_pixel", "round_prefer_ceil"): (ops.ResizeNearestNeighbor, False, True),
}


@dataclass
class Node:
    """One operator with ONNX semantics; attributes are decoded to Python values and numpy arrays
    (Cast's `to` is a numpy dtype). An omitted optional input is ""."""

    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict = field(default_factory=dict)


@dataclass
class SourceGraph:
    name: str
    origin: str  # how messages name the file
    source_hash: str
    nodes: list[Node]  # topologically sorted
    inputs: list[tuple[str, tuple[int, ...], str]]  # name, shape, numpy dtype name
    outputs: list[str]
    consts: dict[str, np.ndarray]
    opset: int = 17
    notes: list[str] = field(default_factory=list)
    supported: list[str] | None = None  # operator names for the "Supported:" list, when not ONNX's


def _c_name(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z_]", "_", name).strip("_").lower()


class Importer:
    def __init__(self, src: SourceGraph, input_layout: str = "nchw"):
        if input_layout not in ("nchw", "nhwc"):
            raise EdgeqError(f"Unknown input layout '{input_layout}': use nchw or nhwc.")
        self.src = src
        self.input_layout = input_layout
        self.consts: dict[str, np.ndarray] = dict(src.consts)
        self.vals: dict[str, Val] = {}
        self.vals_in: dict[str, str] = {}  # graph input -> its IR tensor
        self.tensors: dict[str, Tensor] = {}
        self.ops: list[ops.Op] = []
        self.notes: list[str] = list(src.notes)
        self.bn_stats: dict[str, tuple] = {}
        self.bn_affine: dict[str, tuple] = {}  # BN output -> its Mul's output, beta and |gamma| in IR layout
        self.op_names: set[str] = set()
        self.node: Node | None = None
        self.node_index = 0
        # QDQ bookkeeping, used by qdq.py: quantization of activations (per IR tensor) and of the
        # int8/int32 constants DequantizeLinear turned into floats (per ONNX value), and which ONNX
        # constant each IR weight or bias came from.
        self.act_quant: dict[str, Quant] = {}
        self.const_quant: dict[str, tuple[np.ndarray, Quant]] = {}
        self.param_source: dict[str, str] = {}
        self.layout_ops: set[str] = set()  # ops that only reorder data (the input's NCHW -> NHWC)
        self.states: dict[str, Tensor] = {}  # recurrent state (Graph.states)

    # --- driver ---------------------------------------------------------------------------------

    def run(self) -> Graph:
        live = self._live_nodes()
        self.live_inputs = {name for _, node in live for name in node.inputs} | set(self.src.outputs)
        self._check_ops(live)
        self._inputs(live)
        for index, node in live:
            self.node, self.node_index = node, index
            self._translate(node)
        self.node = None
        outputs = [self._output(name) for name in self.src.outputs]
        inputs = [self.vals_in[name] for name, _, _ in self.src.inputs]
        graph = Graph(self.src.name, self.tensors, self.ops, inputs, outputs, self.src.source_hash, self.notes,
                      states=self.states)
        graph.bn_stats = dict(self.bn_stats)
        folded = fold.fold_affine(graph, self.layout_ops)
        fold.affine_to_depthwise(graph, self.bn_affine)
        fold.fuse_activations(graph)
        fold.remove_dead(graph)
        if self.act_quant:
            qdq.make_integer(graph, self, folded)
        # BN statistics only where BN disappeared into a layer (keyed by that layer's output)
        layers = {op.outputs[0] for op in graph.ops if isinstance(op, (ops.Conv2D, ops.DepthwiseConv2D,
                                                                        ops.FullyConnected))}
        graph.bn_stats = {k: v for k, v in graph.bn_stats.items() if k in layers}
        return graph

    def _live_nodes(self) -> list[tuple[int, Node]]:
        producer = {}
        for i, node in enumerate(self.src.nodes):
            for o in node.outputs:
                producer[o] = i
        live, stack = set(), list(self.src.outputs)
        while stack:
            i = producer.get(stack.pop())
            if i is None or i in live:
                continue
            live.add(i)
            stack.extend(n for n in self.src.nodes[i].inputs if n)
        return [(i, self.src.nodes[i]) for i in sorted(live)]

    def _check_ops(self, live: list[tuple[int, Node]]) -> None:
        """Every operator edgeq cannot translate, in one message. Ops only the constant evaluator
        knows (Gather, Cast, ...) are fine when all their inputs are constant."""
        known = set(self.consts)
        bad = []
        for i, node in live:
            ins = [n for n in node.inputs if n]
            const = node.op == "Constant" or node.op in ("Shape", "Size") or (
                node.op in constfold.EVALUATORS and all(n in known for n in ins))
            if const:
                known.update(node.outputs)
            elif node.op not in TRANSLATED:
                bad.append(f"{self._node_label(node, i)} ({node.op})")
        if bad:
            supported = self.src.supported or [t for t in TRANSLATED if t not in ("Constant", "Shape", "Size")]
            raise EdgeqError(
                f"{self.src.origin} uses {len(bad)} operator(s) edgeq does not support: {', '.join(bad)}. "
                f"Supported: {', '.join(supported)}, and constant shape arithmetic. Replace or remove those layers "
                "before exporting.")

    @staticmethod
    def _node_label(node: Node, index: int) -> str:
        return f"'{node.name}'" if node.name else f"#{index}"

    def fail(self, message: str) -> EdgeqError:
        node = self.node
        where = f"{self.src.origin}: node {self._node_label(node, self.node_index)} ({node.op})" if node else \
            self.src.origin
        return EdgeqError(f"{where}: {message}")

    def _inputs(self, live: list[tuple[int, Node]]) -> None:
        consumers: dict[str, list[str]] = {}
        for _, node in live:
            for n in node.inputs:
                consumers.setdefault(n, []).append(node.op)
        for name, shape, dtype in self.src.inputs:
            if dtype != "float32":
                raise EdgeqError(f"{self.src.origin}: input '{name}' is {dtype}; edgeq compiles models with float32 "
                                 "inputs (quantized inside the model or by edgeq).")
            rank = len(shape)
            if rank == 4 and self.input_layout == "nhwc":
                val = Val(name, shape, NHWC)
                self.notes.append(f"input '{name}' is NHWC {val.ir_shape} (the model's NCHW {shape} transposed), "
                                  "as --input-layout nhwc asks")
            else:
                val = Val(name, shape, identity(rank))
            self.tensors[name] = Tensor(name, val.ir_shape, "float32")
            self.vals_in[name] = name
            self.vals[name] = val
            # convert a 4-D NCHW input once, up front, unless it is only reshaped (an MLP on images) or
            # transposed (an NHWC input the model permutes itself: that Transpose makes it NHWC for free)
            if rank == 4 and val.perm != NHWC and any(c not in RESHAPES + ("Transpose",)
                                                      for c in consumers.get(name, [])):
                self.vals[name] = self._input_to_nhwc(val)

    def _input_to_nhwc(self, val: Val) -> Val:
        n, c, h, w = val.shape
        out = Val(val.tensor, val.shape, NHWC)
        if nontrivial(val.shape, val.perm) == nontrivial(val.shape, NHWC):
            out.tensor = self._emit(ops.Reshape, [val.tensor], out.ir_shape, f"{val.tensor}_nhwc")
            self.notes.append(f"input '{val.tensor}' is NCHW {val.shape}; with C == 1 or H == W == 1 that is "
                              "already NHWC memory, so a free reshape converts it")
            return out
        # NCHW bytes seen as NHWC [N, C, H*W, 1]; a CxC one-hot kernel over the C "rows" writes
        # channel c of every pixel, so the result is [N, 1, H*W, C] = NHWC.
        rows = self._emit(ops.Reshape, [val.tensor], (n, c, h * w, 1), f"{val.tensor}_rows")
        eye = np.eye(c, dtype=np.float32).reshape(c, c, 1, 1)
        wname = self._const(eye, f"{val.tensor}_to_nhwc_weights")
        conv = self._emit(ops.Conv2D, [rows, wname], (n, 1, h * w, c), f"{val.tensor}_to_nhwc")
        self.layout_ops.add(self.ops[-1].name)
        out.tensor = self._emit(ops.Reshape, [conv], out.ir_shape, f"{val.tensor}_nhwc")
        self.notes.append(f"input '{val.tensor}' keeps the model's NCHW layout {val.shape}; a one-hot Conv2D "
                          f"({c * c * h * w:,} MACs) reorders it to NHWC. Build with --input-layout nhwc to give "
                          "NHWC input and drop it")
        return out

    def _output(self, name: str) -> str:
        if name in self.consts or name not in self.vals:
            raise EdgeqError(f"{self.src.origin}: output '{name}' is a constant; there is nothing to compute.")
        val = self.vals[name]
        if val.perm == identity(len(val.shape)) and val.order is None:
            return val.tensor
        if val.order is None and nontrivial(val.shape, val.perm) == [a for a in range(len(val.shape))
                                                                         if val.shape[a] != 1]:
            return self._emit(ops.Reshape, [val.tensor], val.shape, f"{name}_out")
        if val.order is not None:
            self.notes.append(f"output '{name}' keeps the NHWC flatten order (the model's is NCHW's)")
        else:
            self.notes.append(f"output '{name}' is {val.ir_shape} in NHWC layout (the model's is NCHW {val.shape})")
        return val.tensor

    # --- IR construction ------------------------------------------------------------------------

    def _fresh(self, name: str) -> str:
        name = name or "t"
        if name not in self.tensors:
            return name
        k = 1
        while f"{name}_{k}" in self.tensors:
            k += 1
        return f"{name}_{k}"

    def _op_name(self, out: str) -> str:
        if self.node is None:  # ops made for the graph's input are named after their output
            base = _c_name(out) or "input"
        else:
            # the op computing the node's output takes the node's name; helpers add their role
            base = _c_name(self.node.name) or f"{self.node.op.lower()}_{self.node_index}"
            main = self.node.outputs[0] if self.node.outputs else ""
            if out.startswith(main + "_") and out not in self.node.outputs:
                base = f"{base}_{_c_name(out[len(main) + 1:])}"
        name, k = base, 1
        while name in self.op_names:
            name, k = f"{base}_{k}", k + 1
        self.op_names.add(name)
        return name

    def _emit(self, cls, inputs: list[str], ir_shape, out_name: str | None = None, **attrs) -> str:
        out = self._fresh(out_name or (self.node.outputs[0] if self.node else "t"))
        self.tensors[out] = Tensor(out, tuple(ir_shape), "float32")
        self.ops.append(cls(self._op_name(out), list(inputs), [out], **attrs))
        return out

    def _const(self, data: np.ndarray, name: str, source: str | None = None) -> str:
        name = self._fresh(name)
        self.tensors[name] = Tensor(name, np.shape(data), "float32", None, np.asarray(data, dtype=np.float32))
        if source is not None:
            self.param_source[name] = source
        return name

    def _set(self, onnx_name: str, tensor: str, shape, perm, order=None, nonneg=False) -> Val:
        val = Val(tensor, tuple(int(d) for d in shape), tuple(perm), order, nonneg)
        self.vals[onnx_name] = val
        return val

    # --- operands -------------------------------------------------------------------------------

    def _is_const(self, name: str) -> bool:
        return name in self.consts

    def _cval(self, pos: int, what: str, optional: bool = False) -> np.ndarray | None:
        ins = self.node.inputs
        if pos >= len(ins) or not ins[pos]:
            if optional:
                return None
            raise self.fail(f"the {what} (input {pos}) is missing.")
        if ins[pos] not in self.consts:
            raise self.fail(f"the {what} (input {pos}) must be a constant for edgeq; here it is computed.")
        return self.consts[ins[pos]]

    def _act(self, pos: int = 0) -> Val:
        name = self.node.inputs[pos]
        if name not in self.vals:
            raise self.fail(f"input '{name}' is not produced before this node (the graph is not sorted).")
        return self.vals[name]

    def _as_perm(self, val: Val, perm: tuple[int, ...], why: str) -> str:
        """The IR tensor of val laid out as `perm`: itself, a free reshape when that is the same memory, else a
        TRANSPOSE (a GATHER of the columns for a flattened NHWC tensor) that moves the bytes at run time."""
        name = f"{val.tensor}_as_{'nhwc' if perm == NHWC else 'plain'}"
        if val.perm == perm and val.order is None:
            return val.tensor
        if val.order is None and nontrivial(val.shape, val.perm) == nontrivial(val.shape, perm):
            return self._emit(ops.Reshape, [val.tensor], tuple(val.shape[p] for p in perm), name)
        if val.order is not None:  # rank 2, IR column j holds column order[j]: take them back in order
            plain = self._emit(ops.Gather, [val.tensor], val.shape, f"{val.tensor}_columns", axis=1,
                               indices=tuple(int(i) for i in np.argsort(val.order)), indices_shape=(val.shape[1],))
            val = Val(plain, val.shape, identity(2))
            if perm == val.perm:
                return plain
        return self._emit(ops.Transpose, [val.tensor], tuple(val.shape[p] for p in perm), name,
                          perm=tuple(val.perm.index(p) for p in perm))

    def _nhwc(self, val: Val) -> str:
        if len(val.shape) != 4:
            raise self.fail(f"expects a 4-D NCHW input, got shape {val.shape}.")
        return self._as_perm(val, NHWC, "this operator runs in NHWC")

    def _plain(self, val: Val) -> str:
        return self._as_perm(val, identity(len(val.shape)), "this operator needs its input in the model's layout")

    def _layout_const(self, c: np.ndarray, val: Val) -> np.ndarray:
        """A constant operand broadcast against val, in val's IR layout."""
        c = np.asarray(c, dtype=np.float32)
        rank = len(val.shape)
        if c.ndim > rank:
            raise self.fail(f"a constant of shape {c.shape} broadcasts the activation {val.shape} to more dimensions.")
        c = c.reshape((1,) * (rank - c.ndim) + c.shape).transpose(val.perm)
        if val.order is not None and c.shape[-1] > 1:
            c = c[..., val.order]
        return c

    # --- translation ----------------------------------------------------------------------------

    def _translate(self, node: Node) -> None:
        ins = [n for n in node.inputs if n]
        if node.op == "Constant":
            self.consts[node.outputs[0]] = self._constant_value(node)
            return
        if node.op in ("Shape", "Size") and node.inputs[0] in self.vals:
            shape = self.vals[node.inputs[0]].shape
            self.consts[node.outputs[0]] = constfold.evaluate(node.op, [np.broadcast_to(np.float32(0), shape)],
                                                              node.attrs)[0]
            return
        if node.op in constfold.EVALUATORS and all(n in self.consts for n in ins):
            args = [self.consts[n] if n else None for n in node.inputs]
            try:
                results = constfold.evaluate(node.op, args, node.attrs)
            except Exception as e:  # numpy's own message says what did not fit
                raise self.fail(f"evaluating it on its constant inputs failed: {e}.") from None
            for name, value in zip(node.outputs, results):
                self.consts[name] = value
            if node.op == "DequantizeLinear":
                self._record_const_quant(node)
            return
        getattr(self, f"_op_{node.op}")(node)

    def _constant_value(self, node: Node) -> np.ndarray:
        a = node.attrs
        for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
            if key in a:
                dtype = np.float32 if "float" in key else (np.int64 if "int" in key else None)
                return np.asarray(a[key], dtype=dtype)
        raise self.fail("a Constant without a dense value (sparse or string constants are not supported).")

    def _op_Identity(self, n: Node) -> None:
        self.vals[n.outputs[0]] = self._act()

    def _op_Dropout(self, n: Node) -> None:
        self.vals[n.outputs[0]] = self._act()  # inference: the identity
        if len(n.outputs) > 1 and n.outputs[1]:
            self.consts[n.outputs[1]] = np.ones(self._act().shape, dtype=bool)

    # convolution and dense layers

    def _spatial(self, n: Node, in_hw, kernel, strides, dilations, ceil_mode=False):
        """ONNX pads (begin h, begin w, end h, end w) and output size of a conv or pool window."""
        a = n.attrs
        auto = a.get("auto_pad", "NOTSET")
        eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            outs = [-(-i // s) for i, s in zip(in_hw, strides)]
            total = [max(0, (o - 1) * s + e - i) for o, s, e, i in zip(outs, strides, eff, in_hw)]
            before = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
            return before, [t - b for t, b in zip(total, before)], outs
        pads = [int(p) for p in a.get("pads", [0] * 4)] if auto in ("NOTSET", "") else [0] * 4
        if any(p < 0 for p in pads):
            raise self.fail(f"negative pads {pads} are not supported.")
        before, after = pads[:2], pads[2:]
        outs = []
        for i, b, e, k, s in zip(in_hw, before, after, eff, strides):
            span = i + b + e - k
            o = (-(-span // s) if ceil_mode else span // s) + 1
            if ceil_mode and (o - 1) * s >= i + b:  # PyTorch's rule: no window starts in the end padding
                o -= 1
            outs.append(o)
        if any(o < 1 for o in outs):
            raise self.fail(f"the window {kernel} does not fit the input {tuple(in_hw)}.")
        return before, after, outs

    @staticmethod
    def _tflite_padding(in_hw, kernel, strides, dilations, before, outs) -> list[ops.Padding]:
        """The TFLite paddings that place the same windows as ONNX's explicit pads."""
        modes = []
        for mode in (ops.Padding.VALID, ops.Padding.SAME):
            if all(out_size(mode, i, k, s, d) == o and pad_before(mode, i, k, s, d) == b
                   for i, k, s, d, b, o in zip(in_hw, kernel, strides, dilations, before, outs)):
                modes.append(mode)
        return modes

    def _pad_nhwc(self, x: str, before, after, nhwc_shape, name: str) -> tuple[str, tuple]:
        shape = (nhwc_shape[0], nhwc_shape[1] + before[0] + after[0], nhwc_shape[2] + before[1] + after[1],
                 nhwc_shape[3])
        paddings = ((0, 0), (before[0], after[0]), (before[1], after[1]), (0, 0))
        return self._emit(ops.Pad, [x], shape, name, paddings=paddings), shape

    def _op_Conv(self, n: Node) -> None:
        x = self._act()
        w = self._cval(1, "weight")
        b = self._cval(2, "bias", optional=True)
        if len(x.shape) == 3 and w.ndim == 3:
            return self._conv1d(n, x, w)
        if len(x.shape) != 4 or w.ndim != 4:
            raise self.fail(f"only 2-D convolutions are supported (input {x.shape}, weight {w.shape}).")
        a = n.attrs
        group = int(a.get("group", 1))
        strides = [int(s) for s in a.get("strides", [1, 1])]
        dilations = [int(d) for d in a.get("dilations", [1, 1])]
        kernel = list(w.shape[2:])
        nb, ci, h, wd = x.shape
        co = w.shape[0]
        if w.shape[1] * group != ci:
            raise self.fail(f"weight {w.shape} with group {group} does not match {ci} input channels.")
        before, after, (oh, ow) = self._spatial(n, (h, wd), kernel, strides, dilations)
        src = self._nhwc(x)
        modes = self._tflite_padding((h, wd), kernel, strides, dilations, before, (oh, ow))
        padding = modes[0] if modes else ops.Padding.VALID
        if not modes:  # zero padding is what a convolution pads with anyway
            src, _ = self._pad_nhwc(src, before, after, (nb, h, wd, ci), f"{n.outputs[0]}_pad")
        base = n.outputs[0]
        common = dict(stride_h=strides[0], stride_w=strides[1], dilation_h=dilations[0], dilation_w=dilations[1],
                      padding=padding)
        if group > 1 and group == ci and w.shape[1] == 1:
            wname = self._const(w[:, 0].transpose(1, 2, 0)[None], f"{base}_weights", n.inputs[1])
            cls, extra = ops.DepthwiseConv2D, dict(depth_multiplier=co // ci)
        else:
            wname = self._const(w.transpose(0, 2, 3, 1), f"{base}_weights", n.inputs[1])
            cls, extra = ops.Conv2D, {}
        inputs = [src, wname] + ([self._const(b.reshape(-1), f"{base}_bias", n.inputs[2])] if b is not None else [])
        out = self._emit(cls, inputs, (nb, oh, ow, co), **common, **extra)
        self._set(n.outputs[0], out, (nb, co, oh, ow), NHWC)

    def _conv1d(self, n: Node, x: Val, w: np.ndarray) -> None:
        """A 1-D convolution [N, C, L] as the 2-D one over [N, C, 1, L], reshaped back."""
        nb, c, length = x.shape
        perm4 = reshape_perm(x.shape, x.perm, (nb, c, 1, length))
        if perm4 is None:
            x, perm4 = Val(self._plain(x), x.shape, identity(3), None, x.nonneg), identity(4)
        src = self._emit(ops.Reshape, [x.tensor], tuple((nb, c, 1, length)[p] for p in perm4),
                         f"{n.outputs[0]}_2d_input")
        name = f"{n.outputs[0]}#2d"
        self._set(f"{name}_in", src, (nb, c, 1, length), perm4, None, x.nonneg)
        self.consts[f"{name}_w"] = w[:, :, None, :]
        a = dict(n.attrs)
        for key, pad in (("strides", 1), ("dilations", 1), ("kernel_shape", 1)):
            if key in a:
                a[key] = [pad] + [int(v) for v in a[key]]
        if "pads" in a:
            a["pads"] = [0, int(a["pads"][0]), 0, int(a["pads"][1])]
        inputs = [f"{name}_in", f"{name}_w"] + list(n.inputs[2:3])
        self.node = Node(n.name, "Conv", inputs, [name], a)  # the operands _op_Conv reads
        try:
            self._op_Conv(self.node)
        finally:
            self.node = n
        y = self.vals[name]
        self._reshape_to(n, y, (nb, y.shape[1], y.shape[3]))

    def _dense(self, n: Node, x: Val, weight: np.ndarray, bias: np.ndarray | None, weight_src: str,
               bias_src: str | None) -> str:
        """FullyConnected over the last axis; weight is [out, in] in ONNX column order."""
        if x.order is not None:
            weight = weight[:, x.order]
            src = x.tensor
        else:
            src = self._plain(x)
        base = n.outputs[0]
        inputs = [src, self._const(weight, f"{base}_weights", weight_src)]
        if bias is not None:
            inputs.append(self._const(np.broadcast_to(bias, (weight.shape[0],)).astype(np.float32),
                                      f"{base}_bias", bias_src))
        out_shape = x.shape[:-1] + (weight.shape[0],)
        out = self._emit(ops.FullyConnected, inputs, out_shape, keep_num_dims=len(x.shape) > 2)
        self._set(n.outputs[0], out, out_shape, identity(len(out_shape)))
        return out

    def _op_Gemm(self, n: Node) -> None:
        a = n.attrs
        if self._is_const(n.inputs[0]) or a.get("transA", 0):
            raise self.fail("only Gemm of a computed matrix (not transposed) by a constant one is supported.")
        x = self._act()
        if len(x.shape) != 2:
            raise self.fail(f"Gemm needs a 2-D input, got {x.shape}.")
        b = self._cval(1, "weight matrix B")
        w = (b if a.get("transB", 0) else b.T) * np.float32(a.get("alpha", 1.0))
        bias, bias_src, c_val = None, None, None
        if len(n.inputs) > 2 and n.inputs[2]:
            if self._is_const(n.inputs[2]):
                c = self.consts[n.inputs[2]] * np.float32(a.get("beta", 1.0))
                if c.size not in (1, w.shape[0]):
                    raise self.fail(f"the bias C of shape {c.shape} is not one value per output.")
                bias, bias_src = c.reshape(-1), n.inputs[2]
            else:
                c_val = self._act(2)
        self._dense(n, x, w.astype(np.float32), bias, n.inputs[1], bias_src)
        if c_val is not None:
            if a.get("beta", 1.0) != 1.0:
                raise self.fail("a computed C with beta != 1 is not supported.")
            self._binary_vals(n, ops.Add, self.vals[n.outputs[0]], c_val)

    def _op_MatMul(self, n: Node) -> None:
        if self._is_const(n.inputs[0]):
            raise self.fail("MatMul of a constant by a computed tensor is not supported; write it as the computed "
                            "tensor times a constant (transposed).")
        if not self._is_const(n.inputs[1]):  # two computed tensors: BATCH_MATMUL in the model's layout
            x, y = self._act(0), self._act(1)
            if len(x.shape) < 2 or len(y.shape) < 2:
                raise self.fail(f"MatMul of shapes {x.shape} and {y.shape}; edgeq needs both of rank 2 or more.")
            out_shape = (*np.broadcast_shapes(x.shape[:-2], y.shape[:-2]), x.shape[-2], y.shape[-1])
            out = self._emit(ops.BatchMatMul, [self._plain(x), self._plain(y)], out_shape)
            self._set(n.outputs[0], out, out_shape, identity(len(out_shape)))
            return
        b = self.consts[n.inputs[1]]
        if b.ndim != 2:
            raise self.fail(f"the constant matrix must be 2-D, got {b.shape}.")
        self._dense(n, self._act(), np.ascontiguousarray(b.T).astype(np.float32), None, n.inputs[1], None)

    def _op_BatchNormalization(self, n: Node) -> None:
        x = self._act()
        if n.attrs.get("training_mode", 0) or any(o for o in n.outputs[1:]):
            raise self.fail("BatchNormalization in training mode; export the model in eval mode.")
        gamma, beta, mean, var = (self._cval(i, what) for i, what in
                                  ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")))
        eps = float(n.attrs.get("epsilon", 1e-5))
        scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
        shift = beta.astype(np.float64) - mean.astype(np.float64) * scale
        c = x.shape[1]
        per_channel = (1, c) + (1,) * (len(x.shape) - 2)
        laid = lambda v: self._layout_const(np.asarray(v).reshape(per_channel), x)  # noqa: E731
        m = self._emit(ops.Mul, [x.tensor, self._const(laid(scale), f"{n.outputs[0]}_scale")], x.ir_shape,
                       f"{n.outputs[0]}_scaled")
        out = self._emit(ops.Add, [m, self._const(laid(shift), f"{n.outputs[0]}_shift")], x.ir_shape)
        self.bn_stats[out] = (beta.astype(np.float32).reshape(-1), np.abs(gamma).astype(np.float32).reshape(-1))
        self.bn_affine[out] = (m, laid(beta), laid(np.abs(gamma)))
        self._set(n.outputs[0], out, x.shape, x.perm, x.order)

    # element-wise

    def _unary(self, n: Node, cls, nonneg=False, **attrs) -> None:
        x = self._act()
        out = self._emit(cls, [x.tensor], x.ir_shape, **attrs)
        self._set(n.outputs[0], out, x.shape, x.perm, x.order, nonneg)

    def _op_Relu(self, n):
        self._unary(n, ops.Relu, nonneg=True)

    def _op_Sigmoid(self, n):
        self._unary(n, ops.Logistic, nonneg=True)

    def _op_Tanh(self, n):
        self._unary(n, ops.Tanh)

    def _op_HardSwish(self, n):
        self._unary(n, ops.HardSwish)

    def _op_LeakyRelu(self, n):
        self._unary(n, ops.LeakyRelu, alpha=float(n.attrs.get("alpha", 0.01)))

    def _op_Clip(self, n: Node) -> None:
        lo = self._cval(1, "minimum", optional=True) if len(n.inputs) > 1 else n.attrs.get("min")
        hi = self._cval(2, "maximum", optional=True) if len(n.inputs) > 2 else n.attrs.get("max")
        lo = -np.inf if lo is None else float(np.asarray(lo).reshape(-1)[0])
        hi = np.inf if hi is None else float(np.asarray(hi).reshape(-1)[0])
        if self._act().nonneg and lo <= 0.0:  # core ATen splits relu6 into clamp(min=0), clamp(max=6)
            lo = 0.0
        if lo == 0.0 and hi == 6.0:
            self._unary(n, ops.Relu6, nonneg=True)
        elif lo == 0.0 and hi == np.inf:
            self._unary(n, ops.Relu, nonneg=True)
        elif (lo == -np.inf or (lo == 0.0 and self._act().nonneg)) and hi == np.inf:
            self.vals[n.outputs[0]] = self._act()
        else:
            raise self.fail(f"Clip to [{lo:g}, {hi:g}]; edgeq supports Clip to [0, 6] (ReLU6) and [0, inf) (ReLU).")

    def _op_HardSigmoid(self, n: Node) -> None:
        # clip(a*x + b, 0, 1) == relu6(6a*x + 6b) / 6: a Mul (often folded), an Add with fused RELU6, a Mul
        x = self._act()
        alpha, beta = float(n.attrs.get("alpha", 0.2)), float(n.attrs.get("beta", 0.5))
        t, base = x.tensor, n.outputs[0]
        if abs(6 * alpha - 1.0) > 1e-6:  # PyTorch's 1/6 arrives as a float32
            t = self._emit(ops.Mul, [t, self._const(np.full((1,), 6 * alpha), f"{base}_a")], x.ir_shape, f"{base}_ax")
        t = self._emit(ops.Add, [t, self._const(np.full((1,), 6 * beta), f"{base}_b")], x.ir_shape, f"{base}_relu6",
                       activation=ops.Activation.RELU6)
        out = self._emit(ops.Mul, [t, self._const(np.full((1,), 1 / 6), f"{base}_sixth")], x.ir_shape)
        self._set(base, out, x.shape, x.perm, x.order, nonneg=True)

    def _binary(self, n: Node, kind: str) -> None:
        a_const, b_const = (self._is_const(i) for i in n.inputs[:2])
        if a_const and kind in ("Sub", "Div"):
            if kind == "Div":
                raise self.fail("dividing a constant by a computed tensor is not supported.")
            # c - x == (-1 * x) + c
            x = self._act(1)
            neg = self._emit(ops.Mul, [x.tensor, self._const(np.full((1,), -1.0), f"{n.outputs[0]}_minus1")],
                             x.ir_shape, f"{n.outputs[0]}_neg")
            x = Val(neg, x.shape, x.perm, x.order)
            return self._binary_const(n, ops.Add, x, self.consts[n.inputs[0]], n.inputs[0])
        if a_const or b_const:
            x = self._act(1 if a_const else 0)
            cname = n.inputs[0 if a_const else 1]
            c = self.consts[cname]
            if kind == "Sub":
                c = -c
            if kind == "Div":
                c = 1.0 / c.astype(np.float64)
            return self._binary_const(n, ops.Add if kind in ("Add", "Sub") else ops.Mul, x, c,
                                      cname if kind in ("Add", "Mul") else None)
        if kind == "Div":
            raise self.fail("dividing two computed tensors is not supported.")
        self._binary_vals(n, {"Add": ops.Add, "Sub": ops.Sub, "Mul": ops.Mul}[kind], self._act(0), self._act(1))

    def _binary_const(self, n: Node, cls, x: Val, c: np.ndarray, source: str | None = None) -> None:
        out_shape = tuple(np.broadcast_shapes(x.shape, np.shape(c)))
        if out_shape != x.shape:
            raise self.fail(f"the constant of shape {np.shape(c)} broadcasts the computed tensor {x.shape} to "
                            f"{out_shape}; edgeq needs the computed operand to have the output's shape.")
        cir = self._layout_const(c, x)
        cname = self._const(cir.reshape(1) if cir.size == 1 else cir, f"{n.outputs[0]}_const", source)
        out = self._emit(cls, [x.tensor, cname], x.ir_shape)
        nonneg = x.nonneg and bool((np.asarray(c) >= 0).all())
        self._set(n.outputs[0], out, x.shape, x.perm, x.order, nonneg)

    def _binary_vals(self, n: Node, cls, x: Val, y: Val) -> None:
        out_shape = tuple(np.broadcast_shapes(x.shape, y.shape))
        same = len(x.shape) == len(y.shape) and x.perm == y.perm and (
            (x.order is None and y.order is None) or
            (x.order is not None and y.order is not None and np.array_equal(x.order, y.order)))
        if same:
            xs, ys, perm, order = x.tensor, y.tensor, x.perm, x.order
        else:
            rank = len(out_shape)
            if len(x.shape) == rank == len(y.shape) and rank == 4:
                xs, ys, perm, order = self._nhwc(x), self._nhwc(y), NHWC, None
            else:
                xs, ys = self._plain(x), self._plain(y)
                perm, order = identity(rank), None
                # lower-rank operands broadcast from the right in both numpy and the IR
        ir_shape = tuple(out_shape[p] for p in perm)
        out = self._emit(cls, [xs, ys], ir_shape)
        self._set(n.outputs[0], out, out_shape, perm, order, x.nonneg and y.nonneg and cls is not ops.Sub)

    def _op_Add(self, n):
        self._binary(n, "Add")

    def _op_Sub(self, n):
        self._binary(n, "Sub")

    def _op_Mul(self, n):
        self._binary(n, "Mul")

    def _op_Div(self, n):
        self._binary(n, "Div")

    def _op_Concat(self, n: Node) -> None:
        vals = [self.vals.get(i) for i in n.inputs]
        ref = next(v for v in vals if v is not None)
        rank = len(ref.shape)
        axis = int(n.attrs.get("axis", 0)) % rank
        perm = ref.perm
        names, shapes = [], []
        for name, v in zip(n.inputs, vals):
            if v is None:
                c = self.consts[name].astype(np.float32)
                names.append(self._const(c.transpose(perm), f"{n.outputs[0]}_part"))
                shapes.append(c.shape)
            else:
                names.append(self._as_perm(v, perm, "Concat joins its inputs in one layout"))
                shapes.append(v.shape)
        out_shape = list(shapes[0])
        out_shape[axis] = sum(s[axis] for s in shapes)
        ir_shape = tuple(out_shape[p] for p in perm)
        out = self._emit(ops.Concatenation, names, ir_shape, axis=perm.index(axis))
        self._set(n.outputs[0], out, out_shape, perm, None, all(v is not None and v.nonneg for v in vals))

    def _op_Softmax(self, n: Node) -> None:
        x = self._act()
        rank = len(x.shape)
        axis = int(n.attrs.get("axis", -1 if self.src.opset >= 13 else 1)) % rank
        if self.src.opset < 13 and any(d != 1 for d in x.shape[axis + 1:]):
            raise self.fail("Softmax (opset < 13) over several flattened axes is not supported.")
        # edgeq's softmax runs over the last IR axis: that must be the softmax axis
        perm = x.perm if x.perm[-1] == axis else tuple([p for p in x.perm if p != axis] + [axis])
        src = self._as_perm(x, perm, f"Softmax over axis {axis} of {x.shape} needs that axis last")
        out = self._emit(ops.Softmax, [src], tuple(x.shape[p] for p in perm))
        # a softmax is the same function of any ordering of its inputs, so a flatten order carries over
        self._set(n.outputs[0], out, x.shape, perm, x.order, nonneg=True)

    # pooling and reductions

    def _op_GlobalAveragePool(self, n: Node) -> None:
        x = self._act()
        src = self._nhwc(x)
        nb, c = x.shape[:2]
        out = self._emit(ops.Mean, [src], (nb, 1, 1, c), axes=(1, 2), keep_dims=True)
        self._set(n.outputs[0], out, (nb, c, 1, 1), NHWC, nonneg=x.nonneg)

    def _op_GlobalMaxPool(self, n: Node) -> None:
        x = self._act()
        src = self._nhwc(x)
        nb, c, h, w = x.shape
        out = self._emit(ops.MaxPool2D, [src], (nb, 1, 1, c), filter_h=h, filter_w=w, stride_h=1, stride_w=1)
        self._set(n.outputs[0], out, (nb, c, 1, 1), NHWC, nonneg=x.nonneg)

    def _op_MaxPool(self, n: Node) -> None:
        self._pool(n, ops.MaxPool2D)

    def _op_AveragePool(self, n: Node) -> None:
        self._pool(n, ops.AveragePool2D)

    def _pool(self, n: Node, cls) -> None:
        x = self._act()
        if len(x.shape) != 4:
            raise self.fail(f"only 2-D pooling is supported (input {x.shape}).")
        if len(n.outputs) > 1 and n.outputs[1]:
            raise self.fail("MaxPool's indices output is not supported.")
        a = n.attrs
        kernel = [int(k) for k in a["kernel_shape"]]
        strides = [int(s) for s in a.get("strides", [1, 1])]
        if any(int(d) != 1 for d in a.get("dilations", [1, 1])):
            raise self.fail("dilated pooling is not supported.")
        ceil_mode = bool(a.get("ceil_mode", 0))
        nb, c, h, w = x.shape
        before, after, (oh, ow) = self._spatial(n, (h, w), kernel, strides, [1, 1], ceil_mode)
        src = self._nhwc(x)
        nhwc_shape = (nb, h, w, c)
        modes = self._tflite_padding((h, w), kernel, strides, [1, 1], before, (oh, ow))
        include_pad = cls is ops.AveragePool2D and bool(a.get("count_include_pad", 0)) and any(before + after)
        window = dict(filter_h=kernel[0], filter_w=kernel[1], stride_h=strides[0], stride_w=strides[1])
        # right padding the windows actually reach (ceil_mode may reach past the given pads)
        reach = [max(0, (o - 1) * s + k - i - b) for o, s, k, i, b in zip((oh, ow), strides, kernel, (h, w), before)]
        correction = None
        if ops.Padding.VALID in modes:
            padding = ops.Padding.VALID
        elif ops.Padding.SAME in modes and not include_pad:
            # TFLite's SAME windows skip the padding: max ignores it, the average divides by the real count
            padding = ops.Padding.SAME
        else:
            if cls is ops.MaxPool2D and not x.nonneg:
                raise self.fail(f"MaxPool with pads {before + after} that TFLite's SAME/VALID cannot express, on an "
                                "input that may be negative (zero padding would change the maximum).")
            if include_pad and any(r > a for r, a in zip(reach, after)):
                raise self.fail("AveragePool with count_include_pad and ceil_mode windows past the padding is not "
                                "supported.")
            if cls is ops.AveragePool2D and not include_pad:
                # the padded VALID pool divides by the full window; rescale to the count of real inputs
                counts = [np.array([min(o * s - b + k, i) - max(o * s - b, 0) for o in range(out)])
                          for out, s, k, i, b in zip((oh, ow), strides, kernel, (h, w), before)]
                correction = (kernel[0] * kernel[1] / np.outer(counts[0], counts[1])).reshape(1, oh, ow, 1)
            src, nhwc_shape = self._pad_nhwc(src, before, reach, nhwc_shape, f"{n.outputs[0]}_pad")
            padding = ops.Padding.VALID
            self.notes.append(f"{self._node_label(n, self.node_index)}: pool padding made explicit (Pad + VALID)")
        out = self._emit(cls, [src], (nb, oh, ow, c), None if correction is None else f"{n.outputs[0]}_sum",
                         padding=padding, **window)
        if correction is not None:
            cname = self._const(correction.astype(np.float32), f"{n.outputs[0]}_count")
            out = self._emit(ops.Mul, [out, cname], (nb, oh, ow, c))
        self._set(n.outputs[0], out, (nb, c, oh, ow), NHWC, nonneg=x.nonneg)

    def _op_ReduceMean(self, n: Node) -> None:
        self._reduce(n, ops.Mean)

    def _op_ReduceMax(self, n: Node) -> None:
        self._reduce(n, ops.ReduceMax)

    def _op_ReduceSum(self, n: Node) -> None:
        self._reduce(n, ops.Sum)

    def _reduce(self, n: Node, cls) -> None:
        x = self._act()
        rank = len(x.shape)
        axes = axes_of([None] + [self.consts.get(i) for i in n.inputs[1:]], n.attrs)
        if axes is None:
            if n.attrs.get("noop_with_empty_axes", 0):
                self.vals[n.outputs[0]] = x
                return
            axes = list(range(rank))
        axes = sorted({a % rank for a in axes})
        keep = bool(n.attrs.get("keepdims", 1))
        if x.order is not None and rank - 1 in axes:
            x = self._unflattened(x)
        ir_axes = tuple(sorted(x.perm.index(a) for a in axes))
        out_shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape)) if keep else \
            tuple(d for i, d in enumerate(x.shape) if i not in axes)
        if keep:
            perm = x.perm
        else:
            kept = [p for p in x.perm if p not in axes]
            perm = tuple(sorted(kept).index(p) for p in kept)
        out = self._emit(cls, [x.tensor], tuple(out_shape[p] for p in perm), axes=ir_axes, keep_dims=keep)
        self._set(n.outputs[0], out, out_shape, perm, x.order, x.nonneg)

    # shapes and layout

    def _reshape_to(self, n: Node, x: Val, out_shape) -> None:
        out_shape = tuple(int(d) for d in out_shape)
        if int(np.prod(out_shape, dtype=np.int64)) != int(np.prod(x.shape, dtype=np.int64)):
            raise self.fail(f"cannot reshape {x.shape} to {out_shape}.")
        if x.order is not None:
            if out_shape == x.shape:
                self.vals[n.outputs[0]] = x
                return
            x = Val(self._plain(x), x.shape, identity(2), None, x.nonneg)
        perm = reshape_perm(x.shape, x.perm, out_shape)
        order = None
        if perm is None:
            order = flatten_order(x.shape, x.perm, out_shape)
            if order is None:  # the model's element order, made at run time
                x = Val(self._plain(x), x.shape, identity(len(x.shape)), None, x.nonneg)
                perm = identity(len(out_shape))
            else:
                perm = (0, 1)
                self.notes.append(f"{self._node_label(n, self.node_index)}: flattening {x.shape} keeps the NHWC "
                                  "element order; the next layer's weights are permuted to match")
        ir_shape = tuple(out_shape[p] for p in perm)
        tensor = x.tensor if ir_shape == x.ir_shape else self._emit(ops.Reshape, [x.tensor], ir_shape)
        self._set(n.outputs[0], tensor, out_shape, perm, order, x.nonneg)

    def _op_Reshape(self, n: Node) -> None:
        x = self._act()
        self._reshape_to(n, x, reshape_target(x.shape, self._cval(1, "shape"), n.attrs.get("allowzero", 0)))

    def _op_Flatten(self, n: Node) -> None:
        x = self._act()
        self._reshape_to(n, x, flatten_shape(x.shape, int(n.attrs.get("axis", 1))))

    def _op_Squeeze(self, n: Node) -> None:
        x = self._act()
        axes = axes_of([None] + [self.consts.get(i) for i in n.inputs[1:]], n.attrs)
        self._reshape_to(n, x, squeeze_shape(x.shape, axes))

    def _op_Unsqueeze(self, n: Node) -> None:
        x = self._act()
        axes = axes_of([None] + [self.consts.get(i) for i in n.inputs[1:]], n.attrs)
        if axes is None:
            raise self.fail("Unsqueeze without axes.")
        self._reshape_to(n, x, unsqueeze_shape(x.shape, axes))

    def _op_Transpose(self, n: Node) -> None:
        # only the bookkeeping changes: the IR bytes stay where they are
        x = self._act()
        rank = len(x.shape)
        tp = [int(p) for p in n.attrs.get("perm", list(reversed(range(rank))))]
        if x.order is not None:
            x = Val(self._plain(x), x.shape, identity(2), None, x.nonneg)
        inv = np.argsort(tp)
        perm = tuple(int(inv[p]) for p in x.perm)
        self._set(n.outputs[0], x.tensor, tuple(x.shape[p] for p in tp), perm, None, x.nonneg)

    def _op_Pad(self, n: Node) -> None:
        x = self._act()
        rank = len(x.shape)
        mode = n.attrs.get("mode", "constant")
        if mode != "constant":
            raise self.fail(f"Pad mode '{mode}'; edgeq pads with zeros only.")
        pads = n.attrs.get("pads")
        if pads is None:
            pads = self._cval(1, "pads")
        pads = [int(p) for p in np.asarray(pads).reshape(-1)]
        value = n.attrs.get("value", 0.0)
        if len(n.inputs) > 2 and n.inputs[2]:
            c = np.asarray(self._cval(2, "constant value")).reshape(-1)
            value = float(c[0]) if c.size else 0.0
        if float(value) != 0.0:
            raise self.fail(f"Pad with value {value}; edgeq pads with zeros only.")
        axes = list(range(rank))
        if len(n.inputs) > 3 and n.inputs[3]:
            axes = [int(a) % rank for a in self._cval(3, "axes").reshape(-1)]
        begin, end = [0] * rank, [0] * rank
        for k, ax in enumerate(axes):
            begin[ax], end[ax] = pads[k], pads[k + len(axes)]
        if any(p < 0 for p in begin + end):
            raise self.fail("negative pads (cropping) are not supported.")
        if x.order is not None and (begin[-1] or end[-1]):
            raise self.fail("padding a flattened NCHW tensor is not supported.")
        out_shape = tuple(d + b + e for d, b, e in zip(x.shape, begin, end))
        paddings = tuple((begin[p], end[p]) for p in x.perm)
        out = self._emit(ops.Pad, [x.tensor], tuple(out_shape[p] for p in x.perm), paddings=paddings)
        self._set(n.outputs[0], out, out_shape, x.perm, x.order, x.nonneg)

    # slicing, gathering and other data movement: along the model's axes, wherever the IR holds them

    def _unflattened(self, x: Val) -> Val:
        """x without a flatten order: the model's column order, made at run time when needed."""
        return x if x.order is None else Val(self._plain(x), x.shape, identity(len(x.shape)), None, x.nonneg)

    def _slice(self, x: Val, begin, end, steps, out_name: str) -> str:
        """x[begin:end:step] per model axis (normalized: end -1 is before the start), as a STRIDED_SLICE over
        the IR's axes."""
        index = tuple(slice(b, e if e >= 0 else None, st) for b, e, st in zip(begin, end, steps))
        out_shape = np.empty(x.shape, dtype=np.int8)[index].shape
        if 0 in out_shape:
            raise self.fail(f"the slice of {x.shape} is empty.")
        out = self._emit(ops.StridedSlice, [x.tensor], tuple(out_shape[p] for p in x.perm), out_name,
                         begin=tuple(begin[p] for p in x.perm), end=tuple(end[p] for p in x.perm),
                         strides=tuple(steps[p] for p in x.perm))
        self._set(out_name, out, out_shape, x.perm, None, x.nonneg)
        return out

    def _op_Slice(self, n: Node) -> None:
        x = self._unflattened(self._act())
        rank = len(x.shape)
        if len(n.inputs) > 1:
            starts, ends = self._cval(1, "starts").reshape(-1), self._cval(2, "ends").reshape(-1)
            axes = self._cval(3, "axes", optional=True)
            steps = self._cval(4, "steps", optional=True)
        else:  # opset < 10: attributes
            starts, ends = np.array(n.attrs["starts"]), np.array(n.attrs["ends"])
            axes, steps = n.attrs.get("axes"), None
        axes = range(len(starts)) if axes is None else [int(a) % rank for a in np.reshape(axes, -1)]
        steps = [1] * len(starts) if steps is None else [int(v) for v in np.reshape(steps, -1)]
        begin, end, stride = [0] * rank, list(x.shape), [1] * rank
        for a, b, e, st in zip(axes, starts, ends, steps):
            d = x.shape[a]
            if st == 0:
                raise self.fail("a Slice step of 0.")
            b, e = int(max(min(b, 2**62), -2**62)), int(max(min(e, 2**62), -2**62))
            b, e = b + d if b < 0 else b, e + d if e < 0 else e
            lo, hi = (0, d) if st > 0 else (-1, d - 1)
            begin[a], end[a], stride[a] = min(max(b, 0), d if st > 0 else d - 1), min(max(e, lo), hi), st
        self._slice(x, begin, end, stride, n.outputs[0])

    def _op_Split(self, n: Node) -> None:
        x = self._unflattened(self._act())
        rank = len(x.shape)
        axis = int(n.attrs.get("axis", 0)) % rank
        sizes = self._cval(1, "split", optional=True) if len(n.inputs) > 1 and n.inputs[1] else n.attrs.get("split")
        count = len(n.outputs)
        if sizes is None:
            per = -(-x.shape[axis] // count)
            sizes = [min(per, x.shape[axis] - k * per) for k in range(count)]
        start = 0
        for out, size in zip(n.outputs, [int(v) for v in np.reshape(sizes, -1)]):
            begin, end = [0] * rank, list(x.shape)
            begin[axis], end[axis] = start, start + size
            self._slice(x, begin, end, [1] * rank, out)
            start += size

    def _op_Gather(self, n: Node) -> None:
        x = self._unflattened(self._act())
        idx = np.asarray(self._cval(1, "indices")).astype(np.int64)
        rank = len(x.shape)
        axis = int(n.attrs.get("axis", 0)) % rank
        idx = np.where(idx < 0, idx + x.shape[axis], idx)
        out_shape = x.shape[:axis] + idx.shape + x.shape[axis + 1:]
        if idx.ndim == 1:  # the axis stays where the IR holds it
            perm, src = x.perm, x.tensor
        elif idx.ndim == 0:
            kept = [p for p in x.perm if p != axis]
            perm, src = tuple(sorted(kept).index(p) for p in kept), x.tensor
        else:
            perm, src = identity(len(out_shape)), self._plain(x)
        ir_axis = x.perm.index(axis) if idx.ndim <= 1 else axis
        out = self._emit(ops.Gather, [src], tuple(out_shape[p] for p in perm), axis=ir_axis,
                         indices=tuple(int(i) for i in idx.reshape(-1)), indices_shape=tuple(idx.shape))
        self._set(n.outputs[0], out, out_shape, perm, None, x.nonneg)

    def _op_Tile(self, n: Node) -> None:
        x = self._unflattened(self._act())
        repeats = [int(r) for r in self._cval(1, "repeats").reshape(-1)]
        out_shape = tuple(d * r for d, r in zip(x.shape, repeats))
        out = self._emit(ops.Tile, [x.tensor], tuple(out_shape[p] for p in x.perm),
                         multiples=tuple(repeats[p] for p in x.perm))
        self._set(n.outputs[0], out, out_shape, x.perm, None, x.nonneg)

    def _op_Expand(self, n: Node) -> None:
        """Broadcasting to a shape: a TILE of the dimensions of 1 (after a reshape adding leading ones)."""
        x = self._unflattened(self._act())
        out_shape = tuple(int(d) for d in np.broadcast_shapes(x.shape, tuple(self._cval(1, "shape").reshape(-1))))
        if len(out_shape) > len(x.shape):
            padded = (1,) * (len(out_shape) - len(x.shape)) + x.shape
            x = Val(self._emit(ops.Reshape, [self._plain(x)], padded, f"{n.outputs[0]}_rank"), padded,
                    identity(len(padded)), None, x.nonneg)
        repeats = [o // d for o, d in zip(out_shape, x.shape)]
        out = self._emit(ops.Tile, [x.tensor], tuple(out_shape[p] for p in x.perm),
                         multiples=tuple(repeats[p] for p in x.perm))
        self._set(n.outputs[0], out, out_shape, x.perm, None, x.nonneg)

    def _op_DepthToSpace(self, n: Node) -> None:
        x = self._act()
        b = int(n.attrs["blocksize"])
        nb, c, h, w = x.shape
        src = self._nhwc(x)
        if n.attrs.get("mode", "DCR") == "CRD":  # channel c*b*b + k -> k*C' + c, TFLite's (DCR) order
            cp = c // (b * b)
            order = [cc * b * b + k for k in range(b * b) for cc in range(cp)]
            src = self._emit(ops.Gather, [src], (nb, h, w, c), f"{n.outputs[0]}_dcr", axis=3, indices=tuple(order),
                             indices_shape=(c,))
        out = self._emit(ops.DepthToSpace, [src], (nb, h * b, w * b, c // (b * b)), block=b)
        self._set(n.outputs[0], out, (nb, c // (b * b), h * b, w * b), NHWC, nonneg=x.nonneg)

    def _op_SpaceToDepth(self, n: Node) -> None:
        x = self._act()
        b = int(n.attrs["blocksize"])
        nb, c, h, w = x.shape
        out = self._emit(ops.SpaceToDepth, [self._nhwc(x)], (nb, h // b, w // b, c * b * b), block=b)
        self._set(n.outputs[0], out, (nb, c * b * b, h // b, w // b), NHWC, nonneg=x.nonneg)

    def _op_Resize(self, n: Node) -> None:
        x = self._act()
        a = n.attrs
        if len(x.shape) != 4:
            raise self.fail(f"only 4-D (NCHW) Resize is supported, got {x.shape}.")
        sizes = self._cval(3, "sizes", optional=True) if len(n.inputs) > 3 else None
        if sizes is None or np.size(sizes) == 0:
            pos = 2 if len(n.inputs) > 2 else 1  # opset 10 (and Upsample): scales is input 1
            scales = np.asarray(self._cval(pos, "scales"), dtype=np.float64).reshape(-1)
            sizes = [int(np.floor(d * sc)) for d, sc in zip(x.shape, scales)]
        sizes = [int(v) for v in np.reshape(sizes, -1)]
        if sizes[:2] != list(x.shape[:2]):
            raise self.fail(f"Resize to {sizes} changes batch or channels; edgeq resizes height and width only.")
        mode = a.get("mode", "nearest")
        coords = a.get("coordinate_transformation_mode", "half_pixel" if n.op == "Resize" else "asymmetric")
        nearest = a.get("nearest_mode", "round_prefer_floor" if n.op == "Resize" else "floor") \
            if mode == "nearest" else None
        if coords == "pytorch_half_pixel" and min(sizes[2:]) == 1:
            coords = "pytorch_half_pixel(size 1)"
        key = (mode, coords, nearest)
        if key not in RESIZE_MODES:
            raise self.fail(f"Resize mode {mode}, coordinate_transformation_mode {coords}"
                            f"{f', nearest_mode {nearest}' if nearest else ''}: edgeq (like TFLite) resizes with "
                            f"{', '.join(f'{m}/{c}' + (f'/{r}' if r else '') for m, c, r in RESIZE_MODES)}.")
        cls, align, half = RESIZE_MODES[key]
        nb, c = x.shape[:2]
        out = self._emit(cls, [self._nhwc(x)], (nb, sizes[2], sizes[3], c), align_corners=align,
                         half_pixel_centers=half)
        self._set(n.outputs[0], out, tuple(sizes), NHWC, nonneg=x.nonneg)

    def _op_Upsample(self, n: Node) -> None:
        self._op_Resize(n)

    def _op_ConvTranspose(self, n: Node) -> None:
        """TRANSPOSE_CONV with VALID padding (the full output), then ONNX's pads cropped by a slice."""
        x = self._act()
        w = self._cval(1, "weight")
        b = self._cval(2, "bias", optional=True)
        a = n.attrs
        if len(x.shape) != 4 or w.ndim != 4 or int(a.get("group", 1)) != 1:
            raise self.fail(f"only 2-D ConvTranspose without groups is supported (input {x.shape}, weight {w.shape}).")
        if any(int(d) != 1 for d in a.get("dilations", [1, 1])) or a.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
            raise self.fail("dilated ConvTranspose or auto_pad is not supported.")
        strides = [int(v) for v in a.get("strides", [1, 1])]
        pads = [int(v) for v in a.get("pads", [0, 0, 0, 0])]
        extra = [int(v) for v in a.get("output_padding", [0, 0])]
        nb, ci, h, wd = x.shape
        co, kh, kw = w.shape[1], w.shape[2], w.shape[3]
        full = ((h - 1) * strides[0] + kh, (wd - 1) * strides[1] + kw)
        outs = [f - pads[k] - pads[k + 2] + extra[k] for k, f in enumerate(full)]
        if any(e > pads[k + 2] for k, e in enumerate(extra)) or min(outs) < 1:
            raise self.fail(f"ConvTranspose with output_padding {extra} beyond its end pads {pads[2:]}.")
        base = n.outputs[0]
        inputs = [self._nhwc(x), self._const(w.transpose(1, 2, 3, 0), f"{base}_weights", n.inputs[1])]
        if b is not None:
            inputs.append(self._const(b.reshape(-1), f"{base}_bias", n.inputs[2]))
        cropped = any(pads) or any(extra)
        out = self._emit(ops.TransposeConv, inputs, (nb, *full, co), f"{base}_full" if cropped else None,
                         stride_h=strides[0], stride_w=strides[1], padding=ops.Padding.VALID)
        self._set(base, out, (nb, co, *full), NHWC)
        if cropped:
            self._slice(self.vals[base], [0, 0, pads[0], pads[1]], [nb, co, pads[0] + outs[0], pads[1] + outs[1]],
                        [1, 1, 1, 1], base)

    # element-wise, more

    def _op_Max(self, n: Node) -> None:
        self._min_max(n, ops.Maximum)

    def _op_Min(self, n: Node) -> None:
        self._min_max(n, ops.Minimum)

    def _min_max(self, n: Node, cls) -> None:
        consts = [self._is_const(i) for i in n.inputs]
        if len(n.inputs) != 2 or all(consts):
            raise self.fail(f"{n.op} of {len(n.inputs)} inputs, or of constants only; edgeq takes {n.op} of two "
                            "tensors, at least one computed.")
        if any(consts):  # the constant is an operand of its own (MAXIMUM/MINIMUM are symmetric)
            k = consts.index(True)
            return self._binary_const(n, cls, self._act(1 - k), self.consts[n.inputs[k]], n.inputs[k])
        self._binary_vals(n, cls, self._act(0), self._act(1))

    def _op_Abs(self, n: Node) -> None:
        self._unary(n, ops.Abs, nonneg=True)

    def _op_Neg(self, n: Node) -> None:
        self._unary(n, ops.Neg)

    def _op_Gelu(self, n: Node) -> None:
        self._unary(n, ops.Gelu, approximate=n.attrs.get("approximate", "none") == "tanh")

    def _op_LayerNormalization(self, n: Node) -> None:
        """(x - mean) / sqrt(var + epsilon) * scale + bias over the axes from `axis` on, as IR ops: MEAN, SUB, MUL,
        MEAN, RSQRT, MUL. The constant steps (+ epsilon, the affine scale and bias) are 1x1 depthwise convolutions
        over the flattened normalized axes, which the power-of-two quantizer takes as weights and bias."""
        if any(n.outputs[1:]):
            raise self.fail("LayerNormalization's Mean and InvStdDev outputs are not supported; use only Y.")
        x = self._act()
        rank = len(x.shape)
        axis = int(n.attrs.get("axis", -1)) % rank
        src, shape = self._plain(x), x.shape
        axes = tuple(range(axis, rank))
        reduced = tuple(1 if i in axes else d for i, d in enumerate(shape))
        base = n.outputs[0]
        mean = self._emit(ops.Mean, [src], reduced, f"{base}_mean", axes=axes, keep_dims=True)
        centred = self._emit(ops.Sub, [src, mean], shape, f"{base}_centred")
        square = self._emit(ops.Mul, [centred, centred], shape, f"{base}_square")
        var = self._emit(ops.Mean, [square], reduced, f"{base}_var", axes=axes, keep_dims=True)
        eps = float(n.attrs.get("epsilon", 1e-5))
        var = self._channel_affine(var, reduced, np.ones(1), np.full(1, eps), f"{base}_var_eps")
        inv = self._emit(ops.Rsqrt, [var], reduced, f"{base}_inv_std")
        out = self._emit(ops.Mul, [centred, inv], shape, f"{base}_normalized")
        width = int(np.prod(shape[axis:]))
        scale, bias = self._cval(1, "scale"), self._cval(2, "bias", optional=True)
        scale, bias = (np.broadcast_to(np.asarray(c, np.float32), shape[axis:]).reshape(width)
                       for c in (scale, np.zeros(1) if bias is None else bias))
        out = self._channel_affine(out, shape, scale, bias, f"{base}_affine", n.inputs[1])
        self._set(base, out, shape, identity(rank), None, False)

    def _channel_affine(self, src: str, shape, scale: np.ndarray, bias: np.ndarray, name: str,
                        source: str | None = None) -> str:
        """src * scale + bias with one scale and bias per element of the trailing len(scale) values: a 1x1
        depthwise convolution of src seen as [1, 1, rows, len(scale)]."""
        width = scale.size
        rows = int(np.prod(shape)) // width
        flat = self._emit(ops.Reshape, [src], (1, 1, rows, width), f"{name}_rows")
        w = self._const(scale.reshape(1, 1, 1, width).astype(np.float32), f"{name}_scale", source)
        b = self._const(bias.reshape(width).astype(np.float32), f"{name}_bias")
        y = self._emit(ops.DepthwiseConv2D, [flat, w, b], (1, 1, rows, width), f"{name}_conv")
        return self._emit(ops.Reshape, [y], tuple(shape), name)

    def _op_Exp(self, n: Node) -> None:
        self._unary(n, ops.Exp, nonneg=True)

    def _op_Log(self, n: Node) -> None:
        self._unary(n, ops.Log)

    def _op_PRelu(self, n: Node) -> None:
        x = self._act()
        slope = self._cval(1, "slope")
        if tuple(np.broadcast_shapes(x.shape, slope.shape)) != x.shape:
            raise self.fail(f"the slope {slope.shape} broadcasts the input {x.shape} to a larger shape.")
        alpha = self._layout_const(slope, x)
        out = self._emit(ops.Prelu, [x.tensor, self._const(alpha, f"{n.outputs[0]}_slope", n.inputs[1])], x.ir_shape)
        self._set(n.outputs[0], out, x.shape, x.perm, x.order)

    # QDQ

    def _op_LSTM(self, n: Node) -> None:
        """A forward, batch-1 LSTM of the default activations without peephole (what torch.onnx.export writes for
        nn.LSTM, one node per layer) as UNIDIRECTIONAL_SEQUENCE_LSTM; ONNX's iofc gates become the IR's ifco and
        the two biases one. Its state starts at zero on every invoke (reset_state), as ONNX's does."""
        self._recurrent_refusals(n, ["sigmoid", "tanh", "tanh"], [
            (n.attrs.get("input_forget", 0) != 0, "couples the input and forget gates (input_forget=1)"),
            (len(n.inputs) > 7 and bool(n.inputs[7]), "has peephole weights (input P); edgeq runs LSTMs without"),
            (len(n.outputs) > 2 and n.outputs[2] in self.live_inputs, "has its final cell state (Y_c) read; edgeq "
                                                                         "gives the hidden states Y and Y_h only")])
        order = (0, 2, 3, 1)  # ONNX's gates input, output, forget, cell -> input, forget, cell, output
        x, operands, name, steps, units = self._recurrent(
            n, 4, order, lambda b, units: list(b.reshape(2, 4, units).sum(0)[list(order)]), (5, 6))
        states = {}
        for kind in ("hidden", "cell"):
            states[kind] = f"{name}/{kind}_state"
            self.states[states[kind]] = Tensor(states[kind], (1, units), "float32", None,
                                               np.zeros((1, units), np.float32))
        y = self._emit(ops.UnidirectionalSequenceLstm, [x, *operands], (1, steps, units), name,
                       hidden_state=states["hidden"], cell_state=states["cell"], reset_state=True)
        self._recurrent_outputs(n, y, steps, units)

    def _op_GRU(self, n: Node) -> None:
        """A forward, batch-1 GRU of the default activations with linear_before_reset (what torch.onnx.export writes
        for nn.GRU) as the IR's GRU, gates in ONNX's order z, r, h; it starts from zero on every invoke."""
        self._recurrent_refusals(n, ["sigmoid", "tanh"], [
            (n.attrs.get("linear_before_reset", 0) != 1, "applies the reset gate before the recurrent product "
                                                          "(linear_before_reset=0); edgeq runs PyTorch's GRU (1)")])
        x, operands, name, steps, units = self._recurrent(
            n, 3, (0, 1, 2), lambda b, units: list(b.reshape(6, units)), (5,))
        y = self._emit(ops.Gru, [x, *operands], (1, steps, units), name)
        self._recurrent_outputs(n, y, steps, units)

    def _recurrent_refusals(self, n: Node, activations: list[str], extra: list[tuple[bool, str]]) -> None:
        """The variants of ONNX's LSTM and GRU edgeq refuses, the first one found named in one line."""
        a = n.attrs
        acts = [v.lower() for v in a.get("activations", [])]
        refusals = [
            (a.get("direction", "forward") != "forward", f"is {a.get('direction')}; edgeq runs forward {n.op}s"),
            (a.get("layout", 0) != 0, "has layout 1 (batch first); export it with the default layout 0"),
            (bool(acts) and acts != activations, f"uses activations {a.get('activations')}; edgeq runs the default "
                                                 f"{', '.join(v.capitalize() for v in activations)}"),
            ("clip" in a, f"clips its gate inputs (clip); edgeq runs {n.op}s without clip"),
            (len(n.inputs) > 4 and bool(n.inputs[4]), "takes sequence lengths (input sequence_lens); export the "
                                                      "model for one fixed sequence length"),
        ] + extra
        for bad, why in refusals:
            if bad:
                raise self.fail(f"this {n.op} {why}.")

    def _recurrent(self, n: Node, gates: int, order: tuple[int, ...], biases, initial: tuple[int, ...]):
        """The operands of an ONNX LSTM's or GRU's IR op: its [steps, 1, features] input made batch-major, W and R
        split per gate in the IR's order, then biases(B flattened, units). Returns them with the op's name, the
        steps and the units."""
        x = self._unflattened(self._act())
        if len(x.shape) != 3 or x.shape[1] != 1:
            raise self.fail(f"the input is {x.shape}, not [steps, 1, features]; edgeq runs {n.op}s of batch 1.")
        steps = x.shape[0]
        w, r = self._cval(1, "input weights W"), self._cval(2, "recurrent weights R")
        units = int(n.attrs.get("hidden_size", r.shape[-1]))
        b = self._cval(3, "biases B", optional=True)
        b = np.zeros(2 * gates * units, np.float32) if b is None else np.asarray(b, np.float32).reshape(-1)
        for pos in initial:
            init = self._cval(pos, f"initial state (input {pos})", optional=True)
            if init is not None and np.any(init):
                raise self.fail(f"the initial state (input {pos}) is not zero; edgeq's {n.op} starts from zero.")
        gate = lambda m, g: np.asarray(m, np.float32).reshape(gates, units, -1)[order[g]]  # noqa: E731
        out, src = n.outputs[0], n.inputs
        operands = [self._const(gate(w[0], g), f"{out}/w_in{g}", src[1]) for g in range(gates)] + \
                   [self._const(gate(r[0], g), f"{out}/w_rec{g}", src[2]) for g in range(gates)] + \
                   [self._const(v, f"{out}/bias{k}", src[3] or None) for k, v in enumerate(biases(b, units))]
        x_ir = self._as_perm(x, (1, 0, 2), f"the {n.op} runs batch-major")
        return x_ir, operands, self._fresh(out or n.op.lower()), steps, units

    def _recurrent_outputs(self, n: Node, y: str, steps: int, units: int) -> None:
        """Y and Y_h of an ONNX LSTM or GRU from its IR op's output y [1, steps, units]."""
        # Y is [steps, directions, batch, units]: held as [directions, steps, batch, units] (the op's bytes with one
        # direction and batch 1), so the batch-like leading axis stays 1
        y4 = self._emit(ops.Reshape, [y], (1, steps, 1, units), f"{y}_y")
        self._set(n.outputs[0], y4, (steps, 1, 1, units), (1, 0, 2, 3))
        if len(n.outputs) > 1 and n.outputs[1]:  # Y_h, the last step's hidden state [1, 1, units]
            last = Val(y, (1, steps, units), identity(3))
            h = self._slice(last, [0, steps - 1, 0], [1, steps, units], [1, 1, 1], f"{y}_last")
            self._set(n.outputs[1], h, (1, 1, units), identity(3))

    def _record_const_quant(self, node: Node) -> None:
        """A DequantizeLinear of an int8/int32 constant was folded to floats: keep its quantization."""
        qdq.record_const(self, node)

    def _op_QuantizeLinear(self, n: Node) -> None:
        qdq.quantize_linear(self, n)

    def _op_DequantizeLinear(self, n: Node) -> None:
        qdq.dequantize_linear(self, n)


def import_graph(src: SourceGraph, input_layout: str = "nchw") -> Graph:
    return Importer(src, input_layout).run()
