"""Power-of-two quantization of float models that keep state across invokes (issue 12): SVDF, resource variables
(VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE, CALL_ONCE) and TFLite's UNIDIRECTIONAL_SEQUENCE_LSTM.

Every check runs a sequence of invokes: the float executor against LiteRT (the state handling against a real
oracle), the quantized golden model against the generated C (ASan/UBSan) before and after `<model>_reset()`, and
the quantized model's output SQNR against the float model on a held-out sequence."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from tests.tflite_builder import Op, T, build

pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert.interpreter")

CALIBRATION, HELD_OUT = 48, 24  # invokes


def _const(rng, shape, scale=0.3):
    return T(shape, "float32", data=rng.normal(0, scale, shape).astype(np.float32))


def _svdf_model() -> bytes:
    """SVDF (rank 2, RELU) -> SVDF (rank 1) -> FULLY_CONNECTED, one 8-value frame per invoke."""
    rng = np.random.default_rng(0)

    def svdf(x, n_in, units, rank, memory, act):
        out = T((1, units), "float32")
        return Op("SVDF", [x, _const(rng, (units * rank, n_in)), _const(rng, (units * rank, memory)),
                           _const(rng, (units,), 0.1), T((1, memory * units * rank), "float32", variable=True)],
                  [out], "SVDFOptions", {"rank": rank, "fusedActivationFunction": act}), out

    first, h = svdf(T((1, 8), "float32"), 8, 6, 2, 5, 1)
    second, h2 = svdf(h, 6, 4, 1, 3, 0)
    fc = Op("FULLY_CONNECTED", [h2, _const(rng, (3, 4)), _const(rng, (3,), 0.1)], [T((1, 3), "float32")],
            "FullyConnectedOptions", {}, version=1)
    return build([first, second, fc])


def _lstm_model() -> bytes:
    """Two stacked UNIDIRECTIONAL_SEQUENCE_LSTMs as TFLite's converter writes a float Keras LSTM (four gates, the
    hidden and cell states variable tensors, so they carry over from one invoke to the next), 3 steps each."""
    rng = np.random.default_rng(1)

    def lstm(x, steps, n_in, units):
        y = T((1, steps, units), "float32")
        inputs = [x, *[_const(rng, (units, n_in), 0.5) for _ in range(4)],
                  *[_const(rng, (units, units), 0.5) for _ in range(4)], None, None, None,
                  *[_const(rng, (units,), 0.2) for _ in range(4)], None, None,
                  T((1, units), "float32", variable=True), T((1, units), "float32", variable=True),
                  None, None, None, None]
        return Op("UNIDIRECTIONAL_SEQUENCE_LSTM", inputs, [y], "UnidirectionalSequenceLSTMOptions",
                  {"fusedActivationFunction": 4, "cellClip": 0.0, "timeMajor": False}, version=1), y

    first, h = lstm(T((1, 3, 4), "float32"), 3, 4, 8)
    second, _ = lstm(h, 3, 8, 5)
    return build([first, second])


def _keras_lstm_model() -> bytes:
    """A Keras 2 LSTM stack converted by the TFLite converter (Keras 3's LSTM converts to a WHILE loop)."""
    keras = pytest.importorskip("tf_keras", reason="tf_keras (Keras 2, a test extra) is not installed; "
                                                   "`pip install -e '.[test]'` (make test does)")
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 3), batch_size=1), keras.layers.LSTM(8, return_sequences=True),
                              keras.layers.LSTM(5), keras.layers.Dense(3)])
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def _variable_model() -> bytes:
    """A streaming model as the TFLite converter writes it: a variable holds the last three 4-value frames
    (CALL_ONCE initialises it, READ_VARIABLE/ASSIGN_VARIABLE keep it), a fully connected layer reads the window."""
    import tensorflow as tf

    w = tf.constant(np.random.default_rng(2).normal(0, 0.4, (12, 5)).astype(np.float32))

    class Streaming(tf.Module):
        def __init__(self):
            self.window = tf.Variable(tf.zeros((1, 3, 4)))

        @tf.function(input_signature=[tf.TensorSpec((1, 1, 4), tf.float32)])
        def __call__(self, x):
            window = tf.concat([self.window[:, 1:], x], axis=1)
            self.window.assign(window)
            return tf.matmul(tf.reshape(window, (1, 12)), w)

    m = Streaming()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([m.__call__.get_concrete_function()], m)
    conv.experimental_enable_resource_variables = True
    return conv.convert()


