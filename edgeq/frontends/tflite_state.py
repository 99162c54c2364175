"""TFLite's stateful operators into Graph.states: the variable tensors of SVDF and UNIDIRECTIONAL_SEQUENCE_LSTM, and
the resource variables of streaming models (VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE, CALL_ONCE).

A resource variable is named by VAR_HANDLE's container and shared_name. CALL_ONCE's init subgraph is run here, at
import: it may only assign constants to variables (what the converter writes), and those constants become the
states' initial values. As in TFLite Micro, a variable tensor starts at its zero point (int8) or at zero.
"""
from __future__ import annotations

import numpy as np
import tflite

from edgeq.errors import EdgeqError
from edgeq.ir import Tensor, ops

KINDS = ("SVDF", "UNIDIRECTIONAL_SEQUENCE_LSTM", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE")
# what each becomes in the IR (VAR_HANDLE and CALL_ONCE leave no operator: they name and initialise state)
IMPORTED_AS = {"VAR_HANDLE": "READ_VARIABLE", "CALL_ONCE": "ASSIGN_VARIABLE"}
LSTM_REQUIRED = (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 14, 15, 18, 19)  # tflite/kernels/lstm_shared.h's indices
LSTM_VARIANTS = {9: "peephole", 10: "peephole", 11: "peephole", 16: "projection", 17: "projection",
                 20: "layer normalization", 21: "layer normalization", 22: "layer normalization",
                 23: "layer normalization"}


def _options(op, cls):
    from edgeq.frontends.tflite import _options as options  # tflite.py imports this module

    return options(op, cls)


def _variable_key(op) -> str:
    o = _options(op, tflite.VarHandleOptions)
    container = (o.Container() or b"").decode(errors="replace") if o else ""
    shared = (o.SharedName() or b"").decode(errors="replace") if o else ""
    return f"{container}/{shared}" if container else shared or "variable"


def initial_state(t: Tensor) -> np.ndarray:
    """TFLM's ResetVariableTensors: int8 variables hold their zero point, others zero."""
    fill = t.quant.zp if t.dtype == "int8" and t.quant is not None else 0
    return np.full(t.shape, fill, dtype=t.dtype)


class StateImporter:
    """Per model: the resource tensors of the main subgraph, the initial values CALL_ONCE assigns, the states."""

    def __init__(self, imp):
        self.imp = imp
        self.states: dict[str, Tensor] = {}
        self.handles: dict[int, str] = {}  # resource tensor index (main subgraph) -> variable key
        self.initial: dict[str, Tensor] = {}  # variable key -> constant assigned by an init subgraph

    def scan(self, g) -> None:
        inits = []
        for i in range(g.OperatorsLength()):
            op = g.Operators(i)
            kind = self.imp._opname(op)
            if kind == "VAR_HANDLE":
                self.handles[int(op.OutputsAsNumpy()[0])] = _variable_key(op)
            elif kind == "CALL_ONCE":
                o = _options(op, tflite.CallOnceOptions)
                inits.append(o.InitSubgraphIndex() if o else 0)
                self._run_init(inits[-1], i)
        others = self.imp.model.SubgraphsLength() - 1 - len(set(inits))
        if inits:  # the frontend's note counted the init subgraphs as ignored
            self.imp.notes[:] = [n for n in self.imp.notes if not n.startswith("only the main subgraph")]
            self.imp.notes.append(f"CALL_ONCE's init subgraph(s) {sorted(set(inits))} read at import: the constants "
                                  f"they assign are the variables' initial values"
                                  + (f"; {others} other subgraph(s) ignored" if others else ""))

    def _run_init(self, index: int, at: int) -> None:
        m = self.imp.model
        if not 0 < index < m.SubgraphsLength():
            raise EdgeqError(f"Operator #{at} CALL_ONCE names subgraph {index}, which the model does not have; "
                             "export the model again.")
        g = m.Subgraphs(index)
        handles = {}
        for i in range(g.OperatorsLength()):
            op = g.Operators(i)
            kind = self.imp._opname(op)
            ins = [int(t) for t in op.InputsAsNumpy()] if op.InputsLength() else []
            if kind == "VAR_HANDLE":
                handles[int(op.OutputsAsNumpy()[0])] = _variable_key(op)
                continue
            value = self.imp._tensor(g, ins[1]) if kind == "ASSIGN_VARIABLE" and len(ins) == 2 else None
            if value is None or not value.is_const or ins[0] not in handles:
                raise EdgeqError(f"Operator #{at} CALL_ONCE runs subgraph {index}, whose operator #{i} {kind} is not "
                                 "VAR_HANDLE or an ASSIGN_VARIABLE of a constant; edgeq takes init subgraphs that "
                                 "only set variables to constants, as the TFLite converter writes them.")
            self.initial[handles[ins[0]]] = value

    def _state(self, key: str, like: Tensor, index: int, kind: str) -> str:
        """The state named key, created with like's type, shape and quantization (and the init value, if any)."""
        if key not in self.states:
            init = self.initial.get(key)
            data = initial_state(like) if init is None else init.data.astype(like.dtype).reshape(like.shape)
            if init is not None and init.size != like.size:
                raise EdgeqError(f"Operator #{index} {kind}: variable '{key}' is initialised with {init.size} values "
                                 f"but used as shape {like.shape}.")
            self.states[key] = Tensor(key, like.shape, like.dtype, like.quant, data)
        return key

    def _lstm(self, op, index: int, name: str, ins: list[int], tout: list[str]):
        tensors = self.imp.tensors
        given = {k for k, i in enumerate(ins) if i >= 0}
        missing = [k for k in LSTM_REQUIRED if k not in given]
        variants = sorted({LSTM_VARIANTS[k] for k in given if k in LSTM_VARIANTS})
        if missing or variants:
            why = f"lacks inputs {missing} (CIFG, coupled input and forget gates)" if missing else \
                f"is a {' and '.join(variants)} LSTM"
            raise EdgeqError(f"Operator #{index} UNIDIRECTIONAL_SEQUENCE_LSTM {why}; edgeq, like TFLite Micro's integer "
                             "LSTM, runs the standard LSTM of Keras' LSTM layer (four gates, no peephole, projection or "
                             "layer normalization).")
        o = _options(op, tflite.UnidirectionalSequenceLSTMOptions)
        act = o.FusedActivationFunction() if o else tflite.ActivationFunctionType.TANH
        if act != tflite.ActivationFunctionType.TANH:
            raise EdgeqError(f"Operator #{index} UNIDIRECTIONAL_SEQUENCE_LSTM has cell activation {act}; edgeq runs the "
                             "integer LSTM with TANH, as TFLite Micro does.")
        hidden, cell = tensors[ins[18]], tensors[ins[19]]
        h = self._state(f"{name}/hidden_state", Tensor(hidden.name, hidden.shape, hidden.dtype, hidden.quant), index,
                        "UNIDIRECTIONAL_SEQUENCE_LSTM")
        c = self._state(f"{name}/cell_state", Tensor(cell.name, cell.shape, cell.dtype, cell.quant), index,
                        "UNIDIRECTIONAL_SEQUENCE_LSTM")
        operands = [tensors[ins[k]].name for k in (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 14, 15)]
        return ops.UnidirectionalSequenceLstm(name, operands, tout, h, c, bool(o.TimeMajor()) if o else False,
                                              float(o.CellClip()) if o else 0.0)

    def op(self, op, index: int, kind: str, name: str, ins: list[int], tin: list[str], tout: list[str]):
        tensors = self.imp.tensors
        if kind == "SVDF":
            o = _options(op, tflite.SVDFOptions)
            if len(ins) != 5 or ins[4] < 0:
                raise EdgeqError(f"Operator #{index} SVDF has {len(ins)} inputs; TFLite's SVDF has five, the last "
                                 "its state (a variable tensor).")
            state = tensors[ins[4]]
            key = self._state(f"{name}/state", Tensor(state.name, state.shape, state.dtype, state.quant), index, kind)
            operands = [tensors[i].name for i in ins[:3]] + ([tensors[ins[3]].name] if ins[3] >= 0 else [])
            act = self.imp._act(o.FusedActivationFunction(), index, kind) if o else ops.Activation.NONE
            return ops.Svdf(name, operands, tout, int(o.Rank()) if o else 1, key, act)
        if kind == "UNIDIRECTIONAL_SEQUENCE_LSTM":
            return self._lstm(op, index, name, ins, tout)
        if kind == "VAR_HANDLE":
            return []
        if ins[0] not in self.handles:
            raise EdgeqError(f"Operator #{index} {kind} takes a resource that no VAR_HANDLE of the main subgraph "
                             "makes; edgeq needs each variable named by a VAR_HANDLE.")
        key = self.handles[ins[0]]
        if kind == "READ_VARIABLE":
            return ops.ReadVariable(name, [], tout, self._state(key, tensors[int(op.OutputsAsNumpy()[0])], index, kind))
        if kind == "ASSIGN_VARIABLE":
            return ops.AssignVariable(name, tin[1:2], [], self._state(key, tensors[ins[1]], index, kind))
        raise EdgeqError(f"Operator #{index} CALL_ONCE must come before the operators that use its variables.")




def fold_float_variables(graph) -> None:
    """The converter keeps a variable float in an int8 model: DEQUANTIZE -> ASSIGN_VARIABLE, and READ_VARIABLE ->
    QUANTIZE, each conversion with its own scale. edgeq keeps the variable in int8 with the assigned values'
    scale and zero point (so assigning is a copy) and gives the READ_VARIABLE the QUANTIZE's output: it then
    converts as TFLite does through the float it would hold (ReadVariable's lowering). The initial value must be
    exactly representable in that int8 (zeros always are), or the first read would round twice."""
    consumers, producers = graph.consumers(), graph.producers()
    for key, state in graph.states.items():
        reads = [op for op in graph.ops if isinstance(op, ops.ReadVariable) and op.state == key]
        writes = [op for op in graph.ops if isinstance(op, ops.AssignVariable) and op.state == key]
        if state.dtype != "float32" or not reads + writes:  # a float model's LSTM or SVDF state stays float
            continue
        quantizes = [c for r in reads for c in consumers.get(r.outputs[0], [])]
        dequantizes = [producers.get(w.inputs[0]) for w in writes]
        if not any(isinstance(op, (ops.Quantize, ops.Dequantize)) for op in quantizes + dequantizes):
            continue  # a float model's variable: power-of-two quantization gives it a scale
        stored = [graph.t(d.inputs[0]) for d in dequantizes if isinstance(d, ops.Dequantize)]
        if len(reads) != 1 or len(quantizes) != 1 or not isinstance(quantizes[0], ops.Quantize) or \
                graph.t(quantizes[0].outputs[0]).dtype != "int8" or len(stored) != len(writes) or \
                any(t.dtype != "int8" or not t.quant.per_tensor for t in stored) or \
                len({(t.quant.s, t.quant.zp) for t in stored}) > 1:
            raise EdgeqError(f"Variable '{key}' is float32, and edgeq keeps variables in integers: it takes a float "
                             "variable read by one READ_VARIABLE feeding one QUANTIZE to int8, and written only by "
                             "ASSIGN_VARIABLEs of DEQUANTIZEs of int8 tensors of one scale and zero point (what the "
                             "TFLite converter writes for an int8 model). Quantize the variable in the model, or "
                             "convert it again.")
        quant = stored[0].quant if stored else graph.t(quantizes[0].outputs[0]).quant
        init = state.data.astype(np.float32)
        q = np.clip(np.round(init / np.float32(quant.s)) + quant.zp, -128, 127)
        if not np.array_equal(((q - quant.zp) * np.float64(quant.s)).astype(np.float32), init):
            raise EdgeqError(f"Variable '{key}' starts at float values that its int8 scale {quant.s} (zero point "
                             f"{quant.zp}) cannot hold exactly; edgeq keeps the variable in int8, so it takes initial "
                             "values on that grid (zeros always are). Initialise the variable with zeros.")
        state.data, state.dtype, state.quant = q.astype(np.int8), "int8", quant
        reads[0].outputs = list(quantizes[0].outputs)
        graph.ops.remove(quantizes[0])
        for w, d in zip(writes, dequantizes):
            w.inputs = list(d.inputs)
            if len(consumers.get(d.outputs[0], [])) == 1 and d.outputs[0] not in graph.outputs:
                graph.ops.remove(d)
        graph.notes.append(f"float variable '{key}' kept in int8 (scale {quant.s}, zero point {quant.zp})")
