"""Arm Ethos-U NPU boards: the integer graph exported as an int8 .tflite and compiled by Arm's Vela.

edgeq does not write the NPU's command stream itself: Vela does, from the file edgeq's TFLite exporter
writes. Vela runs in a subprocess (its compiler core is native code, and its logging stays out of
ours); its summary CSV gives the estimated cycles and memory, its output .tflite shows what it left to
the CPU, and its warnings say why. Nothing is run: the figures are Vela's static estimates.
"""
from __future__ import annotations

import csv
import importlib.metadata
import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import tflite

from edgeq.errors import EdgeqError
from edgeq.export import write_tflite
from edgeq.targets import process
from edgeq.targets.boards import Board

VELA_PACKAGE = "ethos-u-vela"
NPU_OP = "ethos-u"  # the custom operator Vela replaces the NPU's part of the graph with
KIB = 1024


def vela_version() -> str | None:
    if importlib.util.find_spec("ethosu") is None:
        return None
    try:
        return importlib.metadata.version(VELA_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None


def write_npu(c, board: Board, folder: Path, echo=print) -> dict:
    """Exports c.graph to folder/model_int8.tflite, compiles it with Vela into folder/vela/, writes
    folder/npu_report.json and returns the report (also stored in model.json under "npu")."""
    npu = board.raw.get("npu") or {}
    if "accelerator" not in npu:
        raise EdgeqError(f"Board file {board.name}.toml has kind = \"npu\" but no [npu] table with an accelerator.")
    version = vela_version()
    if version is None:
        raise EdgeqError(f"{board.name} needs Arm's Vela compiler for its NPU: pip install {VELA_PACKAGE}")
    model = folder / "model_int8.tflite"
    write_tflite(c.graph, model)
    vela = run_vela(model, folder / "vela", npu)
    weights = sum(a.nbytes for call in c.calls for a in call.arrays.values())
    files = {"tflite": model.name, "vela_tflite": f"vela/{vela.pop('output')}",
             "vela_summary": f"vela/{vela.pop('summary')}"}
    report = {"accelerator": npu["accelerator"], "vela_version": version, **vela,
              "edgeq_c": {"arena_bytes": c.plan.size, "weights_bytes": weights},
              "files": files, "run": _fvp_note(npu.get("fvp", ""))}
    _check_fits(report, board, c.graph.name)
    (folder / "npu_report.json").write_text(json.dumps(report, indent=1) + "\n")
    _echo_report(report, echo)
    return report


VELA_TIMEOUT = 900.0  # seconds, unless EDGEQ_TIMEOUT says otherwise


def run_vela(model: Path, out_dir: Path, npu: dict) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-c", "import sys; from ethosu.vela.vela import main; sys.exit(main())",
            "--accelerator-config", npu["accelerator"], "--output-dir", str(out_dir), "--show-cpu-operations"]
    for key, flag in (("vela_config", "--config"), ("system_config", "--system-config"),
                      ("memory_mode", "--memory-mode")):
        if npu.get(key):
            args += [flag, npu[key]]
    proc = process.run(args + [str(model)], f"Vela compiling {model.name}", VELA_TIMEOUT, text=True)
    (out_dir / "vela.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-6:])
        raise EdgeqError(f"Vela failed to compile {model.name} for {npu['accelerator']} (exit {proc.returncode}); "
                         f"its log is in {out_dir / 'vela.log'}:\n{tail}")
    compiled = out_dir / f"{model.stem}_vela.tflite"
    summaries = sorted(out_dir.glob(f"{model.stem}_summary_*.csv"))
    if not compiled.exists() or not summaries:
        raise EdgeqError(f"Vela finished but wrote no {compiled.name} or summary CSV in {out_dir}; see vela.log there.")
    with open(summaries[0], newline="") as f:
        s = next(csv.DictReader(f))
    cpu_ops = [op for op in _operators(compiled.read_bytes()) if op != f"CUSTOM:{NPU_OP}"]
    return {
        "system_config": s["system_config"], "memory_mode": s["memory_mode"],
        "npu_clock_hz": float(s["core_clock"]),
        "cycles_per_inference": int(float(s["cycles_total"])), "npu_cycles": int(float(s["cycles_npu"])),
        "inference_time_s": float(s["inference_time"]), "inferences_per_second": float(s["inferences_per_second"]),
        # Vela's summary gives memory in KiB
        "sram_bytes": round(float(s["sram_memory_used"]) * KIB),
        "off_chip_flash_bytes": round(float(s["off_chip_flash_memory_used"]) * KIB),
        "on_chip_flash_bytes": round(float(s["on_chip_flash_memory_used"]) * KIB),
        "dram_bytes": round(float(s["dram_memory_used"]) * KIB),
        "weights_bytes": int(float(s["total_original_weights"])),
        "npu_encoded_weights_bytes": int(float(s["total_npu_encoded_weights"])),
        "macs": int(float(s["nn_macs"])),
        "npu_operators": _count(proc.stdout, "NPU"), "cpu_operators": _count(proc.stdout, "CPU"),
        "cpu_fallback_ops": cpu_ops,  # TFLite operators left outside the NPU's custom op
        "cpu_fallback_reasons": _reasons(proc.stdout + proc.stderr),
        "output": compiled.name, "summary": summaries[0].name,
    }


def _operators(model: bytes) -> list[str]:
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    m = tflite.Model.GetRootAs(model, 0)
    g = m.Subgraphs(0)
    result = []
    for i in range(g.OperatorsLength()):
        oc = m.OperatorCodes(g.Operators(i).OpcodeIndex())
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        result.append(f"CUSTOM:{(oc.CustomCode() or b'').decode()}" if code == tflite.BuiltinOperator.CUSTOM
                      else names.get(code, str(code)))
    return result


def _count(log: str, unit: str) -> int:
    m = re.search(rf"^{unit} operators = (\d+)", log, re.M)
    return int(m.group(1)) if m else 0


def _reasons(log: str) -> list[str]:
    """Vela's "Warning (supported operators)" blocks: the operator, the failed constraint, the rules."""
    blocks = re.findall(r"^Warning \(supported operators\).*?(?=\n\s*\n|\Z)", log, re.M | re.S)
    return [" ".join(line.strip() for line in b.splitlines()) for b in blocks]


def _fvp_note(fvp: str) -> str:
    found = shutil.which(fvp) if fvp else None
    if found:
        return f"not run: {fvp} is at {found}, but edgeq does not drive the FVP yet; the figures are Vela's estimates"
    return (f"not run: there is no {fvp or 'FVP'} on this machine, so the model was compiled and estimated by Vela, "
            "not executed")


def _check_fits(report: dict, board: Board, model: str) -> None:
    sram, flash = report["sram_bytes"], report["off_chip_flash_bytes"] + report["on_chip_flash_bytes"]
    problems = []
    if sram > board.ram["length"]:
        problems.append(f"Vela needs {sram:,} B of SRAM, the board has {board.ram['length']:,} B")
    if flash > board.flash["length"]:
        problems.append(f"Vela needs {flash:,} B of flash/DDR for weights and commands, the board has "
                        f"{board.flash['length']:,} B")
    if problems:
        raise EdgeqError(f"{model} does not fit on {board.name}: {'; '.join(problems)}.")


def _echo_report(r: dict, echo) -> None:
    total = r["npu_operators"] + r["cpu_operators"]
    echo(f"{r['accelerator']} (Vela {r['vela_version']}, {r['system_config']}, {r['memory_mode']}): "
         f"{r['npu_operators']} of {total} operators on the NPU")
    echo(f"  NPU estimate: {r['cycles_per_inference']:,} cycles = {1e6 * r['inference_time_s']:.1f} us per inference "
         f"at {r['npu_clock_hz'] / 1e6:g} MHz")
    echo(f"  NPU memory:   SRAM {r['sram_bytes']:,} B, off-chip flash {r['off_chip_flash_bytes']:,} B "
         f"(weights {r['weights_bytes']:,} B, encoded for the NPU {r['npu_encoded_weights_bytes']:,} B)")
    echo(f"  edgeq C:      arena {r['edgeq_c']['arena_bytes']:,} B, weights {r['edgeq_c']['weights_bytes']:,} B "
         "(the same model on the Cortex-M55 alone)")
    if r["cpu_fallback_ops"]:
        echo(f"  on the CPU:   {', '.join(r['cpu_fallback_ops'])}")
        for reason in r["cpu_fallback_reasons"]:
            echo(f"    {reason}")
    echo(f"note: {r['run']}")