MODELS = {"svdf": _svdf_model, "lstm": _lstm_model, "keras_lstm": _keras_lstm_model, "variables": _variable_model}
_BUILT: dict[str, bytes] = {}


def _model(name: str):
    from edgeq.frontends.tflite import load_tflite

    if name not in _BUILT:
        _BUILT[name] = MODELS[name]()
    return _BUILT[name], load_tflite(_BUILT[name], name)


def _stream(graph, n: int, seed: int) -> np.ndarray:
    """n invokes' inputs: a stationary autoregressive signal (each invoke's input 0.7 times the last one's plus
    noise), so the state carries information and held-out invokes stay in the calibration's range."""
    rng = np.random.default_rng(seed)
    shape = graph.t(graph.inputs[0]).shape
    xs = rng.normal(0, 1, (n, *shape))
    for k in range(1, n):
        xs[k] = 0.7 * xs[k - 1] + 0.7 * xs[k]
    return xs.astype(np.float32)


def _litert_sequence(model: bytes, xs: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model)
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    out = []
    for x in xs:
        it.set_tensor(i, x)
        it.invoke()
        out.append(it.get_tensor(o).copy())
    return np.array(out)


@pytest.mark.parametrize("name", MODELS)
def test_float_executor_carries_state_as_litert_does(name):
    """12 invokes in sequence: every output of edgeq's float executor equals LiteRT's to float rounding; a second
    pass over the same inputs from a fresh state repeats the first, and differs from running each invoke from the
    initial state (so the state does carry over)."""
    from edgeq.quant.executor import run_float_batch, run_float_graph

    model, graph = _model(name)
    xs = _stream(graph, 12, seed=3)
    ref = _litert_sequence(model, xs)
    got = run_float_batch(graph, xs)[graph.outputs[0]].reshape(ref.shape)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()))
    np.testing.assert_array_equal(run_float_batch(graph, xs)[graph.outputs[0]].reshape(ref.shape), got)
    fresh = np.array([run_float_graph(graph, [x])[graph.outputs[0]] for x in xs]).reshape(ref.shape)
    assert np.abs(fresh[1:] - got[1:]).max() > 1e-3


RESET_MAIN = r"""
#include <stdio.h>
#include "PREFIX.h"

/* N invokes in sequence, <model>_reset(), the same N invokes again: the outputs of both passes */
int main(void)
{
    static int8_t x[N][PREFIX_UPPER_INPUT0_BYTES], y[PREFIX_UPPER_OUTPUT0_BYTES];
    if (fread(x, 1, sizeof x, stdin) != sizeof x) {
        return 2;
    }
    int status = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < N; k++) {
            status |= PREFIX_invoke(x[k], y);
            fwrite(y, 1, sizeof y, stdout);
        }
        PREFIX_reset();
    }
    return status;
}
"""


def _host_c_with_reset(graph, samples: list[np.ndarray], out) -> np.ndarray:
    """The generated C of an integer graph, compiled with the harness above under ASan/UBSan: its outputs for the
    samples in sequence, then again after <model>_reset(), [2 * N, output bytes]."""
    from edgeq.build import compile_graph, write_sources
    from edgeq.targets.boards import get_board

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    c = compile_graph(graph, "pot", get_board("host"), "ref")
    out.mkdir(parents=True, exist_ok=True)
    write_sources(c, out)
    prefix = c.cmodel.prefix
    main = RESET_MAIN.replace("PREFIX_UPPER", prefix.upper()).replace("PREFIX", prefix)
    (out / "reset_main.c").write_text(main.replace("[N]", f"[{len(samples)}]").replace("< N", f"< {len(samples)}"))
    sources = [out / f"{prefix}.c", out / f"{prefix}_weights.c", *sorted((out / "runtime").glob("*.c")),
               out / "reset_main.c"]
    exe = out / "reset"
    subprocess.run([cc, "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-O1", "-g",
                    "-fsanitize=address,undefined", "-fno-sanitize-recover=all", f"-I{out}", f"-I{out / 'runtime'}",
                    *map(str, sources), "-o", str(exe)], check=True, capture_output=True)
    proc = subprocess.run([str(exe)], input=b"".join(s.tobytes() for s in samples), capture_output=True, check=True)
    return np.frombuffer(proc.stdout, dtype=np.int8).reshape(2 * len(samples), -1)


