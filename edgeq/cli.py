"""The `edgeq` command: thin; parses, calls the pipeline, prints."""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import click
import numpy as np

from edgeq.codegen.backends import KERNEL_CHOICES
from edgeq.errors import EdgeqError


def _load(model: str):
    from edgeq.frontends import load_model
    ctx = click.get_current_context(silent=True)
    return load_model(model, ctx.meta.get("edgeq.input_layout", "nchw") if ctx else "nchw")


_QUANT_FIELDS = ("equalization", "bias_correction", "rounding", "weight_scales", "input_zero_point", "input_scale",
                 "bias_absorption", "pool_as_mean", "data_free", "input_range", "resize", "cv_folds", "mixed_precision",
                 "max_arena", "max_latency")


def _calibration_options(fn):
    """The power-of-two quantizer's options, shared by build and quantize: the command receives `calib` and
    `quant_options` (edgeq.quant.driver.QuantOptions)."""
    import functools

    command = fn

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from edgeq.quant.driver import QuantOptions
        return command(*args, quant_options=QuantOptions(**{k: kwargs.pop(k) for k in _QUANT_FIELDS}), **kwargs)

    fn = wrapper
    fn = click.option("--calib", type=click.Path(),
                      help="Calibration inputs (.npz key x, or .npy) in the model's input layout and scaling, or a "
                           "folder of images (see --input-range, --resize).")(fn)
    fn = click.option("--equalization", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
                      help="Cross-layer equalization before quantizing (auto: with and without, keeping the one with "
                           "the higher output SQNR on the calibration data).")(fn)
    fn = click.option("--bias-correction", type=click.Choice(["empirical", "analytic", "off"]), default="empirical",
                      show_default=True,
                      help="Move the quantized model's mean error per channel into the biases: empirical (measured "
                           "layer by layer on the calibration data), analytic (weight error times the mean input), "
                           "or off.")(fn)
    fn = click.option("--resize", type=click.Choice(["stretch", "center-crop"]), default="stretch", show_default=True,
                      help="--calib FOLDER of images: how each image is brought to the input's size.")(fn)
    fn = click.option("--rounding", type=click.Choice(["auto", "gptq", "adaround", "nearest"]), default="auto",
                      show_default=True,
                      help="Weight rounding: error-compensating (GPTQ) against each layer's real inputs, adaptive "
                           "(AdaRound: learned up/down per weight; slower), to the nearest step (always so with "
                           "--data-free), or auto: GPTQ and nearest, keeping the higher output SQNR on the "
                           "calibration data.")(fn)
    fn = click.option("--weight-scales", type=click.Choice(["per-channel", "per-tensor"]), default="per-channel",
                      show_default=True,
                      help="One power-of-two weight scale per output channel (each layer's rescale is then a shift "
                           "per channel) or one per tensor.")(fn)
    fn = click.option("--input-zero-point/--no-input-zero-point", default=True, show_default=True,
                      help="Let the model's input take a zero point beside its power-of-two scale when that "
                           "quantizes it better (inputs read by conv/fully-connected layers only).")(fn)
    fn = click.option("--input-scale", type=click.Choice(["fitted", "power-of-two"]), default="fitted",
                      show_default=True,
                      help="With --input-zero-point, the model's input scale: fitted to the calibration range (no "
                           "power of two; the layers reading the input take the difference in their weight scales, "
                           "so every rescale stays a shift) when that quantizes it better, or a power of two.")(fn)
    fn = click.option("--cv-folds", type=click.IntRange(min=0), default=0, show_default=True,
                      help="Also cross-validate on the calibration data: quantize on K-1 folds, score on the one "
                           "left out, K times (K times slower); shown in the report.")(fn)
    fn = click.option("--mixed-precision", is_flag=True,
                      help="Give int16 activations to the tensors whose int8 rounding costs the output most, as long "
                           "as the arena stays within --max-arena.")(fn)
    fn = click.option("--max-arena", type=click.IntRange(min=1), metavar="BYTES",
                      help="--mixed-precision: the arena budget in bytes (edgeq's memory planner).")(fn)
    fn = click.option("--max-latency", type=click.IntRange(min=1), metavar="INSTRUCTIONS",
                      help="--mixed-precision, edgeq build: the latency budget, instructions per inference on the "
                           "board's emulated core (each layer measured with int8 and int16 activations).")(fn)
    fn = click.option("--pool-as-mean/--no-pool-as-mean", default=True, show_default=True,
                      help="Quantize global average pools as MEAN, so their output gets its own scale (int8 "
                           "AVERAGE_POOL_2D keeps its input's).")(fn)
    fn = click.option("--bias-absorption/--no-bias-absorption", default=True, show_default=True,
                      help="High-bias absorption into the next layer, where a ReLU layer's channels never clip.")(fn)
    fn = click.option("--input-range", help="The range LO,HI of the model's input values: image pixels 0..255 "
                                            "map onto it (default 0,1); data-free mode draws from it.")(fn)
    return click.option("--data-free", is_flag=True,
                        help="Quantize without calibration data: ranges from batch-norm statistics and synthetic "
                             "inputs in --input-range (less accurate; edgeq says by how much it guessed).")(fn)


