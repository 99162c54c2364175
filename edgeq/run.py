"""`edgeq run`: samples through a built model on its board, raw or dequantized outputs back."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeq.build import dequantize_outputs, load_manifest, quantize_inputs
from edgeq.errors import EdgeqError


def run_build(build_dir: Path, x: np.ndarray, dequantize: bool = False) -> np.ndarray:
    m = load_manifest(build_dir)
    if len(m["inputs"]) != 1 or len(m["outputs"]) != 1:
        raise EdgeqError("`edgeq run` takes one input array; this model has "
                         f"{len(m['inputs'])} inputs and {len(m['outputs'])} outputs.")
    tin, tout = m["inputs"][0], m["outputs"][0]
    shape = tuple(tin["shape"])
    if x.ndim >= 1 and tuple(x.shape[1:]) == shape:
        pass
    elif len(shape) >= 1 and shape[0] == 1 and tuple(x.shape[1:]) == shape[1:]:
        x = x.reshape((x.shape[0], *shape))
    else:
        raise EdgeqError(f"--input has shape {tuple(x.shape)}; this model wants [N, {', '.join(map(str, shape))}] "
                         f"(N samples of the input shape {shape}).")
    xq = quantize_inputs(x, tin)
    samples = [[s] for s in xq]
    if m["board"] == "host":
        from edgeq.targets.host import run_host
        outs = run_host(Path(build_dir), m["prefix"], samples, [int(np.prod(tout["shape"]))])
    else:
        raise EdgeqError(f"Running on board '{m['board']}' is not available in this version of edgeq.")
    y = np.stack([o[0].reshape(tout["shape"]) for o in outs]) if outs else np.zeros((0, *tout["shape"]), np.int8)
    return dequantize_outputs(y, tout) if dequantize else y