@pytest.mark.parametrize("name", MODELS)
def test_power_of_two_golden_equals_host_c_across_invokes_and_reset(name, tmp_path):
    """Quantized on 48 invokes in sequence; on 24 held-out invokes: the golden model (its state carried over) equals
    the generated C bit for bit, and again after <model>_reset(); every state's grid holds the range calibration saw;
    the output SQNR against the float model on the held-out sequence is reported (and must pass 25 dB)."""
    from edgeq.lowering import lower_graph
    from edgeq.quant.driver import quantize
    from edgeq.quant.executor import STATE_KEY, initial_state, run_float_batch, run_int
    from edgeq.quant.pot import dequantize, quantize_sample

    _, graph = _model(name)
    calib = _stream(graph, CALIBRATION, seed=4)
    result = quantize(graph, calib, echo=lambda *_: None)
    q = result.graph
    assert q.states and all(t.dtype in ("int8", "int16") for t in q.states.values())
    seen = run_float_batch(result.float_graph, calib, keep_all=True)
    for key, state in q.states.items():
        info = np.iinfo(state.dtype)
        s, zp = float(state.quant.s), state.quant.zp
        values = seen[STATE_KEY + key]
        assert (info.min - zp) * s <= values.min() and values.max() <= (info.max - zp) * s, key

    xs = _stream(graph, HELD_OUT, seed=5)
    samples = [quantize_sample(x, q.t(q.inputs[0]).quant) for x in xs]
    calls, state = lower_graph(q), initial_state(q)
    golden = np.array([run_int(q, [s], calls, state=state)[q.outputs[0]].reshape(-1) for s in samples])
    c_out = _host_c_with_reset(q, samples, tmp_path / "c")
    np.testing.assert_array_equal(c_out[:HELD_OUT], golden, err_msg="generated C != golden model")
    np.testing.assert_array_equal(c_out[HELD_OUT:], golden, err_msg="generated C after reset != golden model")

    reference = run_float_batch(graph, xs)[graph.outputs[0]].reshape(HELD_OUT, -1).astype(np.float64)
    noise = np.sum((reference - dequantize(golden, q.t(q.outputs[0]).quant)) ** 2)
    sqnr = 10 * np.log10(np.sum(reference ** 2) / noise)
    print(f"{name}: output SQNR {sqnr:.1f} dB on {HELD_OUT} held-out invokes "
          f"(calibration {result.summary.output_sqnr_db:.1f} dB)")
    assert sqnr > 25, sqnr


def test_command_line_build_and_validate(tmp_path):
    """`edgeq build svdf_float.tflite --calib calib.npz` (power-of-two, the default for a float model), then
    `edgeq validate`: the host binary, its state carrying over the samples, equals the golden model on all 16."""
    from tests.test_cli import edgeq

    model, graph = _model("svdf")
    (tmp_path / "svdf_float.tflite").write_bytes(model)
    np.savez(tmp_path / "calib.npz", x=_stream(graph, 16, seed=6))
    out = tmp_path / "out"
    proc = edgeq("build", tmp_path / "svdf_float.tflite", "--board", "host", "-o", out, "--calib",
                 tmp_path / "calib.npz")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "as one sequence of invokes" in proc.stdout
    proc = edgeq("validate", out, "--data", tmp_path / "calib.npz")
    assert proc.returncode == 0 and "16 of 16 samples bit-exact" in proc.stdout, proc.stdout + proc.stderr


def test_options_that_need_independent_samples_are_refused():
    from edgeq.errors import EdgeqError
    from edgeq.quant.driver import QuantOptions, quantize

    _, graph = _model("svdf")
    with pytest.raises(EdgeqError, match="keeps state across invokes"):
        quantize(graph, _stream(graph, 8, seed=7), QuantOptions(cv_folds=2), echo=lambda *_: None)
