"""The power-of-two quantizer's driver: float graph + calibration data -> integer graph, with typed options
and a typed result (what `edgeq build --quant pot` and `edgeq quantize` run).

Steps: global pools as MEANs, then per candidate variant (cross-layer equalization off/on, then GPTQ or
nearest rounding) high-bias absorption, activation statistics, power-of-two scales, weight rounding and bias
correction layer by layer; the variant kept is chosen on the calibration data by SELECTION_RULE, fixed before any
evaluation figure was looked at (README, "Power-of-two quantization of float models"). --mixed-precision then
quantizes the kept variant again with int16 activations within the budgets (edgeq.quant.mixed).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph

EQUALIZATION = ("auto", "on", "off")
BIAS_CORRECTION = ("empirical", "analytic", "off")
ROUNDING = ("auto", "gptq", "adaround", "nearest")
WEIGHT_SCALES = ("per-channel", "per-tensor")
INPUT_SCALE = ("fitted", "power-of-two")
RESIZE = ("stretch", "center-crop")
SELECTION_RULE = ("the candidate with the highest output SQNR against the float model on the calibration data "
                  "(every model, classifier or not); equal SQNRs keep the first candidate (equalization off, "
                  "GPTQ rounding)")


@dataclass(frozen=True)
class QuantOptions:
    """How to quantize; the defaults are `edgeq quantize`'s."""
    equalization: str = "auto"  # on, off, or auto: both, kept by SELECTION_RULE
    bias_correction: str = "empirical"  # empirical (edgeq.quant.bias_correction), analytic, off
    # gptq (edgeq.quant.rounding), adaround (edgeq.quant.adaround), nearest, or auto: gptq and nearest on the
    # equalization kept, kept by SELECTION_RULE
    rounding: str = "auto"
    weight_scales: str = "per-channel"  # a power-of-two weight scale per output channel, or per-tensor
    input_zero_point: bool = True  # the graph input may be asymmetric (a zero point beside its 2^-n scale)
    # fitted: with input_zero_point, the graph input's scale may be no power of two, fitted to its range (its readers'
    # weight scales carry the difference, so every rescale stays a shift; edgeq.quant.pot.input_step_pair)
    input_scale: str = "fitted"
    bias_absorption: bool = True  # edgeq.passes.bias_absorption, where exact
    pool_as_mean: bool = True  # edgeq.passes.global_pool
    data_free: bool = False  # no data: batch-norm statistics and synthetic inputs in input_range
    input_range: str | None = None  # "LO,HI": data-free inputs, and image folders' pixel mapping
    resize: str = "stretch"  # image folders: stretch or center-crop
    cv_folds: int = 0  # > 1: k-fold cross-validation of the kept variant on the calibration data
    mixed_precision: bool = False  # int16 activations where most sensitive, within the budgets (edgeq.quant.mixed)
    max_arena: int | None = None  # bytes; the arena budget of mixed_precision
    max_latency: int | None = None  # instructions on the board's emulated core; the latency budget of mixed_precision

    def checked(self) -> "QuantOptions":
        for name, allowed in (("equalization", EQUALIZATION), ("bias_correction", BIAS_CORRECTION),
                              ("rounding", ROUNDING), ("weight_scales", WEIGHT_SCALES), ("input_scale", INPUT_SCALE),
                              ("resize", RESIZE)):
            if getattr(self, name) not in allowed:
                raise EdgeqError(f"Unknown --{name.replace('_', '-')} '{getattr(self, name)}'; choose one of "
                                 f"{', '.join(allowed)}.")
        budgeted = self.max_arena is not None or self.max_latency is not None
        if self.mixed_precision != budgeted:
            raise EdgeqError("--mixed-precision goes with a budget, --max-arena BYTES and/or --max-latency "
                             "INSTRUCTIONS, and a budget with --mixed-precision: mixed precision spends it on int16 "
                             "activations (for instance 1.25 times the arena `edgeq build` prints for the plain int8 "
                             "build).")
        for flag, value, unit in (("--max-arena", self.max_arena, "bytes"),
                                  ("--max-latency", self.max_latency, "instructions")):
            if value is not None and value <= 0:
                raise EdgeqError(f"{flag} {value}: give the budget in {unit}, a positive number.")
        if self.cv_folds < 0 or self.cv_folds == 1:
            raise EdgeqError(f"--cv-folds {self.cv_folds}: give 0 (no cross-validation) or 2 or more folds.")
        if self.data_free:  # data-free: equalization on unless off, analytic correction, nearest rounding
            return replace(self, equalization="off" if self.equalization == "off" else "on",
                           bias_correction="analytic" if self.bias_correction != "off" else "off",
                           rounding="nearest", cv_folds=0)
        return self


