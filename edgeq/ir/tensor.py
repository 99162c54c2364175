"""Tensors of the graph IR: shape, dtype, quantization and, for constants, data."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DTYPES = ("int8", "uint8", "int16", "int32", "int64", "float32")


@dataclass
class Quant:
    """Affine quantization, real = scale * (q - zero_point); per-tensor when scale has one entry."""

    scale: np.ndarray  # float32, 1-D
    zero_point: np.ndarray  # int64, 1-D
    axis: int = 0  # quantized dimension when per-axis

    def __post_init__(self):
        self.scale = np.asarray(self.scale, dtype=np.float32).reshape(-1)
        self.zero_point = np.asarray(self.zero_point, dtype=np.int64).reshape(-1)
        if self.zero_point.size == 1 and self.scale.size > 1:
            self.zero_point = np.repeat(self.zero_point, self.scale.size)

    @property
    def per_tensor(self) -> bool:
        return self.scale.size == 1

    @property
    def s(self) -> float:
        """The per-tensor scale as a Python float (exactly the float32 value)."""
        assert self.per_tensor, "per-axis quantization has no single scale"
        return float(self.scale[0])

    @property
    def zp(self) -> int:
        assert self.per_tensor, "per-axis quantization has no single zero point"
        return int(self.zero_point[0])


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: Quant | None = None
    data: np.ndarray | None = field(default=None, repr=False)  # set for constants

    def __post_init__(self):
        assert self.dtype in DTYPES, self.dtype
        self.shape = tuple(int(d) for d in self.shape)

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize
