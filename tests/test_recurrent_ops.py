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


def _svdf(rng, batches, input_size, units, rank, memory, s_in=0.05, zp_in=3, s_out=0.1, zp_out=-4,
          act=0) -> Op:
    filters = units * rank
    s_wf, s_state, s_wt = 0.01, 2.0 ** -10, 2.0 ** -12
    wf = T((filters, input_size), "int8", s_wf, 0, rng.integers(-127, 128, (filters, input_size)).astype(np.int8))
    wt = T((filters, memory), "int16", s_wt, 0, rng.integers(-2000, 2001, (filters, memory)).astype(np.int16))
    bias = T((units,), "int32", s_state * s_wt, 0, rng.integers(-5000, 5001, units).astype(np.int32))
    state = T((batches, memory * filters), "int16", s_state, 0, variable=True)
    return Op("SVDF", [q8((batches, input_size), s_in, zp_in), wf, wt, bias, state],
              [q8((batches, units), s_out, zp_out)], "SVDFOptions", {"rank": rank, "fusedActivationFunction": act},
              version=3)


def test_svdf():
    """Shapes (batches, inputs, units, rank, memory) and zero points; RELU is in the options but, as in TFLM's
    integer SVDF, not applied. 12 invokes in sequence."""
    rng = np.random.default_rng(1)
    cases = [(1, 8, 4, 1, 5), (2, 3, 3, 2, 4), (1, 16, 8, 2, 10), (3, 5, 1, 1, 1), (1, 40, 6, 1, 8)]
    op_list = [_svdf(rng, *c) for c in cases]
    op_list.append(_svdf(rng, 1, 12, 4, 2, 3, s_in=0.2, zp_in=-100, s_out=0.02, zp_out=90, act=1))
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
