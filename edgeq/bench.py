"""`make bench`: figures for the shared models, written as a Markdown table into the README.

    python -m edgeq.bench [--readme README.md] [--shared ../shared]

Measured, not timed: arena bytes from edgeq's planner against the lower bound for the operator order
and TFLite Micro's arena (from ../shared/anchors.md), MACs and the bytes of constant data.
"""
from __future__ import annotations

import argparse
import re
from dataclasses import replace
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
LAT_BEGIN, LAT_END = "<!-- bench:latency:begin -->", "<!-- bench:latency:end -->"
# board, core, its TFLM + CMSIS-NN column in the anchors' table
BOARDS = [("qemu-mps2-an386", "M4", 3), ("qemu-mps2-an500", "M7", 2), ("qemu-mps3-an547", "M55", 4)]


def anchor_rows(anchors: Path) -> dict[str, list[int]]:
    """Model -> the numeric columns of the anchors' TFLM table (MACs, M7 ref, M7 CMSIS-NN, M4 CMSIS-NN,
    M55 CMSIS-NN, arena)."""
    result = {}
    for line in anchors.read_text().splitlines():
        cells = [c.strip().replace(",", "") for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and all(c.isdigit() for c in cells[1:]):
            result[cells[0]] = [int(c) for c in cells[1:]]
    return result


def tflm_anchors(anchors: Path) -> dict[str, int]:
    """Model -> TFLM arena bytes."""
    return {name: row[-1] for name, row in anchor_rows(anchors).items()}


def latency_table(shared: Path) -> str:
    """Executed instructions per inference on the emulated cores (QEMU -icount) for each kernel library,
    beside TFLite Micro + CMSIS-NN's; arena (scratch included) and flash beside TFLM's."""
    import math
    import tempfile

    from edgeq.build import compile_graph, load_manifest, write_project
    from edgeq.targets.boards import get_board
    from edgeq.targets.device import open_device, profile

    anchors = anchor_rows(shared / "anchors.md")
    head = ["model"]
    for _, core, _ in BOARDS:
        head += [f"{core} ref", f"{core} cmsis-nn", f"{core} auto", f"{core} TFLM+CMSIS-NN",
                 f"{core} cmsis-nn / TFLM", f"{core} auto / TFLM"]
    head += ["arena B (auto, M7; scratch incl.)", "TFLM arena B", "flash B (auto, M7)", "flash B (cmsis-nn, M7)"]
    rows = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    ratios: dict[str, dict[str, list[float]]] = {core: {"cmsis-nn": [], "auto": []} for _, core, _ in BOARDS}
    for name, rel in MODELS:
        a = anchors.get(name, [0] * 6)
        cells, arena, flash = [name], 0, {}
        for board_name, core, column in BOARDS:
            figures = {}
            for kernels in ("ref", "cmsis-nn", "auto"):
                with tempfile.TemporaryDirectory() as tmp:
                    out, model, board = Path(tmp) / "fw", shared / rel, get_board(board_name)
                    write_project(compile_graph(load_tflite_file(model), "keep", board, kernels), board, "keep", out,
                                  model, echo=lambda *_: None)
                    manifest = load_manifest(out)
                    with open_device(out, manifest) as (link, b):
                        figures[kernels] = profile(link, b, manifest)["instructions_per_inference"]
                    if core == "M7":
                        flash[kernels] = manifest["firmware"]["flash_bytes"]
                        arena = manifest["arena"]["arena_bytes"] if kernels == "auto" else arena
                print(f"{name} on {board_name} with {kernels}: {figures[kernels]:,} instructions", flush=True)
            tflm = a[column]
            for kernels in ("cmsis-nn", "auto"):
                ratios[core][kernels].append(figures[kernels] / tflm)
            cells += [f"{figures['ref']:,}", f"{figures['cmsis-nn']:,}", f"{figures['auto']:,}", f"{tflm:,}",
                      f"{figures['cmsis-nn'] / tflm:.3f}", f"{figures['auto'] / tflm:.3f}"]
        cells += [f"{arena:,}", f"{a[5]:,}", f"{flash['auto']:,}", f"{flash['cmsis-nn']:,}"]
        rows.append("| " + " | ".join(cells) + " |")
    geo = ["**geomean**"]
    for _, core, _ in BOARDS:
        geo += ["", "", "", ""] + [f"**{math.exp(sum(map(math.log, r)) / len(r)):.3f}**"
                                   for r in (ratios[core]["cmsis-nn"], ratios[core]["auto"])]
    rows.append("| " + " | ".join(geo + ["", "", "", ""]) + " |")
    return "\n".join(rows)


LAYER_BEGIN, LAYER_END = "<!-- bench:layers:begin -->", "<!-- bench:layers:end -->"


def layer_table(shared: Path, model: str = "vww_96_int8", board_name: str = "qemu-mps2-an500") -> str:
    """Where the instructions go, layer by layer, for one model on one emulated core: CMSIS-NN alone against
    the default kernels (auto), with each layer's function and instructions per MAC."""
    import tempfile

    from edgeq.build import compile_graph, load_manifest, write_project
    from edgeq.ir.stats import macs
    from edgeq.targets.boards import get_board
    from edgeq.targets.device import open_device, profile

    path, board = shared / dict(MODELS)[model], get_board(board_name)
    graph = load_tflite_file(path)
    layer_macs = {op.name: macs(op, graph) for op in graph.ops}
    runs = {}
    for kernels in ("cmsis-nn", "auto"):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "fw"
            write_project(compile_graph(graph, "keep", board, kernels), board, "keep", out, path, echo=lambda *_: None)
            manifest = load_manifest(out)
            with open_device(out, manifest) as (link, b):
                report = profile(link, b, manifest)
            impls = {layer["name"]: f"{layer['backend']}: {layer['impl']}" for layer in manifest["layers"]
                     if "impl" in layer}
            per_tick = 1_000_000_000 // board.clock_hz
            runs[kernels] = {layer["name"]: (impls[layer["name"]], layer["cycles"] * per_tick)
                             for layer in report["layers"]}
    rows = [f"| layer ({model}, {board.core}) | MACs | CMSIS-NN function | instructions | per MAC | auto: library: "
            "function | instructions | per MAC | auto / CMSIS-NN |", "| --- | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: |"]
    totals = [0, 0]
    for name, (impl, count) in runs["cmsis-nn"].items():
        mine, own = runs["auto"][name]
        n = layer_macs.get(name, 0)
        totals = [totals[0] + count, totals[1] + own]
        per = (lambda c: f"{c / n:.2f}" if n else "")
        rows.append(f"| {name} | {n:,} | {impl.split(': ')[1]} | {count:,} | {per(count)} | {mine} | {own:,} | "
                    f"{per(own)} | {own / count:.2f} |")
    rows.append(f"| **all layers** | | | **{totals[0]:,}** | | | **{totals[1]:,}** | | **{totals[1] / totals[0]:.3f}** |")
    return "\n".join(rows)


POT_BEGIN, POT_END = "<!-- bench:pot-latency:begin -->", "<!-- bench:pot-latency:end -->"


def pot_latency_table(shared: Path, board_name: str = "qemu-mps2-an500") -> str:
    """Whether power-of-two scales pay on the core: the float model built with --calib (power-of-two, default
    kernels; per-channel weights, the default, and per-tensor ones) against MLCommons' per-channel int8 model of
    the same network built the same way."""
    import subprocess
    import sys
    import tempfile

    from edgeq.build import load_manifest
    from edgeq.targets.device import open_device, profile

    rows = [f"| model ({board_name}) | MLCommons int8, instructions | power-of-two, instructions | power-of-two / int8 "
            "| power-of-two with per-tensor weights, instructions | per-tensor / int8 |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name in ("vww_96", "resnet_ic"):
        counts = []
        calib = ["--calib", str(shared / "data" / name / "calib.npz")]
        for model, extra in ((f"{name}_int8", []), (f"{name}_fp32", calib),
                             (f"{name}_fp32", [*calib, "--weight-scales", "per-tensor"])):
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "fw"
                subprocess.run([sys.executable, "-m", "edgeq", "build", str(shared / "models" / "mlperf_tiny" / f"{model}.tflite"),
                                "--board", board_name, "-o", str(out), *extra], check=True, capture_output=True, timeout=3600)
                manifest = load_manifest(out)
                with open_device(out, manifest) as (link, b):
                    counts.append(profile(link, b, manifest)["instructions_per_inference"])
            print(f"{model} {' '.join(extra[2:])} on {board_name}: {counts[-1]:,} instructions", flush=True)
        rows.append(f"| {name} | {counts[0]:,} | {counts[1]:,} | {counts[1] / counts[0]:.3f} | {counts[2]:,} | "
                    f"{counts[2] / counts[0]:.3f} |")
    return "\n".join(rows)


QUANT_MODELS = [("resnet_ic", "models/mlperf_tiny/resnet_ic_fp32.tflite", "resnet_ic", 89.5),
                ("vww_96", "models/mlperf_tiny/vww_96_fp32.tflite", "vww_96", 99.0),
                ("kws_ds_cnn", "models/mlperf_tiny/kws_ds_cnn_hybrid.tflite", "kws_ds_cnn", 93.5),
                ("ad01", "models/mlperf_tiny/ad01_fp32.tflite", "ad01", 0.9725)]
# MLCommons' per-channel int8 model of each, for the resampled check
INT8_MODELS = {"resnet_ic": "models/mlperf_tiny/resnet_ic_int8.tflite", "vww_96": "models/mlperf_tiny/vww_96_int8.tflite",
               "kws_ds_cnn": "models/mlperf_tiny/kws_ds_cnn_int8.tflite", "ad01": "models/mlperf_tiny/ad01_int8.tflite"}
Q_BEGIN, Q_END = "<!-- bench:quant:begin -->", "<!-- bench:quant:end -->"
R_BEGIN, R_END = "<!-- bench:resampled:begin -->", "<!-- bench:resampled:end -->"
Z95 = 1.959964


def wilson(hits: float, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (hits of n)."""
    p = hits / n
    centre = (p + Z95 ** 2 / (2 * n)) / (1 + Z95 ** 2 / n)
    half = Z95 * (p * (1 - p) / n + Z95 ** 2 / (4 * n * n)) ** 0.5 / (1 + Z95 ** 2 / n)
    return centre - half, centre + half


def fisher_r(r: float, n: int) -> tuple[float, float]:
    """95% interval of a Pearson correlation by Fisher's z transform."""
    import math
    z, half = math.atanh(min(r, 1 - 1e-12)), Z95 / math.sqrt(n - 3)
    return math.tanh(z - half), math.tanh(z + half)


def fidelity(name: str, x, f, q) -> tuple[float, tuple[float, float]]:
    """Agreement of q with the float outputs f on inputs x, with its 95% interval: top-1 agreement in %, or
    for ad01 the Pearson r of the anomaly score (mean squared error between input and output)."""
    import numpy as np
    if name == "ad01":
        flat = x.reshape(len(x), -1)
        r = float(np.corrcoef(((flat - f) ** 2).mean(axis=1), ((flat - q) ** 2).mean(axis=1))[0, 1])
        return r, fisher_r(r, len(x))
    hits = float(np.sum(f.argmax(axis=1) == q.argmax(axis=1)))
    lo, hi = wilson(hits, len(x))
    return 100 * hits / len(x), (100 * lo, 100 * hi)


def _cell(name: str, value: float, interval: tuple[float, float]) -> str:
    if name == "ad01":
        return f"{value:.4f} [{interval[0]:.4f}, {interval[1]:.4f}]"
    return f"{value:.1f}% [{interval[0]:.1f}, {interval[1]:.1f}]"


QUANT_VARIANTS = [  # column, QuantOptions fields (None: data-free)
    ("plain", dict(equalization="off", bias_correction="off", rounding="nearest", input_zero_point=False)),
    ("+ equalization", dict(equalization="on", bias_correction="off", rounding="nearest", input_zero_point=False)),
    ("+ bias correction", dict(equalization="off", rounding="nearest", input_zero_point=False)),
    ("+ both", dict(equalization="on", rounding="nearest", input_zero_point=False)),
    ("default", dict()),
    ("default, per-tensor weights", dict(weight_scales="per-tensor")),
    ("default, power-of-two input scale", dict(input_scale="power-of-two")),
    ("default, no input zero point", dict(input_zero_point=False)),
    ("default, GPTQ rounding", dict(rounding="gptq")),
    ("default, nearest rounding", dict(rounding="nearest")),
    ("default, AdaRound", dict(rounding="adaround")),
    ("data-free", None),
]


def quant_table(shared: Path, variants=QUANT_VARIANTS) -> str:
    """Agreement with the float model on the shared eval sets (200 samples, with 95% intervals), power-of-two,
    with ablations."""
    import time

    from edgeq.quant.calibration import load_calibration
    from edgeq.quant.driver import QuantOptions, quantize
    from edgeq.quant.pot import paired_outputs

    rows = ["| model (metric) | MLCommons int8 per-channel | " + " | ".join(v[0] for v in variants) + " |",
            "| --- | ---: | " + " | ".join("---:" for _ in variants) + " |"]
    for name, rel, data, anchor in QUANT_MODELS:
        graph = load_tflite_file(shared / rel)
        x = load_calibration(shared / "data" / data / "eval.npz", graph)
        calib = shared / "data" / data / "calib.npz"
        cells = []
        for column, fields in variants:
            start = time.perf_counter()
            if fields is None:  # no data: only the input range, here the calibration set's
                xc = load_calibration(calib, graph)
                options = QuantOptions(data_free=True, input_range=f"{float(xc.min())!r},{float(xc.max())!r}")
                result = quantize(graph, None, options, echo=lambda *_: None)
            else:
                result = quantize(graph, calib, QuantOptions(**fields), echo=lambda *_: None)
            seconds = time.perf_counter() - start
            cells.append(_cell(name, *fidelity(name, x, *paired_outputs(graph, result.graph, x))))
            print(f"{name} {column}: {cells[-1]} (quantized in {seconds:.1f} s)", flush=True)
        metric = "anomaly score r" if name == "ad01" else "top-1 agreement"
        n = len(x)
        ref = _cell(name, anchor, fisher_r(anchor, n)) if name == "ad01" else \
            _cell(name, anchor, tuple(100 * v for v in wilson(anchor * n / 100, n)))
        rows.append(f"| {name} ({metric}) | {ref} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def resampled_table(shared: Path, splits: int = 3, options=None, mixed_budget: float = 1.25) -> str:
    """Fidelity on other data from the same distributions, as a new user would check it: calib.npz and
    eval.npz pooled (264 samples), then per split 64 random samples calibrate the default build and the
    other 200 evaluate it, MLCommons' int8 model (run by edgeq's TFLite-exact integer executor) and the default
    build with --mixed-precision at mixed_budget times its arena."""
    import numpy as np

    from edgeq.quant.calibration import load_calibration
    from edgeq.quant.driver import QuantOptions, quantize
    from edgeq.quant.executor import run_float_batch
    from edgeq.quant.mixed import arena_bytes
    from edgeq.quant.pot import dequantized_outputs

    options = options or QuantOptions()
    rows = ["| model (metric) | split | MLCommons int8 per-channel | edgeq default | difference | "
            f"mixed precision at {mixed_budget:g}x the arena | mixed - default |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, rel, data, _ in QUANT_MODELS:
        graph = load_tflite_file(shared / rel)
        int8 = load_tflite_file(shared / INT8_MODELS[name])
        pool = np.concatenate([load_calibration(shared / "data" / data / f"{s}.npz", graph) for s in ("calib", "eval")])
        f_all = run_float_batch(graph, pool)[graph.outputs[0]].reshape(len(pool), -1)
        m_all = dequantized_outputs(int8, pool)
        diffs, gains = [], []
        digits = "+.4f" if name == "ad01" else "+.1f"
        for split in range(splits):
            order = np.random.default_rng(100 + split).permutation(len(pool))
            cal, ev = np.sort(order[:64]), np.sort(order[64:])
            plain = quantize(graph, pool[cal], options, echo=lambda *_: None).graph
            mixed = quantize(graph, pool[cal], replace(options, mixed_precision=True,
                                                       max_arena=int(mixed_budget * arena_bytes(plain))),
                             echo=lambda *_: None).graph
            mine, theirs, wide = (fidelity(name, pool[ev], f_all[ev], q) for q in
                                  (dequantized_outputs(plain, pool[ev]), m_all[ev], dequantized_outputs(mixed, pool[ev])))
            diffs.append(mine[0] - theirs[0])
            gains.append(wide[0] - mine[0])
            rows.append(f"| {name} | {split + 1} | {_cell(name, *theirs)} | {_cell(name, *mine)} | "
                        f"{diffs[-1]:{digits}} | {_cell(name, *wide)} | {gains[-1]:{digits}} |")
            print(rows[-1], flush=True)
        rows.append(f"| {name} | mean | | | {np.mean(diffs):{digits}} | | {np.mean(gains):{digits}} |")
    return "\n".join(rows)


M_BEGIN, M_END = "<!-- bench:mixed:begin -->", "<!-- bench:mixed:end -->"
MIXED_BUDGETS = (1.0, 1.25, 1.5)  # --max-arena as multiples of the int8 power-of-two build's arena


def mixed_table(shared: Path, budgets=MIXED_BUDGETS) -> str:
    """--mixed-precision under arena budgets of budgets x the int8 build's (edgeq's planner, reference kernels):
    arena, int16 tensors and agreement with the float model on the shared eval sets, beside the int8 default."""
    from edgeq.quant.calibration import load_calibration
    from edgeq.quant.driver import QuantOptions, quantize
    from edgeq.quant.mixed import arena_bytes
    from edgeq.quant.pot import paired_outputs

    rows = ["| model (metric) | int8 default: arena, agreement | " +
            " | ".join(f"budget {b:g}x: arena, int16 tensors, agreement" for b in budgets) + " |",
            "| --- | ---: | " + " | ".join("---:" for _ in budgets) + " |"]
    for name, rel, data, _ in QUANT_MODELS:
        graph = load_tflite_file(shared / rel)
        x = load_calibration(shared / "data" / data / "eval.npz", graph)
        calib = shared / "data" / data / "calib.npz"
        plain = quantize(graph, calib, QuantOptions(), echo=lambda *_: None)
        a8 = arena_bytes(plain.graph)
        cells = [f"{a8:,} B, {_cell(name, *fidelity(name, x, *paired_outputs(graph, plain.graph, x)))}"]
        for budget in budgets:
            result = quantize(graph, calib, QuantOptions(mixed_precision=True, max_arena=int(a8 * budget)),
                              echo=lambda *_: None)
            info = result.summary.mixed_precision
            cells.append(f"{info['arena']:,} B, {len(info['int16_tensors'])}, "
                         f"{_cell(name, *fidelity(name, x, *paired_outputs(graph, result.graph, x)))}")
            print(f"{name} mixed {budget:g}x: {cells[-1]}", flush=True)
        metric = "anomaly score r" if name == "ad01" else "top-1 agreement"
        rows.append(f"| {name} ({metric}) | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _replace_block(text: str, begin: str, end: str, table: str) -> str:
    block = f"{begin}\n{table}\n{end}"
    if begin in text:
        return re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    return text + "\n" + block + "\n"


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


RV_BEGIN, RV_END = "<!-- bench:riscv:begin -->", "<!-- bench:riscv:end -->"
# (board, column label, kernel libraries measured on it)
RISCV_BOARDS = [("qemu-riscv32-virt", "RV32IMAC", ("ref", "cmsis-nn", "rv32", "auto")),
                ("qemu-riscv32-virt-rvv", "RVV", ("ref", "cmsis-nn", "rvv", "auto"))]
# (board label, library) whose ratio to the board's muRISCV-NN build gets a column and a geometric mean
RISCV_RATIOS = [("RV32IMAC", "auto"), ("RVV", "rvv"), ("RVV", "auto")]


def _riscv_instructions(model: Path, board_name: str, kernels: str) -> int:
    """Executed instructions of one inference (rdinstret under QEMU -icount) with the kernel library asked for."""
    import tempfile

    from edgeq.build import compile_graph, load_manifest, write_project
    from edgeq.targets.boards import get_board
    from edgeq.targets.device import open_device, profile

    board = get_board(board_name)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fw"
        write_project(compile_graph(load_tflite_file(model), "keep", board, kernels), board, "keep", out, model,
                      echo=lambda *_: None)
        manifest = load_manifest(out)
        with open_device(out, manifest) as (link, b):
            return profile(link, b, manifest)["instructions_per_inference"]


def riscv_table(shared: Path) -> str:
    """Instructions per inference on the emulated RISC-V boards: edgeq's reference kernels, muRISCV-NN
    (`--kernels cmsis-nn`: scalar, or its vector path), edgeq's own kernels alone (`--kernels rv32` or `rvv`, ref
    where they decline) and the default (`auto`: the own library, muRISCV-NN and ref, measured per layer), with
    ratios to muRISCV-NN on the same board."""
    import math

    labels = {"ref": "ref", "cmsis-nn": "muRISCV-NN", "rv32": "own rv32", "rvv": "own rvv", "auto": "auto"}
    head = ["model"] + [f"{core} {labels[k]}" for _, core, libs in RISCV_BOARDS for k in libs]
    head += [f"{core} {labels[k]} / muRISCV-NN" for core, k in RISCV_RATIOS]
    rows = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    ratios: dict[tuple[str, str], list[float]] = {r: [] for r in RISCV_RATIOS}
    for name, rel in MODELS:
        cells, counts = [name], {}
        for board_name, core, libs in RISCV_BOARDS:
            for kernels in libs:
                n = _riscv_instructions(shared / rel, board_name, kernels)
                print(f"{name} on {board_name} with {kernels}: {n:,} instructions", flush=True)
                cells.append(f"{n:,}")
                counts[core, kernels] = n
        for core, k in RISCV_RATIOS:
            ratios[core, k].append(counts[core, k] / counts[core, "cmsis-nn"])
            cells.append(f"{ratios[core, k][-1]:.3f}")
        rows.append("| " + " | ".join(cells) + " |")
    geo = [f"**{math.exp(sum(map(math.log, r)) / len(r)):.3f}**" for r in ratios.values()]
    rows.append("| **geomean** |" + " |" * (len(head) - 1 - len(geo)) + " " + " | ".join(geo) + " |")
    return "\n".join(rows)


RVV_SHAPE_BEGIN, RVV_SHAPE_END = "<!-- bench:rvv-shapes:begin -->", "<!-- bench:rvv-shapes:end -->"


def _rvv_layer_instructions(model: Path, shape: tuple[int, int] | None) -> dict[str, int]:
    """Each rvv convolution's instructions on the RVV board with every convolution forced to shape (LMUL, rows),
    or with rvv's own per-layer choice (None)."""
    import tempfile

    from edgeq.build import compile_graph, load_manifest, write_project
    from edgeq.codegen.backends import rvv
    from edgeq.targets.boards import get_board
    from edgeq.targets.device import open_device, profile

    board, rule = get_board("qemu-riscv32-virt-rvv"), rvv.gemm_shape
    try:
        if shape:
            rvv.gemm_shape = lambda *_: shape
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "fw"
            write_project(compile_graph(load_tflite_file(model), "keep", board, "rvv"), board, "keep", out, model,
                          echo=lambda *_: None)
            manifest = load_manifest(out)
            with open_device(out, manifest) as (link, b):
                layers = profile(link, b, manifest)["layers"]
    finally:
        rvv.gemm_shape = rule
    convs = {layer["name"] for layer in manifest["layers"] if layer.get("impl") == "eq_rvv_conv_s8"}
    return {layer["name"]: layer["cycles"] for layer in layers if layer["name"] in convs}


def rvv_shape_table(shared: Path) -> str:
    """rvv's per-layer (LMUL, rows) against every shape forced on every convolution: how many convolutions the
    rule gives the fewest instructions, and the convolutions' instructions under the rule, the best shape per
    layer, and LMUL 4 with 4 rows everywhere (the fixed shape rvv had before)."""
    from edgeq.codegen.backends.rvv import GEMM_SHAPES

    shapes = sorted(set(GEMM_SHAPES) | {(2, 4), (4, 2)})
    rows = ["| model | convolutions | rule picks the fastest | rule | best per layer | fixed (4, 4) | "
            "fixed / rule |", "| --- |" + " ---: |" * 6]
    for name, rel in MODELS:
        rule = _rvv_layer_instructions(shared / rel, None)
        if not rule:
            continue  # no convolution (ad01)
        forced = {shape: _rvv_layer_instructions(shared / rel, shape) for shape in shapes}
        best = {layer: min(f[layer] for f in forced.values()) for layer in rule}
        hits = sum(rule[layer] <= best[layer] for layer in rule)
        total, fixed = sum(rule.values()), sum(forced[4, 4].values())
        print(f"{name}: rule {total:,}, best {sum(best.values()):,}, fixed (4, 4) {fixed:,}", flush=True)
        rows.append(f"| {name} | {len(rule)} | {hits} | {total:,} | {sum(best.values()):,} | {fixed:,} | "
                    f"{fixed / total:.3f} |")
    return "\n".join(rows)


def riscv_bench(shared: Path, out: Path, readme: Path | None) -> None:
    table, shapes = riscv_table(shared), rvv_shape_table(shared)
    print(table)
    print(shapes)
    with open(out, "a") as f:
        f.write("\n" + table + "\n\n" + shapes + "\n")
    if readme:
        text = _replace_block(readme.read_text(), RV_BEGIN, RV_END, table)
        readme.write_text(_replace_block(text, RVV_SHAPE_BEGIN, RVV_SHAPE_END, shapes))
        print(f"updated {readme}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=edgeq.ROOT.parent / "shared")
    ap.add_argument("--readme", type=Path)
    ap.add_argument("--out", type=Path, default=edgeq.ROOT / "build" / "bench.md")
    args = ap.parse_args()
    if not (args.shared / "models").exists():
        raise SystemExit(f"bench needs the shared models at {args.shared}; none found.")
    table = arena_table(args.shared)
    print(table)
    latency = latency_table(args.shared)
    print(latency)
    layers = layer_table(args.shared)
    print(layers)
    pot_latency = pot_latency_table(args.shared)
    print(pot_latency)
    quant = quant_table(args.shared)
    print(quant)
    resampled = resampled_table(args.shared)
    print(resampled)
    mixed = mixed_table(args.shared)
    print(mixed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table + "\n\n" + latency + "\n\n" + layers + "\n\n" + pot_latency + "\n\n" + quant + "\n\n"
                        + resampled + "\n\n" + mixed + "\n")
    if args.readme:
        text = _replace_block(args.readme.read_text(), BEGIN, END, table)
        text = _replace_block(text, LAT_BEGIN, LAT_END, latency)
        text = _replace_block(text, LAYER_BEGIN, LAYER_END, layers)
        text = _replace_block(text, POT_BEGIN, POT_END, pot_latency)
        text = _replace_block(text, Q_BEGIN, Q_END, quant)
        text = _replace_block(text, R_BEGIN, R_END, resampled)
        args.readme.write_text(_replace_block(text, M_BEGIN, M_END, mixed))
        print(f"updated {args.readme}")
    riscv_bench(args.shared, args.out, args.readme)


if __name__ == "__main__":
    main()
