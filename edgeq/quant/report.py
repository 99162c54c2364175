"""The quantization report: per tensor the chosen exponent and its SQNR against the float model, per
equalized layer the weight ranges per channel before and after, as JSON and as an HTML page of plots."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np

from edgeq.ir import Graph


def build_report(graph: Graph, qgraph: Graph, choices: dict) -> dict:
    """choices: the dict edgeq.build.quantize returns beside the graph (consumed)."""
    from edgeq.quant.pot import sqnr_report

    summary = choices.pop("_summary")
    equalization = choices.pop("_equalization")
    float_graph = choices.pop("_float_graph")
    sqnr = sqnr_report(float_graph, qgraph, choices.pop("_calibration_inputs"))
    return {"model": graph.name, "_summary": summary, "_equalization": equalization,
            "tensors": {n: {**c, "sqnr_db": sqnr.get(n)} for n, c in choices.items()}}


def write_json(report: dict, path: Path) -> None:
    path.write_text(json.dumps(report, indent=1, default=float) + "\n")


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _short(name: str, width: int = 38) -> str:
    return name if len(name) <= width else "..." + name[-width + 3:]


def _plots(report: dict) -> list[tuple[str, str]]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = []
    acts = [(n, t) for n, t in report["tensors"].items() if t["kind"] == "activation"]
    finite = [(n, t["sqnr_db"]) for n, t in acts if t.get("sqnr_db") is not None and np.isfinite(t["sqnr_db"])]
    if finite:
        fig, ax = plt.subplots(figsize=(10, 0.25 * len(finite) + 1.2))
        ax.barh(range(len(finite)), [v for _, v in finite], color="#4477aa")
        ax.set_yticks(range(len(finite)), [_short(n) for n, _ in finite], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("SQNR against the float model (dB), in execution order")
        plots.append(("Quantization error per activation tensor", _png(fig)))
        plt.close(fig)
    weights = [(n, t) for n, t in report["tensors"].items() if t["kind"] == "weights"]
    if weights:
        fig, ax = plt.subplots(figsize=(10, 0.25 * len(weights) + 1.2))
        ax.barh(range(len(weights)), [t["exponent"] for _, t in weights], color="#cc6677")
        ax.set_yticks(range(len(weights)), [_short(n) for n, _ in weights], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("weight exponent n (scale 2^-n)")
        plots.append(("Weight exponents per layer", _png(fig)))
        plt.close(fig)
    eq = report["_equalization"]
    layers = list(eq.get("ranges_before", {}))
    if layers and report["_summary"]["equalization"]:
        # one axes, layers side by side: a grid of subplots took seconds to lay out on MobileNets
        fig, ax = plt.subplots(figsize=(12, 4))
        start, ticks = 0, []
        for i, name in enumerate(layers):
            before, after = np.array(eq["ranges_before"][name]), np.array(eq["ranges_after"][name])
            x = np.arange(start, start + before.size)
            if i % 2:
                ax.axvspan(start - 0.5, start + before.size - 0.5, color="#eeeeee", lw=0)
            ax.plot(x, before, ".", ms=3, color="#999933", label="before" if i == 0 else None)
            ax.plot(x, after, ".", ms=3, color="#117733", label="after" if i == 0 else None)
            ticks.append((start + before.size / 2, _short(name, 30)))
            start += before.size
        ax.set_yscale("log")
        top = max(max(eq["ranges_before"][n] + eq["ranges_after"][n]) for n in layers)
        ax.set_ylim(top * 1e-5, top * 2)  # dead channels (|w| ~ 1e-30) would flatten the rest
        ax.set_xticks([t for t, _ in ticks], [n for _, n in ticks], rotation=90, fontsize=6)
        ax.set_ylabel("max |w| of the output channel (dead channels below the axis)")
        ax.legend(fontsize=7)
        plots.append(("Weight range per output channel before and after cross-layer equalization (layers side by "
                      "side, in execution order)", _png(fig)))
        plt.close(fig)
    corrections = report["_summary"].get("bias_correction_max_lsb") or {}
    if corrections:
        fig, ax = plt.subplots(figsize=(10, 0.25 * len(corrections) + 1.2))
        ax.barh(range(len(corrections)), list(corrections.values()), color="#ddcc77")
        ax.set_yticks(range(len(corrections)), [_short(n) for n in corrections], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("largest bias correction (output LSBs)")
        plots.append(("Empirical bias correction per layer", _png(fig)))
        plt.close(fig)
    return plots


def write_html(report: dict, path: Path) -> None:
    from edgeq.codegen.render import template

    rows = [{"name": n, "kind": t["kind"], "exponent": t["exponent"], "zero_point": t.get("zero_point", 0),
             "sqnr": "-" if t.get("sqnr_db") is None else f"{t['sqnr_db']:.1f}"} for n, t in report["tensors"].items()]
    path.write_text(template("report/quant_report.html.j2").render(
        report=report, summary=report["_summary"], rows=rows, plots=_plots(report)))
