from edgeq.ir.tensor import Quant, Tensor
from edgeq.ir.graph import Graph
from edgeq.ir import ops

__all__ = ["Quant", "Tensor", "Graph", "ops"]
