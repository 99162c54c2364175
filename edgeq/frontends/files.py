"""Reading a model file, with the error every frontend gives when it cannot."""
from __future__ import annotations

from pathlib import Path

from edgeq.errors import EdgeqError


def read_model_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise EdgeqError(f"Cannot read the model file {path}: {e.strerror}.") from None
