"""Issue 12's recurrent and stateful operators against TFLite Micro: SVDF, resource variables (VAR_HANDLE,
READ_VARIABLE, ASSIGN_VARIABLE, CALL_ONCE) and UNIDIRECTIONAL_SEQUENCE_LSTM. Each model runs a sequence of
invokes (state carries over) through TFLite Micro's interpreter, edgeq's numpy executor and edgeq's generated C
(ASan/UBSan), compared bit for bit after every invoke."""
from __future__ import annotations

import numpy as np
import pytest

from tests.oracles import check_model
from tests.tflite_builder import Op, T, build, q8

pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro")

# The TFLite operators these tests build (tests/test_ops.py checks that every supported operator is covered).
COVERED = {"SVDF", "UNIDIRECTIONAL_SEQUENCE_LSTM", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"}


def _svdf(rng, batches, input_size, units, rank, memory, s_in=0.05, zp_in=3, s_out=0.1, zp_out=-4,
          act=0, state_zp=None) -> Op:
    """state_zp None: int16 state and time weights; else int8 ones, the state with that zero point."""
    filters = units * rank
    wide = state_zp is None
    s_wf, s_state, s_wt = 0.01, 2.0 ** -10 if wide else 0.2, 2.0 ** -12 if wide else 0.01
    wf = T((filters, input_size), "int8", s_wf, 0, rng.integers(-127, 128, (filters, input_size)).astype(np.int8))
    t_type, t_max = ("int16", 2000) if wide else ("int8", 127)
    wt = T((filters, memory), t_type, s_wt, 0, rng.integers(-t_max, t_max + 1, (filters, memory)).astype(t_type))
    bias = T((units,), "int32", s_state * s_wt, 0, rng.integers(-5000, 5001, units).astype(np.int32))
    state = T((batches, memory * filters), t_type, s_state, state_zp or 0, variable=True)
    return Op("SVDF", [q8((batches, input_size), s_in, zp_in), wf, wt, bias, state],
              [q8((batches, units), s_out, zp_out)], "SVDFOptions", {"rank": rank, "fusedActivationFunction": act},
              version=3)


def test_svdf():
    """Shapes (batches, inputs, units, rank, memory) and zero points, int16 and int8 state (with a zero point,
    which TFLM's variable starts at); RELU is in the options but, as in TFLM's integer SVDF, not applied.
    12 invokes in sequence."""
    rng = np.random.default_rng(1)
    cases = [(1, 8, 4, 1, 5), (2, 3, 3, 2, 4), (1, 16, 8, 2, 10), (3, 5, 1, 1, 1), (1, 40, 6, 1, 8)]
    op_list = [_svdf(rng, *c) for c in cases]
    op_list.append(_svdf(rng, 1, 12, 4, 2, 3, s_in=0.2, zp_in=-100, s_out=0.02, zp_out=90, act=1))
    op_list += [_svdf(rng, *c, state_zp=zp) for c, zp in [((1, 8, 4, 1, 5), 0), ((2, 6, 3, 2, 4), 7),
                                                          ((1, 20, 8, 1, 6), -30)]]
    check_model(build(op_list), n=12)


def _variable_model(init: float) -> bytes:
    """A streaming model as the TFLite converter writes it: CALL_ONCE runs an init subgraph assigning `init`,
    VAR_HANDLE/READ_VARIABLE/ASSIGN_VARIABLE keep a float variable between int8 QUANTIZE/DEQUANTIZE."""
    import tensorflow as tf

    class Streaming(tf.Module):
        def __init__(self):
            self.v = tf.Variable(tf.fill((1, 6), init))

        @tf.function(input_signature=[tf.TensorSpec((1, 6), tf.float32)])
        def __call__(self, x):
            new = x - self.v
            self.v.assign(new)
            return tf.maximum(new, x)

    m = Streaming()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([m.__call__.get_concrete_function()], m)
    conv.experimental_enable_resource_variables = True
    rng = np.random.default_rng(0)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([rng.uniform(-1, 1, (1, 6)).astype(np.float32)] for _ in range(32))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


def test_resource_variables():
    """The variable is kept in int8 (its assignments' scale) in a static buffer; reads convert to the read's
    scale as TFLM's float variable does. 30 invokes in sequence."""
    from edgeq.frontends.tflite import load_tflite
    from edgeq.ir import ops

    model = _variable_model(0.0)
    graph = load_tflite(model, "streaming")
    assert [type(op) for op in graph.ops if isinstance(op, (ops.ReadVariable, ops.AssignVariable))] == [
        ops.ReadVariable, ops.AssignVariable]
    assert [t.dtype for t in graph.states.values()] == ["int8"]
    check_model(model, n=30)


def test_variable_initial_value_off_the_int8_grid_is_refused():
    from edgeq.errors import EdgeqError
    from edgeq.frontends.tflite import load_tflite

    with pytest.raises(EdgeqError, match="cannot hold exactly"):
        load_tflite(_variable_model(0.123), "streaming")


def _lstm(rng, batches, steps, n_in, units, time_major=False, wide=False, s_x=0.05, zp_x=-3, s_h=2 ** -7,
          zp_h=5, cell_power=-11, cell_clip=0.0, bias_span=3000) -> Op:
    """One UNIDIRECTIONAL_SEQUENCE_LSTM with the tensors TFLite's converter gives a Keras LSTM: per-tensor int8
    weights, biases in input scale x weight scale, an int16 cell state of a power-of-two scale, the hidden state
    (a variable) quantized as the output."""
    act, bias_type = ("int16", "int64") if wide else ("int8", "int32")
    if wide:
        zp_x = zp_h = 0

    def weights(shape, scale):
        return T(shape, "int8", scale, 0, rng.integers(-127, 128, shape).astype(np.int8))

    w_in = [weights((units, n_in), s) for s in rng.uniform(0.002, 0.02, 4)]
    w_rec = [weights((units, units), s) for s in rng.uniform(0.002, 0.02, 4)]
    bias = [T((units,), bias_type, s_x * w.scale, 0, rng.integers(-bias_span, bias_span, units).astype(bias_type))
            for w in w_in]
    shape_x = (steps, batches, n_in) if time_major else (batches, steps, n_in)
    shape_y = shape_x[:2] + (units,)
    x = T(shape_x, act, s_x, zp_x)
    hidden = T((batches, units), act, s_h, zp_h, variable=True)
    cell = T((batches, units), "int16", 2.0 ** cell_power, 0, variable=True)
    y = T(shape_y, act, s_h, zp_h)
    inputs = [x, *w_in, *w_rec, None, None, None, *bias, None, None, hidden, cell, None, None, None, None]
    return Op("UNIDIRECTIONAL_SEQUENCE_LSTM", inputs, [y], "UnidirectionalSequenceLSTMOptions",
              {"fusedActivationFunction": 4, "cellClip": cell_clip, "timeMajor": time_major}, version=1)


def test_lstm_int8():
    """Shapes, batch- and time-major layouts, scales, zero points, a clipped cell; 8 invokes in sequence."""
    rng = np.random.default_rng(2)
    op_list = [_lstm(rng, 1, 5, 3, 4), _lstm(rng, 2, 3, 6, 5, time_major=True),
               _lstm(rng, 1, 4, 10, 8, s_x=0.2, zp_x=40, s_h=0.01, zp_h=-20, cell_power=-10),
               _lstm(rng, 3, 2, 4, 3, cell_power=-12, cell_clip=3.0), _lstm(rng, 1, 1, 1, 1),
               _lstm(rng, 2, 6, 8, 16, cell_power=-9, s_h=2 ** -8, zp_h=0)]
    check_model(build(op_list), n=8)


def test_lstm_16x8():
    """16x8: int16 input, hidden state and output (zero point 0), int64 biases."""
    rng = np.random.default_rng(3)
    op_list = [_lstm(rng, 1, 5, 3, 4, wide=True, s_x=2 ** -10, s_h=2 ** -14),
               _lstm(rng, 2, 3, 6, 5, wide=True, time_major=True, s_x=3e-4, s_h=1e-4, cell_power=-12),
               _lstm(rng, 1, 4, 12, 8, wide=True, s_x=1e-3, s_h=4e-5, cell_power=-10, cell_clip=2.0),
               # biases so large that a gate's rescaled sum leaves int32, which TFLite cuts to int32 before clamping
               _lstm(rng, 1, 3, 4, 6, wide=True, s_x=2 ** -10, s_h=2 ** -14, bias_span=2 ** 44)]
    check_model(build(op_list), n=8, sample=_int16_inputs)


def _int16_inputs(graph, rng):
    return [rng.integers(-2**15, 2**15, size=graph.t(n).shape).astype(np.int16) for n in graph.inputs]


EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[1] / "examples"


def _digit_stream(model: bytes, per_invoke: str):
    """Held-out digits quantized with the model's input scale, as whole digits (per_invoke "digit": 8 rows of 8
    pixels) or one row per invoke ("row"), in order."""
    from edgeq.frontends.tflite import load_tflite

    graph = load_tflite(model, "m")
    t = graph.t(graph.inputs[0])
    x = np.load(EXAMPLES / "recurrent_digits_samples.npz")["x"]
    q = np.clip(np.round(x / t.quant.s) + t.quant.zp, -128, 127).astype(np.int8)
    items = iter(q if per_invoke == "digit" else q.reshape(-1, q.shape[-1]))
    return lambda graph, rng: [next(items).reshape(t.shape)]


def test_lstm_model_from_the_tflite_converter():
    """examples/lstm_digits_int8.tflite (examples/make_recurrent_models.py): two stacked Keras LSTMs, FC and
    softmax, converted to int8 by the TFLite converter; 32 held-out digits as 32 invokes in sequence (TFLite keeps
    an LSTM's state across invokes, and so does edgeq). 90.6% of the 64 held-out digits right with the state reset
    per digit (float model 87.9% on all 297)."""
    model = (EXAMPLES / "lstm_digits_int8.tflite").read_bytes()
    check_model(model, n=32, sample=_digit_stream(model, "digit"))


def test_svdf_keyword_model():
    """examples/svdf_digits_int8.tflite: a streaming model shaped as TFLite Micro's keyword benchmark (SVDF ->
    SVDF -> FULLY_CONNECTED -> SOFTMAX) taking one row of a digit per invoke; 12 digits as 96 invokes in sequence.
    95.3% of the 64 held-out digits right with the state reset per digit (float model 96.3%)."""
    model = (EXAMPLES / "svdf_digits_int8.tflite").read_bytes()
    check_model(model, n=96, sample=_digit_stream(model, "row"))


def test_command_line_with_state(tmp_path):
    """edgeq inspect, build, run and validate on stateful models: the variable model's ASSIGN_VARIABLE (no output)
    is inspected, model.json lists the states, and validate compares the host's outputs (its state carrying over
    the samples) with the reference run the same way; the SVDF model's every eighth output is its digit's class."""
    import json

    from tests.test_cli import edgeq

    variables = tmp_path / "streaming.tflite"
    variables.write_bytes(_variable_model(0.0))
    report = json.loads(edgeq("inspect", variables, "--json").stdout)
    assert [op["kind"] for op in report["ops"]][::2] == ["READ_VARIABLE", "ASSIGN_VARIABLE"]
    assert report["state_bytes"] == 6

    model = EXAMPLES / "svdf_digits_int8.tflite"
    samples = np.load(EXAMPLES / "recurrent_digits_samples.npz")
    rows = samples["x"][:6].reshape(48, 1, 8).astype(np.float32)
    np.save(tmp_path / "rows.npy", rows)
    np.savez(tmp_path / "rows.npz", x=rows)
    out = tmp_path / "build"
    assert edgeq("build", model, "--board", "host", "-o", out).returncode == 0
    states = json.loads((out / "model.json").read_text())["states"]
    assert [(s["dtype"], s["shape"]) for s in states] == [("int16", [1, 256])] * 2
    assert edgeq("run", out, "--input", tmp_path / "rows.npy", "--output", tmp_path / "y.npy").returncode == 0
    classes = np.load(tmp_path / "y.npy").reshape(48, -1)[7::8].argmax(-1)
    assert (classes == samples["y"][:6]).mean() >= 5 / 6
    proc = edgeq("validate", out, "--data", tmp_path / "rows.npz")
    assert proc.returncode == 0 and "48 of 48 samples bit-exact" in proc.stdout, proc.stdout + proc.stderr


RESET_MAIN = r"""
#include <stdio.h>
#include "PREFIX.h"

/* invoke(x0), invoke(x1), reset, invoke(x0): the third output must be the first again */
int main(void)
{
    static int8_t x[2][PREFIX_UPPER_INPUT0_BYTES], y[3][PREFIX_UPPER_OUTPUT0_BYTES];
    if (fread(x, 1, sizeof x, stdin) != sizeof x) {
        return 2;
    }
    int status = PREFIX_invoke(x[0], y[0]) | PREFIX_invoke(x[1], y[1]);
    PREFIX_reset();
    status |= PREFIX_invoke(x[0], y[2]);
    fwrite(y, 1, sizeof y, stdout);
    return status;
}
"""


def test_reset_restores_the_initial_state(tmp_path):
    """The generated <model>_reset() puts the LSTM model's state back: after invoke(x0), invoke(x1) and reset,
    invoke(x0) gives the first output again, TFLite Micro's output for x0 on a fresh interpreter (compiled with
    -std=c99 -pedantic -Wall -Wextra -Werror and ASan/UBSan)."""
    import shutil
    import subprocess

    from tests.oracles import tflm_run_sequence
    from tests.test_cli import edgeq

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    model = EXAMPLES / "lstm_digits_int8.tflite"
    out = tmp_path / "build"
    assert edgeq("build", model, "--board", "host", "-o", out).returncode == 0
    prefix = "lstm_digits_int8"
    main = RESET_MAIN.replace("PREFIX_UPPER", prefix.upper()).replace("PREFIX", prefix)
    (out / "reset_main.c").write_text(main)
    sources = [out / f"{prefix}.c", out / f"{prefix}_weights.c", *sorted((out / "runtime").glob("*.c")),
               out / "reset_main.c"]
    exe = tmp_path / "reset"
    subprocess.run([cc, "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-O1", "-g",
                    "-fsanitize=address,undefined", "-fno-sanitize-recover=all", f"-I{out}", f"-I{out / 'runtime'}",
                    *map(str, sources), "-o", str(exe)], check=True, capture_output=True)
    stream = _digit_stream(model.read_bytes(), "digit")
    x = [stream(None, None)[0] for _ in range(2)]
    proc = subprocess.run([str(exe)], input=b"".join(v.tobytes() for v in x), capture_output=True, check=True)
    y = np.frombuffer(proc.stdout, dtype=np.int8).reshape(3, -1)
    first, second = (r[0].reshape(-1) for r in tflm_run_sequence(model.read_bytes(), [[x[0]], [x[1]]]))
    np.testing.assert_array_equal(y[0], first)
    np.testing.assert_array_equal(y[1], second)
    np.testing.assert_array_equal(y[2], first)


def test_lstm_variants_are_refused_by_name():
    """Peephole, projection and CIFG LSTMs, which TFLite Micro's integer LSTM does not run either."""
    from edgeq.errors import EdgeqError
    from edgeq.frontends.tflite import load_tflite

    rng = np.random.default_rng(4)
    for position, what in [(9, "peephole"), (16, "projection"), (1, "CIFG")]:
        op = _lstm(rng, 1, 3, 4, 2)
        if what == "CIFG":
            op.inputs[1] = op.inputs[5] = None
        else:
            op.inputs[position] = T((2, 2) if what == "projection" else (2,), "int16" if what == "peephole" else
                                    "int8", 0.01, 0, np.ones((2, 2) if what == "projection" else (2,), np.int8))
        with pytest.raises(EdgeqError, match=f"UNIDIRECTIONAL_SEQUENCE_LSTM .*{what}"):
            load_tflite(build([op]), "variant")
