"""`edgeq run` and `edgeq validate`: samples through a built model on its board; raw or dequantized outputs
back, or compared bit for bit with edgeq's numpy reference of the build."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeq.build import REFERENCE_FILES, dequantize_outputs, load_manifest, quantize_inputs, tflite_round
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


def read_inputs(paths: list[str | Path], m: dict) -> list[np.ndarray]:
    """One [N, ...] array per model input: one file per input in the model's input order (.npy, or .npz with
    array x or an array named after the input), or for several inputs one .npz keyed by input name."""
    names = [t["name"] for t in m["inputs"]]
    paths = [Path(p) for p in paths]
    if len(paths) == 1 and len(names) > 1 and paths[0].suffix.lower() == ".npz":
        with _open_npz(paths[0]) as data:
            missing = [n for n in names if n not in data]
            if missing:
                raise EdgeqError(f"{paths[0]} has no array for input(s) {', '.join(missing)} (it has "
                                 f"{', '.join(data.files) or 'none'}); the model's inputs are {', '.join(names)}: save "
                                 "them as np.savez(path, **{input_name: samples}), or give --input once per input.")
            return [data[n] for n in names]
    if len(paths) != len(names):
        raise EdgeqError(f"The model has {len(names)} input(s) ({', '.join(names)}) and {len(paths)} were given; give "
                         "--input once per input, in that order, or one .npz keyed by input name.")
    result = []
    for path, name in zip(paths, names):
        if path.suffix.lower() == ".npz":
            with _open_npz(path) as data:
                if name in data and "x" not in data:
                    result.append(data[name])
                    continue
        result.append(load_inputs(path))
    return result


def _open_npz(path: Path):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise EdgeqError(f"Cannot read {path} as an .npz archive: {e}.") from None


def _board_inputs(m: dict, xs: list[np.ndarray], echo=None) -> list[np.ndarray]:
    """Each input's samples, quantized as the board takes them; every input with the same number N."""
    if len(xs) != len(m["inputs"]):
        raise EdgeqError(f"The model has {len(m['inputs'])} input(s); {len(xs)} array(s) were given.")
    result = []
    for x, tin in zip(xs, m["inputs"]):
        if x.ndim == 0 or len(x) == 0:
            raise EdgeqError(f"The inputs for '{tin['name']}' hold no samples; give [N, *input_shape] with N >= 1.")
        x = conform_inputs(x, tuple(tin["shape"]))
        result.append(_quantize_int16(x, tin) if tin["dtype"] == "int16" else quantize_inputs(x, tin, echo))
    if len({len(x) for x in result}) > 1:
        raise EdgeqError(f"The inputs hold different numbers of samples ({', '.join(str(len(x)) for x in result)}); "
                         "give every input the same N.")
    return result


def _quantize_int16(x: np.ndarray, tensor: dict) -> np.ndarray:
    """A 16x8 model's input: int16 as is, float32 quantized with the input's scale (zero point 0)."""
    if x.dtype == np.int16:
        return x
    if not np.issubdtype(x.dtype, np.floating) or not np.all(np.isfinite(x)):
        raise EdgeqError(f"The inputs for '{tensor['name']}' are {x.dtype} (or hold NaN/Inf); this 16x8 model takes "
                         "int16 (used as is) or finite float32 (quantized with its input scale).")
    q = tflite_round(x.astype(np.float32) / np.float32(tensor["scale"][0])).astype(np.int64)
    return np.clip(q, -(2**15), 2**15 - 1).astype(np.int16)


def _output_bytes(t: dict) -> int:
    return int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize


def _outputs_on_board(build_dir: Path, m: dict, xq: list[np.ndarray], port: str | None) -> list[list[np.ndarray]]:
    """Each sample's outputs, raw (int8, or int32 indices), from the build's board."""
    sizes = [_output_bytes(t) for t in m["outputs"]]
    samples = [[x[k] for x in xq] for k in range(len(xq[0]))]
    if m["board"] == "host":
        from edgeq.targets.host import run_host
        raw = [np.concatenate(o).tobytes() for o in run_host(build_dir, m["prefix"], samples, sizes)]
    else:
        from edgeq.targets.device import open_device, run_samples
        with open_device(build_dir, m, port) as (link, _):
            raw = run_samples(link, [b"".join(x.tobytes() for x in s) for s in samples])
    result = []
    for blob in raw:
        outs, pos = [], 0
        for t, size in zip(m["outputs"], sizes):
            outs.append(np.frombuffer(blob[pos:pos + size], dtype=t["dtype"]).reshape(t["shape"]))
            pos += size
        result.append(outs)
    return result


def run_build(build_dir: Path, xs: list[np.ndarray], dequantize: bool = False, port: str | None = None,
              echo=None) -> list[np.ndarray]:
    """One [N, *shape] array per model output (dequantized to float32 where asked and quantized)."""
    build_dir = Path(build_dir)
    m = load_manifest(build_dir)
    outs = _outputs_on_board(build_dir, m, _board_inputs(m, xs, echo), port)
    result = []
    for j, tout in enumerate(m["outputs"]):
        y = np.stack([o[j] for o in outs])
        result.append(dequantize_outputs(y, tout) if dequantize and tout["scale"] else y)
    return result


def conform_inputs(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """[N, *shape], also accepting [N, *shape[1:]] when the model's batch is 1."""
    if x.ndim >= 1 and tuple(x.shape[1:]) == shape:
        return x
    if len(shape) >= 1 and shape[0] == 1 and tuple(x.shape[1:]) == shape[1:]:
        return x.reshape((x.shape[0], *shape))
    raise EdgeqError(f"The inputs have shape {tuple(x.shape)}; this model wants [N, {', '.join(map(str, shape))}] "
                     f"(N samples of the input shape {shape}).")


def validate_build(build_dir: Path, xs: list[np.ndarray], port: str | None = None, echo=None) -> dict:
    """Sends every sample to the board and compares its outputs bit for bit with edgeq's executor on the
    integer graph the build stored as data (reference_graph.json/.npz)."""
    from edgeq.ir.serialize import load_graph
    from edgeq.lowering import lower_graph
    from edgeq.quant.executor import initial_state, run_int

    build_dir = Path(build_dir)
    m = load_manifest(build_dir)
    xq = _board_inputs(m, xs, echo)
    graph = load_graph(*(build_dir / f for f in REFERENCE_FILES))
    if graph.source_hash != m["model_sha256"]:
        raise EdgeqError(f"The reference graph in {build_dir} is of another model than its model.json; rebuild the "
                         "folder with `edgeq build`.")
    calls = lower_graph(graph)
    n = len(xq[0])
    state = initial_state(graph)  # the board runs the samples in turn: recurrent state carries over
    expected = [list(run_int(graph, [x[k] for x in xq], calls, state=state).values()) for k in range(n)]
    got = _outputs_on_board(build_dir, m, xq, port)
    mismatched = [k for k in range(n) if not all(np.array_equal(a.reshape(-1), b.reshape(-1))
                                                 for a, b in zip(got[k], expected[k]))]
    top1 = float(np.mean([int(np.argmax(a[0]) == np.argmax(b[0])) for a, b in zip(got, expected)]))
    return {"board": m["board"], "samples": n, "bit_exact": n - len(mismatched),
            "mismatched_samples": mismatched[:50],
            "max_abs_difference": int(max((np.abs(a.astype(np.int64).reshape(-1) - b.reshape(-1)).max()
                                           for gs, es in zip(got, expected) for a, b in zip(gs, es)), default=0)),
            "top1_agreement_with_reference": top1}
