"""`edgeq run` and `edgeq validate`: samples through a built model on its board; raw or dequantized outputs
back, or compared bit for bit with edgeq's numpy reference of the build."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeq.build import REFERENCE_FILES, dequantize_outputs, load_manifest, quantize_inputs
from edgeq.errors import EdgeqError


def load_inputs(path: str | Path) -> np.ndarray:
    """[N, ...] samples from a .npy, or the array x of a .npz; never unpickles."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as data:
                if "x" not in data:
                    raise EdgeqError(f"{path} has no array 'x' (it has {', '.join(data.files) or 'none'}); save the "
                                     "inputs as np.savez(path, x=samples).")
                return data["x"]
        x = np.load(path, allow_pickle=False)
    except EdgeqError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise EdgeqError(f"Cannot read {path} as a .npy array or .npz archive with key x: {e}.") from None
    if not isinstance(x, np.ndarray):  # np.load gives an NpzFile for a zip whatever the suffix
        x.close()
        raise EdgeqError(f"{path} is an .npz archive; name it .npz (edgeq then reads its array x).")
    return x


def _board_inputs(m: dict, x: np.ndarray, echo=None) -> np.ndarray:
    if len(m["inputs"]) != 1:
        raise EdgeqError(f"`edgeq run` and `validate` take one input array; this model has {len(m['inputs'])} "
                         "inputs.")
    if x.ndim == 0 or len(x) == 0:
        raise EdgeqError("The inputs hold no samples; give [N, *input_shape] with N >= 1.")
    tin = m["inputs"][0]
    return quantize_inputs(conform_inputs(x, tuple(tin["shape"])), tin, echo)


def _outputs_on_board(build_dir: Path, m: dict, xq: np.ndarray, port: str | None) -> list[np.ndarray]:
    """Each sample's outputs, raw int8 and concatenated, from the build's board."""
    if m["board"] == "host":
        from edgeq.targets.host import run_host
        outs = run_host(build_dir, m["prefix"], [[s] for s in xq], [int(np.prod(t["shape"])) for t in m["outputs"]])
        return [np.concatenate(o) for o in outs]
    from edgeq.targets.device import open_device, run_samples
    with open_device(build_dir, m, port) as (link, _):
        return [np.frombuffer(o, np.int8) for o in run_samples(link, [s.tobytes() for s in xq])]


def run_build(build_dir: Path, x: np.ndarray, dequantize: bool = False, port: str | None = None,
              echo=None) -> np.ndarray:
    build_dir = Path(build_dir)
    m = load_manifest(build_dir)
    if len(m["outputs"]) != 1:
        raise EdgeqError(f"`edgeq run` saves one output array; this model has {len(m['outputs'])} outputs.")
    tout = m["outputs"][0]
    xq = _board_inputs(m, x, echo)
    outs = _outputs_on_board(build_dir, m, xq, port)
    y = np.stack([o.reshape(tout["shape"]) for o in outs])
    return dequantize_outputs(y, tout) if dequantize else y


def conform_inputs(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """[N, *shape], also accepting [N, *shape[1:]] when the model's batch is 1."""
    if x.ndim >= 1 and tuple(x.shape[1:]) == shape:
        return x
    if len(shape) >= 1 and shape[0] == 1 and tuple(x.shape[1:]) == shape[1:]:
        return x.reshape((x.shape[0], *shape))
    raise EdgeqError(f"The inputs have shape {tuple(x.shape)}; this model wants [N, {', '.join(map(str, shape))}] "
                     f"(N samples of the input shape {shape}).")


def validate_build(build_dir: Path, x: np.ndarray, port: str | None = None, echo=None) -> dict:
    """Sends every sample to the board and compares its outputs bit for bit with edgeq's executor on the
    integer graph the build stored as data (reference_graph.json/.npz)."""
    from edgeq.ir.serialize import load_graph
    from edgeq.lowering import lower_graph
    from edgeq.quant.executor import run_int

    build_dir = Path(build_dir)
    m = load_manifest(build_dir)
    xq = _board_inputs(m, x, echo)
    graph = load_graph(*(build_dir / f for f in REFERENCE_FILES))
    if graph.source_hash != m["model_sha256"]:
        raise EdgeqError(f"The reference graph in {build_dir} is of another model than its model.json; rebuild the "
                         "folder with `edgeq build`.")
    calls = lower_graph(graph)
    expected = [np.concatenate([v.reshape(-1) for v in run_int(graph, [s], calls).values()]) for s in xq]
    got = _outputs_on_board(build_dir, m, xq, port)
    mismatched = [k for k, (a, b) in enumerate(zip(got, expected)) if not np.array_equal(a, b)]
    top1 = float(np.mean([int(np.argmax(a) == np.argmax(b)) for a, b in zip(got, expected)]))
    return {"board": m["board"], "samples": len(xq), "bit_exact": len(xq) - len(mismatched),
            "mismatched_samples": mismatched[:50],
            "max_abs_difference": int(max((np.abs(a.astype(int) - b).max() for a, b in zip(got, expected)),
                                          default=0)),
            "top1_agreement_with_reference": top1}
