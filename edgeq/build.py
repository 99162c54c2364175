"""The pipeline behind `edgeq build`: load, lower, plan, render, write atomically, compile."""
from __future__ import annotations

import json
import math
import pickle
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import edgeq
from edgeq.codegen.render import CModel, build_cmodel, render_sources
from edgeq.errors import EdgeqError
from edgeq.ir import Graph
from edgeq.memory.arena import ArenaPlan, plan_arena
from edgeq.lowering import lower_graph
from edgeq.lowering import KernelCall
from edgeq.targets.boards import Board

RUNTIME_DIR = edgeq.ROOT / "runtime_c" / "ref"
QUANT_MODES = ("keep", "pot")


@dataclass
class Compiled:
    graph: Graph
    calls: list[KernelCall]
    plan: ArenaPlan
    cmodel: CModel


def calibration_inputs(graph: Graph, calib: str | Path | None, data_free: bool = False,
                       input_range: str | None = None, resize: str = "stretch") -> np.ndarray:
    """The float inputs quantization calibrates on: the user's (arrays, or a folder of images scaled onto
    input_range, 0,1 by default), or synthetic ones in data-free mode."""
    from edgeq.quant.calibration import load_calibration
    from edgeq.quant.data_free import parse_input_range, synthetic_inputs

    if data_free:
        return synthetic_inputs(graph, parse_input_range(input_range, graph))
    if calib is None:
        raise EdgeqError(f"{graph.name} is a float model and edgeq runs int8: quantize it with --quant pot "
                         "--calib X.npz (key x: [N, *input_shape] float32 in the model's input layout and "
                         "scaling), or without data with --data-free --input-range LO,HI, or convert it to full "
                         "int8 with the TFLite converter.")
    if Path(calib).is_dir():
        return load_calibration(calib, graph, parse_input_range(input_range or "0,1", graph), resize)
    return load_calibration(calib, graph)


def _statistics(g: Graph, x: np.ndarray, data_free: bool, bias_absorption: bool):
    """Activation statistics of the float graph g, after high-bias absorption when it moves anything.
    Returns (graph, statistics, {layer: largest amount absorbed})."""
    from edgeq.passes.bias_absorption import absorb_high_biases
    from edgeq.quant.calibration import collect_stats
    from edgeq.quant.data_free import data_free_stats

    def stats_of(graph: Graph):
        return data_free_stats(graph, x)[0] if data_free else collect_stats(graph, x)

    stats = stats_of(g)
    if not bias_absorption:
        return g, stats, {}
    if data_free:  # DFQ: the pre-activation stays above beta - 3|gamma|
        bounds = {n: mean - 3 * std for n, (mean, std) in g.bn_stats.items()}
    else:  # a positive smallest value after the ReLU: the ReLU never clipped that channel
        bounds = {n: st.channel_min for n, st in stats.items()}
    absorbed_graph, moved = absorb_high_biases(g, bounds)
    return (absorbed_graph, stats_of(absorbed_graph), moved) if moved else (g, stats, {})


