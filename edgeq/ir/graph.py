"""The graph IR: tensors by name, operators in execution order, graph inputs and outputs."""
from __future__ import annotations

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

    @property
    def is_integer(self) -> bool:
        """True when every activation is an integer tensor (a model edgeq can emit as is)."""
        return all(t.dtype != "float32" for t in self.activations())


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