@dataclass
class Candidate:
    """One variant quantized on the calibration data, and how it scored there."""
    equalization: bool
    top1_agreement: float
    output_sqnr_db: float
    rounding: str = "gptq"


@dataclass
class QuantSummary:
    equalization: bool
    equalized_pairs: list
    data_free: bool
    high_bias_absorbed: dict[str, float]
    global_pools_as_means: list[str]
    bias_correction: str
    rounding: str
    weight_scales: str
    input_zero_point: int  # the graph input's zero point (0: symmetric; -128: unsigned)
    output_sqnr_db: float
    calibration_top1_agreement: float
    bias_correction_max_lsb: dict[str, float]
    seconds: float = 0.0
    candidates: list[Candidate] = field(default_factory=list)
    mixed_precision: dict | None = None  # edgeq.quant.mixed.MixedPrecision, as a dict
    selection_rule: str = SELECTION_RULE


@dataclass
class CrossValidation:
    """The kept variant quantized on k-1 folds of the calibration data and scored on the fold left out."""
    folds: int
    top1_agreement: list[float]  # per held-out fold
    output_sqnr_db: list[float]
    in_sample_top1_agreement: float  # quantized and scored on all the calibration data
    in_sample_output_sqnr_db: float

    @property
    def mean_top1_agreement(self) -> float:
        return float(np.mean(self.top1_agreement))

    @property
    def mean_output_sqnr_db(self) -> float:
        return float(np.mean(self.output_sqnr_db))


@dataclass
class QuantResult:
    graph: Graph  # the integer graph
    float_graph: Graph  # the float graph it quantizes (equalized, pools as means, biases absorbed)
    calibration_inputs: np.ndarray
    summary: QuantSummary
    tensors: dict[str, dict]  # per tensor: kind, exponent, zero point, error, range
    equalization: dict  # pairs and per-channel weight ranges before and after
    cross_validation: CrossValidation | None = None


def calibration_inputs(graph: Graph, calib: str | Path | None, options: QuantOptions = QuantOptions()) -> np.ndarray:
    """The float inputs quantization calibrates on: the user's (arrays, or a folder of images scaled onto
    input_range, 0,1 by default), or synthetic ones in data-free mode."""
    from edgeq.quant.calibration import load_calibration
    from edgeq.quant.data_free import parse_input_range, synthetic_inputs

    if options.data_free:
        return synthetic_inputs(graph, parse_input_range(options.input_range, graph))
    if calib is None:
        raise EdgeqError(f"{graph.name} is a float model and edgeq runs int8: quantize it with --quant pot "
                         "--calib X.npz (key x: [N, *input_shape] float32 in the model's input layout and "
                         "scaling), or without data with --data-free --input-range LO,HI, or convert it to full "
                         "int8 with the TFLite converter.")
    if Path(calib).is_dir():
        return load_calibration(calib, graph, parse_input_range(options.input_range or "0,1", graph), options.resize)
    return load_calibration(calib, graph)


