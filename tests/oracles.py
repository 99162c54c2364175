"""The oracles edgeq is checked against, and the one comparison every model test uses.

`check_model(tflite_bytes)` runs random int8 inputs through TFLite Micro's interpreter, edgeq's
numpy integer executor and (when a C compiler is present) edgeq's generated C on the host, and
demands equality bit for bit.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def shared_path(rel: str) -> Path:
    p = SHARED / rel
    if not p.exists():
        pytest.skip(f"../shared/{rel} is absent (shared reference material is not checked out beside the project)")
    return p


def assert_rescales_are_shifts(out: Path) -> None:
    """A power-of-two build in out: no multiplier reaches the C, and every int8 scale in model.json is 2^-n, but a
    fitted graph input's (and its reshapes') and its readers' weight scales, whose products with the input's scale
    are 2^-n to within 2^-32 (edgeq.quant.pot.input_step_pair)."""
    import json

    manifest = json.loads((out / "model.json").read_text())
    assert not any("_out_mult" in f.read_text() for f in out.glob("*_weights.c"))
    inputs = [np.float64(t["scale"][0]) for t in manifest["inputs"] if t["scale"]]
    names = {t["name"] for t in manifest["inputs"]}

    def powers_of_two(scales: np.ndarray) -> bool:
        return bool(np.all(np.abs(np.log2(scales) - np.round(np.log2(scales))) < 2.0 ** -32))

    for t in manifest["tensors"]:
        if t["dtype"] == "int8" and t["name"] not in names:
            s = np.array(t["scale"], np.float64)
            assert np.all(s > 0) and (np.all(np.log2(s) == np.round(np.log2(s))) or
                                      any(powers_of_two(s * s_in) or np.all(s == s_in) for s_in in inputs)), t["name"]


def tflm_run(model: bytes, inputs: list[np.ndarray], n_outputs: int = 1) -> list[np.ndarray]:
    """TFLite Micro's reference interpreter on one sample."""
    from tflite_micro.python.tflite_micro import runtime

    # its default arena, 10x the file, is too small for tiny models and TFLM then crashes
    it = runtime.Interpreter.from_bytes(model, arena_size=max(1 << 20, 10 * len(model)))
    for i, x in enumerate(inputs):
        it.set_input(x, i)
    it.invoke()
    return [np.array(it.get_output(i)) for i in range(n_outputs)]


def tflm_run_sequence(model: bytes, samples: list[list[np.ndarray]], n_outputs: int = 1) -> list[list[np.ndarray]]:
    """TFLite Micro on samples in turn, one interpreter: state (variable tensors, resource variables) carries over."""
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(model, arena_size=max(1 << 20, 10 * len(model)))
    results = []
    for inputs in samples:
        for i, x in enumerate(inputs):
            it.set_input(x, i)
        it.invoke()
        results.append([np.array(it.get_output(i)) for i in range(n_outputs)])
    return results


def random_inputs(graph, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.integers(-128, 128, size=graph.t(n).shape, dtype=np.int64).astype(np.int8) for n in graph.inputs]


def check_model(model: bytes, n: int = 20, seed: int = 0, c: bool = True, sample=None) -> None:
    """sample(graph, rng): one sample's inputs (default: uniformly random int8). A model with state (recurrent
    layers, variables) runs its samples in turn as successive invokes everywhere: state carries over."""
    from edgeq.frontends.tflite import load_tflite
    from edgeq.lowering import lower_graph
    from edgeq.quant.executor import initial_state, run_int

    graph = load_tflite(model, "model")
    calls = lower_graph(graph)
    rng = np.random.default_rng(seed)
    samples = [(sample or random_inputs)(graph, rng) for _ in range(n)]
    if graph.states:
        expected = tflm_run_sequence(model, samples, len(graph.outputs))
    else:
        expected = [tflm_run(model, xs, len(graph.outputs)) for xs in samples]
    state = initial_state(graph)
    for k, (xs, ref) in enumerate(zip(samples, expected)):
        got = run_int(graph, xs, calls, state=state if graph.states else None)
        for j, name in enumerate(graph.outputs):
            np.testing.assert_array_equal(
                got[name], ref[j].reshape(got[name].shape),
                err_msg=f"numpy executor != TFLite Micro on sample {k}, output {name}")
    if c and _have_c_pipeline():
        from edgeq.build import build_and_run_host
        with tempfile.TemporaryDirectory() as d:
            outs = build_and_run_host(graph, Path(d), samples, sanitize=True)
        for k, (got, ref) in enumerate(zip(outs, expected)):
            for j, name in enumerate(graph.outputs):
                np.testing.assert_array_equal(
                    got[j].view(graph.t(name).dtype).reshape(-1), ref[j].reshape(-1),
                    err_msg=f"generated C != TFLite Micro on sample {k}, output {name}")


def _have_c_pipeline() -> bool:
    try:
        import edgeq.targets.host  # noqa: F401
    except ImportError:
        return False
    return os.environ.get("EDGEQ_SKIP_C") != "1"


def convert_int8(keras_model, input_shapes: list[tuple[int, ...]], n_rep: int = 32, seed: int = 0,
                 low: float = -1.0, high: float = 1.0) -> bytes:
    """Full-integer int8 TFLite conversion of a Keras model, calibrated on uniform random data."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)

    def rep():
        for _ in range(n_rep):
            yield [rng.uniform(low, high, size=(1, *s)).astype(np.float32) for s in input_shapes]

    conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()
