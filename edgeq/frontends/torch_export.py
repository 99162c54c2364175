"""PyTorch `.pt2` files (`torch.export.save` of an ExportedProgram) into the graph IR.

`torch.export.load` gives the program's FX graph of ATen operators, with parameters and buffers
alongside. Each ATen call is rewritten here as the ONNX operator with the same meaning (conv2d ->
Conv, linear -> Gemm or MatMul+Add, batch_norm -> BatchNormalization, hardtanh -> Clip, view ->
Reshape to the traced shape, ...), and the shared NCHW importer (nchw.py) does the rest, so a model
gives the same IR from its .pt2 and from its ONNX export. Both the ATen set torch.export.export
produces and the core ATen set of `run_decompositions()` are understood, except nn.LSTM and nn.GRU: one
aten.lstm / aten.gru call becomes one ONNX LSTM / GRU node per layer, and their decomposition (the cell unrolled over
the time steps) is refused with a message asking for the program before it.

torch is imported only when a .pt2 file is given.
"""
from __future__ import annotations

import logging
import operator
from pathlib import Path

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.frontends.files import read_model_file
from edgeq.frontends.nchw import Node, SourceGraph, import_graph
from edgeq.ir import Graph
from edgeq.ir.graph import sha256_bytes


def load_pt2_file(path: str | Path, input_layout: str = "nchw") -> Graph:
    path = Path(path)
    data = read_model_file(path)
    if not data.startswith(b"PK"):
        raise EdgeqError(f"{path} is not a PyTorch .pt2 file (a .pt2 is a zip archive written by torch.export.save). "
                         "Export the model with torch.export.export and save it with torch.export.save.")
    try:
        import torch
    except ImportError:
        raise EdgeqError("Reading .pt2 files needs PyTorch: pip install torch (the CPU wheel is enough).") from None
    # torch.export.load logs a traceback before its own fallback fails; the error below says it all
    logger = logging.getLogger("torch.export")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        ep = torch.export.load(str(path))
    except Exception as e:  # zip, pickle and schema errors all mean the same to the user
        raise EdgeqError(f"{path} cannot be loaded as a torch.export program ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}). Save it again with torch.export.save "
                         f"(this edgeq reads .pt2 files with torch {torch.__version__}).") from None
    finally:
        logger.setLevel(level)
    src = _Reader(ep, path.stem, str(path), sha256_bytes(data)).run()
    return import_graph(src, input_layout)


# ATen operators that map one to one onto an ONNX operator: (ONNX op, attributes), and the binary ones
# (with torch's alpha for add/sub)
_UNARY = {"relu": ("Relu", {}), "sigmoid": ("Sigmoid", {}), "tanh": ("Tanh", {}), "hardswish": ("HardSwish", {}),
          "hardsigmoid": ("HardSigmoid", {"alpha": 1.0 / 6, "beta": 0.5}), "abs": ("Abs", {}), "neg": ("Neg", {}),
          "exp": ("Exp", {}), "log": ("Log", {})}
_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "maximum": "Max", "minimum": "Min"}


def supported_aten() -> list[str]:
    """The ATen operators this reader maps (their in-place variants too)."""
    methods = [name[len("_aten_"):] for name in dir(_Reader) if name.startswith("_aten_")]
    return sorted(methods + list(_UNARY) + list(_BINARY))


def _pair(v, n: int = 2) -> list[int]:
    """An int or list attribute as n ints (torch repeats a single one over the spatial axes)."""
    v = [int(x) for x in (v if isinstance(v, (list, tuple)) else [v])]
    return v * n if len(v) == 1 else v