# Kept in the click context by a callback, so the commands' signatures do not change.
_input_layout = click.option(
    "--input-layout", type=click.Choice(["nchw", "nhwc"]), default="nchw", show_default=True, expose_value=False,
    callback=lambda ctx, _param, value: ctx.meta.__setitem__("edgeq.input_layout", value),
    help="ONNX/.pt2 models: keep the model's NCHW input, or take NHWC input (no input reorder layer).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgeq")
def cli():
    """edgeq: compile a trained network into plain C for a microcontroller."""


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report instead of a table.")
@click.option("--board", "-b", default="host", show_default=True,
              help="Board whose kernel libraries implement the layers (see `edgeq boards`).")
@click.option("--kernels", type=click.Choice(KERNEL_CHOICES), default="auto", show_default=True,
              help="Kernel library, as for `edgeq build`.")
@_input_layout
def inspect(model, as_json, board, kernels):
    """Operators, shapes, MACs, weight bytes, the kernel each layer runs and the planned arena of MODEL."""
    from edgeq.inspect import inspect_graph
    from edgeq.targets.boards import get_board
    report = inspect_graph(_load(model), get_board(board), kernels, progress=lambda m: click.echo(m, err=True))
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    click.echo(f"{report['model']}: {len(report['ops'])} operators, {report['macs']:,} MACs, "
               f"{report['weights_bytes']:,} B weights, arena {report['arena_bytes']:,} B "
               f"(lower bound {report['arena_lower_bound_bytes']:,} B)")
    click.echo(f"{'#':>3}  {'operator':<20} {'output shape':<18} {'MACs':>12} {'weights B':>10}  implementation")
    for op in report["ops"]:
        impl = f"{op['backend']}: {op['impl']}" if op.get("impl") else ""
        click.echo(f"{op['index']:>3}  {op['kind']:<20} {str(tuple(op['output_shape'])):<18} "
                   f"{op['macs']:>12,} {op['weights_bytes']:>10,}  {impl}")
        for reason in op.get("declined", []):
            library, _, why = reason.partition(": ")
            click.echo(f"{'':>5}not {library}: {why}")
        if op.get("measured_instructions"):
            click.echo(f"{'':>5}measured: " + ", ".join(f"{k} {v:,}" for k, v in op["measured_instructions"].items())
                       + " instructions")
    for note in report["notes"]:
        click.echo(f"note: {note}")


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--board", "-b", default="host", show_default=True, help="Target board (see `edgeq boards`).")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--quant", type=click.Choice(["keep", "pot"]),
              help="keep (default for int8 models): the model's own quantization, bit-exact with TFLite Micro. "
                   "pot (default for float models): power-of-two scales from --calib data.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="--quant pot: write the quantization report (plots of exponents, SQNR, channel ranges) as HTML.")
