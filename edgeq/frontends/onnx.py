"""ONNX files into the graph IR, through the `onnx` package.

This module only reads the protobuf: nodes with decoded attributes, initializers as numpy arrays,
the input shapes and the opset. Translation to the NHWC IR (layout, operator mapping, BN folding,
constant folding, QDQ) is shared with the PyTorch frontend and lives in nchw.py, whose docstring
describes every import-time rewrite.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.frontends.files import read_model_file
from edgeq.frontends.nchw import Node, SourceGraph, import_graph
from edgeq.ir import Graph
from edgeq.ir.graph import sha256_bytes


def load_onnx_file(path: str | Path, input_layout: str = "nchw") -> Graph:
    path = Path(path)
    data = read_model_file(path)
    return load_onnx(data, path.stem, str(path), input_layout, path.parent)


def load_onnx(data: bytes, name: str, origin: str = "the model", input_layout: str = "nchw",
              base_dir: Path | None = None) -> Graph:
    source = read_onnx(data, name, origin, base_dir)
    try:
        return import_graph(source, input_layout)
    except EdgeqError:
        raise
    except Exception as e:  # a damaged protobuf parses into fields of the wrong kind or size
        raise EdgeqError(f"{origin} is a damaged ONNX model: importing it failed ({type(e).__name__}: {e}). It is "
                         "probably truncated or corrupted; export or copy it again.") from None


def read_onnx(data: bytes, name: str, origin: str, base_dir: Path | None = None) -> SourceGraph:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise EdgeqError(f"{origin} is not an ONNX model (its protobuf does not parse: {e}). Export it again with "
                         "torch.onnx.export, or give a .tflite or .pt2 file.") from None
    # an empty or foreign file can parse as an empty protobuf: insist on a graph with nodes
    if model.ir_version <= 0 or not model.HasField("graph") or len(model.graph.node) == 0:
        raise EdgeqError(f"{origin} is not an ONNX model (no IR version or no graph nodes): the file is empty, "
                         "truncated or of another format. Export it again with torch.onnx.export.")
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if not 1 <= opset <= onnx.defs.onnx_opset_version():
        raise EdgeqError(f"{origin} is a damaged ONNX model: its operator set version is {opset}, not 1 to "
                         f"{onnx.defs.onnx_opset_version()}. Export it again with torch.onnx.export.")
    if base_dir is not None and any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        try:
            onnx.external_data_helper.load_external_data_for_model(model, str(base_dir))
        except OSError as e:
            raise EdgeqError(f"{origin} keeps its weights in an external file that cannot be read: {e}.") from None
    return _Reader(model, name, origin, sha256_bytes(data)).run()


class _Reader:
    def __init__(self, model, name: str, origin: str, source_hash: str):
        self.model, self.name, self.origin, self.hash = model, name, origin, source_hash

    def run(self) -> SourceGraph:
        import onnx.numpy_helper as nh

        g = self.model.graph
        opset = next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), 0)
        consts = {}
        for t in g.initializer:
            consts[t.name] = self._array(t, nh)
        inputs = [self._input(vi) for vi in g.input if vi.name not in consts]
        nodes = []
        for i, n in enumerate(g.node):
            op = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}:{n.op_type}"
            attrs = {a.name: self._attr(a, nh, n, i) for a in n.attribute}
            nodes.append(Node(n.name, op, list(n.input), list(n.output), attrs))
        return SourceGraph(self.name, self.origin, self.hash, nodes, inputs, [o.name for o in g.output], consts,
                           opset)

    def _array(self, t, nh) -> np.ndarray:
        try:
            return np.asarray(nh.to_array(t))
        except Exception as e:  # a damaged tensor: onnx raises assorted errors here
            raise EdgeqError(f"{self.origin} is damaged: tensor '{t.name}' cannot be read ({e}).") from None

    def _attr(self, a, nh, node, index):
        import onnx

        kind = a.type
        if kind == onnx.AttributeProto.FLOAT:
            return float(a.f)
        if kind == onnx.AttributeProto.INT:
            value = int(a.i)
            if a.name == "to" and node.op_type == "Cast":
                return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(value))
            return value
        if kind == onnx.AttributeProto.STRING:
            return a.s.decode(errors="replace")
        if kind == onnx.AttributeProto.TENSOR:
            return self._array(a.t, nh)
        if kind == onnx.AttributeProto.FLOATS:
            return [float(v) for v in a.floats]
        if kind == onnx.AttributeProto.INTS:
            return [int(v) for v in a.ints]
        if kind == onnx.AttributeProto.STRINGS:
            return [s.decode(errors="replace") for s in a.strings]
        # graphs (If/Loop bodies), sparse tensors: the op is reported unsupported by name later
        return None

    def _input(self, vi) -> tuple[str, tuple[int, ...], str]:
        import onnx

        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            raise EdgeqError(f"{self.origin}: input '{vi.name}' is not a tensor.")
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)).name if tt.elem_type else "undefined"
        shape = []
        for k, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                shape.append(int(d.dim_value))
            elif k == 0:  # a symbolic batch dimension: edgeq runs one sample at a time
                shape.append(1)
            else:
                raise EdgeqError(f"{self.origin}: input '{vi.name}' has a dynamic dimension {k} "
                                 f"('{d.dim_param or '?'}'); export with a fixed input shape.")
        return vi.name, tuple(shape), dtype
