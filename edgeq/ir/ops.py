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


ALL_OPS = [
    Conv2D, DepthwiseConv2D, FullyConnected, AveragePool2D, MaxPool2D, Add, Mul, Reshape, Squeeze,
    Softmax, Pad, Mean, Concatenation, Quantize, Dequantize, Relu, Relu6, Logistic, Tanh, HardSwish,
    LeakyRelu,
]