@click.option("--lib", is_flag=True, help="Write only the model and kernel sources, for an existing firmware.")
@click.option("--kernels", type=click.Choice(KERNEL_CHOICES), default="auto", show_default=True,
              help="Kernel library: auto (the board's libraries in its order of preference, per layer), or one "
                   "library with the portable reference C as the fallback for layers it cannot run.")
@click.option("--clock", type=click.Choice(["max", "reset"]), default="max", show_default=True,
              help="Real boards: run the core at the board's full clock (PLL, flash wait states, caches), or leave "
                   "the reset clock.")
@click.option("--harness", type=click.Choice(["edgeq", "mlperf-tiny"]), default="edgeq", show_default=True,
              help="Firmware harness: edgeq's serial protocol (run, profile, validate), or MLPerf Tiny's "
                   "performance-mode protocol for its runner.")
@click.option("--mlperf-model", type=click.Choice(["ad01", "kws01", "ic01", "vww01"]),
              help="--harness mlperf-tiny: the benchmark (default: recognised from the model's input shape).")
@_calibration_options
@_input_layout
def build(model, board, out_dir, quant, calib, quant_options, report_path, lib, kernels, clock, harness, mlperf_model):
    """Generate C for MODEL; compile it for the host, or build a firmware ELF for a board."""
    from edgeq.build import compile_graph, write_project
    from edgeq.ir.shapes import check_sizes
    from edgeq.targets.boards import get_board
    b = get_board(board)
    if (harness != "edgeq" or mlperf_model) and (b.kind != "mcu" or lib):
        raise EdgeqError(f"--harness/--mlperf-model build firmware for a microcontroller board; {b.name} "
                         f"{'with --lib gets no firmware' if lib else 'is no microcontroller board'}.")
    graph = _load(model)
    check_sizes(graph, b)  # before calibration, which takes minutes on a model no board can hold
    quant = quant or ("keep" if graph.is_integer else "pot")
    if quant == "pot":
        from edgeq.quant.driver import quantize
        from edgeq.quant.mixed import board_arena, board_latency
        latency_of = board_latency(b, kernels, click.echo) if quant_options.max_latency is not None else None
        result = quantize(graph, calib, quant_options, click.echo, board_arena(b, kernels), latency_of)
        graph = result.graph
        if report_path:
            from edgeq.quant.report import build_report, write_html
            write_html(build_report(result), Path(report_path))
            click.echo(f"wrote {report_path}")
    compiled = compile_graph(graph, quant, b, kernels, progress=click.echo)
    if quant == "pot":
        from edgeq.quant.mixed import check_budget
        check_budget(compiled.plan.size, quant_options)
    write_project(compiled, b, quant, Path(out_dir), Path(model), lib_only=lib, echo=click.echo,
                  firmware=dict(clock=clock, harness=harness, mlperf_model=mlperf_model))
    layers = sum(1 for c in compiled.calls if not c.alias)
    click.echo(f"built {graph.name} for {b.name} in {out_dir}: {layers} layers, arena {compiled.plan.size:,} B "
               f"(lower bound {compiled.plan.lower_bound:,} B)")


@cli.command()
@click.argument("build_dir", type=click.Path(file_okay=False))
@click.option("--input", "input_paths", type=click.Path(dir_okay=False), required=True, multiple=True,
              help="Once per model input, in the model's input order: .npy of shape [N, *input_shape], or .npz with "
                   "key x (int8 used as is, float32 quantized with the input scale); or one .npz keyed by input "
                   "name.")
@click.option("--output", "output_path", type=click.Path(dir_okay=False), required=True,
              help=".npy to write (.npz keyed by output name when the model has several outputs).")
