"""Per-kernel checks of the RISC-V kernel libraries against the numpy golden model, bit for bit, in QEMU.

The plan of tests/test_kernels.py (every family, both quantization modes) is built as firmware for the emulated
RVV board and run over its serial port: edgeq's own RVV kernels (`rvv`) and muRISCV-NN's vector path (`cmsis-nn`
on RISC-V); and for the scalar board with edgeq's own scalar kernels (`rv32`). Each layer's chosen function is
asserted.
"""
from __future__ import annotations

import dataclasses
import shutil
import zlib

import numpy as np
import pytest

from edgeq.ir import Graph, ops
from tests import test_kernels as tk
from tests.test_kernels import PLAN

BOARD = "qemu-riscv32-virt-rvv"
SCALAR_BOARD = "qemu-riscv32-virt"

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("clang-19", "ld.lld-19", "qemu-system-riscv32", "cmake")),
    reason="needs clang-19, lld-19, picolibc-riscv64-unknown-elf, qemu-system-misc and cmake (make test installs them)")

# The function each case runs with; None: the library declines it and ref runs it.
CONV, DW, FC = "eq_rvv_conv_s8", "eq_rvv_depthwise_conv_s8", "eq_rvv_fully_connected_s8"
RVV = {
    "conv": {"grouped": None, "batch2": None, "1x1_gain": {"keep": CONV, "pot": None}, "*": CONV},
    "depthwise": {"mult2": None, "one_channel_mult12": CONV, "dilated": None, "*": DW},
    "fully_connected": {"*": FC},
    "riscv_depthwise": {"*": DW},
    "riscv_conv": {"1x1_mixed_gain": {"keep": CONV, "pot": None}, "*": CONV},
    "pool": {"*": None},
    "elementwise": {"add": "eq_rvv_add_s8", "add_fine_output": {"keep": "eq_rvv_add_s8", "pot": None}, "*": None},
}

RV32_CONV, RV32_DW = "eq_rv32_conv_s8", "eq_rv32_depthwise_conv_s8"
RV32 = {
    "conv": {"grouped": None, "batch2": None, "1x1_gain": {"keep": RV32_CONV, "pot": None}, "*": RV32_CONV},
    "depthwise": {"mult2": None, "one_channel_mult12": RV32_CONV, "dilated": None, "*": RV32_DW},
    "fully_connected": {"*": "eq_rv32_fully_connected_s8"},
    "riscv_depthwise": {"*": RV32_DW},
    "riscv_conv": {"1x1_mixed_gain": {"keep": RV32_CONV, "pot": None}, "*": RV32_CONV},
    "pool": {"*": None},
    "elementwise": {"*": None},
}


# Shapes of the RISC-V libraries' own paths: channel strips longer than one vector register group, muRISCV-NN's
# 124-channel blocks of its vector depthwise kernel with a pixel count that is not a multiple of four.
RISCV_PLAN = {
    "riscv_depthwise": [
        tk.dw("c256_3x3_same", (1, 3, 3, 256), (3, 3), {"*": "arm_depthwise_conv_s8"}, padding=ops.Padding.SAME),
        tk.dw("c130_3x3_same", (1, 3, 3, 130), (3, 3), {"*": "arm_depthwise_conv_s8"}, padding=ops.Padding.SAME),
        tk.dw("c256_6x6_s2", (1, 6, 6, 256), (3, 3), {"*": "arm_depthwise_conv_s8"}, padding=ops.Padding.SAME,
              stride_h=2, stride_w=2),
        tk.dw("c124_5x5", (1, 5, 5, 124), (3, 3), {"*": "arm_depthwise_conv_s8_opt"}, padding=ops.Padding.SAME),
        tk.dw("c64_6x6", (1, 6, 6, 64), (5, 5), {"*": "arm_depthwise_conv_s8_opt"}, padding=ops.Padding.SAME),
    ],
    "riscv_conv": [
        tk.conv("1x1_c40_k70", (1, 5, 5, 40), 70, (1, 1), {"*": "arm_convolve_1x1_s8_fast"}),
        tk.conv("3x3_c1_s2", (1, 12, 12, 1), 8, (3, 3), {"*": "arm_convolve_s8"}, padding=ops.Padding.SAME,
                stride_h=2, stride_w=2),
        # rvv's requantization flags: a power-of-two shift by 1 (no nudge); channels rescaled up and down in
        # multiplier mode (left shifts and per-channel nudges)
        dataclasses.replace(tk.conv("1x1_shift1", (1, 4, 5, 4), 6, (1, 1), {"*": "arm_convolve_1x1_s8_fast"}),
                            gain=1.0),
        dataclasses.replace(tk.conv("1x1_mixed_gain", (1, 4, 5, 12), 6, (1, 1), {"*": "arm_convolve_1x1_s8_fast"}),
                            gain=0.175),
        tk.conv("1x1_one_pixel", (1, 1, 1, 24), 36, (1, 1), {"*": "arm_convolve_1x1_s8_fast"}),  # rvv's (8, 1)
    ],
}
PLANS = {**PLAN, **RISCV_PLAN}


