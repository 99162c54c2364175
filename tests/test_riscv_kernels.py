"""Per-kernel checks of the RISC-V kernel libraries against the numpy golden model, bit for bit, in QEMU.

The host has no vector unit, so the plan of tests/test_kernels.py (every family, both quantization modes)
is built as firmware for the emulated RVV board and run over its serial port: edgeq's own RVV kernels
(`rvv`) and muRISCV-NN's vector path (`cmsis-nn` on RISC-V). Each layer's chosen function is asserted.
"""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from edgeq.ir import Graph, ops
from tests import test_kernels as tk
from tests.test_kernels import PLAN

BOARD = "qemu-riscv32-virt-rvv"

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
    "riscv_conv": {"*": CONV},
    "pool": {"*": None},
    "elementwise": {"add": "eq_rvv_add_s8", "*": None},
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
    ],
}
PLANS = {**PLAN, **RISCV_PLAN}


def _graph(mode: str) -> tuple[Graph, list[tuple[str, tk.Case]]]:
    """Every case of every family side by side in one model (one firmware per library and mode)."""
    rng = np.random.default_rng(sum(map(ord, "riscv" + mode)))
    graph = Graph(f"kernels_riscv_{mode}", {}, [], [], [], requant="shift" if mode == "pot" else "tflite")
    cases = [(family, case) for family in sorted(PLANS) for case in PLANS[family]]
    seen = set()
    for family, case in cases:  # a name that repeats in another family gets the family's prefix
        tk._layer(graph, dataclasses.replace(case, name=f"{family}_{case.name}") if case.name in seen else case,
                  mode, rng)
        seen.add(case.name)
    return graph, cases


def _expected_rvv(family: str, case: str, mode: str) -> str | None:
    """A dict entry differs by mode: a power-of-two left shift (pot 1x1_gain) is declined."""
    expected = RVV[family].get(case, RVV[family]["*"])
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
def test_riscv_kernel_library_matches_golden_model(tmp_path, mode, kernels):
    from edgeq.codegen.backends.muriscv_nn import MURISCV_NN
    from edgeq.errors import EdgeqError

    if kernels == "cmsis-nn":
        try:
            MURISCV_NN.locate()
        except EdgeqError as e:
            pytest.skip(f"muRISCV-NN is not available here: {e}")
    graph, cases = _graph(mode)
    expected = [_expected_rvv(family, case.name, mode) if kernels == "rvv" else _expected_muriscv(case, mode, family)
                for family, case in cases]
    tk.check_on_emulated_board(tmp_path, graph, BOARD, mode, kernels, expected, seed=11)
