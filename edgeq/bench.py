"""`make bench`: figures for the shared models, written as a Markdown table into the README.

    python -m edgeq.bench [--readme README.md] [--shared ../shared]

Measured, not timed: arena bytes from edgeq's planner against the lower bound for the operator order
and TFLite Micro's arena (from ../shared/anchors.md), MACs and the bytes of constant data.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import edgeq
from edgeq.frontends.tflite import load_tflite_file
from edgeq.inspect import inspect_graph

MODELS = [
    ("ad01_int8", "models/mlperf_tiny/ad01_int8.tflite"),
    ("kws_ds_cnn_int8", "models/mlperf_tiny/kws_ds_cnn_int8.tflite"),
    ("resnet_ic_int8", "models/mlperf_tiny/resnet_ic_int8.tflite"),
    ("vww_96_int8", "models/mlperf_tiny/vww_96_int8.tflite"),
    ("person_detect", "models/tflm/person_detect.tflite"),
    ("micro_speech_quantized", "models/tflm/micro_speech_quantized.tflite"),
]
BEGIN, END = "<!-- bench:arena:begin -->", "<!-- bench:arena:end -->"


def tflm_anchors(anchors: Path) -> dict[str, int]:
    """Model -> TFLM arena bytes, read from the anchors table's last column."""
    result = {}
    for line in anchors.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[-1].replace(",", "").isdigit():
            result[cells[0]] = int(cells[-1].replace(",", ""))
    return result


def arena_table(shared: Path) -> str:
    anchors = tflm_anchors(shared / "anchors.md")
    rows = ["| model | MACs | constant data B | edgeq arena B | lower bound B | TFLM arena B (M7, CMSIS-NN) | edgeq vs TFLM |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, rel in MODELS:
        r = inspect_graph(load_tflite_file(shared / rel))
        tflm = anchors.get(name)
        vs = f"{100.0 * (r['arena_bytes'] - tflm) / tflm:+.1f}%" if tflm else "n/a"
        rows.append(f"| {name} | {r['macs']:,} | {r['weights_bytes']:,} | {r['arena_bytes']:,} | "
                    f"{r['arena_lower_bound_bytes']:,} | {f'{tflm:,}' if tflm else 'n/a'} | {vs} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=edgeq.ROOT.parent / "shared")
    ap.add_argument("--readme", type=Path)
    ap.add_argument("--out", type=Path, default=edgeq.ROOT / "build" / "bench.md")
    args = ap.parse_args()
    if not (args.shared / "models").exists():
        raise SystemExit(f"bench needs the shared models at {args.shared}; none found.")
    table = arena_table(args.shared)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table + "\n")
    print(table)
    if args.readme:
        text = args.readme.read_text()
        block = f"{BEGIN}\n{table}\n{END}"
        if BEGIN in text:
            text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
        else:
            text += "\n" + block + "\n"
        args.readme.write_text(text)
        print(f"updated {args.readme}")


if __name__ == "__main__":
    main()
