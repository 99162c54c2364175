"""An integer graph of the IR as an int8 TFLite flatbuffer: the inverse of edgeq.frontends.tflite.

Made for NPU toolchains (Arm Vela) and LiteRT: schema version 3, one subgraph, buffer 0 the empty
sentinel and one buffer per constant, every tensor with its type, shape, scale and zero point. The
operands the IR keeps as attributes (RESHAPE's shape, PAD's paddings, MEAN's axes) become constant
int32 tensors again. Op versions are the ones the TFLite converter gives the int8 form of each op.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import flatbuffers
import numpy as np
import tflite

import edgeq
from edgeq.errors import EdgeqError
from edgeq.frontends.tflite import ACTIVATIONS, PADDINGS
from edgeq.ir import Graph, Tensor, ops

_TYPES = {"int8": tflite.TensorType.INT8, "int32": tflite.TensorType.INT32}
# the frontend's mappings, inverted
_ACT = {ir: code for code, ir in ACTIVATIONS.items()}
_PAD = {ir: code for code, ir in PADDINGS.items()}
BUFFER_ALIGNMENT = 16  # as the converter aligns constant data: kernels read int32 biases in place


@dataclass
class _OpSpec:
    code: str  # tflite.BuiltinOperator name
    version: int
    options: str | None = None  # tflite.BuiltinOptions name
    fields: dict = field(default_factory=dict)  # option field -> int, float or list (vector)
    const_inputs: list[tuple[str, np.ndarray]] = field(default_factory=list)  # appended int32 operands


def _conv(op: ops.Conv2D, g: Graph) -> _OpSpec:
    grouped = g.t(op.inputs[1]).shape[3] != g.t(op.inputs[0]).shape[3]
    return _OpSpec("CONV_2D", 6 if grouped else 3, "Conv2DOptions", {
        "Padding": _PAD[op.padding], "StrideW": op.stride_w, "StrideH": op.stride_h,
        "DilationWFactor": op.dilation_w, "DilationHFactor": op.dilation_h,
        "FusedActivationFunction": _ACT[op.activation]})


def _depthwise(op: ops.DepthwiseConv2D, g: Graph) -> _OpSpec:
    return _OpSpec("DEPTHWISE_CONV_2D", 3, "DepthwiseConv2DOptions", {
        "Padding": _PAD[op.padding], "StrideW": op.stride_w, "StrideH": op.stride_h,
        "DepthMultiplier": op.depth_multiplier, "DilationWFactor": op.dilation_w,
        "DilationHFactor": op.dilation_h, "FusedActivationFunction": _ACT[op.activation]})


def _fully_connected(op: ops.FullyConnected, g: Graph) -> _OpSpec:
    return _OpSpec("FULLY_CONNECTED", 4, "FullyConnectedOptions", {
        "FusedActivationFunction": _ACT[op.activation], "WeightsFormat": 0, "KeepNumDims": op.keep_num_dims})


def _pool(code: str) -> Callable[[ops.Op, Graph], _OpSpec]:
    def spec(op, g: Graph) -> _OpSpec:
        return _OpSpec(code, 2, "Pool2DOptions", {
            "Padding": _PAD[op.padding], "StrideW": op.stride_w, "StrideH": op.stride_h,
            "FilterWidth": op.filter_w, "FilterHeight": op.filter_h, "FusedActivationFunction": _ACT[op.activation]})
    return spec


def _binary(code: str, options: str) -> Callable[[ops.Op, Graph], _OpSpec]:
    return lambda op, g: _OpSpec(code, 2, options, {"FusedActivationFunction": _ACT[op.activation]})


def _reshape(op: ops.Reshape, g: Graph) -> _OpSpec:
    shape = np.array(g.t(op.outputs[0]).shape, np.int32)
    return _OpSpec("RESHAPE", 1, "ReshapeOptions", {"NewShape": list(shape)}, [("shape", shape)])


def _squeeze(op: ops.Squeeze, g: Graph) -> _OpSpec:
    return _OpSpec("SQUEEZE", 1, "SqueezeOptions", {"SqueezeDims": list(op.axes)})


def _pad(op: ops.Pad, g: Graph) -> _OpSpec:
    return _OpSpec("PAD", 2, "PadOptions", {}, [("paddings", np.array(op.paddings, np.int32).reshape(-1, 2))])


def _mean(op: ops.Mean, g: Graph) -> _OpSpec:
    return _OpSpec("MEAN", 2, "ReducerOptions", {"KeepDims": op.keep_dims},
                   [("axes", np.array(op.axes, np.int32))])


def _concat(op: ops.Concatenation, g: Graph) -> _OpSpec:
    return _OpSpec("CONCATENATION", 2, "ConcatenationOptions", {
        "Axis": op.axis, "FusedActivationFunction": _ACT[op.activation]})


_SPECS: dict[type, Callable[[ops.Op, Graph], _OpSpec]] = {
    ops.Conv2D: _conv,
    ops.DepthwiseConv2D: _depthwise,
    ops.FullyConnected: _fully_connected,
    ops.AveragePool2D: _pool("AVERAGE_POOL_2D"),
    ops.MaxPool2D: _pool("MAX_POOL_2D"),
    ops.Add: _binary("ADD", "AddOptions"),
    ops.Mul: _binary("MUL", "MulOptions"),
    ops.Reshape: _reshape,
    ops.Squeeze: _squeeze,
    ops.Softmax: lambda op, g: _OpSpec("SOFTMAX", 2, "SoftmaxOptions", {"Beta": op.beta}),
    ops.Pad: _pad,
    ops.Mean: _mean,
    ops.Concatenation: _concat,
    ops.Quantize: lambda op, g: _OpSpec("QUANTIZE", 1),
    ops.Relu: lambda op, g: _OpSpec("RELU", 2),
    ops.Relu6: lambda op, g: _OpSpec("RELU6", 2),
    ops.Logistic: lambda op, g: _OpSpec("LOGISTIC", 2),
    ops.Tanh: lambda op, g: _OpSpec("TANH", 2),
    ops.HardSwish: lambda op, g: _OpSpec("HARD_SWISH", 1),
    ops.LeakyRelu: lambda op, g: _OpSpec("LEAKY_RELU", 1, "LeakyReluOptions", {"Alpha": op.alpha}),
}
SUPPORTED = [k.kind for k in _SPECS]


def to_tflite(graph: Graph) -> bytes:
    """The int8 TFLite flatbuffer of an integer graph (e.g. edgeq.quant.driver.quantize(...).graph)."""
    _check(graph)
    return _Writer(graph).run()


def write_tflite(graph: Graph, path: str | Path) -> bytes:
    data = to_tflite(graph)
    Path(path).write_bytes(data)
    return data


def _check(graph: Graph) -> None:
    bad = [f"{op.name} ({op.kind})" for op in graph.ops if type(op) not in _SPECS]
    if bad:
        raise EdgeqError(f"{graph.name}: the TFLite export does not handle {', '.join(bad)}; it writes "
                         f"{', '.join(SUPPORTED)} between int8 tensors.")
    for op in graph.ops:
        for name in op.inputs + op.outputs:
            t = graph.t(name)
            if t.dtype not in _TYPES:
                raise EdgeqError(f"{graph.name}: operator {op.name} ({op.kind}) has {t.dtype} tensor '{name}'; the "
                                 "TFLite export writes int8 models (int32 biases) only: quantize the graph first "
                                 "(edgeq quantize, or --quant pot).")
            if t.dtype == "int8" and t.quant is None:
                raise EdgeqError(f"{graph.name}: int8 tensor '{name}' of operator {op.name} ({op.kind}) has no scale "
                                 "and zero point.")
        if isinstance(op, ops.Relu6) and graph.requant == "shift":
            x, y = (graph.t(op.inputs[0]).quant, graph.t(op.outputs[0]).quant)
            if (x.s, x.zp) != (y.s, y.zp):
                # TFLite Micro clamps int8 RELU6 on the input's scale and never requantizes (edgeq matches it);
                # LiteRT requantizes to the output's scale, as do NPU compilers that follow its reference
                # kernels. A TFLite model keeps that ambiguity of its own, but a power-of-two graph exported
                # this way would not compute what edgeq computes.
                raise EdgeqError(
                    f"{graph.name}: operator {op.name} (RELU6) has input scale {x.s:g}, zero point {x.zp} and output "
                    f"scale {y.s:g}, zero point {y.zp}. edgeq (like TFLite Micro) clamps it without requantizing, "
                    "LiteRT (and NPU compilers following it) requantize, so the exported model would compute "
                    "something else there. The power-of-two quantizer must give RELU6 its input's quantization "
                    "before the graph is exported.")


class _Writer:
    def __init__(self, graph: Graph):
        self.g = graph
        self.b = flatbuffers.Builder(1 << 16)
        self.tensors: list[Tensor] = []
        self.index: dict[str, int] = {}
        self.opcodes: dict[tuple[str, int], int] = {}

    def run(self) -> bytes:
        g, b = self.g, self.b
        for name in g.inputs:
            self._tensor(g.t(name))
        ops_data = []
        for op in g.ops:
            spec = _SPECS[type(op)](op, g)
            ins = [self._tensor(g.t(n)) for n in op.inputs]
            ins += [self._tensor(self._new_const(f"{op.name}/{what}", data)) for what, data in spec.const_inputs]
            outs = [self._tensor(g.t(n)) for n in op.outputs]
            code = self.opcodes.setdefault((spec.code, spec.version), len(self.opcodes))
            ops_data.append((spec, code, ins, outs))
        for name in g.outputs:
            self._tensor(g.t(name))

        buffers = [self._buffer(None)] + [self._buffer(t.data.astype(np.dtype(t.dtype).newbyteorder("<")))
                                          for t in self.tensors if t.is_const]
        tensors, buffer_id = [], 1
        for t in self.tensors:
            tensors.append(self._tensor_table(t, buffer_id if t.is_const else 0))
            buffer_id += t.is_const
        operators = [self._operator(*d) for d in ops_data]
        opcodes = [self._opcode(code, version) for code, version in self.opcodes]

        tensors_vec, operators_vec = self._offsets(tensors), self._offsets(operators)
        inputs_vec = self._ints([self.index[n] for n in g.inputs])
        outputs_vec = self._ints([self.index[n] for n in g.outputs])
        sg_name = b.CreateString("main")
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, tensors_vec)
        tflite.SubGraphAddInputs(b, inputs_vec)
        tflite.SubGraphAddOutputs(b, outputs_vec)
        tflite.SubGraphAddOperators(b, operators_vec)
        tflite.SubGraphAddName(b, sg_name)
        subgraph = tflite.SubGraphEnd(b)

        opcodes_vec, subgraphs_vec, buffers_vec = self._offsets(opcodes), self._offsets([subgraph]), \
            self._offsets(buffers)
        quant = "power-of-two" if g.requant == "shift" else "TFLite-scaled"
        description = b.CreateString(f"edgeq {edgeq.__version__}: {g.name}, int8 {quant}")
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, 3)
        tflite.ModelAddOperatorCodes(b, opcodes_vec)
        tflite.ModelAddSubgraphs(b, subgraphs_vec)
        tflite.ModelAddDescription(b, description)
        tflite.ModelAddBuffers(b, buffers_vec)
        b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    def _new_const(self, name: str, data: np.ndarray) -> Tensor:
        unique, k = name, 1
        while unique in self.g.tensors or unique in self.index:
            unique, k = f"{name}_{k}", k + 1
        return Tensor(unique, data.shape, "int32", None, data.astype(np.int32))

    def _tensor(self, t: Tensor) -> int:
        if t.name not in self.index:
            self.index[t.name] = len(self.tensors)
            self.tensors.append(t)
        return self.index[t.name]

    # --- flatbuffer pieces (children are built before the table that refers to them) ---

    def _ints(self, values, dtype=np.int32) -> int:
        return self.b.CreateNumpyVector(np.asarray(values, dtype=dtype).reshape(-1))

    def _offsets(self, offsets: list[int]) -> int:
        self.b.StartVector(4, len(offsets), 4)
        for o in reversed(offsets):
            self.b.PrependUOffsetTRelative(o)
        return self.b.EndVector()

    def _buffer(self, data: np.ndarray | None) -> int:
        b = self.b
        vec = None
        if data is not None:
            raw = np.ascontiguousarray(data).tobytes()
            b.StartVector(1, len(raw), BUFFER_ALIGNMENT)
            b.head -= len(raw)
            b.Bytes[b.head:b.head + len(raw)] = raw
            vec = b.EndVector()
        tflite.BufferStart(b)
        if vec is not None:
            tflite.BufferAddData(b, vec)
        return tflite.BufferEnd(b)

    def _tensor_table(self, t: Tensor, buffer: int) -> int:
        b = self.b
        name, shape = b.CreateString(t.name), self._ints(t.shape)
        quant = None
        if t.quant is not None:
            scale = b.CreateNumpyVector(t.quant.scale.astype(np.float32))
            zero_point = self._ints(t.quant.zero_point, np.int64)
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, scale)
            tflite.QuantizationParametersAddZeroPoint(b, zero_point)
            tflite.QuantizationParametersAddQuantizedDimension(b, 0 if t.quant.per_tensor else t.quant.axis)
            quant = tflite.QuantizationParametersEnd(b)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, _TYPES[t.dtype])
        tflite.TensorAddBuffer(b, buffer)
        tflite.TensorAddName(b, name)
        if quant is not None:
            tflite.TensorAddQuantization(b, quant)
        return tflite.TensorEnd(b)

    def _operator(self, spec: _OpSpec, opcode: int, ins: list[int], outs: list[int]) -> int:
        b = self.b
        ins_vec, outs_vec = self._ints(ins), self._ints(outs)
        options = self._options(spec) if spec.options else None
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, opcode)
        tflite.OperatorAddInputs(b, ins_vec)
        tflite.OperatorAddOutputs(b, outs_vec)
        if options is not None:
            tflite.OperatorAddBuiltinOptionsType(b, getattr(tflite.BuiltinOptions, spec.options))
            tflite.OperatorAddBuiltinOptions(b, options)
        return tflite.OperatorEnd(b)

    def _options(self, spec: _OpSpec) -> int:
        b = self.b
        vectors = {k: self._ints(v) for k, v in spec.fields.items() if isinstance(v, list)}
        getattr(tflite, f"{spec.options}Start")(b)
        for k, v in spec.fields.items():
            getattr(tflite, f"{spec.options}Add{k}")(b, vectors.get(k, v))
        return getattr(tflite, f"{spec.options}End")(b)

    def _opcode(self, code: str, version: int) -> int:
        value = getattr(tflite.BuiltinOperator, code)
        b = self.b
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(value, 127))  # the int8 field older readers use
        tflite.OperatorCodeAddBuiltinCode(b, value)
        tflite.OperatorCodeAddVersion(b, version)
        return tflite.OperatorCodeEnd(b)