@click.option("--dequantize", is_flag=True, help="Save float32 outputs (scale * (q - zero_point)).")
@click.option("--port", help="Serial port of a real board (emulated boards are started in QEMU).")
def run(build_dir, input_paths, output_path, dequantize, port):
    """Run a built model on its board for every sample in --input."""
    from edgeq.build import load_manifest
    from edgeq.run import read_inputs, run_build
    m = load_manifest(Path(build_dir))
    if len(m["outputs"]) > 1 and not output_path.lower().endswith(".npz"):
        raise EdgeqError(f"The model has {len(m['outputs'])} outputs; give --output a .npz file, which holds one array "
                         "per output, keyed by output name.")
    xs = read_inputs(list(input_paths), m)
    ys = run_build(Path(build_dir), xs, dequantize, port, echo=lambda msg: click.echo(msg, err=True))
    if len(ys) == 1:
        np.save(output_path, ys[0])
    else:
        np.savez(output_path, **{t["name"]: y for t, y in zip(m["outputs"], ys)})
    shapes = ", ".join(f"{y.dtype} {tuple(y.shape)}" for y in ys)
    click.echo(f"ran {len(xs[0])} samples; outputs {shapes} saved to {output_path}")


@cli.command("quantize")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--tflite", "tflite_path", type=click.Path(dir_okay=False),
              help="Also write the quantized model as an int8 .tflite (for LiteRT and NPU compilers such as Vela).")
@_calibration_options
@_input_layout
def quantize_cmd(model, calib, quant_options, out_dir, tflite_path):
    """Power-of-two quantization of a float MODEL, with a per-tensor report (exponents, SQNR)."""
    from edgeq.quant.driver import quantize
    from edgeq.quant.report import build_report, scale_label, write_html, write_json
    if tflite_path and quant_options.mixed_precision:
        raise EdgeqError("--tflite writes int8 models, and --mixed-precision gives some activations int16: drop one of "
                         "the two (build the mixed-precision model with `edgeq build` instead).")
    result = quantize(_load(model), calib, quant_options, click.echo)
    if tflite_path:  # exported before any file is written: a graph the export refuses leaves nothing behind
        from edgeq.export import to_tflite
        tflite_bytes = to_tflite(result.graph)
    report = build_report(result)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(report, out / "quant_report.json")
    write_html(report, out / "quant_report.html")
    click.echo(f"{'tensor':<60} {'kind':<10} {'scale':>8} {'zp':>5} {'SQNR dB':>8}")
    for name, c in report["tensors"].items():
        q = f"{c['sqnr_db']:8.1f}" if c.get("sqnr_db") is not None else "       -"
        click.echo(f"{name[-60:]:<60} {c['kind']:<10} {scale_label(c):>8} {c.get('zero_point', 0):>5} {q}")
    click.echo(f"wrote {out / 'quant_report.json'} and {out / 'quant_report.html'}")
    if tflite_path:
        Path(tflite_path).write_bytes(tflite_bytes)
        click.echo(f"wrote {tflite_path}")


@cli.command()
@click.argument("build_dir", type=click.Path(file_okay=False))
@click.option("--port", help="Serial port (real boards; ignored by the emulator).")
def flash(build_dir, port):
    """Put the built firmware on its board (QEMU boards: start the emulator with it)."""
    from edgeq.build import load_manifest
    from edgeq.targets.device import flash as do_flash
    do_flash(Path(build_dir), load_manifest(Path(build_dir)), port, echo=click.echo)


