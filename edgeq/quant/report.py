"""The quantization report: per tensor the chosen exponent and its SQNR against the float model, per
equalized layer the weight ranges per channel before and after, as JSON and as an HTML page of plots."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgeq.quant.driver import QuantResult


def build_report(result: "QuantResult") -> dict:
    """The JSON report of a quantization (edgeq.quant.driver.QuantResult), with each activation's SQNR
    against the float model on the first calibration samples."""
    from dataclasses import asdict

    from edgeq.quant.pot import sqnr_report

    sqnr = sqnr_report(result.float_graph, result.graph, result.calibration_inputs)
    cv = result.cross_validation
    return {"model": result.graph.name, "summary": asdict(result.summary), "equalization": result.equalization,
            "cross_validation": None if cv is None else {**asdict(cv), "mean_top1_agreement": cv.mean_top1_agreement,
                                                         "mean_output_sqnr_db": cv.mean_output_sqnr_db},
            "tensors": {n: {**c, "sqnr_db": sqnr.get(n)} for n, c in result.tensors.items()}}


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
        ax.barh(range(len(weights)), [t.get("max_exponent", t["exponent"]) - t["exponent"] for _, t in weights],
                left=[t["exponent"] for _, t in weights], color="#ddaa33", label="per-channel: up to the finest")
        ax.legend(fontsize=7, loc="lower right")
        ax.set_xlabel("weight exponent n (scale 2^-n): coarsest channel, and the range over channels")
        plots.append(("Weight exponents per layer", _png(fig)))
        plt.close(fig)
    eq = report["equalization"]
    layers = list(eq.get("ranges_before", {}))
    if layers and report["summary"]["equalization"]:
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
    corrections = report["summary"].get("bias_correction_max_lsb") or {}
    if corrections:
        fig, ax = plt.subplots(figsize=(10, 0.25 * len(corrections) + 1.2))
        ax.barh(range(len(corrections)), list(corrections.values()), color="#ddcc77")
        ax.set_yticks(range(len(corrections)), [_short(n) for n in corrections], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("largest bias correction (output LSBs)")
        plots.append(("Empirical bias correction per layer", _png(fig)))
        plt.close(fig)
    cv = report.get("cross_validation")
    if cv:
        fig, axes = plt.subplots(1, 2, figsize=(10, 2.6))
        folds = range(1, cv["folds"] + 1)
        for ax, key, label, scale in ((axes[0], "top1_agreement", "top-1 agreement with float (%)", 100),
                                      (axes[1], "output_sqnr_db", "output SQNR (dB)", 1)):
            ax.bar(folds, [scale * v for v in cv[key]], color="#88ccee", label="held-out fold")
            ax.axhline(scale * cv[f"in_sample_{key}"], color="#882255", lw=1.5, label="in sample (all data)")
            ax.set_xlabel("fold")
            ax.set_ylabel(label)
            ax.set_xticks(list(folds))
        axes[0].legend(fontsize=7, loc="lower right")
        plots.append((f"Cross-validation on the calibration data ({cv['folds']} folds: quantized on the others, "
                      "scored on the fold left out)", _png(fig)))
        plt.close(fig)
    return plots


def scale_label(t: dict) -> str:
    """A tensor's scale as the report shows it: 2^-n; per-channel weights coarsest..finest; a fitted input's scale
    as a number, and its readers' weights with the reciprocal of its mantissa they carry."""
    if "scale" in t:
        return f"{t['scale']:.6g}"
    label = f"2^-{t['exponent']}" + (f"..{t['max_exponent']}" if t.get("max_exponent", t["exponent"]) != t["exponent"]
                                     else "")
    return label + (f"*{t['reciprocal']:.6g}" if t.get("reciprocal", 1.0) != 1.0 else "")


def write_html(report: dict, path: Path) -> None:
    from edgeq.codegen.render import template

    rows = [{"name": n, "kind": t["kind"], "zero_point": t.get("zero_point", 0), "scale": scale_label(t),
             "sqnr": "-" if t.get("sqnr_db") is None else f"{t['sqnr_db']:.1f}"} for n, t in report["tensors"].items()]
    path.write_text(template("report/quant_report.html.j2").render(
        report=report, summary=report["summary"], rows=rows, plots=_plots(report)))
