"""The graph IR: tensors by name, operators in execution order, graph inputs and outputs."""
from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field

from edgeq.ir.ops import Op
from edgeq.ir.tensor import Tensor


@dataclass
class Graph:
    name: str
    tensors: dict[str, Tensor]
    ops: list[Op]
    inputs: list[str]
    outputs: list[str]
    source_hash: str = ""  # sha256 of the file the graph came from
    notes: list[str] = field(default_factory=list)  # import-time rewrites, shown by inspect
    # Batch-norm statistics a frontend folded away, per layer output tensor (pre-activation):
    # (mean, std) per channel, i.e. BN's beta and |gamma|. Used for data-free ranges and bias correction.
    bn_stats: dict[str, tuple] = field(default_factory=dict)
    # How int8 kernels rescale: "tflite" (multiplier and shift, bit-exact with TFLite Micro) or "shift"
    # (every scale a power of two, every rescale one rounding shift: graphs from --quant pot).
    requant: str = "tflite"
    # Persistent state (TFLite's variable tensors and resource variables): kept across invokes, outside the
    # arena; each tensor's data is its initial value. Operators name the state they read or write.
    states: dict[str, Tensor] = field(default_factory=dict)

    def t(self, name: str) -> Tensor:
        return self.tensors[name]

    def producers(self) -> dict[str, Op]:
        return {out: op for op in self.ops for out in op.outputs}

    def consumers(self) -> dict[str, list[Op]]:
        result: dict[str, list[Op]] = {}
        for op in self.ops:
            for name in op.inputs:
                result.setdefault(name, []).append(op)
        return result

    def activations(self) -> list[Tensor]:
        """Non-constant tensors in first-use order (graph inputs first)."""
        seen: dict[str, Tensor] = {}
        for name in self.inputs:
            seen[name] = self.tensors[name]
        for op in self.ops:
            for name in op.inputs + op.outputs:
                t = self.tensors[name]
                if not t.is_const and name not in seen:
                    seen[name] = t
        return list(seen.values())

    def unshare_constants(self) -> None:
        """Give every operator its own constant operands (weights, bias): converters share equal constants,
        such as one zero bias for several layers, which passes that rescale or quantize per layer must not."""
        seen: set[str] = set()
        for op in self.ops:
            for k, name in enumerate(op.inputs):
                t = self.tensors.get(name)
                if t is None or not t.is_const:
                    continue
                if name in seen:
                    new = f"{name}/for_{op.name}"
                    self.tensors[new] = Tensor(new, t.shape, t.dtype, copy.deepcopy(t.quant), t.data.copy())
                    op.inputs[k] = new
                seen.add(op.inputs[k])

    @property
    def is_integer(self) -> bool:
        """True when every activation is an integer tensor (a model edgeq can emit as is)."""
        return all(t.dtype != "float32" for t in self.activations())


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