def quantize(graph: Graph, calib: str | Path | np.ndarray | None, options: QuantOptions = QuantOptions(),
             echo: Callable[[str], None] = print, arena_of: Callable[[Graph], int] | None = None,
             latency_of: Callable[[Graph], dict[str, int]] | None = None) -> QuantResult:
    """Power-of-two quantization of a float graph on calibration data (a path, or the float inputs
    themselves as [N, *input_shape]). arena_of: the arena bytes of an integer graph, which mixed precision keeps
    within options.max_arena (default: edgeq's planner with the reference kernels); latency_of: an integer graph's
    per-layer instructions on the target's emulated core (edgeq.quant.mixed.board_latency), which it keeps within
    options.max_latency."""
    import time

    from edgeq.quant.calibration import check_outcome, collapse_error, collect_stats
    from edgeq.quant.executor import run_float_batch, stateful
    from edgeq.quant.pot_state import stateful_options

    start = time.perf_counter()
    options = options.checked()
    if stateful(graph):  # calibration samples are one sequence of invokes (edgeq.quant.pot_state)
        options = stateful_options(options, echo)
    if options.max_latency is not None and latency_of is None:
        raise EdgeqError("--max-latency counts instructions on a board's emulated core: give it to `edgeq build` "
                         "with --board, or budget the arena alone with --max-arena.")
    if graph.is_integer:
        raise EdgeqError(f"{graph.name} is already an integer model: build it with --quant keep, or give the float "
                         "model to quantize it with power-of-two scales.")
    x = calib.astype(np.float32) if isinstance(calib, np.ndarray) else calibration_inputs(graph, calib, options)
    graph, pools_as_means = _pools_as_means(graph, options)
    candidates = {"on": [True], "off": [False], "auto": [False, True]}[options.equalization]
    stats = None
    with np.errstate(all="ignore"):  # overflow shows as non-finite outputs, refused with the numbers
        if candidates[0] or options.data_free:
            reference = run_float_batch(graph, x)[graph.outputs[0]]
        else:  # the statistics of the graph as it is carry its outputs
            echo(f"calibrating on {len(x)} samples ...")
            stats, reference = collect_stats(graph, x, keep_outputs=True)
    reference = reference.reshape(len(x), -1).astype(np.float64)
    check_outcome(graph.name, x, reference)
    memo = {False: stats}  # each equalization's statistics, collected once
    wide = options  # mixed precision widens the int8 build SELECTION_RULE keeps, so it only adds int16 to it
    options = replace(options, mixed_precision=False, max_arena=None, max_latency=None)
    first = replace(options, rounding="gptq") if options.rounding == "auto" else options
    results = [_quantize_variant(graph, x, reference, cle, first, pools_as_means, echo, memo, arena_of, latency_of)
               for cle in candidates]
    best = _kept(results, "equalization", lambda q: "on" if q.summary.equalization else "off", echo)
    if options.rounding == "auto":
        cle = best[0].summary.equalization
        results.append(_quantize_variant(graph, x, reference, cle, replace(options, rounding="nearest"),
                                         pools_as_means, echo, memo, arena_of, latency_of))
        best = _kept([best, results[-1]], "rounding", lambda q: q.summary.rounding, echo)
    if wide.mixed_precision:
        kept = best[0].summary
        echo(f"mixed precision on the int8 build kept (equalization {'on' if kept.equalization else 'off'}, "
             f"{kept.rounding} rounding, {kept.output_sqnr_db:.1f} dB output SQNR) ...")
        best = _quantize_variant(graph, x, reference, kept.equalization, replace(wide, rounding=kept.rounding),
                                 pools_as_means, echo, memo, arena_of, latency_of)
        results.append(best)
    for r in results:
        r[0].summary.candidates = [Candidate(q.summary.equalization, q.summary.calibration_top1_agreement,
                                             q.summary.output_sqnr_db, q.summary.rounding) for q, _ in results]
    result, collapsed = best
    if collapsed:
        raise collapse_error(graph.name, x)
    result.summary.seconds = time.perf_counter() - start
    if options.cv_folds:
        fixed = replace(wide, equalization="on" if result.summary.equalization else "off",
                        rounding=result.summary.rounding, cv_folds=0)
        result.cross_validation = cross_validate(graph, x, reference, fixed, options.cv_folds, result, echo,
                                                 arena_of, latency_of)
    return result


def _kept(results: list, what: str, label, echo):
    """The result SELECTION_RULE keeps among results (the first on equal SQNRs), said in one line when there is a
    choice."""
    best = max(results, key=lambda r: r[0].summary.output_sqnr_db)  # max keeps the first of equals
    if len(results) > 1:
        scores = [f"{label(q)} {q.summary.output_sqnr_db:.1f} dB output SQNR "
                  f"({100 * q.summary.calibration_top1_agreement:.1f}% top-1 agreement)" for q, _ in results]
        echo(f"{what}: {', '.join(scores)} on the calibration data; keeping {label(best[0])} (higher SQNR)")
    return best


def _pools_as_means(graph: Graph, options: QuantOptions) -> tuple[Graph, list[str]]:
    from edgeq.passes.global_pool import global_average_pools_to_means
    return global_average_pools_to_means(graph) if options.pool_as_mean else (graph, [])


