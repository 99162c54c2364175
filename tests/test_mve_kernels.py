"""Per-kernel checks of edgeq's own Helium kernels (arm-mve) against the numpy golden model, bit for bit, in QEMU.

The host has no MVE, so the plan of tests/test_kernels.py (convolutions, depthwise, fully connected, element-wise;
both quantization modes) and a few cases of this file's own (whole and partial 16-value chunks and 4-channel groups,
left-shifting multipliers, windows wider than the input) are built as firmware for the emulated Cortex-M55
and run over its serial port, all layers of a quantization mode in one firmware. Each layer's chosen function
is asserted.
"""
from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest

from edgeq.ir import Graph, ops
from tests.test_kernels import PLAN, Case, _layer, check_on_emulated_board, conv, dw

BOARD = "qemu-mps3-an547"

pytestmark = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm") and shutil.which("cmake")),
    reason="needs gcc-arm-none-eabi, qemu-system-arm and cmake (make test installs them)")

A, P = ops.Activation, ops.Padding
CONV, CONV1, DW, FC = "eq_mve_conv_s8", "eq_mve_conv_1x1_s8", "eq_mve_depthwise_conv_s8", "eq_mve_fully_connected_s8"
ADD = "eq_mve_add_s8"


def _expected(family: str, case: Case, call, mode: str) -> str | None:
    """The function arm-mve runs a case of test_kernels' plan with; None: it declines and ref runs it."""
    left = mode == "pot" and bool(np.any(np.asarray(call.arrays.get("out_shift", call.params.get("out_shift", 1))) < 1))
    if family == "conv":
        if case.groups > 1 or case.shape[0] > 1 or left:
            return None
        return CONV1 if case.filt == (1, 1) else CONV
    if family == "depthwise":
        if case.shape[3] == 1:
            return None if left else CONV
        dilated = case.attrs.get("dilation_h", 1) > 1 or case.attrs.get("dilation_w", 1) > 1
        return None if case.attrs.get("depth_multiplier", 1) > 1 or dilated or left else DW
    if family == "fully_connected":
        return None if left else FC
    same = case.op is ops.Add and case.other == case.shape
    return ADD if family == "elementwise" and same and not left else None


# Own cases: (case, function per mode, output scale divided by this to make multipliers shift left).
OWN = [
    (conv("1x1_whole_chunks", (1, 5, 5, 32), 8, (1, 1), {}), {"*": CONV1}, 1),
    (conv("1x1_tails", (1, 3, 5, 40), 7, (1, 1), {}, activation=A.RELU6), {"*": CONV1}, 1),
    (conv("1x1_left_shift", (1, 2, 3, 24), 6, (1, 1), {}), {"keep": CONV1, "pot": None}, 512),
    (conv("3x3_deep", (1, 6, 5, 16), 12, (3, 3), {}, padding=P.SAME), {"*": CONV}, 1),
    (dw("3x3_channel_tail", (1, 7, 10, 22), (3, 3), {}, padding=P.SAME, activation=A.RELU), {"*": DW}, 1),
    (dw("3x3_s2_wide", (1, 9, 17, 12), (3, 3), {}, padding=P.SAME, stride_h=2, stride_w=2), {"*": DW}, 1),
    (dw("3x3_narrow_input", (1, 4, 2, 5), (3, 3), {}, padding=P.SAME), {"*": DW}, 1),
    (dw("3x3_mixed_shifts", (1, 5, 6, 8), (3, 3), {}, padding=P.SAME), {"keep": DW, "pot": None}, 64),
    (Case("fc_deep", ops.FullyConnected, (1, 100), {}, 10), {"*": FC}, 1),
    (Case("fc_two_rows", ops.FullyConnected, (2, 64), {"activation": A.RELU}, 16), {"*": FC}, 1),
    (Case("fc_left_shift", ops.FullyConnected, (1, 48), {}, 6), {"keep": FC, "pot": None}, 512),
]


FAMILIES = ("conv", "depthwise", "fully_connected", "elementwise")


def _cases(mode: str) -> tuple[Graph, list[tuple[str, str | None]]]:
    """One graph of every layer (test_kernels' plan of FAMILIES, then OWN) and the function expected for each."""
    from edgeq.lowering import lower_graph

    rng = np.random.default_rng(sum(map(ord, "mve" + mode)))
    graph = Graph(f"kernels_mve_{mode}", {}, [], [], [], requant="shift" if mode == "pot" else "tflite")
    planned = [(family, replace(case, name=f"{family}_{case.name}")) for family in FAMILIES for case in PLAN[family]]
    for _, case in planned:
        _layer(graph, case, mode, rng)
    for case, _, divide in OWN:
        _layer(graph, case, mode, rng)
        if divide != 1:
            q = graph.t(graph.outputs[-1]).quant
            q.scale = q.scale / np.float32(divide)
    calls = lower_graph(graph)
    expected = [(case.name, _expected(family, case, call, mode)) for (family, case), call in zip(planned, calls)]
    return graph, expected + [(case.name, f.get(mode, f.get("*"))) for case, f, _ in OWN]


@pytest.mark.parametrize("mode", ["keep", "pot"])
def test_mve_kernels_match_golden_model(tmp_path, mode):
    graph, expected = _cases(mode)
    check_on_emulated_board(tmp_path, graph, BOARD, mode, "arm-mve", [f for _, f in expected], seed=13)
