"""`edgeq run`: samples through a built model on its board, raw or dequantized outputs back."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeq.build import dequantize_outputs, load_manifest, quantize_inputs
from edgeq.errors import EdgeqError


def run_build(build_dir: Path, x: np.ndarray, dequantize: bool = False, port: str | None = None) -> np.ndarray:
    m = load_manifest(build_dir)
    if len(m["inputs"]) != 1 or len(m["outputs"]) != 1:
        raise EdgeqError("`edgeq run` takes one input array; this model has "
                         f"{len(m['inputs'])} inputs and {len(m['outputs'])} outputs.")
    tin, tout = m["inputs"][0], m["outputs"][0]
    x = conform_inputs(x, tuple(tin["shape"]))
    xq = quantize_inputs(x, tin)
    samples = [[s] for s in xq]
    if m["board"] == "host":
        from edgeq.targets.host import run_host
        outs = run_host(Path(build_dir), m["prefix"], samples, [int(np.prod(tout["shape"]))])
    else:
        from edgeq.targets.device import open_device, run_samples
        with open_device(Path(build_dir), m, port) as (link, _):
            outs = [[np.frombuffer(o, np.int8)] for o in run_samples(link, [s[0].tobytes() for s in samples])]
    y = np.stack([o[0].reshape(tout["shape"]) for o in outs]) if outs else np.zeros((0, *tout["shape"]), np.int8)
    return dequantize_outputs(y, tout) if dequantize else y


def conform_inputs(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """[N, *shape], also accepting [N, *shape[1:]] when the model's batch is 1."""
    if x.ndim >= 1 and tuple(x.shape[1:]) == shape:
        return x
    if len(shape) >= 1 and shape[0] == 1 and tuple(x.shape[1:]) == shape[1:]:
        return x.reshape((x.shape[0], *shape))
    raise EdgeqError(f"The inputs have shape {tuple(x.shape)}; this model wants [N, {', '.join(map(str, shape))}] "
                     f"(N samples of the input shape {shape}).")


def validate_build(build_dir: Path, x: np.ndarray, port: str | None = None) -> dict:
    """Sends every sample to the device and compares its outputs bit for bit with edgeq's executor."""
    import pickle

    from edgeq.lowering import lower_graph
    from edgeq.quant.executor import run_int
    from edgeq.targets.device import open_device, run_samples

    m = load_manifest(build_dir)
    ref = Path(build_dir) / "reference_graph.pkl"
    if not ref.exists():
        raise EdgeqError(f"{build_dir} has no reference_graph.pkl to compute the reference from; rebuild it.")
    with open(ref, "rb") as f:
        graph = pickle.load(f)
    calls = lower_graph(graph)
    tin = m["inputs"][0]
    xq = quantize_inputs(conform_inputs(x, tuple(tin["shape"])), tin)
    expected = [np.concatenate([v.reshape(-1) for v in run_int(graph, [s], calls).values()]) for s in xq]
    if m["board"] == "host":
        from edgeq.targets.host import run_host
        got = [np.concatenate(o) for o in run_host(Path(build_dir), m["prefix"], [[s] for s in xq],
                                                   [int(np.prod(t["shape"])) for t in m["outputs"]])]
    else:
        with open_device(Path(build_dir), m, port) as (link, _):
            got = [np.frombuffer(o, np.int8) for o in run_samples(link, [s.tobytes() for s in xq])]
    mismatched = [k for k, (a, b) in enumerate(zip(got, expected)) if not np.array_equal(a, b)]
    top1 = float(np.mean([int(np.argmax(a) == np.argmax(b)) for a, b in zip(got, expected)])) if got else 1.0
    return {"board": m["board"], "samples": len(xq), "bit_exact": len(xq) - len(mismatched),
            "mismatched_samples": mismatched[:50],
            "max_abs_difference": int(max((np.abs(a.astype(int) - b).max() for a, b in zip(got, expected)),
                                          default=0)),
            "top1_agreement_with_reference": top1}
