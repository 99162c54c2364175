"""Model files into the graph IR: one frontend per format, chosen by the file's suffix."""
from __future__ import annotations

from pathlib import Path

from edgeq.errors import EdgeqError
from edgeq.ir import Graph

# C names a model's prefix (its file name) must not take: the harnesses' main and files, the runtime's eq_*
# headers and the C library's headers, which a model header of that name would shadow.
RESERVED_NAMES = set(
    "main harness board startup linker eq_profile assert complex ctype errno fenv float inttypes iso646 limits "
    "locale math setjmp signal stdalign stdarg stdatomic stdbool stddef stdint stdio stdlib stdnoreturn string "
    "tgmath threads time uchar wchar wctype".split())

FORMATS = {".tflite": "TFLite flatbuffer", ".onnx": "ONNX", ".pt2": "PyTorch torch.export.save archive"}


def load_model(path: str | Path, input_layout: str = "nchw") -> Graph:
    """input_layout: for NCHW models (ONNX, PyTorch), whether the 4-D input stays NCHW as the model
    has it ("nchw") or is given NHWC ("nhwc"); TFLite models are NHWC already and ignore it."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        from edgeq.frontends.tflite import load_tflite_file
        return _checked(load_tflite_file(path), path)
    if suffix == ".onnx":
        from edgeq.frontends.onnx import load_onnx_file
        return _checked(load_onnx_file(path, input_layout), path)
    if suffix == ".pt2":
        from edgeq.frontends.torch_export import load_pt2_file
        return _checked(load_pt2_file(path, input_layout), path)
    known = ", ".join(f"{s} ({d})" for s, d in FORMATS.items())
    raise EdgeqError(f"{path}: edgeq does not know the model format '{suffix or '(no suffix)'}'. It reads {known}; "
                     "rename the file if it has the wrong suffix, or export the model to one of those.")


def _checked(graph: Graph, path: Path) -> Graph:
    """Every frontend's graph: shapes checked against operator semantics, and a C prefix that clashes with
    nothing the harnesses, runtime or C library define."""
    from edgeq.codegen.render import c_identifier
    from edgeq.ir.shapes import check_graph

    check_graph(graph, str(path))
    ident = c_identifier(graph.name)
    if ident in RESERVED_NAMES or ident == "eq" or ident.startswith("eq_"):
        graph.notes.append(f"the model's C prefix is {ident}_model: '{ident}' is taken by the C harness, runtime "
                           "or library")
        graph.name = f"{ident}_model"
    return graph
