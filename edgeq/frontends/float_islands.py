"""TFLite operators its converter leaves in float inside an int8 model, folded back to int8.

TFLite has no int8 NEG kernel, so the converter keeps NEG in float between a DEQUANTIZE and a QUANTIZE.
TFLite Micro runs that round trip in float; edgeq folds the three into one int8 NEG whose 256-entry table
reproduces the round trip's arithmetic (edgeq.lowering.activations.lower_neg), so no float runs on the device.
"""
from __future__ import annotations

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, ops


def fold_float_neg(graph: Graph) -> None:
    for neg in [op for op in graph.ops if isinstance(op, ops.Neg)]:
        producers, consumers = graph.producers(), graph.consumers()
        dq, users = producers.get(neg.inputs[0]), consumers.get(neg.outputs[0], [])
        if not (isinstance(dq, ops.Dequantize) and len(users) == 1 and isinstance(users[0], ops.Quantize)):
            continue
        q = users[0]
        x, y = graph.t(dq.inputs[0]), graph.t(q.outputs[0])
        if (x.dtype, y.dtype) != ("int8", "int8") or len(consumers[dq.outputs[0]]) > 1 or \
                {neg.inputs[0], neg.outputs[0]} & set(graph.outputs):
            continue
        graph.ops[graph.ops.index(q)] = ops.Neg(neg.name, [x.name], [y.name], float_roundtrip=True)
        graph.ops.remove(neg)
        graph.ops.remove(dq)
        graph.notes.append(f"{neg.name}: float NEG between DEQUANTIZE and QUANTIZE folded into an int8 NEG")
    for neg in graph.ops:
        if isinstance(neg, ops.Neg) and not neg.float_roundtrip and graph.t(neg.inputs[0]).dtype != "float32":
            raise EdgeqError(f"Operator {neg.name} (NEG) is {graph.t(neg.inputs[0]).dtype}: TFLite Micro has no "
                             "integer NEG and LiteRT negates the raw values whatever their zero point, so edgeq takes "
                             "NEG as TFLite's converter writes it, in float between a DEQUANTIZE and a QUANTIZE.")
