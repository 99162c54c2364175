"""The portable reference kernels of runtime_c/ref: the specification, and every layer's fallback."""
from __future__ import annotations

import shutil
from pathlib import Path

import edgeq
from edgeq.codegen.backends import Backend, CStruct, Impl, Target
from edgeq.lowering import KernelCall

RUNTIME_DIR = edgeq.ROOT / "runtime_c" / "ref"
REQUANT_ENUM = {"multiplier": "EQ_REQUANT_MULTIPLIER", "shift": "EQ_REQUANT_SHIFT"}


class Ref(Backend):
    name = "ref"
    include = "eq_kernels.h"

    def implement(self, call: KernelCall, target: Target) -> Impl:
        fields = [(k, str(int(v))) for k, v in call.params.items()]
        if call.requant is not None:
            fields.append(("requant", REQUANT_ENUM[call.requant]))
        fields += [(k, f"${k}") for k in call.arrays]
        ins = ["$inputs"] if call.variadic else [f"$in{i}" for i in range(call.n_operands)]
        outs = [f"$out{i}" for i in range(len(call.outputs))] + [f"$state{i}" for i in range(len(call.states))]
        return Impl(self.name, f"eq_{call.kernel}", ["&$params", *ins, *outs],
                    [CStruct(f"eq_{call.kernel}_params_t", "params", fields)], dict(call.arrays))

    def write_sources(self, impls: list[Impl], folder: Path) -> dict:
        """Every header, and the C file of each kernel the model calls (one kernel per file)."""
        folder.mkdir(parents=True, exist_ok=True)
        for header in sorted(RUNTIME_DIR.glob("*.h")):
            shutil.copy(header, folder / header.name)
        sources = sorted({f"{impl.function}.c" for impl in impls if impl.backend == self.name})
        for name in sources:
            shutil.copy(RUNTIME_DIR / name, folder / name)
        return {"sources": sources}
