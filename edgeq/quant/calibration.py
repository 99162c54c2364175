"""Calibration data and activation statistics from running the float graph on it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph
from edgeq.quant.executor import run_float_graph

SAMPLE_VALUES = 8192  # values kept per tensor and per sample for the threshold search


def load_calibration(path: str | Path, graph: Graph) -> np.ndarray:
    """[N, *input_shape] float32 from a .npz (key x) or .npy in the model's input layout."""
    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                if "x" not in data:
                    raise EdgeqError(f"{path} has no array 'x' (it has {', '.join(data.files)}).")
                x = data["x"]
        else:
            x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise EdgeqError(f"Cannot read calibration data {path}: {e}.") from None
    shape = graph.t(graph.inputs[0]).shape
    if tuple(x.shape[1:]) != shape:
        if shape and shape[0] == 1 and tuple(x.shape[1:]) == shape[1:]:
            x = x.reshape((x.shape[0], *shape))
        else:
            raise EdgeqError(f"Calibration data {path} has shape {tuple(x.shape)}; the model's input is {shape}, "
                             f"so it must be [N, {', '.join(map(str, shape))}].")
    return x.astype(np.float32)


@dataclass
class TensorStats:
    max_abs: float = 0.0
    min: float = np.inf
    max: float = -np.inf
    samples: list[np.ndarray] = field(default_factory=list)
    channel_sum: np.ndarray | None = None  # per last-axis channel, for bias correction
    count: int = 0

    def add(self, v: np.ndarray, rng: np.random.Generator) -> None:
        per_channel = v.reshape(-1, v.shape[-1]) if v.ndim else v.reshape(1, 1)
        sums = per_channel.astype(np.float64).sum(axis=0)
        self.channel_sum = sums if self.channel_sum is None else self.channel_sum + sums
        self.count += per_channel.shape[0]
        flat = v.reshape(-1)
        self.max_abs = max(self.max_abs, float(np.abs(flat).max(initial=0.0)))
        self.min, self.max = min(self.min, float(flat.min())), max(self.max, float(flat.max()))
        if flat.size > SAMPLE_VALUES:
            flat = rng.choice(flat, SAMPLE_VALUES, replace=False)
        self.samples.append(flat.astype(np.float32))

    @property
    def channel_mean(self) -> np.ndarray:
        return self.channel_sum / max(self.count, 1)

    @property
    def values(self) -> np.ndarray:
        return np.concatenate(self.samples) if self.samples else np.zeros(1, np.float32)


def collect_stats(graph: Graph, x: np.ndarray, progress=None) -> dict[str, TensorStats]:
    """Statistics of every float activation over the calibration samples."""
    rng = np.random.default_rng(0)
    stats: dict[str, TensorStats] = {}
    for k, sample in enumerate(x):
        values = run_float_graph(graph, [sample], keep_all=True)
        for name, v in values.items():
            stats.setdefault(name, TensorStats()).add(v, rng)
        if progress:
            progress(k + 1, len(x))
    return stats
