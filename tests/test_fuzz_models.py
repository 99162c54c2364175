"""Fuzzed models (issue 14): a fixed-seed corpus of byte-flipped and truncated TFLite and ONNX files, each of
which edgeq must either refuse with an EdgeqError or build into a model that matches the oracle (TFLite
Micro for int8 TFLite, onnxruntime for float ONNX). No other exception, hang or wrong success."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgeq.errors import EdgeqError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digits_cnn_int8.tflite"
TFLITE_MUTANTS = 300
ONNX_MUTANTS = 200


def mutants(data: bytes, n: int, seed: int, payload: list[tuple[int, int]] = ()) -> list[bytes]:
    """Thirds: truncations, 1-4 random bytes flipped anywhere, and (given the byte ranges of the weights)
    1-4 bytes flipped inside the weights, which a valid model survives."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        if k % 3 == 1:
            out.append(data[:int(rng.integers(0, len(data)))])
            continue
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 5))):
            if k % 3 == 2 and payload:
                lo, hi = payload[int(rng.integers(0, len(payload)))]
                pos = int(rng.integers(lo, hi))
            else:
                pos = int(rng.integers(0, len(b)))
            b[pos] = int(rng.integers(0, 256))
        out.append(bytes(b))
    return out


def weight_ranges(data: bytes, graph) -> list[tuple[int, int]]:
    """Where the constant tensors' bytes lie in the model file."""
    ranges = []
    for t in graph.tensors.values():
        if t.is_const and t.data.nbytes >= 16:
            raw = np.ascontiguousarray(t.data).tobytes()
            at = data.find(raw)
            if at >= 0:
                ranges.append((at, at + len(raw)))
    return ranges


def small_onnx() -> bytes:
    """Conv 1->4 3x3, Relu, GlobalAveragePool, Flatten, Gemm 4->3: float, NCHW [1, 1, 8, 8]."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(0, 0.1, 4).astype(np.float32), "b"),
             numpy_helper.from_array(rng.normal(0, 0.5, (3, 4)).astype(np.float32), "fw"),
             numpy_helper.from_array(rng.normal(0, 0.1, 3).astype(np.float32), "fb")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1, name="fc")]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()


def _edgeq_outcome(path: Path):
    """("refused", message) or ("built", graph, lowered calls): the pipeline up to the C sources."""
    from edgeq.build import compile_graph
    from edgeq.frontends import load_model

    try:
        graph = load_model(path)
        return ("built", graph, compile_graph(graph, "keep", kernels="ref") if graph.is_integer else None)
    except EdgeqError as e:
        assert str(e) and "\n" not in str(e).strip()[:200], str(e)
        return ("refused", str(e))


TFLM_WORKER = r"""
import json, sys
import numpy as np
from tests.oracles import tflm_run
jobs = json.loads(sys.stdin.read())
for job in jobs:
    print(job["index"], flush=True)  # the last index printed names a mutant that crashed TFLite Micro
    data = open(job["model"], "rb").read()
    x = np.array(job["x"], np.int8).reshape(job["shape"])
    try:
        y = tflm_run(data, [x])[0]
    except Exception as e:
        print("REFUSED", job["index"], type(e).__name__, str(e)[:200], flush=True)
        continue
    if not np.array_equal(y.reshape(-1), np.array(job["y"], np.int8)):
        print("MISMATCH", job["index"], flush=True)
print("DONE", flush=True)
"""


def test_fuzzed_tflite_models_are_refused_or_match_tflm(tmp_path):
    from edgeq.quant.executor import run_int

    start = time.monotonic()
    rng = np.random.default_rng(1)
    jobs, refused = [], 0
    from edgeq.frontends import load_model
    original = EXAMPLE.read_bytes()
    for k, data in enumerate(mutants(original, TFLITE_MUTANTS, 14, weight_ranges(original, load_model(EXAMPLE)))):
        path = tmp_path / f"m{k}.tflite"
        path.write_bytes(data)
        outcome = _edgeq_outcome(path)
        if outcome[0] == "refused":
            refused += 1
            continue
        _, graph, compiled = outcome
        if compiled is None:  # a flip that made a tensor float: edgeq needs --quant pot, not a bit-exact build
            continue
        x = rng.integers(-128, 128, graph.t(graph.inputs[0]).shape).astype(np.int8)
        y = run_int(graph, [x], compiled.calls)[graph.outputs[0]]
        jobs.append({"index": k, "model": str(path), "x": x.reshape(-1).tolist(), "shape": list(x.shape),
                     "y": y.reshape(-1).tolist()})
    assert refused > TFLITE_MUTANTS // 3 and len(jobs) > TFLITE_MUTANTS // 10, (refused, len(jobs))
    proc = subprocess.run([sys.executable, "-c", TFLM_WORKER], input=json.dumps(jobs), capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    lines = proc.stdout.splitlines()
    assert lines and lines[-1] == "DONE", f"TFLite Micro crashed on mutant {lines[-1] if lines else '?'} that edgeq " \
                                         f"accepted: {proc.stderr[-500:]}"
    bad = [line for line in lines if line.startswith(("MISMATCH", "REFUSED"))]
    assert not bad, f"edgeq built {len(jobs)} mutants; these disagree with TFLite Micro: {bad[:10]}"
    print(f"{TFLITE_MUTANTS} TFLite mutants: {refused} refused, {len(jobs)} built and equal to TFLite Micro, "
          f"in {time.monotonic() - start:.1f} s")


def test_fuzzed_onnx_models_are_refused_or_match_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from edgeq.quant.executor import run_float_graph

    start = time.monotonic()
    x = np.random.default_rng(2).normal(0, 1, (1, 1, 8, 8)).astype(np.float32)
    refused = built = 0
    original = small_onnx()
    (tmp_path / "original.onnx").write_bytes(original)
    from edgeq.frontends import load_model
    for k, data in enumerate(mutants(original, ONNX_MUTANTS, 14, weight_ranges(original, load_model(tmp_path / "original.onnx")))):
        path = tmp_path / f"m{k}.onnx"
        path.write_bytes(data)
        outcome = _edgeq_outcome(path)
        if outcome[0] == "refused":
            refused += 1
            continue
        graph = outcome[1]
        try:
            sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
            ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        except Exception as e:  # noqa: BLE001 - any refusal by the oracle
            pytest.fail(f"edgeq accepted ONNX mutant {k}, which onnxruntime refuses: {type(e).__name__}: {e}")
        with np.errstate(all="ignore"):
            got = run_float_graph(graph, [x.reshape(graph.t(graph.inputs[0]).shape)])[graph.outputs[0]]
        np.testing.assert_allclose(got.reshape(-1), ref.reshape(-1), rtol=1e-4, atol=1e-4,
                                   err_msg=f"ONNX mutant {k}: edgeq's float graph != onnxruntime")
        built += 1
    assert refused > ONNX_MUTANTS // 3 and built > ONNX_MUTANTS // 10, (refused, built)
    print(f"{ONNX_MUTANTS} ONNX mutants: {refused} refused, {built} imported and equal to onnxruntime, "
          f"in {time.monotonic() - start:.1f} s")