class _Reader:
    def __init__(self, ep, name: str, origin: str, source_hash: str):
        self.ep, self.name, self.origin, self.hash = ep, name, origin, source_hash
        self.nodes: list[Node] = []
        self.consts: dict[str, np.ndarray] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}

    def run(self) -> SourceGraph:
        import torch
        from torch.export.graph_signature import InputKind

        self._refuse_unrolled_recurrent()
        sig = self.ep.graph_signature
        specs = {s.arg.name: s for s in sig.input_specs if hasattr(s.arg, "name")}
        inputs, notes = [], []
        for node in self.ep.graph.nodes:
            val = node.meta.get("val")
            if isinstance(val, torch.Tensor):
                self.shapes[node.name] = tuple(int(d) for d in val.shape)
            if node.op == "placeholder":
                spec = specs.get(node.name)
                if spec is None or spec.kind == InputKind.USER_INPUT:
                    if not isinstance(val, torch.Tensor):
                        raise EdgeqError(f"{self.origin}: input '{node.name}' is not a tensor; edgeq compiles models "
                                         "whose inputs are tensors.")
                    inputs.append((node.name, self.shapes[node.name], str(val.dtype).replace("torch.", "")))
                    if any(isinstance(d, torch.SymInt) for d in val.shape):
                        notes.append(f"input '{node.name}' has dynamic dimensions; edgeq fixes them at the sizes "
                                     f"of the example torch.export traced, {self.shapes[node.name]}")
                else:
                    self.consts[node.name] = self._param(spec)
            elif node.op == "call_function":
                self._call(node)
            elif node.op == "output":
                outs = node.args[0] if isinstance(node.args[0], (list, tuple)) else [node.args[0]]
                if not all(isinstance(o, torch.fx.Node) for o in outs):
                    raise EdgeqError(f"{self.origin}: the program returns something other than tensors.")
                outputs = [o.name for o in outs]
            else:
                self.nodes.append(Node(node.name, f"fx:{node.op}", [], [node.name]))
        return SourceGraph(self.name, self.origin, self.hash, self.nodes, inputs, outputs, self.consts, opset=17,
                           notes=notes, supported=supported_aten())

    def _refuse_unrolled_recurrent(self) -> None:
        """run_decompositions() unrolls nn.LSTM and nn.GRU into their time steps, which edgeq would take as a
        large float graph quantized op by op, not as its recurrent kernels: ask for the program before that."""
        calls: dict[str, tuple[str, str, set]] = {}
        for node in self.ep.graph.nodes:
            stack = node.meta.get("nn_module_stack") or {}
            if node.op != "call_function" or not stack:
                continue
            path, kind = list(stack.values())[-1]
            if kind in ("torch.nn.modules.rnn.LSTM", "torch.nn.modules.rnn.GRU"):
                packet = getattr(getattr(node.target, "_overloadpacket", None), "__name__", "")
                calls.setdefault(path, (kind.rsplit(".", 1)[1], node.name, set()))[2].add(packet)
        for path, (kind, first, packets) in calls.items():
            if not packets & {"lstm", "gru"}:
                raise EdgeqError(f"{self.origin}: the {kind} '{path}' is unrolled into its time steps (node "
                                 f"'{first}' on), as run_decompositions() writes it; edgeq maps the {kind} call "
                                 "itself: save the program torch.export.export returns, without run_decompositions().")

    def _param(self, spec) -> np.ndarray:
        target = spec.target
        t = self.ep.state_dict.get(target)
        if t is None:
            t = self.ep.constants.get(target)
        if t is None:
            raise EdgeqError(f"{self.origin}: parameter or buffer '{target}' is missing from the file.")
        return t.detach().cpu().numpy().copy()

    # --- helpers --------------------------------------------------------------------------------

    def _arg(self, v, hint: str) -> str:
        """A value name for an FX node argument; Python numbers become constants."""
        import torch

        if v is None:
            return ""
        if isinstance(v, torch.fx.Node):
            return v.name
        name, k = f"{hint}_const", 0
        while name in self.consts:
            k += 1
            name = f"{hint}_const{k}"
        self.consts[name] = np.asarray(v, dtype=np.float32)  # a scalar operand of a float graph
        return name

    def _fconst(self, value, hint: str) -> str:
        return self._arg(float(value), hint)

    def _emit(self, name: str, op: str, inputs: list[str], outputs: list[str] | None = None, **attrs) -> str:
        outputs = outputs or [name]
        self.nodes.append(Node(name, op, inputs, outputs, attrs))
        return outputs[0]

    @staticmethod
    def _bind(node) -> dict:
        """The call's arguments by schema name, defaults filled in."""
        schema = node.target._schema
        bound = {}
        for i, arg in enumerate(schema.arguments):
            if i < len(node.args):
                bound[arg.name] = node.args[i]
            elif arg.name in node.kwargs:
                bound[arg.name] = node.kwargs[arg.name]
            elif arg.has_default_value():
                bound[arg.name] = arg.default_value
            else:
                bound[arg.name] = None
        return bound

    # --- ATen -> ONNX ---------------------------------------------------------------------------

    def _call(self, node) -> None:
        name = node.name
        if node.target is operator.getitem:
            src, index = node.args
            self._emit(name, "Identity", [f"{src.name}#{index}"])
            return
        packet = getattr(getattr(node.target, "_overloadpacket", None), "__name__", None)
        # in-place variants (relu_, hardtanh_) compute the same value in an exported, functional graph
        base = packet[:-1] if packet and packet.endswith("_") and not packet.endswith("__") else packet
        if base in _UNARY:
            op, attrs = _UNARY[base]
            self._emit(name, op, [self._bind(node)["self"].name], **attrs)
            return
        if base in _BINARY:
            self._binary(node, self._bind(node), _BINARY[base])
            return
        handler = getattr(self, f"_aten_{base}", None) if base else None
        if handler is None:
            self.nodes.append(Node(name, f"aten.{packet or getattr(node.target, '__name__', node.target)}",
                                   [a.name for a in node.all_input_nodes], [name]))
            return
        handler(node, self._bind(node))

    def _aten_convolution(self, node, a):
        if a.get("transposed"):
            self._conv_transpose(node, a)
            return
        self._conv(node, a)

    def _conv_transpose(self, node, a):
        p = _pair(a["padding"])
        self._emit(node.name, "ConvTranspose", [a["input"].name, a["weight"].name, self._arg(a["bias"], node.name)],
                   strides=_pair(a["stride"]), pads=p + p, dilations=_pair(a["dilation"]), group=int(a["groups"]),
                   output_padding=_pair(a["output_padding"]))

    def _aten_conv_transpose2d(self, node, a):
        self._conv_transpose(node, a)

    def _aten_conv2d(self, node, a):
        self._conv(node, a)

    _aten_conv1d = _aten_conv2d  # a CRNN's front end; the importer takes ONNX's 1-D Conv

    def _conv(self, node, a):
        w = self.consts.get(a["weight"].name)
        padding = a["padding"]
        n = len(self.shapes[a["input"].name]) - 2  # spatial axes
        kernel = list(w.shape[2:]) if w is not None else [1] * n
        dil = _pair(a["dilation"], n)
        if isinstance(padding, str):
            if padding == "valid":
                pads = [0] * 2 * n
            else:  # "same": PyTorch puts the odd extra pixel at the end
                total = [d * (k - 1) for d, k in zip(dil, kernel)]
                pads = [t // 2 for t in total] + [t - t // 2 for t in total]
        else:
            p = _pair(padding, n)
            pads = p + p
        self._emit(node.name, "Conv", [a["input"].name, a["weight"].name, self._arg(a["bias"], node.name)],
                   strides=_pair(a["stride"], n), pads=pads, dilations=dil, group=int(a["groups"]))

    def _aten_batch_norm(self, node, a):
        if a["training"]:
            self.nodes.append(Node(node.name, "aten.batch_norm(training)", [a["input"].name], [node.name]))
            return
        self._bn(node, a, [node.name])

    def _aten__native_batch_norm_legit_no_training(self, node, a):
        self._bn(node, a, [f"{node.name}#0"])

    def _bn(self, node, a, outputs):
        c = self.shapes[a["input"].name][1]
        w = a["weight"].name if a["weight"] is not None else self._const(np.ones(c, np.float32), node.name + "_w")
        b = a["bias"].name if a["bias"] is not None else self._const(np.zeros(c, np.float32), node.name + "_b")
        self._emit(node.name, "BatchNormalization",
                   [a["input"].name, w, b, a["running_mean"].name, a["running_var"].name], outputs,
                   epsilon=float(a["eps"]))

    def _const(self, value: np.ndarray, name: str) -> str:
        self.consts[name] = value
        return name

    def _aten_linear(self, node, a):
        x, w = a["input"].name, a["weight"].name
        if len(self.shapes[x]) == 2:
            self._emit(node.name, "Gemm", [x, w, self._arg(a["bias"], node.name)], transB=1)
            return
        wt = self._emit(f"{node.name}_wt", "Transpose", [w], perm=[1, 0])
        if a["bias"] is None:
            self._emit(node.name, "MatMul", [x, wt])
        else:
            mm = self._emit(f"{node.name}_mm", "MatMul", [x, wt])
            self._emit(node.name, "Add", [mm, a["bias"].name])

    def _aten_addmm(self, node, a):
        self._emit(node.name, "Gemm", [a["mat1"].name, a["mat2"].name, a["self"].name],
                   alpha=float(a["alpha"]), beta=float(a["beta"]))

    def _aten_mm(self, node, a):
        self._emit(node.name, "MatMul", [a["self"].name, a["mat2"].name])

    def _aten_matmul(self, node, a):
        self._emit(node.name, "MatMul", [a["self"].name, a["other"].name])

    def _aten_t(self, node, a):
        self._emit(node.name, "Transpose", [a["self"].name], perm=[1, 0])

    def _aten_permute(self, node, a):
        self._emit(node.name, "Transpose", [a["self"].name], perm=[int(d) for d in a["dims"]])

    def _aten_transpose(self, node, a):
        rank = len(self.shapes[a["self"].name])
        perm = list(range(rank))
        d0, d1 = int(a["dim0"]) % rank, int(a["dim1"]) % rank
        perm[d0], perm[d1] = perm[d1], perm[d0]
        self._emit(node.name, "Transpose", [a["self"].name], perm=perm)

    # activations

    def _aten_leaky_relu(self, node, a):
        self._emit(node.name, "LeakyRelu", [a["self"].name], alpha=float(a["negative_slope"]))

    def _aten_silu(self, node, a):
        s = self._emit(f"{node.name}_sigmoid", "Sigmoid", [a["self"].name])
        self._emit(node.name, "Mul", [a["self"].name, s])

    def _clip(self, node, x, lo, hi):
        self._emit(node.name, "Clip", [x, "" if lo is None else self._fconst(lo, f"{node.name}_min"),
                                       "" if hi is None else self._fconst(hi, f"{node.name}_max")])

    def _aten_relu6(self, node, a):
        self._clip(node, a["self"].name, 0.0, 6.0)

    def _aten_hardtanh(self, node, a):
        self._clip(node, a["self"].name, a["min_val"], a["max_val"])

    def _aten_clamp(self, node, a):
        self._clip(node, a["self"].name, a.get("min"), a.get("max"))

    def _aten_clamp_min(self, node, a):
        self._clip(node, a["self"].name, a["min"], None)

    # arithmetic

    def _binary(self, node, a, op):
        x, y = a["self"], a["other"]
        alpha = a.get("alpha", 1)
        yname = self._arg(y, f"{node.name}_other")
        if alpha is not None and alpha != 1:
            yname = self._emit(f"{node.name}_alpha", "Mul", [yname, self._fconst(alpha, f"{node.name}_alpha")])
        self._emit(node.name, op, [self._arg(x, f"{node.name}_self"), yname])

    def _aten_div(self, node, a):
        if a.get("rounding_mode") is not None:
            self.nodes.append(Node(node.name, "aten.div(rounding_mode)", [a["self"].name], [node.name]))
            return
        self._binary(node, a, "Div")

    def _aten_rsub(self, node, a):
        # other - alpha * self
        x = a["self"].name
        if a.get("alpha", 1) != 1:
            x = self._emit(f"{node.name}_alpha", "Mul", [x, self._fconst(a["alpha"], f"{node.name}_alpha")])
        self._emit(node.name, "Sub", [self._arg(a["other"], f"{node.name}_other"), x])

    # data movement and reductions (issue 12)

    def _ints(self, values, name: str) -> str:
        return self._const(np.array([int(v) for v in values], dtype=np.int64), name)

    def _aten_gelu(self, node, a):
        self._emit(node.name, "Gelu", [a["self"].name], approximate=str(a.get("approximate") or "none"))

    def _layer_norm(self, node, a, outputs):
        """LayerNormalization over the trailing normalized_shape axes; no weight is a scale of ones."""
        x, shape = a["input"].name, [int(d) for d in a["normalized_shape"]]
        scale = a["weight"].name if a["weight"] is not None else \
            self._const(np.ones(shape, np.float32), f"{node.name}_ones")
        self._emit(node.name, "LayerNormalization", [x, scale, self._arg(a["bias"], node.name)], outputs,
                   axis=len(self.shapes[x]) - len(shape), epsilon=float(a["eps"]))

    def _aten_layer_norm(self, node, a):
        self._layer_norm(node, a, None)

    def _aten_native_layer_norm(self, node, a):
        self._layer_norm(node, a, [f"{node.name}#0"])  # mean and 1/std (#1, #2) are not produced

    def _aten_slice(self, node, a):
        rank = len(self.shapes[a["self"].name])
        start = 0 if a.get("start") is None else int(a["start"])
        end = 2**62 if a.get("end") is None else min(int(a["end"]), 2**62)
        self._emit(node.name, "Slice", [a["self"].name, self._ints([start], f"{node.name}_starts"),
                                        self._ints([end], f"{node.name}_ends"),
                                        self._ints([int(a["dim"]) % rank], f"{node.name}_axes"),
                                        self._ints([int(a.get("step") or 1)], f"{node.name}_steps")])

    def _aten_select(self, node, a):
        self._emit(node.name, "Gather", [a["self"].name, self._const(np.array(int(a["index"]), np.int64),
                                                                       f"{node.name}_index")], axis=int(a["dim"]))

    def _aten_index_select(self, node, a):
        self._emit(node.name, "Gather", [a["self"].name, a["index"].name], axis=int(a["dim"]))

    def _aten_index(self, node, a):
        """x[..., idx, ...] with one constant index tensor: a Gather on that axis."""
        given = [(k, t) for k, t in enumerate(a["indices"]) if t is not None]
        if len(given) != 1:
            self.nodes.append(Node(node.name, "aten.index(several index tensors)", [a["self"].name], [node.name]))
            return
        dim, index = given[0]
        self._emit(node.name, "Gather", [a["self"].name, index.name], axis=dim)

    def _split(self, node, x, sizes, dim):
        outputs = [f"{node.name}#{k}" for k in range(len(sizes))]
        self._emit(node.name, "Split", [x, self._ints(sizes, f"{node.name}_sizes")], outputs, axis=dim)

    def _aten_split(self, node, a):
        x = a["self"].name
        rank = len(self.shapes[x])
        dim = int(a["dim"]) % rank
        size, total = int(a["split_size"]), self.shapes[x][dim]
        self._split(node, x, [min(size, total - k) for k in range(0, total, size)], dim)

    def _aten_split_with_sizes(self, node, a):
        x = a["self"].name
        self._split(node, x, list(a["split_sizes"]), int(a["dim"]) % len(self.shapes[x]))

    def _aten_chunk(self, node, a):
        x = a["self"].name
        dim = int(a["dim"]) % len(self.shapes[x])
        total = self.shapes[x][dim]
        per = -(-total // int(a["chunks"]))
        self._split(node, x, [min(per, total - k) for k in range(0, total, per)], dim)

    def _aten_amax(self, node, a):
        self._reduce(node, a, "ReduceMax")

    def _aten_sum(self, node, a):
        self._reduce(node, a, "ReduceSum")

    def _reduce(self, node, a, op):
        x = a["self"].name
        rank = len(self.shapes[x])
        dims = a.get("dim")
        axes = list(range(rank)) if not dims else [int(d) % rank for d in dims]
        self._emit(node.name, op, [x, self._ints(axes, f"{node.name}_axes")], keepdims=int(bool(a.get("keepdim"))))

    def _aten_prelu(self, node, a):
        x, w = a["self"].name, a["weight"].name
        rank = len(self.shapes[x])
        weight = self.consts.get(w)
        if weight is None:
            self.nodes.append(Node(node.name, "aten.prelu(computed weight)", [x], [node.name]))
            return
        slope = weight.reshape((-1,) + (1,) * (rank - 2)) if weight.size > 1 else weight.reshape(1)
        self._emit(node.name, "PRelu", [x, self._const(slope, f"{node.name}_slope")])

    _aten__prelu_kernel = _aten_prelu

    def _aten_pixel_shuffle(self, node, a):
        self._emit(node.name, "DepthToSpace", [a["self"].name], blocksize=int(a["upscale_factor"]), mode="CRD")

    def _aten_pixel_unshuffle(self, node, a):
        # SpaceToDepth gives channel k*C + c (k the position in the block); PyTorch's order is c*b*b + k
        x = a["self"].name
        b, c = int(a["downscale_factor"]), self.shapes[x][1]
        s2d = self._emit(f"{node.name}_s2d", "SpaceToDepth", [x], blocksize=b)
        order = [k * c + cc for cc in range(c) for k in range(b * b)]
        self._emit(node.name, "Gather", [s2d, self._const(np.array(order, np.int64), f"{node.name}_order")], axis=1)

    def _resize(self, node, x, mode, coords, nearest=None):
        sizes = self._const(np.array(self.shapes[node.name], dtype=np.int64), f"{node.name}_sizes")
        attrs = {"mode": mode, "coordinate_transformation_mode": coords}
        if nearest:
            attrs["nearest_mode"] = nearest
        self._emit(node.name, "Resize", [x, "", "", sizes], **attrs)

    def _aten_upsample_nearest2d(self, node, a):
        self._resize(node, a.get("self", a.get("input")).name, "nearest", "asymmetric", "floor")

    def _aten_upsample_bilinear2d(self, node, a):
        coords = "align_corners" if a.get("align_corners") else "pytorch_half_pixel"
        self._resize(node, a.get("self", a.get("input")).name, "linear", coords)

    def _aten_bmm(self, node, a):
        self._emit(node.name, "MatMul", [a["self"].name, a["mat2"].name])

    def _aten_repeat(self, node, a):
        x = a["self"].name
        repeats = [int(r) for r in a["repeats"]]
        if len(repeats) != len(self.shapes[x]):
            self.nodes.append(Node(node.name, "aten.repeat(new dimensions)", [x], [node.name]))
            return
        self._emit(node.name, "Tile", [x, self._ints(repeats, f"{node.name}_repeats")])

    def _aten_expand(self, node, a):
        self._emit(node.name, "Expand", [a["self"].name, self._ints(self.shapes[node.name], f"{node.name}_shape")])

    def _aten_cat(self, node, a):
        rank = len(self.shapes[node.name])
        self._emit(node.name, "Concat", [t.name for t in a["tensors"]], axis=int(a["dim"]) % rank)

    # recurrent layers: nn.LSTM and nn.GRU export as one aten.lstm / aten.gru call for all their layers

    def _aten_full(self, node, a):
        import torch

        value = a.get("fill_value", 0)
        self.consts[node.name] = torch.full([int(d) for d in a["size"]], value, dtype=node.meta["val"].dtype).numpy()

    _aten_zeros = _aten_full  # an LSTM's or GRU's initial state

    def _aten_lstm(self, node, a):
        # torch's gates i, f, g, o in ONNX's order i, o, f, c
        self._recurrent(node, a, "LSTM", list(a["hx"]), (0, 3, 1, 2))

    def _aten_gru(self, node, a):
        # torch's gates r, z, n in ONNX's order z, r, h; torch applies r after the recurrent product
        self._recurrent(node, a, "GRU", [a["hx"]], (1, 0, 2), linear_before_reset=1)

    def _recurrent(self, node, a, op: str, hx: list, order: tuple[int, ...], **attrs) -> None:
        """One ONNX LSTM or GRU node per layer (what torch.onnx.export writes), then the call's outputs: the
        last layer's sequence (#0) and the layers' final hidden (#1) and cell (#2) states."""
        def refuse(why: str) -> EdgeqError:
            return EdgeqError(f"{self.origin}: node '{node.name}' (aten.{op.lower()}): this {op} {why}.")

        if node.target._overloadname != "input":
            raise refuse("takes a packed sequence (pack_padded_sequence); edgeq runs one fixed-length sequence")
        x, layers, batch_first = a["input"].name, int(a["num_layers"]), bool(a["batch_first"])
        weights = [self.consts.get(p.name) for p in a["params"]]
        per_layer = (4 if a["has_biases"] else 2) * (2 if a["bidirectional"] else 1)
        batch = self.shapes[x][0 if batch_first else 1]
        initial = [self.consts.get(h.name) for h in hx]
        for bad, why in [
                (bool(a["bidirectional"]), f"is bidirectional; edgeq runs forward {op}s"),
                (len(weights) != per_layer * layers, "has a projection (proj_size); edgeq runs LSTMs without one"),
                (bool(a["train"]) and float(a["dropout"]) > 0, "was exported in training mode with dropout; call "
                                                               "model.eval() before torch.export.export"),
                (batch != 1, f"runs a batch of {batch}; edgeq runs batch 1: export with an example of batch 1"),
                (any(w is None for w in weights), "has weights computed in the model; edgeq takes them as parameters"),
                (any(h is None for h in initial), "is given an initial state computed in the model; edgeq starts "
                                                  "it from zero at every invoke: call it without one"),
                (any(h is not None and np.any(h) for h in initial), "is given an initial state that is not zero; edgeq "
                                                                    "starts it from zero at every invoke: call it "
                                                                    "without one")]:
            if bad:
                raise refuse(why)
        units = weights[1].shape[1]
        gate = lambda w: np.concatenate([np.split(w, len(order))[g] for g in order])  # noqa: E731
        seq = self._emit(f"{node.name}_time_major", "Transpose", [x], perm=[1, 0, 2]) if batch_first else x
        steps = self.shapes[x][1 if batch_first else 0]
        finals: list[list[str]] = [[], []]
        for layer in range(layers):
            w_ih, w_hh, *biases = weights[layer * per_layer:(layer + 1) * per_layer]
            name = f"{node.name}_l{layer}"
            w = self._const(gate(w_ih)[None], f"{name}_W")
            r = self._const(gate(w_hh)[None], f"{name}_R")
            b = self._const(np.concatenate([gate(v) for v in biases])[None], f"{name}_B") if biases else ""
            outs = [f"{name}#y", f"{name}#h"] + ([f"{name}#c"] if op == "LSTM" else [])
            self._emit(name, op, [seq, w, r, b], outs, hidden_size=units, **attrs)
            # Y [steps, directions, batch, units] is the next layer's [steps, batch, units]
            seq = self._emit(f"{name}_y", "Reshape", [outs[0], self._ints([steps, 1, units], f"{name}_y_shape")])
            for final, out in zip(finals, outs[1:]):
                final.append(out)
        if batch_first:
            seq = self._emit(f"{node.name}_batch_major", "Transpose", [seq], perm=[1, 0, 2])
        self._emit(node.name, "Identity", [seq], [f"{node.name}#0"])
        for k, final in enumerate(finals[:len(hx)]):
            self._emit(f"{node.name}_final{k}", "Concat", final, [f"{node.name}#{k + 1}"], axis=0)

    # shapes: every view-like op becomes a Reshape to the shape torch.export traced

    def _reshape(self, node, x):
        shape = self._const(np.array(self.shapes[node.name], dtype=np.int64), f"{node.name}_shape")
        self._emit(node.name, "Reshape", [x.name, shape])

    def _aten_view(self, node, a):
        self._reshape(node, a["self"])

    _aten_reshape = _aten_view
    _aten__unsafe_view = _aten_view
    _aten_squeeze = _aten_view
    _aten_unsqueeze = _aten_view

    def _aten_flatten(self, node, a):
        self._reshape(node, a["input"] if "input" in a else a["self"])

    def _identity(self, node, a):
        x = a.get("self", a.get("input"))
        self._emit(node.name, "Identity", [x.name])

    _aten_clone = _identity
    _aten_alias = _identity
    _aten_contiguous = _identity
    _aten_detach = _identity
    _aten_dropout = _identity
    _aten_lift_fresh_copy = _identity

    def _aten__to_copy(self, node, a):
        import torch
        dtype = a.get("dtype")
        if dtype not in (None, torch.float32):
            self.nodes.append(Node(node.name, f"aten._to_copy({dtype})", [a["self"].name], [node.name]))
            return
        self._identity(node, a)

    # pooling and reductions

    def _aten_max_pool2d(self, node, a, outputs=None):
        k = _pair(a["kernel_size"])
        stride = _pair(a["stride"]) if a["stride"] else k
        p = _pair(a["padding"])
        self._emit(node.name, "MaxPool", [a["self"].name], outputs, kernel_shape=k, strides=stride, pads=p + p,
                   dilations=_pair(a["dilation"]), ceil_mode=int(bool(a["ceil_mode"])))

    def _aten_max_pool2d_with_indices(self, node, a):
        self._aten_max_pool2d(node, a, [f"{node.name}#0"])

    def _aten_avg_pool2d(self, node, a):
        if a.get("divisor_override") is not None:
            self.nodes.append(Node(node.name, "aten.avg_pool2d(divisor_override)", [a["self"].name], [node.name]))
            return
        k = _pair(a["kernel_size"])
        stride = _pair(a["stride"]) if a["stride"] else k
        p = _pair(a["padding"])
        self._emit(node.name, "AveragePool", [a["self"].name], kernel_shape=k, strides=stride, pads=p + p,
                   ceil_mode=int(bool(a["ceil_mode"])), count_include_pad=int(bool(a["count_include_pad"])))

    def _aten_adaptive_avg_pool2d(self, node, a):
        x = a["self"].name
        h, w = self.shapes[x][2:]
        oh, ow = _pair(a["output_size"])
        if (oh, ow) == (1, 1):
            self._emit(node.name, "GlobalAveragePool", [x])
        elif h % oh == 0 and w % ow == 0:
            k = [h // oh, w // ow]
            self._emit(node.name, "AveragePool", [x], kernel_shape=k, strides=k)
        else:
            self.nodes.append(Node(node.name, "aten.adaptive_avg_pool2d(uneven)", [x], [node.name]))

    _aten__adaptive_avg_pool2d = _aten_adaptive_avg_pool2d

    def _aten_mean(self, node, a):
        x = a["self"].name
        dims = a.get("dim")
        rank = len(self.shapes[x])
        axes = list(range(rank)) if not dims else [int(d) % rank for d in dims]
        self._emit(node.name, "ReduceMean", [x], axes=axes, keepdims=int(bool(a.get("keepdim", False))))

    def _aten_softmax(self, node, a):
        self._emit(node.name, "Softmax", [a["self"].name], axis=int(a["dim"]))

    _aten__softmax = _aten_softmax

    def _aten_constant_pad_nd(self, node, a):
        x = a["self"].name
        rank = len(self.shapes[x])
        pad = [int(p) for p in a["pad"]]
        begin, end = [0] * rank, [0] * rank
        for k in range(len(pad) // 2):  # PyTorch lists the last dimension first
            begin[rank - 1 - k], end[rank - 1 - k] = pad[2 * k], pad[2 * k + 1]
        value = a.get("value") or 0.0
        self._emit(node.name, "Pad", [x, self._const(np.array(begin + end, dtype=np.int64), f"{node.name}_pads"),
                                      self._fconst(value, f"{node.name}_value")])

    def _aten_pad(self, node, a):
        if a.get("mode", "constant") != "constant":
            self.nodes.append(Node(node.name, f"aten.pad({a['mode']})", [a["self"].name], [node.name]))
            return
        self._aten_constant_pad_nd(node, a)
