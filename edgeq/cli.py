"""The `edgeq` command: thin; parses, calls the pipeline, prints."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
import numpy as np

from edgeq.errors import EdgeqError


def _load(model: str):
    from edgeq.frontends.tflite import load_tflite_file
    return load_tflite_file(model)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgeq")
def cli():
    """edgeq: compile a trained network into plain C for a microcontroller."""


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report instead of a table.")
def inspect(model, as_json):
    """Operators, shapes, MACs, weight bytes and the planned arena of MODEL."""
    from edgeq.inspect import inspect_graph
    report = inspect_graph(_load(model))
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    click.echo(f"{report['model']}: {len(report['ops'])} operators, {report['macs']:,} MACs, "
               f"{report['weights_bytes']:,} B weights, arena {report['arena_bytes']:,} B "
               f"(lower bound {report['arena_lower_bound_bytes']:,} B)")
    click.echo(f"{'#':>3}  {'operator':<20} {'output shape':<18} {'MACs':>12} {'weights B':>10}")
    for op in report["ops"]:
        click.echo(f"{op['index']:>3}  {op['kind']:<20} {str(tuple(op['output_shape'])):<18} "
                   f"{op['macs']:>12,} {op['weights_bytes']:>10,}")
    for note in report["notes"]:
        click.echo(f"note: {note}")


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--board", "-b", default="host", show_default=True, help="Target board (see `edgeq boards`).")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--quant", type=click.Choice(["keep"]), default="keep", show_default=True,
              help="keep: use the int8 model's own quantization, bit-exact with TFLite Micro.")
def build(model, board, out_dir, quant):
    """Generate C for MODEL (and, for the host board, compile it)."""
    from edgeq.build import compile_graph, write_project
    from edgeq.targets.boards import get_board
    b = get_board(board)
    graph = _load(model)
    compiled = compile_graph(graph, quant)
    write_project(compiled, b, quant, Path(out_dir))
    layers = sum(1 for c in compiled.calls if not c.alias)
    click.echo(f"built {graph.name} for {b.name} in {out_dir}: {layers} layers, arena {compiled.plan.size:,} B "
               f"(lower bound {compiled.plan.lower_bound:,} B)")


@cli.command()
@click.argument("build_dir", type=click.Path(file_okay=False))
@click.option("--input", "input_path", type=click.Path(dir_okay=False), required=True,
              help=".npy of shape [N, *input_shape]: int8 used as is, float32 quantized with the input scale.")
@click.option("--output", "output_path", type=click.Path(dir_okay=False), required=True, help=".npy to write.")
@click.option("--dequantize", is_flag=True, help="Save float32 outputs (scale * (q - zero_point)).")
def run(build_dir, input_path, output_path, dequantize):
    """Run a built model on its board for every sample in --input."""
    from edgeq.run import run_build
    x = _load_npy(input_path)
    y = run_build(Path(build_dir), x, dequantize)
    np.save(output_path, y)
    click.echo(f"ran {len(x)} samples; outputs {y.dtype} {tuple(y.shape)} saved to {output_path}")


@cli.command()
def boards():
    """The boards edgeq knows."""
    from edgeq.targets.boards import all_boards
    for b in all_boards():
        aliases = f" (alias {', '.join(b.aliases)})" if b.aliases else ""
        kind = "emulated" if b.emulated else b.kind
        click.echo(f"{b.name:<18} {kind:<9} {b.description}{aliases}")


def _load_npy(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise EdgeqError(f"Cannot read {path} as a .npy array: {e}.") from None


def main() -> None:
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