def _quantize_variant(graph: Graph, x: np.ndarray, reference: np.ndarray, cle: bool, options: QuantOptions,
                      pools_as_means: list[str], echo, memo: dict | None = None, arena_of=None,
                      latency_of=None) -> tuple[QuantResult, bool]:
    """One candidate: the graph equalized or not, quantized, its weights rounded as options say, scored on the
    calibration data (memo: what candidates share, used when there and filled in). Returns it and whether its outputs
    collapsed (the same for every sample)."""
    from edgeq.quant.bias_correction import correct_biases
    from edgeq.quant.calibration import check_outcome
    from edgeq.quant.pot import dequantized_outputs

    memo = {} if memo is None else memo
    if ("quantized", cle) not in memo:  # the int8 graph before rounding, which every rounding and mixed precision share
        memo["quantized", cle] = _quantized_graph(graph, x, cle, options, echo, memo)
    g, eq_info, absorbed, qgraph, tensors = copy.deepcopy(memo["quantized", cle])
    mixed, narrow = None, qgraph
    if options.mixed_precision:  # before rounding and bias correction, which then see the int16 inputs
        from edgeq.quant.mixed import arena_bytes, choose
        qgraph, mixed = choose(g, qgraph, x, options.max_arena, arena_of or arena_bytes, echo, options.max_latency,
                               latency_of)
    while True:
        if options.bias_correction == "empirical" or options.rounding != "nearest":
            corrections, outputs = correct_biases(g, qgraph, x, options.bias_correction == "empirical",
                                                  options.rounding, echo)
        else:
            corrections, outputs = {}, dequantized_outputs(qgraph, x)
        if mixed is None or options.max_latency is None:
            break
        from edgeq.quant.mixed import arena_bytes, within_latency
        wider = within_latency(narrow, qgraph, mixed, latency_of, arena_of or arena_bytes, echo)
        if wider is None:
            break
        qgraph = wider
    if mixed is not None:
        qgraph.notes = list(qgraph.notes) + [mixed.note()]
        for name in (n for n in mixed.int16_tensors if n in tensors):
            tensors[name].update(dtype="int16", exponent=tensors[name]["exponent"] + (
                8 if tensors[name]["zero_point"] != -128 else 7), zero_point=0)
    sqnr, agree = output_sqnr(reference, outputs), top1_agreement(reference, outputs)
    summary = QuantSummary(
        equalization=cle, equalized_pairs=eq_info["pairs"], data_free=options.data_free, high_bias_absorbed=absorbed,
        global_pools_as_means=pools_as_means, bias_correction=options.bias_correction, rounding=options.rounding,
        weight_scales=options.weight_scales,
        input_zero_point=int(qgraph.t(qgraph.inputs[0]).quant.zp), output_sqnr_db=sqnr,
        calibration_top1_agreement=agree, bias_correction_max_lsb=corrections,
        mixed_precision=None if mixed is None else mixed.figures())
    collapsed = check_outcome(g.name, x, reference, outputs, _output_step(qgraph))
    return QuantResult(qgraph, g, x, summary, tensors, eq_info), collapsed


def _quantized_graph(graph: Graph, x: np.ndarray, cle: bool, options: QuantOptions, echo, memo: dict):
    """A candidate's float graph (equalized or not, biases absorbed) and its int8 graph before weight rounding and
    bias correction; memo: equalization -> the graph's statistics."""
    from edgeq.passes.equalization import equalize
    from edgeq.quant.pot import quantize_graph

    g, eq_info = equalize(graph) if cle else (graph, {"pairs": []})
    if memo.get(cle) is None:
        echo(f"calibrating on {len(x)} samples{' after cross-layer equalization' if cle else ''} ...")
        memo[cle] = _stats_of(g, x, options)
    g, stats, absorbed = _statistics(g, x, options, memo[cle])
    if options.data_free:
        from_bn = sum(1 for n in g.bn_stats if n in stats)
        echo(f"warning: data-free quantization of {g.name}: the ranges of {from_bn} of {len(stats)} activation "
             f"tensors come from batch-norm statistics, the others from {len(x)} synthetic inputs uniform in "
             f"[{options.input_range}]; bias correction is analytic. Expect lower accuracy than with calibration "
             "data: on MLPerf Tiny models without batch-norm statistics it cost up to 24 points of top-1 agreement "
             "(README, 'Data-free mode'). Give --calib with a few hundred real samples when you can.")
    qgraph, tensors = quantize_graph(g, stats, bias_correction=options.bias_correction == "analytic",
                                     input_zero_point=options.input_zero_point,
                                     inputs=None if options.data_free else x,
                                     per_channel_scales=options.weight_scales == "per-channel",
                                     fitted_input_scale=options.input_scale == "fitted")
    return g, eq_info, absorbed, qgraph, tensors


