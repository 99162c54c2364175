"""Data-free calibration: activation statistics without the user's data.

Tensors whose layer had a batch norm get their distribution from its statistics: per channel
N(beta, |gamma|) before the layer's fused activation (the assumption DFQ makes, Nagel et al. 2019,
section 4.2). Every other tensor gets its statistics from synthetic inputs drawn uniformly from the
input range the user gives. Both are guesses about the real data, which is why edgeq warns.
"""
from __future__ import annotations

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph
from edgeq.quant.calibration import TensorStats, collect_stats
from edgeq.lowering.common import float_activation

SYNTHETIC_SAMPLES = 32
BN_SAMPLES = 4096  # Gaussian draws per channel


def parse_input_range(text: str | None, graph: Graph) -> tuple[float, float]:
    if not text:
        raise EdgeqError(f"Data-free quantization of {graph.name} needs the range of its input values, which only "
                         "you know: add --input-range LO,HI (for example 0,1 for images scaled to [0, 1]).")
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise EdgeqError(f"--input-range '{text}' is not two numbers LO,HI (for example 0,1 or -1,1).") from None
    if not lo < hi:
        raise EdgeqError(f"--input-range {text}: LO must be below HI.")
    return lo, hi


def synthetic_inputs(graph: Graph, input_range: tuple[float, float], samples: int = SYNTHETIC_SAMPLES) -> np.ndarray:
    shape = graph.t(graph.inputs[0]).shape
    return np.random.default_rng(0).uniform(*input_range, (samples, *shape)).astype(np.float32)


def data_free_stats(graph: Graph, x: np.ndarray) -> tuple[dict[str, TensorStats], int]:
    """Statistics of every activation: from batch-norm statistics where the graph has them, else from
    the synthetic inputs x. Returns them and how many tensors came from batch norms."""
    stats = collect_stats(graph, x)
    rng = np.random.default_rng(1)
    producers = graph.producers()
    used = 0
    for name, (mean, std) in graph.bn_stats.items():
        op = producers.get(name)
        if op is None or name not in stats:
            continue
        z = rng.standard_normal((BN_SAMPLES, mean.size)) * std + mean
        activation = getattr(op, "activation", None)
        z = float_activation(activation, z) if activation is not None else z
        st = TensorStats()
        st.add(z.astype(np.float32), rng)
        stats[name] = st
        used += 1
    return stats, used