def _graph(mode: str) -> tuple[Graph, list[tuple[str, tk.Case]]]:
    """Every case of every family side by side in one model (one firmware per library and mode). Each case draws
    its data from a generator of its own, so cases added to the plan leave the others' scales (and the
    requantization flags they are chosen for) as they are."""
    graph = Graph(f"kernels_riscv_{mode}", {}, [], [], [], requant="shift" if mode == "pot" else "tflite")
    cases = [(family, case) for family in sorted(PLANS) for case in PLANS[family]]
    seen = set()
    for family, case in cases:  # a name that repeats in another family gets the family's prefix
        rng = np.random.default_rng(zlib.crc32(f"riscv/{mode}/{family}/{case.name}".encode()))
        tk._layer(graph, dataclasses.replace(case, name=f"{family}_{case.name}") if case.name in seen else case,
                  mode, rng)
        seen.add(case.name)
    return graph, cases


def _expected_own(table: dict, family: str, case: str, mode: str) -> str | None:
    """A dict entry differs by mode: a power-of-two left shift (pot 1x1_gain) is declined."""
    expected = table[family].get(case, table[family]["*"])
    return expected[mode] if isinstance(expected, dict) else expected


def _expected_muriscv(case, mode: str, family: str) -> str | None:
    """CMSIS-NN's choice (test_kernels' plan), as muRISCV-NN's vector build makes it."""
    f = case.cmsis.get(mode, case.cmsis.get("*"))
    if f is None or case.gain < 1:  # gain < 1: a left shift, which the vector path gets wrong
        return None
    if f == "arm_depthwise_conv_3x3_s8":
        f = "arm_depthwise_conv_s8_opt"  # no 3x3 kernel in the vector build
    if family in ("conv", "riscv_conv"):
        c, (kh, kw), s = case.shape[3], case.filt, case.attrs
        one = kh == kw == 1 and s.get("stride_h", 1) == s.get("stride_w", 1) == 1 and "padding" not in s
        if one and c % 4 == 0:
            f = "arm_convolve_1x1_s8_fast"
        elif case.shape[1] == 1 and s.get("dilation_w", 1) == 1:
            ow = _out_w(case)
            f = "arm_convolve_1_x_n_s8" if ow % 4 == 0 else "arm_convolve_s8"
        else:
            f = "arm_convolve_s8"
    return "muriscv_nn_" + f.removeprefix("arm_")


def _out_w(case) -> int:
    from tests.test_kernels import _output_shape
    return _output_shape(case)[2]


@pytest.mark.parametrize("mode", ["keep", "pot"])
@pytest.mark.parametrize("kernels", ["rvv", "cmsis-nn"])
def test_riscv_kernel_library_matches_golden_model(tmp_path, mode, kernels, request):
    if kernels == "cmsis-nn":
        request.getfixturevalue("muriscv_nn")
    graph, cases = _graph(mode)
    expected = [_expected_own(RVV, family, case.name, mode) if kernels == "rvv" else
                _expected_muriscv(case, mode, family) for family, case in cases]
    tk.check_on_emulated_board(tmp_path, graph, BOARD, mode, kernels, expected, seed=11)


@pytest.mark.parametrize("mode", ["keep", "pot"])
def test_rv32_scalar_kernels_match_golden_model(tmp_path, mode):
    graph, cases = _graph(mode)
    expected = [_expected_own(RV32, family, case.name, mode) for family, case in cases]
    tk.check_on_emulated_board(tmp_path, graph, SCALAR_BOARD, mode, "rv32", expected, seed=12)


def test_rvv_plan_runs_every_gemm_shape_and_requantization():
    """Each (LMUL, rows) that rvv's per-layer choice can give a convolution, and each requantization flag, is
    taken by some layer of the plan above, so the QEMU test checks every one bit for bit."""
    from edgeq.build import compile_graph
    from edgeq.codegen.backends.rvv import GEMM_SHAPES
    from edgeq.targets.boards import get_board

    flags = set()
    for mode in ("keep", "pot"):
        graph, _ = _graph(mode)
        impls = compile_graph(graph, mode, get_board(BOARD), "rvv").impls
        convs = [i for i in impls if i and i.function == CONV]
        assert {(int(i.args[6]), int(i.args[5])) for i in convs} == set(GEMM_SHAPES), mode
        flags |= {i.args[-1] for i in impls if i and i.backend == "rvv" and i.function != "eq_rvv_add_s8"}
    assert flags == {"EQ_RVV_MULTIPLIER | EQ_RVV_NUDGE_SIGN", "EQ_RVV_MULTIPLIER | EQ_RVV_LEFT",
                     "EQ_RVV_MULTIPLIER | EQ_RVV_NUDGE_ROWS", "EQ_RVV_MULTIPLIER | EQ_RVV_LEFT | EQ_RVV_NUDGE_ROWS",
                     "EQ_RVV_SHIFT | EQ_RVV_NUDGE_AWAY", "EQ_RVV_SHIFT | EQ_RVV_NUDGE_SIGN", "EQ_RVV_SHIFT"}, flags
