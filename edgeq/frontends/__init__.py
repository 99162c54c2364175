"""Model files into the graph IR: one frontend per format, chosen by the file's suffix."""
from __future__ import annotations

from pathlib import Path

from edgeq.errors import EdgeqError
from edgeq.ir import Graph

FORMATS = {".tflite": "TFLite flatbuffer", ".onnx": "ONNX", ".pt2": "PyTorch torch.export.save archive"}


def load_model(path: str | Path, input_layout: str = "nchw") -> Graph:
    """input_layout: for NCHW models (ONNX, PyTorch), whether the 4-D input stays NCHW as the model
    has it ("nchw") or is given NHWC ("nhwc"); TFLite models are NHWC already and ignore it."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        from edgeq.frontends.tflite import load_tflite_file
        return load_tflite_file(path)
    if suffix == ".onnx":
        from edgeq.frontends.onnx import load_onnx_file
        return load_onnx_file(path, input_layout)
    if suffix == ".pt2":
        from edgeq.frontends.torch_export import load_pt2_file
        return load_pt2_file(path, input_layout)
    known = ", ".join(f"{s} ({d})" for s, d in FORMATS.items())
    raise EdgeqError(f"{path}: edgeq does not know the model format '{suffix or '(no suffix)'}'. It reads {known}; "
                     "rename the file if it has the wrong suffix, or export the model to one of those.")