@cli.command()
@click.argument("build_dir", type=click.Path(file_okay=False))
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the report as JSON.")
@click.option("--runs", default=1, show_default=True, help="Inferences to run; the last one is reported.")
@click.option("--port", help="Serial port of a real board.")
def profile(build_dir, json_path, runs, port):
    """Cycles of the whole inference and of every layer, read back from the board."""
    from edgeq.build import load_manifest
    from edgeq.targets.device import open_device, profile as do_profile
    m = load_manifest(Path(build_dir))
    with open_device(Path(build_dir), m, port) as (link, board):
        report = do_profile(link, board, m, runs)
    total = report["cycles_per_inference"]
    click.echo(f"{m['model']} on {report['board']} at {report['clock_hz'] / 1e6:g} MHz")
    impls = {layer["name"]: f"{layer['backend']}: {layer['impl']}" for layer in m["layers"] if "impl" in layer}
    click.echo(f"{'#':>3}  {'layer':<28} {'implementation':<45} {'cycles':>12} {'share':>7}")
    for i, layer in enumerate(report["layers"]):
        click.echo(f"{i:>3}  {layer['name']:<28} {impls.get(layer['name'], layer['kernel']):<45} "
                   f"{layer['cycles']:>12,} {100 * layer['cycles'] / max(total, 1):>6.1f}%")
    click.echo(f"     {'total':<28} {'':<45} {total:>12,}  ({1e3 * total / report['clock_hz']:.2f} ms)")
    if "instructions_per_inference" in report:
        click.echo(f"     executed instructions (QEMU -icount): {report['instructions_per_inference']:,}")
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=1) + "\n")


@cli.command()
@click.argument("build_dir", type=click.Path(file_okay=False))
@click.option("--data", "data_path", type=click.Path(dir_okay=False), required=True,
              help=".npz with key x ([N, *input_shape], float32 or int8) or a .npy; for several inputs, one .npz "
                   "keyed by input name.")
@click.option("--port", help="Serial port of a real board.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the report as JSON.")
def validate(build_dir, data_path, port, json_path):
    """Run real inputs on the board and compare its outputs bit for bit with edgeq's reference."""
    from edgeq.build import load_manifest
    from edgeq.run import read_inputs, validate_build
    xs = read_inputs([data_path], load_manifest(Path(build_dir)))
    report = validate_build(Path(build_dir), xs, port, echo=lambda msg: click.echo(msg, err=True))
    click.echo(f"{report['board']}: {report['bit_exact']} of {report['samples']} samples bit-exact with edgeq's "
               f"reference; top-1 agreement {100 * report['top1_agreement_with_reference']:.1f}%")
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=1) + "\n")
    if report["bit_exact"] != report["samples"]:
        raise EdgeqError(f"{report['samples'] - report['bit_exact']} sample(s) differ from the reference "
                         f"(first: {report['mismatched_samples'][:5]}, largest difference "
                         f"{report['max_abs_difference']}).")


@cli.command()
def boards():
    """The boards edgeq knows."""
    from edgeq.targets.boards import all_boards
    rows = [("board", "kind", "core", "flash", "RAM", "features / description")]
    for b in all_boards():
        aliases = f"; alias {', '.join(b.aliases)}" if b.aliases else ""
        kind = b.kind if b.kind in ("host", "npu") else ("emulated" if b.emulated else "real")
        mem = [f"{r['length'] // 1024:,} KiB" if r["length"] else "-" for r in (b.flash, b.ram)]
        feats = ",".join(b.features) or "-"
        rows.append((b.name, kind, b.core, *mem, f"{feats}; {b.description}{aliases}"))
    # columns as wide as their longest entry (board names such as qemu-riscv32-virt-rvv vary in length)
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        left = " ".join(f"{v:<{w}}" for v, w in zip(row[:3], widths))
        right = " ".join(f"{v:>{w}}" for v, w in zip(row[3:5], widths[3:]))
        click.echo(f"{left} {right}  {row[5]}")


def _terminated(signum, _frame) -> None:
    # SIGTERM unwinds like Ctrl-C, so staging folders, emulators and child processes are cleaned up
    raise SystemExit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _terminated)
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except EdgeqError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    except Exception as e:  # a bug: one line unless asked for the traceback
        if os.environ.get("EDGEQ_DEBUG"):
            raise
        click.echo(f"internal error: {type(e).__name__}: {e}. This is a bug in edgeq; rerun with EDGEQ_DEBUG=1 "
                   "for the traceback and report it.", err=True)
        sys.exit(70)
