"""Power-of-two quantization of element-wise operators' constant operands (`x * 0.5`, `x + c`, `tf.minimum(x, 6.0)`).

ADD, SUB, MUL and SQUARED_DIFFERENCE rescale each operand by its own scale, so a constant gets its own symmetric
int8 power of two, as PRELU's slope does. MAXIMUM and MINIMUM compare raw values (edgeq.quant.pot.SHARED_QUANT), so
a constant operand is rounded onto the output's grid instead of requantized at run time; a value beyond the grid
saturates at its end, which is where the comparison's result saturates too.
"""
from __future__ import annotations

import numpy as np

from edgeq.ir import Graph, Quant, ops


def quantize_constant_operands(g: Graph, op: ops.Op, report: dict, grid: Quant | None = None) -> None:
    """Every float constant operand of op, on `grid` (the output's quantization) or, without one, symmetric int8 at
    the power of two that fits it best."""
    from edgeq.quant.pot import _quantize_constant  # pot dispatches here

    for name in op.inputs:
        t = g.t(name)
        if not t.is_const or t.quant is not None:
            continue
        if grid is None:
            _quantize_constant(g, name, report)
            continue
        s, zp = float(grid.s), grid.zp
        t.data = np.clip(np.round(t.data.astype(np.float64) / s) + zp, -128, 127).astype(np.int8)
        t.dtype, t.quant = "int8", Quant([s], [zp])
        report[name] = {"kind": "constant", "exponent": int(round(-np.log2(s))), "zero_point": zp,
                        "max_abs": float(np.abs(t.data.astype(np.int64) - zp).max() * s)}
