"""Per-kernel checks of every kernel library against the numpy golden model, bit for bit.

The cases are a declarative plan: one single-operator layer per entry, with the shapes, strides,
paddings, dilations and channel counts that reach each CMSIS-NN fast path and each fallback to `ref`,
in both quantization modes (TFLite multipliers with per-channel scales and zero points; power-of-two
shifts). All layers of a family run side by side in one generated model (one input and one output
each), built for the host with ASan/UBSan, and every layer's chosen implementation is asserted.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from edgeq.ir import Graph, ops
from edgeq.ir.tensor import Quant, Tensor
from edgeq.lowering.common import out_size

A, P = ops.Activation, ops.Padding


@dataclass
class Case:
    """One layer. op: the IR op class; shape: the input's; cmsis: the function CMSIS-NN's portable C path runs
    it with (None: it falls back to ref), per quantization mode where they differ."""
    name: str
    op: type
    shape: tuple[int, ...]
    attrs: dict = field(default_factory=dict)
    out_c: int = 0  # convolutions: output channels; fully connected: units
    filt: tuple[int, int] = (1, 1)
    groups: int = 1
    other: tuple[int, ...] | None = None  # ADD/MUL: the second input's shape
    cmsis: dict = field(default_factory=dict)  # mode ("keep"/"pot") -> function, or "*" for both
    dsp: dict = field(default_factory=dict)  # the same for edgeq's own DSP kernels (arm-dsp); empty: none
    gain: float = 16.0  # output step in accumulator steps per sqrt(depth); below ~1, rescales multiply (shift > 0)
    dead: tuple[int, ...] = ()  # output channels whose weights are all zero (every other one with a tiny scale)
    out_exponent: int | None = None  # ADD/SUB/MUL: the output's scale 2^-exponent (default 4 or 5)


def conv(name, shape, out_c, filt, cmsis, groups=1, dsp="eq_dsp_conv_s8", dead=(), **attrs):
    return Case(name, ops.Conv2D, shape, attrs, out_c, filt, groups, cmsis=cmsis, dsp={"*": dsp}, dead=dead)


def dw(name, shape, filt, cmsis, dsp=None, dead=(), **attrs):
    if dsp is None:  # four channels per pass where they come in fours
        four = attrs.get("depth_multiplier", 1) == 1 and shape[3] % 4 == 0
        dsp = "eq_dsp_depthwise4_s8" if four else "eq_dsp_depthwise_s8"
    return Case(name, ops.DepthwiseConv2D, shape, attrs, shape[3] * attrs.get("depth_multiplier", 1), filt,
                cmsis=cmsis, dsp={"*": dsp}, dead=dead)


PLAN = {
    "conv": [
        conv("1x1_fast", (1, 6, 5, 8), 12, (1, 1), {"*": "arm_convolve_1x1_s8_fast"}, dsp="eq_dsp_conv_1x1_s8"),
        conv("1x1_fast_odd_c", (1, 5, 3, 7), 5, (1, 1), {"*": "arm_convolve_1x1_s8_fast"},
             dsp="eq_dsp_conv_1x1_s8", activation=A.RELU),
        conv("1x1_stride2", (1, 7, 7, 8), 6, (1, 1), {"*": "arm_convolve_1x1_s8"}, dsp="eq_dsp_conv_1x1_s8",
             stride_h=2, stride_w=2),
        conv("1xn", (1, 1, 20, 4), 6, (1, 3), {"*": "arm_convolve_1_x_n_s8"}, padding=P.SAME),
        conv("1xn_stride2", (1, 1, 21, 2), 3, (1, 5), {"*": "arm_convolve_1_x_n_s8"}, stride_w=2),
        conv("3x3_same", (1, 9, 8, 3), 8, (3, 3), {"*": "arm_convolve_s8"}, padding=P.SAME, activation=A.RELU6),
        conv("3x3_valid_s2", (1, 11, 9, 5), 4, (3, 3), {"*": "arm_convolve_s8"}, stride_h=2, stride_w=2),
        conv("5x5_same_s2", (1, 10, 10, 3), 6, (5, 5), {"*": "arm_convolve_s8"}, padding=P.SAME, stride_h=2,
             stride_w=2),
        conv("2x4_asym", (1, 8, 9, 4), 5, (2, 4), {"*": "arm_convolve_s8"}, padding=P.SAME, stride_h=2),
        conv("dilated", (1, 12, 12, 3), 4, (3, 3), {"*": "arm_convolve_s8"}, padding=P.SAME, dilation_h=2,
             dilation_w=2),
        conv("grouped", (1, 6, 6, 8), 6, (3, 3), {"*": None}, groups=2, dsp=None, padding=P.SAME),
        conv("batch2", (2, 5, 5, 4), 3, (3, 3), {"*": "arm_convolve_s8"}, dsp=None, padding=P.SAME),
        conv("3x3_odd_depth", (1, 7, 6, 5), 7, (3, 3), {"*": "arm_convolve_s8"}, padding=P.SAME, stride_w=2),
        conv("1x1_dead", (1, 6, 6, 16), 12, (1, 1), {"*": "arm_convolve_1x1_s8_fast"}, dsp="eq_dsp_conv_1x1_s8",
             dead=(0, 3, 4, 11), activation=A.RELU),
        conv("3x3_dead", (1, 7, 6, 4), 6, (3, 3), {"*": "arm_convolve_s8"}, dead=(1, 2, 5), padding=P.SAME),
        Case("1x1_gain", ops.Conv2D, (1, 4, 5, 12), {}, 6, (1, 1), cmsis={"keep": "arm_convolve_1x1_s8_fast", "pot": None},
             dsp={"keep": "eq_dsp_conv_1x1_s8", "pot": None}, gain=0.05),
    ],
    "depthwise": [
        dw("3x3_pad1", (1, 9, 8, 16), (3, 3), {"*": "arm_depthwise_conv_3x3_s8"}, padding=P.SAME, activation=A.RELU6),
        dw("3x3_s2", (1, 10, 9, 8), (3, 3), {"*": "arm_depthwise_conv_3x3_s8"}, padding=P.SAME, stride_h=2,
           stride_w=2),
        dw("3x3_valid", (1, 7, 7, 5), (3, 3), {"*": "arm_depthwise_conv_3x3_s8"}),
        dw("5x5_opt", (1, 9, 9, 6), (5, 5), {"*": "arm_depthwise_conv_s8_opt"}, padding=P.SAME),
        dw("3x1_opt", (1, 8, 7, 4), (3, 1), {"*": "arm_depthwise_conv_s8_opt"}, stride_w=2),
        dw("3x3_wide", (1, 16, 17, 8), (3, 3), {"*": "arm_depthwise_conv_3x3_s8"}, padding=P.SAME,
           activation=A.RELU),
        dw("mult2", (1, 8, 8, 3), (3, 3), {"*": "arm_depthwise_conv_s8"}, depth_multiplier=2, padding=P.SAME),
        dw("one_channel_mult12", (1, 8, 8, 1), (3, 3), {"*": "arm_depthwise_conv_s8"},
           dsp="eq_dsp_conv_s8", depth_multiplier=12),
        dw("dilated", (1, 12, 12, 4), (3, 3), {"*": "arm_depthwise_conv_s8"}, padding=P.SAME, dilation_h=2,
           dilation_w=2),
        dw("5x3_s2_same", (1, 9, 10, 6), (5, 3), {"*": "arm_depthwise_conv_s8_opt"}, padding=P.SAME, stride_h=2),
        dw("3x3_dead", (1, 6, 7, 8), (3, 3), {"*": "arm_depthwise_conv_3x3_s8"}, dead=(2, 5, 6), padding=P.SAME),
    ],
    "fully_connected": [
        Case("per_channel", ops.FullyConnected, (1, 37), {"activation": A.RELU}, 9,
             cmsis={"keep": "arm_fully_connected_per_channel_s8", "pot": None}, dsp={"*": "eq_dsp_fully_connected_s8"}),
        Case("per_tensor", ops.FullyConnected, (1, 64), {}, 10,
             cmsis={"keep": "arm_fully_connected_s8", "pot": None}, dsp={"*": "eq_dsp_fully_connected_s8"}),
        Case("rows", ops.FullyConnected, (3, 16), {}, 5, cmsis={"keep": "arm_fully_connected_s8", "pot": None},
             dsp={"*": "eq_dsp_fully_connected_s8"}),
        Case("per_channel_dead", ops.FullyConnected, (2, 24), {}, 7,
             cmsis={"keep": "arm_fully_connected_per_channel_s8", "pot": None},
             dsp={"*": "eq_dsp_fully_connected_s8"}, dead=(0, 3, 6)),
    ],
    "pool": [
        Case("avg_2", ops.AveragePool2D, (1, 8, 9, 3), {"filter_h": 2, "filter_w": 2, "stride_h": 2, "stride_w": 2},
             cmsis={"*": "arm_avgpool_s8"}),
        Case("avg_3s2_same", ops.AveragePool2D, (1, 9, 9, 5),
             {"filter_h": 3, "filter_w": 3, "stride_h": 2, "stride_w": 2, "padding": P.SAME, "activation": A.RELU},
             cmsis={"*": "arm_avgpool_s8"}),
        Case("max_3s2_same", ops.MaxPool2D, (1, 9, 7, 4),
             {"filter_h": 3, "filter_w": 3, "stride_h": 2, "stride_w": 2, "padding": P.SAME},
             cmsis={"*": "arm_max_pool_s8"}),
        Case("max_2", ops.MaxPool2D, (1, 8, 8, 6), {"filter_h": 2, "filter_w": 2, "stride_h": 2, "stride_w": 2},
             cmsis={"*": "arm_max_pool_s8"}),
    ],
    "elementwise": [
        Case("add", ops.Add, (1, 5, 6, 7), {"activation": A.RELU}, other=(1, 5, 6, 7),
             cmsis={"keep": "arm_elementwise_add_s8", "pot": None}, dsp={"*": "eq_dsp_add_s8"}),
        Case("sub", ops.Sub, (1, 3, 4, 5), {}, other=(1, 3, 4, 5), cmsis={"*": None}, dsp={"*": "eq_dsp_add_s8"}),
        Case("add_fine_output", ops.Add, (1, 4, 3, 6), {}, other=(1, 4, 3, 6),  # power-of-two: the sum shifted left
             cmsis={"keep": "arm_elementwise_add_s8", "pot": None}, dsp={"*": "eq_dsp_add_s8"}, out_exponent=6),
        Case("add_broadcast", ops.Add, (1, 5, 6, 7), {}, other=(1, 1, 1, 7), cmsis={"*": None}),
        Case("mul", ops.Mul, (1, 4, 4, 9), {}, other=(1, 4, 4, 9), cmsis={"*": "arm_elementwise_mul_s8"}),
        Case("mul_broadcast", ops.Mul, (1, 4, 4, 9), {}, other=(1, 4, 1, 9), cmsis={"*": None}),
        Case("softmax", ops.Softmax, (3, 10), {"beta": 1.0}, cmsis={"*": "arm_softmax_s8"}),
    ],
}


def _output_shape(case: Case) -> tuple[int, ...]:
    a = case.attrs
    if case.op in (ops.Conv2D, ops.DepthwiseConv2D, ops.AveragePool2D, ops.MaxPool2D):
        n, h, w, c = case.shape
        kh, kw = (a["filter_h"], a["filter_w"]) if "filter_h" in a else case.filt
        pad = a.get("padding", P.VALID)
        oh = out_size(pad, h, kh, a.get("stride_h", 1), a.get("dilation_h", 1))
        ow = out_size(pad, w, kw, a.get("stride_w", 1), a.get("dilation_w", 1))
        return n, oh, ow, case.out_c or c
    if case.op is ops.FullyConnected:
        return case.shape[0], case.out_c
    return case.shape


def _layer(graph: Graph, case: Case, mode: str, rng: np.random.Generator) -> None:
    """Adds case's input, constants, op and output to graph, with random data and quantization."""
    pot = mode == "pot"
    name = case.name

    def add(tname, shape, dtype, quant=None, data=None):
        graph.tensors[tname] = Tensor(tname, shape, dtype, quant, data)
        return tname

    def act_quant(exponent: int, zp: int):
        scale = 2.0 ** -exponent if pot else float(np.float32(2.0 ** -exponent * rng.uniform(0.6, 1.6)))
        return Quant([scale], [zp])

    in_zp = 0 if pot else int(rng.integers(-40, 40))
    x = add(f"{name}/x", case.shape, "int8", act_quant(5, in_zp))
    inputs = [x]
    out_shape = _output_shape(case)
    if case.op in (ops.Conv2D, ops.DepthwiseConv2D, ops.FullyConnected):
        oc = out_shape[-1]
        if case.op is ops.Conv2D:
            w_shape = (oc, *case.filt, case.shape[3] // case.groups)
            depth = int(np.prod(w_shape[1:]))
        elif case.op is ops.DepthwiseConv2D:
            w_shape, depth = (1, *case.filt, oc), case.filt[0] * case.filt[1]
        else:
            w_shape = depth = (oc, case.shape[-1])
            depth = case.shape[-1]
        per_channel = case.op is not ops.FullyConnected or name.startswith("per_channel")
        # power-of-two: one exponent per channel where TFLite's models have per-channel scales (edgeq's default),
        # except in cases that pin their rescale with a gain of their own (one left shift, a shift of 1); drawn
        # from a generator of their own, so every other random choice of the plan stays as it was
        per_channel_pot = per_channel and case.gain == Case.gain
        exponents = np.random.default_rng(sum(map(ord, name))).integers(6, 9, oc).astype(np.float64)
        w_scale = ((2.0 ** -exponents if per_channel_pot else np.full(1, 2.0 ** -7)) if pot else
                   rng.uniform(0.002, 0.01, oc if per_channel else 1).astype(np.float32))
        axis = 3 if case.op is ops.DepthwiseConv2D else 0
        w_data = rng.integers(-127, 128, w_shape).astype(np.int8)
        dead = list(case.dead)
        np.moveaxis(w_data, axis, 0)[dead] = 0
        if len(w_scale) > 1 and not pot:  # a dead channel's scale as a converter leaves it: tiny, far below 2^-22
            w_scale[dead[::2]] = 1e-12
        w = add(f"{name}/w", w_shape, "int8", Quant(w_scale, [0], axis), w_data)
        acc_scale = float(graph.t(x).quant.scale[0]) * float(np.max(w_scale))
        b = add(f"{name}/b", (oc,), "int32", Quant(np.full(1, acc_scale), [0]),
                rng.integers(-3000, 3000, oc).astype(np.int32))
        inputs += [w, b]
        # an output step about 2^4 sqrt(depth) accumulator steps: outputs spread over the int8 range
        out_exp = int(round(-np.log2(acc_scale * case.gain * np.sqrt(depth))))
        out_q = act_quant(out_exp, 0 if pot else int(rng.integers(-20, 20)))
        if case.attrs.get("activation") in (A.RELU, A.RELU6):
            out_q.zero_point[:] = -128
    elif case.op in (ops.Add, ops.Sub, ops.Mul):
        inputs.append(add(f"{name}/x1", case.other, "int8", act_quant(4, 0 if pot else int(rng.integers(-30, 30)))))
        exponent = case.out_exponent or (5 if case.op is ops.Mul else 4)
        out_q = act_quant(exponent, 0 if pot else int(rng.integers(-10, 10)))
    elif case.op is ops.Softmax:
        out_q = Quant([1.0 / 256], [-128])
    else:  # pooling keeps its input's quantization
        out_q = graph.t(x).quant
    y = add(f"{name}/y", out_shape, "int8", out_q)
    graph.ops.append(case.op(name, inputs, [y], **case.attrs))
    graph.inputs.append(x)
    graph.inputs += inputs[1:] if case.op in (ops.Add, ops.Sub, ops.Mul) else []
    graph.outputs.append(y)


def _graph(family: str, mode: str) -> Graph:
    rng = np.random.default_rng(sum(map(ord, family + mode)))
    graph = Graph(f"kernels_{family}_{mode}", {}, [], [], [], requant="shift" if mode == "pot" else "tflite")
    for case in PLAN[family]:
        _layer(graph, case, mode, rng)
    return graph


@pytest.mark.parametrize("mode", ["keep", "pot"])
@pytest.mark.parametrize("family", sorted(PLAN))
@pytest.mark.parametrize("kernels", ["ref", "cmsis-nn", "arm-dsp"])
def test_kernel_library_matches_golden_model(family, mode, kernels, request):
    from edgeq.build import build_and_run_host, compile_graph
    from edgeq.lowering import lower_graph
    from edgeq.quant.executor import run_int
    from edgeq.targets.boards import get_board

    if kernels == "cmsis-nn":
        request.getfixturevalue("cmsis_nn")
    graph = _graph(family, mode)
    compiled = compile_graph(graph, mode, get_board("host"), kernels)
    for case, impl in zip(PLAN[family], compiled.impls):
        if kernels == "ref":
            assert impl.backend == "ref"
            continue
        plan = case.cmsis if kernels == "cmsis-nn" else case.dsp
        expected = plan.get(mode, plan.get("*"))
        assert (impl.function if impl.backend == kernels else None) == expected, (case.name, impl.declined)
        if expected is None:
            assert impl.backend == "ref" and impl.declined, case.name
    rng = np.random.default_rng(7)
    samples = [[rng.integers(-128, 128, graph.t(n).shape).astype(np.int8) for n in graph.inputs]
               for _ in range(6)]
    calls = lower_graph(graph)
    with tempfile.TemporaryDirectory() as d:
        outs = build_and_run_host(graph, Path(d), samples, sanitize=True, kernels=kernels)
    for k, (xs, got) in enumerate(zip(samples, outs)):
        want = run_int(graph, xs, calls)
        for j, name in enumerate(graph.outputs):
            np.testing.assert_array_equal(got[j].reshape(-1), want[name].reshape(-1),
                                          err_msg=f"{kernels} != golden model: {name}, sample {k}")


def check_on_emulated_board(tmp_path: Path, graph: Graph, board_name: str, mode: str, kernels: str,
                            expected: list[str | None], seed: int) -> None:
    """For the libraries the host cannot run: builds graph's layers for an emulated board with kernels, asserts each
    layer's function (expected[i]; None: the library declines and ref runs it), and compares the outputs of a
    few random samples over the serial link with the golden model, bit for bit."""
    import hashlib

    from edgeq.build import compile_graph, load_manifest, write_project
    from edgeq.lowering import lower_graph
    from edgeq.quant.executor import run_int
    from edgeq.targets.boards import get_board
    from edgeq.targets.device import open_device, run_samples

    graph.source_hash = hashlib.sha256(graph.name.encode()).hexdigest()  # the firmware's hello names it
    board = get_board(board_name)
    compiled = compile_graph(graph, mode, board, kernels)
    for op, want, impl in zip(graph.ops, expected, compiled.impls):
        assert (impl.function if impl.backend == kernels else None) == want, (op.name, impl.function, impl.declined)
        if want is None:
            assert impl.backend == "ref" and impl.declined, op.name
    out = tmp_path / "fw"
    write_project(compiled, board, mode, out, echo=lambda *_: None)
    rng = np.random.default_rng(seed)
    samples = [[rng.integers(-128, 128, graph.t(n).shape).astype(np.int8) for n in graph.inputs] for _ in range(4)]
    with open_device(out, load_manifest(out)) as (link, _):
        outs = run_samples(link, [b"".join(x.tobytes() for x in xs) for xs in samples])
    calls = lower_graph(graph)
    for k, (xs, raw) in enumerate(zip(samples, outs)):
        want = run_int(graph, xs, calls)
        got = np.frombuffer(raw, np.int8)
        offset = 0
        for name in graph.outputs:
            n = int(np.prod(graph.t(name).shape))
            np.testing.assert_array_equal(got[offset:offset + n], want[name].reshape(-1),
                                          err_msg=f"{kernels} on {board_name} != golden model: {name}, sample {k}")
            offset += n


@pytest.mark.skipif(not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm") and shutil.which("cmake")),
                    reason="needs gcc-arm-none-eabi, qemu-system-arm and cmake (make test installs them)")
@pytest.mark.parametrize("mode", ["keep", "pot"])
def test_arm_dsp_plan_on_emulated_cortex_m7(tmp_path, mode):
    """The host runs arm-dsp's plain-C twins of the DSP instructions; this runs the real ones (SMLAD, the
    assembly matrix-product steps, SMLAL's fused requantization, SSAT) on the plan's convolutions, depthwise and
    fully connected layers."""
    from dataclasses import replace

    rng = np.random.default_rng(sum(map(ord, "dsp-m7" + mode)))
    graph = Graph(f"kernels_dsp_m7_{mode}", {}, [], [], [], requant="shift" if mode == "pot" else "tflite")
    expected = []
    for family in ("conv", "depthwise", "fully_connected", "elementwise"):
        for case in PLAN[family]:
            _layer(graph, replace(case, name=f"{family}_{case.name}"), mode, rng)
            expected.append(case.dsp.get(mode, case.dsp.get("*")))
    check_on_emulated_board(tmp_path, graph, "qemu-mps2-an500", mode, "arm-dsp", expected, seed=17)
