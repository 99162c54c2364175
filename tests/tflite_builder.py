"""Int8 TFLite models written directly with TFLite's flatbuffer schema: no converter, so one model can hold
dozens of configurations of an operator (each its own input -> operator -> output chain), with the scales,
zero points and attributes a test chooses. TFLite Micro then runs them as it runs any model."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_TYPES = {"int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64", "float32": "FLOAT32"}


@dataclass
class T:
    """A tensor: activations have no data; scale None means no quantization."""
    shape: tuple[int, ...]
    dtype: str = "int8"
    scale: float | list[float] | None = None
    zero_point: int | list[int] = 0
    data: np.ndarray | None = None
    axis: int = 0
    variable: bool = False  # a variable tensor (recurrent state): neither a graph input nor constant


@dataclass
class Op:
    code: str  # BuiltinOperator name
    inputs: list[T | None]  # None: an omitted optional operand
    outputs: list[T]
    options: str | None = None  # BuiltinOptions name
    fields: dict = field(default_factory=dict)  # option attribute -> value
    version: int = 1


def const(values, dtype: str = "int32") -> T:
    a = np.asarray(values, dtype=dtype)
    return T(a.shape, dtype, data=a)


def q8(shape, scale: float = 0.05, zero_point: int = 0) -> T:
    return T(tuple(shape), "int8", scale, zero_point)


def build(op_list: list[Op]) -> bytes:
    """A model with every op's non-constant inputs as graph inputs (in order of appearance) and every output
    no later op reads as a graph output."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as s

    model = s.ModelT()
    model.version = 3
    model.buffers = [s.BufferT()]
    model.operatorCodes, codes = [], {}
    sub = s.SubGraphT()
    sub.tensors, sub.operators, sub.inputs, sub.outputs = [], [], [], []
    ids: dict[int, int] = {}

    def tensor(t: T) -> int:
        if id(t) in ids:
            return ids[id(t)]
        st = s.TensorT()
        st.shape = list(t.shape)
        st.type = getattr(s.TensorType, _TYPES[t.dtype])
        st.name = f"t{len(sub.tensors)}".encode()
        st.buffer = 0
        st.isVariable = t.variable
        if t.data is not None:
            b = s.BufferT()
            b.data = np.ascontiguousarray(t.data, dtype=t.dtype).tobytes()
            model.buffers.append(b)
            st.buffer = len(model.buffers) - 1
        if t.scale is not None:
            q = s.QuantizationParametersT()
            q.scale = [float(v) for v in np.atleast_1d(t.scale)]
            q.zeroPoint = [int(v) for v in np.atleast_1d(t.zero_point)]
            q.quantizedDimension = t.axis
            st.quantization = q
        sub.tensors.append(st)
        ids[id(t)] = len(sub.tensors) - 1
        return ids[id(t)]

    produced, consumed = set(), set()
    for op in op_list:
        if op.code not in codes:
            code = s.OperatorCodeT()
            code.builtinCode = getattr(s.BuiltinOperator, op.code)
            code.deprecatedBuiltinCode = min(code.builtinCode, 127)
            code.version = op.version
            model.operatorCodes.append(code)
            codes[op.code] = len(model.operatorCodes) - 1
        o = s.OperatorT()
        o.opcodeIndex = codes[op.code]
        o.inputs = []
        for t in op.inputs:
            if t is None:
                o.inputs.append(-1)
                continue
            k = tensor(t)
            o.inputs.append(k)
            if t.data is None and not t.variable and id(t) not in produced and k not in sub.inputs:
                sub.inputs.append(k)
            consumed.add(id(t))
        o.outputs = [tensor(t) for t in op.outputs]
        produced.update(id(t) for t in op.outputs)
        if op.options:
            o.builtinOptionsType = getattr(s.BuiltinOptions, op.options)
            opts = getattr(s, op.options + "T")()
            for k, v in op.fields.items():
                setattr(opts, k, v)
            o.builtinOptions = opts
        sub.operators.append(o)
    for op in op_list:
        for t in op.outputs:
            if id(t) not in consumed:
                sub.outputs.append(ids[id(t)])
    model.subgraphs = [sub]
    b = flatbuffers.Builder(0)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())
