"""Integer kernels in numpy (the golden model), and how each IR op lowers onto them.

Each module here covers one family of operators and registers, per operator:
- `@lowers(ops.X, "name_s8", ...)`: IR op + graph -> KernelCall, one of the kernels named and its integer
  parameters exactly as the C code receives them (multipliers, shifts, offsets, clamps, dims, constant arrays);
- `@kernel("name_s8")`: the numpy implementation of C's `eq_name_s8`, consuming that same KernelCall;
- `@float_impl(ops.X)`: the float semantics, for float graphs.
Because the integer executor and the code generator read the same KernelCall, the C on the device
and the numpy executor cannot disagree about parameters, only about arithmetic, which tests pin.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, ops


@dataclass
class KernelCall:
    """One call of a C kernel `eq_<kernel>(const eq_<kernel>_params_t *p, in..., out)`.

    params: scalar fields of the params struct (ints); arrays: pointer fields to const data
    (numpy arrays whose dtype is the C element type). inputs/outputs are activation tensor names.
    With `variadic`, the C call takes `const int8_t *const *in` (an array of input pointers).
    With `alias`, no code is emitted: the output is the input's memory (reshape, squeeze).
    requant: how the kernel rescales its accumulators, for kernels that do: "multiplier" (TFLite's
    multiplier and shift) or "shift" (power-of-two graphs: one rounding shift, no multiplier).
    states: persistent buffers the C call takes after its outputs (the numpy kernel after its inputs, and updates
    them in place).
    constants: operands held in flash rather than the arena (an element-wise op's `x * 0.5`): kernel input
    position -> data, whose dtype is the C element type; `inputs` then names only the other (activation) operands.
    This is the semantic kernel; edgeq.codegen.backends picks the C function that implements it per board.
    """

    layer: str
    kernel: str
    inputs: list[str]
    outputs: list[str]
    params: dict[str, int] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    variadic: bool = False
    alias: bool = False
    requant: str | None = None
    states: list[str] = field(default_factory=list)  # graph states (Graph.states) the kernel reads and updates
    constants: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def op_kind(self) -> str:
        return self.kernel.removesuffix("_s8")

    @property
    def const_nbytes(self) -> int:
        """The constant data the call puts in flash: its arrays and constant operands."""
        return sum(a.nbytes for a in [*self.arrays.values(), *self.constants.values()])

    @property
    def n_operands(self) -> int:
        """The kernel's input pointers: activations and constants."""
        return len(self.inputs) + len(self.constants)

    def operands(self, values: list) -> list:
        """values (one per activation input, then any states) with each constant operand put in at its position."""
        rest = iter(values)
        merged = [self.constants[i] if i in self.constants else next(rest) for i in range(self.n_operands)]
        return merged + list(rest)


Lowering = Callable[[ops.Op, Graph], KernelCall]
NumpyKernel = Callable[[KernelCall, list[np.ndarray], tuple[int, ...]], np.ndarray]
FloatImpl = Callable[[ops.Op, Graph, list[np.ndarray]], np.ndarray]

LOWERINGS: dict[type, Lowering] = {}
KERNELS_OF: dict[type, tuple[str, ...]] = {}  # the semantic kernels an op's lowering may emit (none: an alias)
KERNELS: dict[str, NumpyKernel] = {}
FLOAT_IMPLS: dict[type, FloatImpl] = {}


def lowers(op_type: type, *kernels: str):
    def register(fn):
        LOWERINGS[op_type] = fn
        KERNELS_OF[op_type] = kernels
        return fn
    return register


def kernel(name: str):
    def register(fn):
        KERNELS[name] = fn
        return fn
    return register


def float_impl(op_type: type):
    def register(fn):
        FLOAT_IMPLS[op_type] = fn
        return fn
    return register


def lower(op: ops.Op, graph: Graph) -> KernelCall:
    _load_all()
    fn = LOWERINGS.get(type(op))
    if fn is None:
        raise EdgeqError(f"Operator {op.name} ({op.kind}) has no integer kernel in edgeq yet.")
    try:
        call = fn(op, graph)
    except EdgeqError as e:
        if op.name in str(e):
            raise
        raise EdgeqError(f"Operator {op.name} ({op.kind}): {e}") from None
    assert call.alias or call.kernel in KERNELS_OF[type(op)], (op.kind, call.kernel)  # the registry's claim
    return call


def lower_graph(graph: Graph) -> list[KernelCall]:
    return [lower(op, graph) for op in graph.ops]


def run_kernel(call: KernelCall, inputs: list[np.ndarray], out_shape: tuple[int, ...]) -> np.ndarray:
    _load_all()
    if call.alias:
        return inputs[0].reshape(out_shape)
    return KERNELS[call.kernel](call, call.operands(inputs) if call.constants else inputs, out_shape)


def run_float(op: ops.Op, graph: Graph, inputs: list[np.ndarray]) -> np.ndarray:
    _load_all()
    fn = FLOAT_IMPLS.get(type(op))
    if fn is None:
        raise EdgeqError(f"Operator {op.name} ({op.kind}) has no float implementation in edgeq yet.")
    return fn(op, graph, inputs)


def _load_all():
    # Import for the registration side effect; modules are cached after the first call.
    from edgeq.lowering import (  # noqa: F401
        activations, batch_matmul, conv, elementwise, movement, pooling, recurrent, reductions, reshape, resize,
        transpose_conv)
