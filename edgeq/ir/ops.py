"""Operators of the graph IR: one typed dataclass per operator kind.

Layout is NHWC throughout. Inputs and outputs are tensor names; operands that TFLite passes
as constant tensors but that only parametrize the op (paddings, axes, shapes) are attributes.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


class Activation(enum.Enum):
    NONE = "none"
    RELU = "relu"
    RELU_N1_TO_1 = "relu_n1_to_1"
    RELU6 = "relu6"


class Padding(enum.Enum):
    SAME = "same"
    VALID = "valid"


@dataclass
class Op:
    name: str  # unique in the graph, e.g. "conv_2d_3"
    inputs: list[str]
    outputs: list[str]
    kind = "op"  # TFLite-style upper-case name, set per subclass

    @property
    def label(self) -> str:
        return self.kind


@dataclass
class Conv2D(Op):
    """inputs: x [N,H,W,Ci], w [Co,KH,KW,Ci/groups], optional bias [Co]."""

    stride_h: int = 1
    stride_w: int = 1
    dilation_h: int = 1
    dilation_w: int = 1
    padding: Padding = Padding.VALID
    activation: Activation = Activation.NONE
    kind = "CONV_2D"


@dataclass
class DepthwiseConv2D(Op):
    """inputs: x [N,H,W,C], w [1,KH,KW,C*M], optional bias [C*M]."""

    stride_h: int = 1
    stride_w: int = 1
    dilation_h: int = 1
    dilation_w: int = 1
    depth_multiplier: int = 1
    padding: Padding = Padding.VALID
    activation: Activation = Activation.NONE
    kind = "DEPTHWISE_CONV_2D"


@dataclass
class TransposeConv(Op):
    """inputs: x [N,H,W,Ci], w [Co,KH,KW,Ci], optional bias [Co]; the output size is the output tensor's."""

    stride_h: int = 1
    stride_w: int = 1
    padding: Padding = Padding.VALID
    activation: Activation = Activation.NONE
    kind = "TRANSPOSE_CONV"


@dataclass
class BatchMatMul(Op):
    """inputs: lhs [..., M, K] and rhs [..., K, N] (each transposed first when adj_x / adj_y), batch dimensions
    broadcast; output [..., M, N]."""

    adj_x: bool = False
    adj_y: bool = False
    kind = "BATCH_MATMUL"


@dataclass
class FullyConnected(Op):
    """inputs: x [..., I] (flattened to [N, I]), w [O, I], optional bias [O]."""

    activation: Activation = Activation.NONE
    keep_num_dims: bool = False
    kind = "FULLY_CONNECTED"


@dataclass
class AveragePool2D(Op):
    filter_h: int = 1
    filter_w: int = 1
    stride_h: int = 1
    stride_w: int = 1
    padding: Padding = Padding.VALID
    activation: Activation = Activation.NONE
    kind = "AVERAGE_POOL_2D"


@dataclass
class MaxPool2D(Op):
    filter_h: int = 1
    filter_w: int = 1
    stride_h: int = 1
    stride_w: int = 1
    padding: Padding = Padding.VALID
    activation: Activation = Activation.NONE
    kind = "MAX_POOL_2D"


@dataclass
class Add(Op):
    """Two inputs, numpy broadcasting."""

    activation: Activation = Activation.NONE
    kind = "ADD"


@dataclass
class Mul(Op):
    activation: Activation = Activation.NONE
    kind = "MUL"


@dataclass
class Reshape(Op):
    """Output shape is the output tensor's shape; executes as an alias."""

    kind = "RESHAPE"


@dataclass
class Squeeze(Op):
    axes: tuple[int, ...] = ()
    kind = "SQUEEZE"


@dataclass
class Softmax(Op):
    beta: float = 1.0
    kind = "SOFTMAX"


@dataclass
class Pad(Op):
    """paddings: one (before, after) pair per dimension; pads with real zero (the zero point)."""

    paddings: tuple[tuple[int, int], ...] = ()
    kind = "PAD"


@dataclass
class Mean(Op):
    axes: tuple[int, ...] = ()  # non-negative, sorted
    keep_dims: bool = False
    kind = "MEAN"


@dataclass
class Concatenation(Op):
    axis: int = 0  # non-negative
    activation: Activation = Activation.NONE
    kind = "CONCATENATION"