def quantize(graph: Graph, calib: str | Path | None, echo=print, equalization: str = "auto",
             bias_correction: str = "empirical", data_free: bool = False,
             input_range: str | None = None, resize: str = "stretch",
             bias_absorption: bool = True, rounding: str = "gptq", pool_as_mean: bool = True) -> tuple[Graph, dict]:
    """Power-of-two quantization of a float graph on calibration data.

    equalization: "on", "off", or "auto" (both are quantized and the better on the calibration data is kept,
    see _better).
    bias_correction: "empirical" (edgeq.quant.bias_correction), "analytic" (pot.weight_error_bias) or "off".
    data_free: no calibration data; statistics from batch norms and synthetic inputs in input_range "LO,HI"
    (edgeq.quant.data_free). Equalization is then on unless "off", and bias correction analytic.
    bias_absorption: high-bias absorption (edgeq.passes.bias_absorption) where it is exact.
    rounding: "gptq" (edgeq.quant.rounding; needs real data, so nearest when data-free) or "nearest".
    pool_as_mean: global average pools quantized as MEANs (edgeq.passes.global_pool)."""
    from edgeq.passes.equalization import equalize
    from edgeq.passes.global_pool import global_average_pools_to_means
    from edgeq.quant.bias_correction import correct_biases
    from edgeq.quant.executor import run_float_graph
    from edgeq.quant.pot import dequantized_outputs, quantize_graph

    if graph.is_integer:
        raise EdgeqError(f"{graph.name} is already an integer model: build it with --quant keep, or give the float "
                         "model to quantize it with power-of-two scales.")
    x = calibration_inputs(graph, calib, data_free, input_range, resize)
    graph, pools_as_means = global_average_pools_to_means(graph) if pool_as_mean else (graph, [])
    if data_free:
        equalization = "off" if equalization == "off" else "on"
        bias_correction = "analytic" if bias_correction != "off" else "off"
        rounding = "nearest"
    candidates = {"on": [True], "off": [False], "auto": [False, True]}[equalization]
    reference = np.array([run_float_graph(graph, [s])[graph.outputs[0]].reshape(-1) for s in x], np.float64)
    results = []
    for cle in candidates:
        g, eq_info = equalize(graph) if cle else (graph, {"pairs": []})
        echo(f"calibrating on {len(x)} samples{' after cross-layer equalization' if cle else ''} ...")
        g, stats, absorbed = _statistics(g, x, data_free, bias_absorption)
        if data_free:
            from_bn = sum(1 for n in g.bn_stats if n in stats)
            echo(f"warning: data-free quantization of {g.name}: the ranges of {from_bn} of {len(stats)} activation "
                 f"tensors come from batch-norm statistics, the others from {len(x)} synthetic inputs uniform in "
                 f"[{input_range}]; bias correction is analytic. Expect lower accuracy than with calibration data: "
                 "on MLPerf Tiny models without batch-norm statistics it cost up to 24 points of top-1 agreement "
                 "(README, 'Data-free mode'). Give --calib with a few hundred real samples when you can.")
        qgraph, report = quantize_graph(g, stats, bias_correction=bias_correction == "analytic")
        if bias_correction == "empirical" or rounding == "gptq":
            corrections, outputs = correct_biases(g, qgraph, x, bias_correction == "empirical", rounding)
        else:
            corrections, outputs = {}, dequantized_outputs(qgraph, x)
        noise = float(np.sum((reference - outputs) ** 2))
        out_sqnr = 10 * math.log10(float(np.sum(reference ** 2)) / noise) if noise > 0 else float("inf")
        agree = float(np.mean(reference.argmax(axis=1) == outputs.argmax(axis=1)))
        report["_summary"] = {"equalization": cle, "equalized_pairs": eq_info["pairs"], "data_free": data_free,
                              "high_bias_absorbed": absorbed, "global_pools_as_means": pools_as_means,
                              "bias_correction": bias_correction, "rounding": rounding, "output_sqnr_db": out_sqnr,
                              "bias_correction_max_lsb": corrections,
                              "calibration_top1_agreement": agree}
        results.append(((agree, out_sqnr), qgraph, report, eq_info, g))
    best = results[0]
    if len(results) > 1:
        classifier = graph.t(graph.outputs[0]).shape != graph.t(graph.inputs[0]).shape
        best = max(results, key=lambda r: _better(r[0], classifier))
        echo("equalization: " + ", ".join(f"{'on' if r[2]['_summary']['equalization'] else 'off'} "
                                          f"{100 * r[0][0]:.1f}% top-1 agreement, {r[0][1]:.1f} dB output SQNR"
                                          for r in results) +
             f" on the calibration data; keeping {'on' if best[2]['_summary']['equalization'] else 'off'}")
    best[2]["_equalization"] = best[3]
    best[2]["_float_graph"] = best[4]  # the float graph the integer one quantizes (equalized or not)
    best[2]["_calibration_inputs"] = x  # for the report, so images are not decoded again
    return best[1], best[2]


def _better(agreement_and_sqnr: tuple[float, float], classifier: bool) -> tuple[float, ...]:
    """The sort key of a quantized variant on the calibration data: for a classifier the top-1 agreement with
    the float model, then the output SQNR among equals; for other models (autoencoders: the output has the
    input's shape) the SQNR alone. On 64 samples a point of agreement is one sample, so small wins are often
    chance; then either variant is as good, and a real difference is still picked more often than not."""
    agree, sqnr = agreement_and_sqnr
    return (agree, sqnr) if classifier else (sqnr,)


def compile_graph(graph: Graph, quant: str = "keep", board: Board | None = None, kernels: str = "auto") -> Compiled:
    if quant not in QUANT_MODES:
        raise EdgeqError(f"Unknown --quant mode '{quant}'; available: {', '.join(QUANT_MODES)}.")
    if not graph.is_integer:
        raise EdgeqError(
            f"{graph.name} has float activations, so it must be quantized first: build it with --quant pot "
            "--calib DATA (power-of-two quantization), or convert it with the TFLite converter to full int8.")
    calls = lower_graph(graph)
    plan = plan_arena(graph, calls)
    cmodel = build_cmodel(graph, calls, plan, f"quant={quant}")
    return Compiled(graph, calls, plan, cmodel)