def _statistics(g: Graph, x: np.ndarray, options: QuantOptions, stats=None):
    """Activation statistics of the float graph g (stats: already collected), after high-bias absorption when
    it moves anything. Returns (graph, statistics, {layer: largest amount absorbed})."""
    from edgeq.passes.bias_absorption import absorb_high_biases

    stats = stats if stats is not None else _stats_of(g, x, options)
    if not options.bias_absorption:
        return g, stats, {}
    if options.data_free:  # DFQ: the pre-activation stays above beta - 3|gamma|
        bounds = {n: mean - 3 * std for n, (mean, std) in g.bn_stats.items()}
    else:  # a positive smallest value after the ReLU: the ReLU never clipped that channel
        bounds = {n: st.channel_min for n, st in stats.items()}
    absorbed_graph, moved = absorb_high_biases(g, bounds)
    if not moved:
        return g, stats, {}
    if options.data_free:
        return absorbed_graph, _stats_of(absorbed_graph, x, options), moved
    # on the calibration data only the absorbing layers' outputs change, by exactly the amount moved
    shifted = dict(stats)
    for op in g.ops:
        if op.name in moved:
            out = op.outputs[0]
            shifted[out] = stats[out].shifted(np.maximum(np.asarray(bounds[out], np.float64), 0.0))
    return absorbed_graph, shifted, moved


def _stats_of(g: Graph, x: np.ndarray, options: QuantOptions):
    from edgeq.quant.calibration import collect_stats
    from edgeq.quant.data_free import data_free_stats
    return data_free_stats(g, x)[0] if options.data_free else collect_stats(g, x)


def _output_step(qgraph: Graph) -> float:
    quant = qgraph.t(qgraph.outputs[0]).quant
    return float(np.max(quant.scale)) if quant is not None else 0.0


def output_sqnr(reference: np.ndarray, outputs: np.ndarray) -> float:
    """dB of the float outputs' energy over the quantized outputs' squared error."""
    noise = float(np.sum((reference - outputs) ** 2))
    return 10 * math.log10(float(np.sum(reference ** 2)) / noise) if noise > 0 else float("inf")


def top1_agreement(reference: np.ndarray, outputs: np.ndarray) -> float:
    return float(np.mean(reference.argmax(axis=1) == outputs.argmax(axis=1)))


def cross_validate(graph: Graph, x: np.ndarray, reference: np.ndarray, options: QuantOptions, folds: int,
                   result: QuantResult, echo, arena_of=None, latency_of=None) -> CrossValidation:
    """k-fold cross-validation on the calibration data of one fixed variant: what the in-sample figures
    would look like on inputs the quantizer did not see."""
    from edgeq.quant.pot import dequantized_outputs

    if len(x) < 2 * folds:
        raise EdgeqError(f"--cv-folds {folds} needs at least {2 * folds} calibration samples; there are {len(x)}.")
    order = np.random.default_rng(0).permutation(len(x))
    agree, sqnr = [], []
    for k, held_out in enumerate(np.array_split(order, folds)):
        echo(f"cross-validation: fold {k + 1} of {folds} ...")
        train = np.setdiff1d(order, held_out)
        fold = quantize(graph, x[np.sort(train)], options, echo=lambda *_: None, arena_of=arena_of,
                        latency_of=latency_of)
        outputs = dequantized_outputs(fold.graph, x[held_out])
        agree.append(top1_agreement(reference[held_out], outputs))
        sqnr.append(output_sqnr(reference[held_out], outputs))
    cv = CrossValidation(folds, agree, sqnr, result.summary.calibration_top1_agreement, result.summary.output_sqnr_db)
    echo(f"cross-validation ({folds} folds): held-out top-1 agreement {100 * cv.mean_top1_agreement:.1f}% "
         f"(in sample {100 * cv.in_sample_top1_agreement:.1f}%), output SQNR {cv.mean_output_sqnr_db:.1f} dB "
         f"(in sample {cv.in_sample_output_sqnr_db:.1f} dB)")
    return cv