@dataclass
class Quantize(Op):
    """float -> int8, or int8 -> int8 requantization."""

    kind = "QUANTIZE"


@dataclass
class Dequantize(Op):
    """int8 -> float."""

    kind = "DEQUANTIZE"


@dataclass
class Relu(Op):
    kind = "RELU"


@dataclass
class Relu6(Op):
    kind = "RELU6"


@dataclass
class Logistic(Op):
    kind = "LOGISTIC"


@dataclass
class Tanh(Op):
    kind = "TANH"


@dataclass
class HardSwish(Op):
    kind = "HARD_SWISH"


@dataclass
class LeakyRelu(Op):
    alpha: float = 0.2
    kind = "LEAKY_RELU"


# --- data movement: each output element is one input element, found by index arithmetic alone --------

@dataclass
class Transpose(Op):
    perm: tuple[int, ...] = ()
    kind = "TRANSPOSE"


@dataclass
class StridedSlice(Op):
    """x[begin:end:stride] per dimension, with the shrink axes (each of size 1) dropped. Normalized at import:
    begin within the dimension, end in [-1, size] (-1: past the start, for negative strides), stride != 0.
    TFLite's SLICE and STRIDED_SLICE import as this, and so do SPLIT, SPLIT_V and UNPACK (one op per output)."""

    begin: tuple[int, ...] = ()
    end: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    shrink_axes: tuple[int, ...] = ()
    kind = "STRIDED_SLICE"


@dataclass
class Gather(Op):
    """x taken at constant indices along axis, or, with a second input, at the int32 indices it holds at run
    time (then `indices` is empty): output shape x[:axis] + indices_shape + x[axis+1:]."""

    axis: int = 0
    indices: tuple[int, ...] = ()  # flattened, non-negative
    indices_shape: tuple[int, ...] = ()
    kind = "GATHER"


@dataclass
class DepthToSpace(Op):
    block: int = 1
    kind = "DEPTH_TO_SPACE"


@dataclass
class SpaceToDepth(Op):
    block: int = 1
    kind = "SPACE_TO_DEPTH"


@dataclass
class BatchToSpaceND(Op):
    """NHWC; crops: (before, after) for height and width."""

    block: tuple[int, ...] = (1, 1)
    crops: tuple[tuple[int, int], ...] = ((0, 0), (0, 0))
    kind = "BATCH_TO_SPACE_ND"


@dataclass
class SpaceToBatchND(Op):
    """NHWC, height and width divisible by the block; TFLite's paddings import as a PAD before it."""

    block: tuple[int, ...] = (1, 1)
    kind = "SPACE_TO_BATCH_ND"


@dataclass
class ResizeNearestNeighbor(Op):
    """NHWC; output height and width are the output tensor's."""

    align_corners: bool = False
    half_pixel_centers: bool = False
    kind = "RESIZE_NEAREST_NEIGHBOR"


@dataclass
class ResizeBilinear(Op):
    """NHWC; output height and width are the output tensor's."""

    align_corners: bool = False
    half_pixel_centers: bool = False
    kind = "RESIZE_BILINEAR"


@dataclass
class Tile(Op):
    multiples: tuple[int, ...] = ()
    kind = "TILE"


@dataclass
class Pack(Op):
    """Stacks its inputs along a new axis."""

    axis: int = 0
    kind = "PACK"


# --- elementwise and reductions --------------------------------------------------------------------

@dataclass
class Sub(Op):
    """Two inputs, numpy broadcasting: in0 - in1."""

    activation: Activation = Activation.NONE
    kind = "SUB"


@dataclass
class SquaredDifference(Op):
    """Two inputs, numpy broadcasting: (in0 - in1)^2."""

    kind = "SQUARED_DIFFERENCE"


@dataclass
class Prelu(Op):
    """inputs: x, alpha (constant, broadcast against x): x where x >= 0, else alpha * x."""

    kind = "PRELU"


@dataclass
class L2Normalization(Op):
    """x / sqrt(sum of squares) along the last axis."""

    kind = "L2_NORMALIZATION"


@dataclass
class Maximum(Op):
    kind = "MAXIMUM"


@dataclass
class Minimum(Op):
    kind = "MINIMUM"