def manifest(c: Compiled, board: Board, quant: str) -> dict:
    g = c.graph

    def tensor(name: str) -> dict:
        t = g.t(name)
        q = t.quant
        return {
            "name": name, "dtype": t.dtype, "shape": list(t.shape),
            "scale": [float(s) for s in q.scale] if q is not None else None,
            "zero_point": [int(z) for z in q.zero_point] if q is not None else None,
            "quantized_dimension": q.axis if q is not None and not q.per_tensor else None,
            "const": t.is_const,
        }

    return {
        "edgeq_version": edgeq.__version__,
        "model": g.name, "model_sha256": g.source_hash, "prefix": c.cmodel.prefix,
        "board": board.name, "quant": quant,
        "inputs": [tensor(n) for n in g.inputs], "outputs": [tensor(n) for n in g.outputs],
        "layers": [{"name": call.layer, "kernel": "alias" if call.alias else call.kernel,
                    "inputs": call.inputs, "outputs": call.outputs} for call in c.calls],
        "tensors": [tensor(n) for n in sorted(g.tensors)],
        "arena": c.plan.to_json(g),
        "notes": g.notes,
    }


def write_sources(c: Compiled, folder: Path) -> None:
    """The model's C sources plus a copy of the runtime kernels, so the folder builds on its own."""
    for fname, text in render_sources(c.cmodel).items():
        (folder / fname).write_text(text)
    shutil.copytree(RUNTIME_DIR, folder / "runtime", dirs_exist_ok=True)


def write_project(c: Compiled, board: Board, quant: str, out_dir: Path, model_file: Path | None = None,
                  lib_only: bool = False, echo=print) -> None:
    """Writes every file into a fresh sibling folder, then swaps it in: no half-written output.
    model_file, the source model, is copied in as model.<its suffix>."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not (out_dir / "model.json").exists() and any(out_dir.iterdir()):
        raise EdgeqError(f"{out_dir} exists and is not an edgeq build folder; choose an empty or new -o folder.")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        write_sources(c, tmp)
        info = manifest(c, board, quant)
        if model_file is not None:
            shutil.copyfile(model_file, tmp / f"model{Path(model_file).suffix.lower()}")
        with open(tmp / "reference_graph.pkl", "wb") as f:  # the integer graph `edgeq validate` checks against
            pickle.dump(c.graph, f)
        if lib_only:
            pass
        elif board.kind == "host":
            from edgeq.targets.host import write_host_harness, compile_host
            write_host_harness(c.cmodel, tmp)
            compile_host(tmp, c.cmodel.prefix)
        elif board.kind == "npu":
            from edgeq.targets.npu import write_npu
            info["npu"] = write_npu(c, board, tmp, echo)
        else:
            info["firmware"] = _firmware(c, board, tmp, echo)
        (tmp / "model.json").write_text(json.dumps(info, indent=1) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _firmware(c: Compiled, board: Board, folder: Path, echo) -> dict:
    from edgeq.targets import firmware
    weights = sum(a.nbytes for call in c.calls for a in call.arrays.values())
    firmware.check_fits(c.cmodel, board, c.graph, weights)
    firmware.write_firmware(c.cmodel, board, c.graph.source_hash, folder)
    if not firmware.have_toolchain():
        echo(f"note: arm-none-eabi-gcc or cmake is missing, so the firmware project in {folder.name} was written "
             "but not built (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi cmake)")
        return {"elf": None}
    echo(f"building firmware for {board.name} ...")
    elf, use = firmware.build_elf(folder, c.cmodel.prefix, board)
    flash, ram = board.flash["length"], board.ram["length"]
    echo(f"flash {use.flash:,} of {flash:,} B ({100 * use.flash / flash:.1f}%), "
         f"RAM {use.ram:,} of {ram:,} B ({100 * use.ram / ram:.1f}%)")
    return {"elf": elf.name, "flash_bytes": use.flash, "ram_bytes": use.ram}


def load_manifest(build_dir: Path) -> dict:
    path = Path(build_dir) / "model.json"
    if not path.exists():
        raise EdgeqError(f"{build_dir} is not an edgeq build folder (no model.json); run `edgeq build` first.")
    return json.loads(path.read_text())


def quantize_inputs(x: np.ndarray, tensor: dict) -> np.ndarray:
    """float32 -> int8 with the input's scale and zero point (as TFLite's QUANTIZE does); int8 as is."""
    if x.dtype == np.int8:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise EdgeqError(f"Inputs must be int8 (used as is) or float32 (quantized); got {x.dtype}.")
    scale, zp = np.float32(tensor["scale"][0]), tensor["zero_point"][0]
    q = np.round(x.astype(np.float32) / scale).astype(np.int64) + zp
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize_outputs(y: np.ndarray, tensor: dict) -> np.ndarray:
    scale, zp = np.float32(tensor["scale"][0]), tensor["zero_point"][0]
    return ((y.astype(np.int32) - zp).astype(np.float32) * scale).astype(np.float32)
