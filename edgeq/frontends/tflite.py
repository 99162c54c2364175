"""TFLite flatbuffers into the graph IR, through the `tflite` flatbuffer bindings.

Import-time rewrites, each recorded in Graph.notes:
- constant DEQUANTIZE (float16 or int8 weights) is folded into a float32 constant;
- int8 weights feeding a float op (hybrid models) become float32 constants;
- a QUANTIZE right after a float graph input and a DEQUANTIZE right before a graph output are
  stripped, so the model's interface is int8 and no float reaches the device.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tflite

from edgeq.errors import EdgeqError
from edgeq.frontends import tflite_state
from edgeq.frontends.files import read_model_file
from edgeq.frontends.float_islands import fold_float_neg
from edgeq.frontends.tflite_verify import verify_tflite
from edgeq.ir import Graph, Quant, Tensor, ops
from edgeq.ir.graph import sha256_bytes

_OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
_DTYPES = {
    tflite.TensorType.FLOAT32: "float32",
    tflite.TensorType.INT8: "int8",
    tflite.TensorType.UINT8: "uint8",
    tflite.TensorType.INT16: "int16",
    tflite.TensorType.INT32: "int32",
    tflite.TensorType.INT64: "int64",
}
_CONST_ONLY = {tflite.TensorType.FLOAT16: np.float16}

ACTIVATIONS = {
    tflite.ActivationFunctionType.NONE: ops.Activation.NONE,
    tflite.ActivationFunctionType.RELU: ops.Activation.RELU,
    tflite.ActivationFunctionType.RELU_N1_TO_1: ops.Activation.RELU_N1_TO_1,
    tflite.ActivationFunctionType.RELU6: ops.Activation.RELU6,
}
PADDINGS = {tflite.Padding.SAME: ops.Padding.SAME, tflite.Padding.VALID: ops.Padding.VALID}

SUPPORTED = (
    "CONV_2D DEPTHWISE_CONV_2D FULLY_CONNECTED AVERAGE_POOL_2D MAX_POOL_2D ADD MUL RESHAPE SQUEEZE "
    "SOFTMAX PAD MEAN CONCATENATION QUANTIZE DEQUANTIZE RELU RELU6 LOGISTIC TANH HARD_SWISH LEAKY_RELU "
    "TRANSPOSE STRIDED_SLICE SLICE SPLIT SPLIT_V PACK UNPACK GATHER DEPTH_TO_SPACE SPACE_TO_DEPTH "
    "BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND RESIZE_NEAREST_NEIGHBOR SUB MAXIMUM MINIMUM ABS RSQRT REDUCE_MAX SUM "
    "ARG_MAX TILE SQUARED_DIFFERENCE PRELU TRANSPOSE_CONV BATCH_MATMUL RESIZE_BILINEAR L2_NORMALIZATION EXP LOG "
    "EXPAND_DIMS GELU NEG"
).split() + list(tflite_state.KINDS)
# Operators that may compute a RESHAPE's shape operand, which edgeq drops (it takes the static output shape).
SHAPE_ARITHMETIC = {"SHAPE", "CAST", "FILL"}
# The IR operator each TFLite operator becomes where the names differ (one per output for SPLIT, SPLIT_V and
# UNPACK; SPACE_TO_BATCH_ND's paddings become a PAD before it).
IMPORTED_AS = {"SLICE": "STRIDED_SLICE", "SPLIT": "STRIDED_SLICE", "SPLIT_V": "STRIDED_SLICE",
               "UNPACK": "STRIDED_SLICE", "EXPAND_DIMS": "RESHAPE", **tflite_state.IMPORTED_AS}


def load_tflite_file(path: str | Path) -> Graph:
    path = Path(path)
    data = read_model_file(path)
    return load_tflite(data, path.stem, str(path))


def load_tflite(data: bytes, name: str, origin: str = "the model") -> Graph:
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise EdgeqError(
            f"{origin} is not a TFLite model: a .tflite flatbuffer carries the identifier 'TFL3' at byte 4"
            f"{', and this file is only %d bytes' % len(data) if len(data) < 8 else ''}. "
            "Export the model with the TFLite converter, or give an .onnx or .pt2 file.")
    verify_tflite(data, origin)
    try:
        return _Importer(data, name, origin).run()
    except EdgeqError:
        raise
    except Exception as e:  # flatbuffers raises bare struct/index errors on damaged files
        raise EdgeqError(
            f"{origin} is a damaged TFLite file: reading its flatbuffer failed ({type(e).__name__}: {e}). "
            "It is probably truncated or corrupted; export or copy it again.") from None


def _options(op, cls):
    table = op.BuiltinOptions()
    if table is None:
        return None
    opt = cls()
    opt.Init(table.Bytes, table.Pos)
    return opt


class _Importer:
    def __init__(self, data: bytes, name: str, origin: str):
        self.data = data
        self.name = name
        self.origin = origin
        self.model = tflite.Model.GetRootAsModel(data, 0)
        self.notes: list[str] = []

    def run(self) -> Graph:
        m = self.model
        if m.SubgraphsLength() < 1:
            raise EdgeqError(f"{self.origin} has no subgraph: there is nothing to compile.")
        if m.SubgraphsLength() > 1:
            self.notes.append(f"only the main subgraph is compiled; {m.SubgraphsLength() - 1} other(s) ignored")
        g = m.Subgraphs(0)
        self.live = self._live_ops(g)
        self._check_ops(g)
        self.tensors = [self._tensor(g, i) for i in range(g.TensorsLength())]
        self.state = tflite_state.StateImporter(self)
        self.state.scan(g)
        inputs = [self.tensors[i].name for i in g.InputsAsNumpy()]
        outputs = [self.tensors[i].name for i in g.OutputsAsNumpy()]
        tensors = {t.name: t for t in self.tensors}
        self.extra: list[Tensor] = []  # tensors between the IR operators one TFLite operator becomes
        op_list = []
        for i in sorted(self.live):
            o = self._op(g.Operators(i), i)
            op_list.extend(o if isinstance(o, list) else [o])
        tensors.update({t.name: t for t in self.extra})
        graph = Graph(self.name, tensors, op_list, inputs, outputs, sha256_bytes(self.data), self.notes,
                      states=self.state.states)
        _fold_constant_dequantize(graph)
        tflite_state.fold_float_variables(graph)
        fold_float_neg(graph)
        _dequantize_hybrid_weights(graph)
        _strip_boundary_conversions(graph)
        _drop_unused_tensors(graph)
        _check_activation_types(graph, self.origin)
        return graph

    def _opname(self, op) -> str:
        oc = self.model.OperatorCodes(op.OpcodeIndex())
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        if code == tflite.BuiltinOperator.CUSTOM:
            return "CUSTOM:" + (oc.CustomCode() or b"?").decode(errors="replace")
        return _OP_NAMES.get(code, f"BUILTIN_{code}")

    def _live_ops(self, g) -> set[int]:
        """Operators the outputs depend on. RESHAPE's shape operand does not count: edgeq takes the
        static output shape, so shape arithmetic feeding it (SHAPE, STRIDED_SLICE, PACK) is dropped."""
        producer = {}
        for i in range(g.OperatorsLength()):
            for t in g.Operators(i).OutputsAsNumpy():
                producer[int(t)] = i
        live, stack = set(), [int(t) for t in g.OutputsAsNumpy()]
        roots = [i for i in range(g.OperatorsLength()) if self._opname(g.Operators(i)) == "ASSIGN_VARIABLE"]
        while stack or roots:  # a variable's assignment is live: the next invoke reads it
            i = roots.pop() if roots else producer.get(stack.pop())
            if i is None or i in live:
                continue
            live.add(i)
            op = g.Operators(i)
            ins = [int(t) for t in op.InputsAsNumpy()] if op.InputsLength() else []
            if self._opname(op) == "RESHAPE":
                ins = ins[:1]
            stack.extend(t for t in ins if t >= 0)
        return live

    def _check_ops(self, g) -> None:
        bad = []
        for i in sorted(self.live):
            kind = self._opname(g.Operators(i))
            if kind not in SUPPORTED:
                bad.append(f"#{i} {kind}")
        if bad:
            raise EdgeqError(
                f"{self.origin} uses {len(bad)} operator(s) edgeq does not support: {', '.join(bad)}. "
                f"Supported: {', '.join(SUPPORTED)}. Replace or remove those layers before converting.")
        # Unused operators are dropped, but TFLite Micro still loads them: one it cannot run is a broken model.
        dead = [f"#{i} {k}" for i in range(g.OperatorsLength()) if i not in self.live
                for k in [self._opname(g.Operators(i))] if k not in SUPPORTED and k not in SHAPE_ARITHMETIC]
        if dead:
            raise EdgeqError(
                f"{self.origin} holds operator(s) {', '.join(dead)}, which no output depends on and which are not "
                f"shape arithmetic ({', '.join(sorted(SHAPE_ARITHMETIC))}): TFLite Micro would still load them "
                "and refuse the model. The file is damaged or the conversion went wrong; convert it again.")

    def _tensor(self, g, i: int) -> Tensor:
        t = g.Tensors(i)
        raw_name = (t.Name() or b"").decode(errors="replace") or f"tensor_{i}"
        name = f"{raw_name}" if not any(
            (g.Tensors(j).Name() or b"").decode(errors="replace") == raw_name for j in range(i)) else f"{raw_name}#{i}"
        ttype = t.Type()
        if ttype == tflite.TensorType.RESOURCE:  # a variable's handle: the operators name the state instead
            return Tensor(name, (), "int32")
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        if t.ShapeSignatureLength():
            sig = t.ShapeSignatureAsNumpy()
            shape = tuple(1 if s == -1 and k == 0 else d for k, (s, d) in enumerate(zip(sig, shape)))
        data = self._buffer(t.Buffer())
        dtype = _DTYPES.get(ttype)
        if data is not None:
            np_type = _CONST_ONLY.get(ttype) or (np.dtype(dtype) if dtype else None)
            if np_type is None:
                raise EdgeqError(
                    f"{self.origin}: constant tensor #{i} '{raw_name}' has type {_TYPE_NAMES.get(ttype, ttype)}, "
                    "which edgeq cannot handle (constants must be float32, float16, int8, int32 or int64).")
            arr = np.frombuffer(data, dtype=np_type)
            if arr.size != int(np.prod(shape, dtype=np.int64)):
                raise EdgeqError(
                    f"{self.origin} is damaged: constant tensor #{i} '{raw_name}' of shape {shape} holds "
                    f"{arr.size} values. Export or copy the model again.")
            data = arr.reshape(shape).copy()
            if np_type is np.float16:  # folded away with its DEQUANTIZE
                data, dtype = data.astype(np.float32), "float32"
        if dtype is None:
            raise EdgeqError(
                f"{self.origin}: tensor #{i} '{raw_name}' has type {_TYPE_NAMES.get(ttype, ttype)}, which edgeq "
                "cannot handle. edgeq compiles int8 models (and float32 models for quantization).")
        quant = None
        q = t.Quantization()
        if q is not None and q.ScaleLength() > 0:
            quant = Quant(q.ScaleAsNumpy(), q.ZeroPointAsNumpy() if q.ZeroPointLength() else [0], q.QuantizedDimension())
        return Tensor(name, shape, dtype, None if dtype == "float32" else quant, data)

    def _buffer(self, index: int) -> bytes | None:
        if index < 0 or index >= max(self.model.BuffersLength(), 1):
            raise EdgeqError(f"{self.origin} is damaged: a tensor refers to buffer {index} of "
                             f"{self.model.BuffersLength()}. Export or copy the model again.")
        if index == 0:
            return None
        b = self.model.Buffers(index)
        if b.Offset() > 1:  # large models keep buffers after the flatbuffer
            end = b.Offset() + b.Size()
            if end > len(self.data):
                raise EdgeqError(f"{self.origin} is truncated: buffer {index} ends at byte {end} of {len(self.data)}.")
            return self.data[b.Offset():end]
        if b.DataLength() == 0:
            return None
        return b.DataAsNumpy().tobytes()

    def _op(self, op, index: int) -> ops.Op | list[ops.Op]:
        kind = self._opname(op)
        ins = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(i) for i in op.OutputsAsNumpy()]
        name = f"{kind.lower()}_{index}"
        tin = [self.tensors[i].name for i in ins if i >= 0]
        tout = [self.tensors[i].name for i in outs]

        def const(pos: int) -> np.ndarray:
            t = self.tensors[ins[pos]]
            if t.data is None:
                raise EdgeqError(f"Operator #{index} {kind}: input {pos} must be a constant tensor for edgeq.")
            return t.data

        if kind == "CONV_2D":
            o = _options(op, tflite.Conv2DOptions)
            return ops.Conv2D(name, tin, tout, o.StrideH(), o.StrideW(), o.DilationHFactor(), o.DilationWFactor(),
                              PADDINGS[o.Padding()], self._act(o.FusedActivationFunction(), index, kind))
        if kind == "DEPTHWISE_CONV_2D":
            o = _options(op, tflite.DepthwiseConv2DOptions)
            x, w = self.tensors[ins[0]], self.tensors[ins[1]]
            mult = w.shape[3] // x.shape[3] if x.shape[3] else 1
            return ops.DepthwiseConv2D(name, tin, tout, o.StrideH(), o.StrideW(), o.DilationHFactor(),
                                       o.DilationWFactor(), mult, PADDINGS[o.Padding()],
                                       self._act(o.FusedActivationFunction(), index, kind))
        if kind == "TRANSPOSE_CONV":  # inputs: output shape, weights, input, optional bias
            o = _options(op, tflite.TransposeConvOptions)
            act = self._act(o.FusedActivationFunction(), index, kind) if o else ops.Activation.NONE
            operands = [self.tensors[ins[2]].name, self.tensors[ins[1]].name]
            if len(ins) > 3 and ins[3] >= 0:
                operands.append(self.tensors[ins[3]].name)
            return ops.TransposeConv(name, operands, tout, o.StrideH(), o.StrideW(), PADDINGS[o.Padding()], act)
        if kind == "GELU":
            o = _options(op, tflite.GeluOptions)
            return ops.Gelu(name, tin, tout, bool(o.Approximate()) if o else False)
        if kind == "L2_NORMALIZATION":
            o = _options(op, tflite.L2NormOptions)
            if o is not None and self._act(o.FusedActivationFunction(), index, kind) != ops.Activation.NONE:
                raise EdgeqError(f"Operator #{index} L2_NORMALIZATION has a fused activation, which TFLite Micro "
                                 "does not run either; remove it.")
            return ops.L2Normalization(name, tin, tout)
        if kind == "BATCH_MATMUL":
            o = _options(op, tflite.BatchMatMulOptions)
            return ops.BatchMatMul(name, tin, tout, bool(o.AdjX()) if o else False, bool(o.AdjY()) if o else False)
        if kind == "FULLY_CONNECTED":
            o = _options(op, tflite.FullyConnectedOptions)
            if o is not None and o.WeightsFormat() != 0:
                raise EdgeqError(f"Operator #{index} FULLY_CONNECTED uses shuffled weights, which edgeq cannot handle.")
            return ops.FullyConnected(name, tin, tout, self._act(o.FusedActivationFunction() if o else 0, index, kind),
                                      bool(o.KeepNumDims()) if o else False)
        if kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            o = _options(op, tflite.Pool2DOptions)
            cls = ops.AveragePool2D if kind == "AVERAGE_POOL_2D" else ops.MaxPool2D
            return cls(name, tin, tout, o.FilterHeight(), o.FilterWidth(), o.StrideH(), o.StrideW(),
                       PADDINGS[o.Padding()], self._act(o.FusedActivationFunction(), index, kind))
        if kind in ("ADD", "MUL"):
            o = _options(op, tflite.AddOptions if kind == "ADD" else tflite.MulOptions)
            cls = ops.Add if kind == "ADD" else ops.Mul
            return cls(name, tin, tout, self._act(o.FusedActivationFunction() if o else 0, index, kind))
        if kind in ("RESHAPE", "EXPAND_DIMS"):  # the output tensor's shape is the new one
            return ops.Reshape(name, tin[:1], tout)
        if kind == "SQUEEZE":
            o = _options(op, tflite.SqueezeOptions)
            rank = len(self.tensors[ins[0]].shape)
            axes = tuple(sorted(int(a) % rank for a in o.SqueezeDimsAsNumpy())) if o and o.SqueezeDimsLength() else ()
            return ops.Squeeze(name, tin, tout, axes)
        if kind == "SOFTMAX":
            o = _options(op, tflite.SoftmaxOptions)
            return ops.Softmax(name, tin, tout, float(o.Beta()) if o else 1.0)
        if kind == "PAD":
            pads = const(1).astype(np.int64).reshape(-1, 2)
            return ops.Pad(name, tin[:1], tout, tuple((int(a), int(b)) for a, b in pads))
        if kind == "MEAN":
            o = _options(op, tflite.ReducerOptions)
            rank = len(self.tensors[ins[0]].shape)
            axes = tuple(sorted({int(a) % rank for a in const(1).reshape(-1)}))
            return ops.Mean(name, tin[:1], tout, axes, bool(o.KeepDims()) if o else False)
        if kind == "CONCATENATION":
            o = _options(op, tflite.ConcatenationOptions)
            rank = len(self.tensors[outs[0]].shape)
            return ops.Concatenation(name, tin, tout, int(o.Axis()) % rank,
                                     self._act(o.FusedActivationFunction(), index, kind))
        if kind == "LEAKY_RELU":
            o = _options(op, tflite.LeakyReluOptions)
            return ops.LeakyRelu(name, tin, tout, float(o.Alpha()) if o else 0.2)
        if kind in _MOVEMENT:
            return _MOVEMENT[kind](self, op, index, name, tin, tout, const)
        if kind in tflite_state.KINDS:
            return self.state.op(op, index, kind, name, ins, tin, tout)
        if kind == "SUB":
            o = _options(op, tflite.SubOptions)
            return ops.Sub(name, tin, tout, self._act(o.FusedActivationFunction() if o else 0, index, kind))
        if kind in ("REDUCE_MAX", "SUM"):
            o = _options(op, tflite.ReducerOptions)
            rank = len(self.tensors[ins[0]].shape)
            axes = tuple(sorted({int(a) % rank for a in const(1).reshape(-1)}))
            cls = ops.ReduceMax if kind == "REDUCE_MAX" else ops.Sum
            return cls(name, tin[:1], tout, axes, bool(o.KeepDims()) if o else False)
        if kind == "ARG_MAX":
            rank = len(self.tensors[ins[0]].shape)
            return ops.ArgMax(name, tin[:1], tout, int(const(1).reshape(-1)[0]) % rank)
        simple = {"QUANTIZE": ops.Quantize, "DEQUANTIZE": ops.Dequantize, "RELU": ops.Relu, "RELU6": ops.Relu6,
                  "LOGISTIC": ops.Logistic, "TANH": ops.Tanh, "HARD_SWISH": ops.HardSwish, "MAXIMUM": ops.Maximum,
                  "MINIMUM": ops.Minimum, "ABS": ops.Abs, "RSQRT": ops.Rsqrt,
                  "SQUARED_DIFFERENCE": ops.SquaredDifference, "PRELU": ops.Prelu, "EXP": ops.Exp, "LOG": ops.Log,
                  "NEG": ops.Neg}
        return simple[kind](name, tin, tout)

    def _act(self, code: int, index: int, kind: str) -> ops.Activation:
        if code not in ACTIVATIONS:
            raise EdgeqError(f"Operator #{index} {kind} has fused activation {code} (not NONE, RELU, RELU_N1_TO_1 "
                             "or RELU6), which edgeq cannot handle.")
        return ACTIVATIONS[code]


def _ints(a: np.ndarray) -> list[int]:
    return [int(v) for v in a.reshape(-1)]


def _slices(name: str, x: Tensor, outs: list[str], axis: int, sizes: list[int], shrink: bool) -> list[ops.Op]:
    """One StridedSlice per output: consecutive pieces of the given sizes along axis."""
    result, start = [], 0
    for k, (out, size) in enumerate(zip(outs, sizes)):
        begin = [start if a == axis else 0 for a in range(len(x.shape))]
        end = [start + size if a == axis else d for a, d in enumerate(x.shape)]
        result.append(ops.StridedSlice(f"{name}_{k}", [x.name], [out], tuple(begin), tuple(end),
                                       (1,) * len(x.shape), (axis,) if shrink else ()))
        start += size
    return result


def _strided_slice(imp: "_Importer", op, index, name, tin, tout, const) -> ops.Op:
    """TFLite's strided_slice_logic (StartForAxis, StopForAxis) resolved against the input's shape."""
    o = _options(op, tflite.StridedSliceOptions)
    shape = imp.tensors[int(op.InputsAsNumpy()[0])].shape
    begin, end, strides = _ints(const(1)), _ints(const(2)), _ints(const(3))
    if o is not None and (o.EllipsisMask() or o.NewAxisMask()):
        raise EdgeqError(f"Operator #{index} STRIDED_SLICE uses an ellipsis or new-axis mask, which edgeq cannot "
                         "handle; write the slice with explicit begin and end for every axis.")
    if not len(begin) == len(end) == len(strides) == len(shape) or 0 in strides:
        raise EdgeqError(f"Operator #{index} STRIDED_SLICE has begin {begin}, end {end}, strides {strides} for an "
                         f"input of rank {len(shape)}; edgeq needs one nonzero stride per axis.")
    masks = [(o.BeginMask(), o.EndMask(), o.ShrinkAxisMask(), o.Offset()) if o else (0, 0, 0, False)][0]
    nb, ne, ns, shrink = [], [], [], []
    for a, d in enumerate(shape):
        b, e, st = begin[a], end[a], strides[a]
        lo, hi = (0, d) if st > 0 else (-1, d - 1)
        start = (0 if st > 0 else d - 1) if masks[0] >> a & 1 else min(max(b + d if b < 0 else b, lo), hi)
        if masks[2] >> a & 1:
            nb.append(start), ne.append(start + 1), ns.append(1), shrink.append(a)
            continue
        if masks[3]:
            e = b + e
        stop = (d if st > 0 else -1) if masks[1] >> a & 1 else min(max(e + d if e < 0 else e, lo), hi)
        nb.append(min(start, d - 1) if st < 0 else start), ne.append(stop), ns.append(st)
    return ops.StridedSlice(name, tin[:1], tout, tuple(nb), tuple(ne), tuple(ns), tuple(shrink))


def _slice(imp: "_Importer", op, index, name, tin, tout, const) -> ops.Op:
    shape = imp.tensors[int(op.InputsAsNumpy()[0])].shape
    begin, size = _ints(const(1)), _ints(const(2))
    end = [d if n == -1 else b + n for b, n, d in zip(begin, size, shape)]
    return ops.StridedSlice(name, tin[:1], tout, tuple(begin), tuple(end), (1,) * len(shape), ())


def _split(imp: "_Importer", op, index, name, tin, tout, const) -> list[ops.Op]:
    x = imp.tensors[int(op.InputsAsNumpy()[1])]
    axis = _ints(const(0))[0] % len(x.shape)
    n = len(tout)
    if x.shape[axis] % n:
        raise EdgeqError(f"Operator #{index} SPLIT cuts {x.shape[axis]} into {n} parts, which does not divide.")
    imp.notes.append(f"{name}: SPLIT into {n} outputs imported as {n} STRIDED_SLICE operators")
    return _slices(name, x, tout, axis, [x.shape[axis] // n] * n, shrink=False)


def _split_v(imp: "_Importer", op, index, name, tin, tout, const) -> list[ops.Op]:
    x = imp.tensors[int(op.InputsAsNumpy()[0])]
    axis = _ints(const(2))[0] % len(x.shape)
    sizes = _ints(const(1))
    if sizes.count(-1) == 1:
        sizes[sizes.index(-1)] = x.shape[axis] - (sum(sizes) + 1)
    imp.notes.append(f"{name}: SPLIT_V into {len(tout)} outputs imported as {len(tout)} STRIDED_SLICE operators")
    return _slices(name, x, tout, axis, sizes, shrink=False)


def _unpack(imp: "_Importer", op, index, name, tin, tout, const) -> list[ops.Op]:
    o = _options(op, tflite.UnpackOptions)
    x = imp.tensors[int(op.InputsAsNumpy()[0])]
    axis = (o.Axis() if o else 0) % len(x.shape)
    imp.notes.append(f"{name}: UNPACK into {len(tout)} outputs imported as {len(tout)} STRIDED_SLICE operators")
    return _slices(name, x, tout, axis, [1] * len(tout), shrink=True)


def _pack(imp: "_Importer", op, index, name, tin, tout, const) -> ops.Op:
    o = _options(op, tflite.PackOptions)
    rank = len(imp.tensors[int(op.OutputsAsNumpy()[0])].shape)
    return ops.Pack(name, tin, tout, (o.Axis() if o else 0) % rank)


def _gather(imp: "_Importer", op, index, name, tin, tout, const) -> ops.Op:
    o = _options(op, tflite.GatherOptions)
    x = imp.tensors[int(op.InputsAsNumpy()[0])]
    if o is not None and o.BatchDims() != 0:
        raise EdgeqError(f"Operator #{index} GATHER has batch_dims {o.BatchDims()}; edgeq gathers with batch_dims 0.")
    axis = (o.Axis() if o else 0) % len(x.shape)
    indices = imp.tensors[int(op.InputsAsNumpy()[1])]
    if indices.data is None:  # computed at run time
        return ops.Gather(name, tin[:2], tout, axis, (), tuple(indices.shape))
    idx = const(1)
    flat = [int(v) + x.shape[axis] if v < 0 else int(v) for v in idx.reshape(-1)]
    return ops.Gather(name, tin[:1], tout, axis, tuple(flat), tuple(int(d) for d in idx.shape))


def _block(imp: "_Importer", op, index, name, tin, tout, const) -> ops.Op:
    kind = imp._opname(op)
    if kind in ("DEPTH_TO_SPACE", "SPACE_TO_DEPTH"):
        o = _options(op, tflite.DepthToSpaceOptions if kind == "DEPTH_TO_SPACE" else tflite.SpaceToDepthOptions)
        cls = ops.DepthToSpace if kind == "DEPTH_TO_SPACE" else ops.SpaceToDepth
        return cls(name, tin[:1], tout, int(o.BlockSize()))
    x = imp.tensors[int(op.InputsAsNumpy()[0])]
    block = tuple(_ints(const(1)))
    pairs = const(2).astype(np.int64).reshape(-1, 2)
    if len(x.shape) != 4 or len(block) != 2:
        raise EdgeqError(f"Operator #{index} {kind} has an input of rank {len(x.shape)} and block {list(block)}; "
                         "edgeq handles NHWC inputs with a 2-D block.")
    pairs = tuple((int(a), int(b)) for a, b in pairs)
    if kind == "BATCH_TO_SPACE_ND":
        return ops.BatchToSpaceND(name, tin[:1], tout, block, pairs)
    if not any(a or b for a, b in pairs):
        return ops.SpaceToBatchND(name, tin[:1], tout, block)
    padded = f"{tout[0]}/padded_for_{name}"
    shape = (x.shape[0], x.shape[1] + sum(pairs[0]), x.shape[2] + sum(pairs[1]), x.shape[3])
    imp.extra.append(Tensor(padded, shape, x.dtype, x.quant))
    # With the zero point, as LiteRT pads: TFLite Micro pads int8 with a value it never sets (uninitialized).
    imp.notes.append(f"{name}: SPACE_TO_BATCH_ND's paddings imported as a PAD before it")
    return [ops.Pad(f"{name}_pad", tin[:1], [padded], ((0, 0), *pairs, (0, 0))),
            ops.SpaceToBatchND(name, [padded], tout, block)]


def _resize(imp: "_Importer", op, index, name, tin, tout, const) -> ops.Op:
    nearest = imp._opname(op) == "RESIZE_NEAREST_NEIGHBOR"
    o = _options(op, tflite.ResizeNearestNeighborOptions if nearest else tflite.ResizeBilinearOptions)
    cls = ops.ResizeNearestNeighbor if nearest else ops.ResizeBilinear
    return cls(name, tin[:1], tout, bool(o.AlignCorners()) if o else False, bool(o.HalfPixelCenters()) if o else False)


_MOVEMENT = {
    "TRANSPOSE": lambda imp, op, index, name, tin, tout, const: ops.Transpose(name, tin[:1], tout,
                                                                              tuple(_ints(const(1)))),
    "TILE": lambda imp, op, index, name, tin, tout, const: ops.Tile(name, tin[:1], tout, tuple(_ints(const(1)))),
    "STRIDED_SLICE": _strided_slice, "SLICE": _slice, "SPLIT": _split, "SPLIT_V": _split_v, "UNPACK": _unpack,
    "PACK": _pack, "GATHER": _gather, "DEPTH_TO_SPACE": _block, "SPACE_TO_DEPTH": _block,
    "BATCH_TO_SPACE_ND": _block, "SPACE_TO_BATCH_ND": _block, "RESIZE_NEAREST_NEIGHBOR": _resize,
    "RESIZE_BILINEAR": _resize,
}


def _fold_constant_dequantize(graph: Graph) -> None:
    kept = []
    for op in graph.ops:
        src = graph.t(op.inputs[0]) if op.inputs else None
        if isinstance(op, ops.Dequantize) and src is not None and src.is_const:
            out = graph.t(op.outputs[0])
            out.data = _dequantize_const(src)
            out.dtype, out.quant = "float32", None
            graph.notes.append(f"{op.name}: constant {src.name} dequantized to float32 at import")
            continue
        kept.append(op)
    graph.ops = kept


def _dequantize_const(t: Tensor) -> np.ndarray:
    q = t.quant
    if q is None or t.dtype == "float32":
        return t.data.astype(np.float32)
    shape = [1] * t.data.ndim
    if not q.per_tensor:
        shape[q.axis] = -1
    scale = q.scale.reshape(shape)
    zp = q.zero_point.reshape(shape)
    return ((t.data.astype(np.int64) - zp).astype(np.float32) * scale).astype(np.float32)


def _dequantize_hybrid_weights(graph: Graph) -> None:
    for op in graph.ops:
        if not op.inputs or graph.t(op.inputs[0]).dtype != "float32":  # READ_VARIABLE has no inputs
            continue
        for name in op.inputs[1:]:
            t = graph.t(name)
            if t.is_const and t.dtype == "int8":
                t.data, t.dtype, t.quant = _dequantize_const(t), "float32", None
                graph.notes.append(f"{op.name}: int8 weights {name} dequantized to float32 (hybrid model)")
            elif t.is_const and t.dtype == "int32" and isinstance(op, (ops.Conv2D, ops.DepthwiseConv2D,
                                                                        ops.FullyConnected)):
                t.data, t.dtype, t.quant = t.data.astype(np.float32), "float32", None


def _strip_boundary_conversions(graph: Graph) -> None:
    consumers = graph.consumers()
    for i, name in enumerate(graph.inputs):
        users = consumers.get(name, [])
        if graph.t(name).dtype == "float32" and len(users) == 1 and isinstance(users[0], ops.Quantize):
            q = users[0]
            graph.inputs[i] = q.outputs[0]
            graph.ops.remove(q)
            graph.notes.append(f"{q.name}: float input quantization moved to the caller; the input is "
                               f"{graph.t(q.outputs[0]).dtype}")
    producers = graph.producers()
    for i, name in enumerate(graph.outputs):
        op = producers.get(name)
        if isinstance(op, ops.Dequantize) and graph.t(op.inputs[0]).dtype in ("int8", "int16"):
            graph.outputs[i] = op.inputs[0]
            graph.ops.remove(op)
            graph.notes.append(f"{op.name}: output dequantization moved to the caller; the output is "
                               f"{graph.t(op.inputs[0]).dtype}")


def _drop_unused_tensors(graph: Graph) -> None:
    used = set(graph.inputs) | set(graph.outputs)
    for op in graph.ops:
        used.update(op.inputs)
        used.update(op.outputs)
    graph.tensors = {k: v for k, v in graph.tensors.items() if k in used}


def _check_activation_types(graph: Graph, origin: str) -> None:
    indices = {op.outputs[0] for op in graph.ops if isinstance(op, ops.ArgMax)}
    indices |= {op.inputs[1] for op in graph.ops if isinstance(op, ops.Gather) and len(op.inputs) > 1}
    for t in graph.activations():
        if t.dtype not in ("int8", "int16", "float32") and not (t.name in indices and t.dtype in ("int32", "int64")):
            raise EdgeqError(
                f"{origin}: activation tensor '{t.name}' is {t.dtype}; edgeq runs int8 activations, the int16 ones of "
                "16x8 models, or float32 ones it quantizes. Convert the model with int8 activations (not uint8).")
