"""The operator table of the README, generated from the registries: the TFLite frontend's operators, the
IR op each becomes, the kernels its lowering emits (edgeq.lowering.KERNELS_OF), the kernel libraries that
implement them (edgeq.codegen.backends), and whether the power-of-two quantizer takes the op.

    python -m edgeq.coverage --readme README.md    # rewrites the block between the ops markers
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

BEGIN, END = "<!-- ops:begin -->", "<!-- ops:end -->"
# IR ops float graphs cannot hold (the quantizer refuses them: they are the model's own quantization)
NOT_POT = {"QUANTIZE", "DEQUANTIZE"}
# operators the power-of-two quantizer takes from some sources only (IR op -> which)
POT_ONLY: dict[str, str] = {}
# outputs that are not int8
OUTPUT_DTYPES = {"ARG_MAX": "int32 indices"}
# kernels that move or requantize elements of either width (the others are named _s8 or _s16)
ANY_WIDTH = {"remap", "concat_s8", "rescale", "pad_s8", "read_variable", "assign_variable"}


@dataclass
class Row:
    tflite: list[str]
    ir: str
    kernels: tuple[str, ...]
    libraries: list[str]
    pot: bool
    lowered: bool  # has an integer lowering (DEQUANTIZE has none: edgeq moves it out of the model)

    @property
    def dtypes(self) -> str:
        out = OUTPUT_DTYPES.get(self.ir)
        if out:
            return f"int8 in, {out} out"
        wide = (self.lowered and not self.kernels) or any(k.endswith("_s16") or k in ANY_WIDTH for k in self.kernels)
        return "int8, int16 (16x8)" if wide else "int8"


def rows() -> list[Row]:
    from edgeq.codegen.backends import _registry
    from edgeq.frontends.tflite import IMPORTED_AS, SUPPORTED
    from edgeq.ir import ops
    from edgeq.lowering import FLOAT_IMPLS, KERNELS_OF, _load_all

    _load_all()
    kinds = {cls.kind: cls for cls in ops.ALL_OPS}
    by_ir: dict[str, list[str]] = {}
    for name in SUPPORTED:
        by_ir.setdefault(IMPORTED_AS.get(name, name), []).append(name)
    for kind in kinds:  # reached from ONNX and torch.export only
        by_ir.setdefault(kind, [])
    libraries = [b for name, b in _registry().items() if name != "ref"]
    result = []
    for ir, names in sorted(by_ir.items()):
        cls = kinds[ir]
        kernels = KERNELS_OF.get(cls, ())
        libs = ["ref"] if kernels else []
        libs += [b.name for b in libraries if any(callable(getattr(b, f"_{k}", None)) for k in kernels)]
        pot = ir not in NOT_POT and cls in FLOAT_IMPLS and cls in KERNELS_OF
        result.append(Row(sorted(names), ir, kernels, libs, pot, cls in KERNELS_OF))
    return result


def _pot_cell(r: Row) -> str:
    return "no" if not r.pot else f"yes ({POT_ONLY[r.ir]})" if r.ir in POT_ONLY else "yes"


def markdown() -> str:
    lines = ["| TFLite operator | IR op | dtypes | `--quant keep` | `--quant pot` | semantic kernel | libraries |",
             "| --- | --- | --- | :---: | :---: | --- | --- |"]
    for r in rows():
        kernels = ", ".join(f"`{k}`" for k in r.kernels) or (
            "none (an alias of its input)" if r.lowered else "none (moved to the caller at a graph output)")
        lines.append(f"| {', '.join(r.tflite) or '(ONNX, torch.export)'} | {r.ir} | {r.dtypes} | "
                     f"{'yes' if r.tflite else 'no'} | {_pot_cell(r)} | {kernels} | "
                     f"{', '.join(r.libraries) or 'none needed'} |")
    return "\n".join(lines)


def update_readme(path: Path) -> bool:
    """Rewrites the table between the markers; True when the file changed."""
    text = path.read_text()
    block = f"{BEGIN}\n{markdown()}\n{END}"
    new = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    if new != text:
        path.write_text(new)
    return new != text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, help="rewrite the operator table of this README")
    args = parser.parse_args()
    if args.readme:
        print(f"{args.readme}: {'updated' if update_readme(args.readme) else 'already current'}")
    else:
        print(markdown())


if __name__ == "__main__":
    main()