@dataclass
class Abs(Op):
    kind = "ABS"


@dataclass
class Neg(Op):
    float_roundtrip: bool = False  # TFLite's DEQUANTIZE -> float NEG -> QUANTIZE, folded: rounded as that trip
    kind = "NEG"


@dataclass
class Gelu(Op):
    approximate: bool = False  # the tanh form
    kind = "GELU"


@dataclass
class Exp(Op):
    kind = "EXP"


@dataclass
class Log(Op):
    kind = "LOG"


@dataclass
class Rsqrt(Op):
    kind = "RSQRT"


@dataclass
class ReduceMax(Op):
    axes: tuple[int, ...] = ()  # non-negative, sorted
    keep_dims: bool = False
    kind = "REDUCE_MAX"


@dataclass
class Sum(Op):
    axes: tuple[int, ...] = ()  # non-negative, sorted
    keep_dims: bool = False
    kind = "SUM"


@dataclass
class ArgMax(Op):
    """Index of the largest value along axis (the first among equals); the output is int32 or int64."""

    axis: int = 0
    kind = "ARG_MAX"


@dataclass
class Svdf(Op):
    """inputs: x [B, I], weights_feature [F, I], weights_time [F, M], optional bias [F / rank]. `state` names the
    graph state [B, M * F] (each filter's last M feature values), shifted and extended by every invoke."""

    rank: int = 1
    state: str = ""
    activation: Activation = Activation.NONE
    kind = "SVDF"


@dataclass
class UnidirectionalSequenceLstm(Op):
    """inputs: x [B, T, I] ([T, B, I] when time_major), then per gate in the order input, forget, cell, output:
    the input weights [U, I] (4), the recurrent weights [U, U] (4) and the biases [U] (4). hidden_state and
    cell_state name the graph states [B, U] carried across time steps and invokes. Output: every step's hidden
    state, [B, T, U] ([T, B, U]). With reset_state the states restart from zero (hidden at its zero point) at every
    invoke, as an ONNX LSTM without state inputs does; otherwise they carry over (TFLite's variable tensors)."""

    hidden_state: str = ""
    cell_state: str = ""
    time_major: bool = False
    cell_clip: float = 0.0
    reset_state: bool = False
    kind = "UNIDIRECTIONAL_SEQUENCE_LSTM"


@dataclass
class Gru(Op):
    """ONNX's GRU with linear_before_reset (PyTorch's nn.GRU), its hidden state starting at zero every invoke.
    inputs: x [B, T, I], then per gate in the order update (z), reset (r), candidate (n): the input weights [U, I]
    (3), the recurrent weights [U, U] (3), the input biases [U] (3) and the recurrent biases [U] (3);
    n = tanh(W_n x + b_n + r * (R_n h + rb_n)), h' = (1 - z) * n + z * h. Output: every step's h, [B, T, U]."""

    kind = "GRU"


@dataclass
class ReadVariable(Op):
    """The value of the graph state `state` (a resource variable)."""

    state: str = ""
    kind = "READ_VARIABLE"


@dataclass
class AssignVariable(Op):
    """Writes its input into the graph state `state` (a resource variable); no outputs."""

    state: str = ""
    kind = "ASSIGN_VARIABLE"


MOVEMENT_OPS = (Transpose, StridedSlice, Gather, DepthToSpace, SpaceToDepth, BatchToSpaceND, SpaceToBatchND,
                ResizeNearestNeighbor, Tile)

ALL_OPS = [
    Conv2D, DepthwiseConv2D, FullyConnected, AveragePool2D, MaxPool2D, Add, Mul, Reshape, Squeeze,
    Softmax, Pad, Mean, Concatenation, Quantize, Dequantize, Relu, Relu6, Logistic, Tanh, HardSwish,
    LeakyRelu, *MOVEMENT_OPS, ResizeBilinear, TransposeConv, BatchMatMul, Pack, Sub, SquaredDifference, Prelu, L2Normalization, Maximum, Minimum, Abs, Neg, Gelu, Exp, Log, Rsqrt, ReduceMax, Sum, ArgMax,
]
ALL_OPS += [Svdf, UnidirectionalSequenceLstm, Gru, ReadVariable, AssignVariable]  # recurrent and stateful operators
