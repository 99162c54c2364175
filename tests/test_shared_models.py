"""Whole-model checks on the shared MLPerf Tiny and TFLite Micro models (skipped when ../shared is absent)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.oracles import assert_rescales_are_shifts, check_model, shared_path

INT8_MODELS = {
    "ad01_int8": "models/mlperf_tiny/ad01_int8.tflite",
    "kws_ds_cnn_int8": "models/mlperf_tiny/kws_ds_cnn_int8.tflite",
    "resnet_ic_int8": "models/mlperf_tiny/resnet_ic_int8.tflite",
    "vww_96_int8": "models/mlperf_tiny/vww_96_int8.tflite",
    "person_detect": "models/tflm/person_detect.tflite",
    "micro_speech_quantized": "models/tflm/micro_speech_quantized.tflite",
}
# TFLite Micro's arena on the M7 with CMSIS-NN and the lower bound for the operator order (../shared/anchors.md).
TFLM_ARENA = {"ad01_int8": 2580, "kws_ds_cnn_int8": 22820, "resnet_ic_int8": 54996, "vww_96_int8": 100708,
              "person_detect": 82308, "micro_speech_quantized": 6836}
LOWER_BOUND = {"ad01_int8": 768, "kws_ds_cnn_int8": 16000, "resnet_ic_int8": 49152, "vww_96_int8": 55296,
               "person_detect": 55296, "micro_speech_quantized": 5960}
FLOAT_MODELS = ["models/mlperf_tiny/ad01_fp32.tflite", "models/mlperf_tiny/resnet_ic_fp32.tflite",
                "models/mlperf_tiny/vww_96_fp32.tflite", "models/mlperf_tiny/kws_ds_cnn_hybrid.tflite",
                "models/tflm/hello_world_float.tflite"]


@pytest.mark.parametrize("name", sorted(INT8_MODELS))
def test_int8_model_bit_exact_with_tflm(name):
    check_model(shared_path(INT8_MODELS[name]).read_bytes(), n=20, seed=7)


@pytest.mark.parametrize("name", sorted(INT8_MODELS))
def test_arena_reaches_the_lower_bound(name):
    from edgeq.frontends.tflite import load_tflite_file
    from edgeq.memory.arena import plan_arena
    from edgeq.lowering import lower_graph

    graph = load_tflite_file(shared_path(INT8_MODELS[name]))
    plan = plan_arena(graph, lower_graph(graph))
    # the planner's bound counts 16-byte aligned sizes; the published one counts raw bytes
    assert LOWER_BOUND[name] <= plan.lower_bound <= LOWER_BOUND[name] + 16 * len(graph.tensors)
    assert plan.size <= max(plan.lower_bound * 1.01, plan.lower_bound + 64)
    assert plan.size < TFLM_ARENA[name]


def test_hello_world_int8_smoke():
    check_model(shared_path("models/tflm/hello_world_int8.tflite").read_bytes(), n=20)


@pytest.mark.parametrize("rel", FLOAT_MODELS)
def test_float_executor_matches_litert(rel):
    from ai_edge_litert.interpreter import Interpreter

    from edgeq.frontends.tflite import load_tflite_file
    from edgeq.quant.executor import run_float_graph

    path = shared_path(rel)
    graph = load_tflite_file(path)
    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    rng = np.random.default_rng(3)
    for _ in range(5):
        x = rng.uniform(-1, 1, size=graph.t(graph.inputs[0]).shape).astype(np.float32)
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        ref = it.get_tensor(it.get_output_details()[0]["index"])
        got = run_float_graph(graph, [x])[graph.outputs[0]]
        # hybrid kernels quantize activations on the fly, so only the float files are held to 1e-4
        tol = 0.05 if "hybrid" in rel else 1e-4
        np.testing.assert_allclose(got.reshape(ref.shape), ref, rtol=tol, atol=tol * max(1.0, np.abs(ref).max()))


# Issue 3's acceptance: MLCommons' per-channel int8 model's top-1 agreement with the float model on the shared
# eval set (ad01: Pearson r of the anomaly score), and how far below it edgeq's power-of-two model may fall.
POT_ACCEPTANCE = {"resnet_ic": ("resnet_ic_fp32", 89.5 - 1.0), "vww_96": ("vww_96_fp32", 99.0 - 1.0),
                  "kws_ds_cnn": ("kws_ds_cnn_hybrid", 93.5 - 1.0), "ad01": ("ad01_fp32", 0.995)}


@pytest.mark.parametrize("data", sorted(POT_ACCEPTANCE))
def test_power_of_two_build_meets_the_acceptance_on_the_eval_set(data, tmp_path):
    """The default power-of-two build for the host, calibrated on calib.npz and run as C by `edgeq run
    --dequantize` on eval.npz, against the float model."""
    import subprocess
    import sys

    from edgeq.frontends.tflite import load_tflite_file
    from edgeq.quant.executor import run_float_graph

    model, floor = POT_ACCEPTANCE[data]
    path = shared_path(f"models/mlperf_tiny/{model}.tflite")
    x = np.load(shared_path(f"data/{data}/eval.npz"))["x"].astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "build"
    for args in (["build", path, "--board", "host", "--calib", shared_path(f"data/{data}/calib.npz"), "-o", out],
                 ["run", out, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy", "--dequantize"]):
        proc = subprocess.run([sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_rescales_are_shifts(out)
    graph = load_tflite_file(path)
    shape = graph.t(graph.inputs[0]).shape
    f = np.array([run_float_graph(graph, [s.reshape(shape)])[graph.outputs[0]].reshape(-1) for s in x])
    q = np.load(tmp_path / "y.npy").reshape(len(x), -1)
    if data == "ad01":
        flat = x.reshape(len(x), -1)
        measured = float(np.corrcoef(((flat - f) ** 2).mean(1), ((flat - q) ** 2).mean(1))[0, 1])
    else:
        measured = 100 * float(np.mean(f.argmax(1) == q.argmax(1)))
    print(f"{data}: {measured:.4g} (floor {floor:.4g})")
    assert measured >= floor, (data, measured, floor)
