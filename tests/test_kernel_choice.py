"""`--kernels auto` on a board with an emulated core: each contested layer goes to the library with the fewest
instructions measured on that core (real QEMU), measurements are cached, and the mixed build stays bit-exact."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeq.targets.boards import get_board
from edgeq.targets.kernel_timing import emulated_twin

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digits_cnn_int8.tflite"


def test_real_boards_measure_on_the_emulated_core_they_share():
    assert emulated_twin(get_board("nucleo-h743zi")).name == "qemu-mps2-an500"
    assert emulated_twin(get_board("nucleo-l4r5zi")).name == "qemu-mps2-an386"
    assert emulated_twin(get_board("qemu-mps2-an386")).name == "qemu-mps2-an386"
    assert emulated_twin(get_board("host")) is None


@pytest.mark.skipif(not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
                    reason="needs gcc-arm-none-eabi and qemu-system-arm (make test installs them)")
@pytest.mark.usefixtures("cmsis_nn")
def test_auto_takes_the_measured_fastest_library_per_layer(tmp_path, monkeypatch):
    from edgeq.build import compile_graph, load_manifest, write_project
    from edgeq.frontends.tflite import load_tflite_file
    from edgeq.lowering import lower_graph
    from edgeq.quant.executor import run_int
    from edgeq.targets.device import open_device, run_samples

    monkeypatch.setenv("EDGEQ_CACHE", str(tmp_path / "cache"))
    graph, board = load_tflite_file(EXAMPLE), get_board("nucleo-h743zi")
    lines: list[str] = []
    compiled = compile_graph(graph, "keep", board, "auto", progress=lines.append)
    assert lines == ["measuring arm-dsp kernels on qemu-mps2-an500 (1/2) ...",
                     "measuring cmsis-nn kernels on qemu-mps2-an500 (2/2) ..."]
    contested = [impl for impl in compiled.impls if impl is not None and len(impl.measured) > 1]
    assert contested, "the example's convolutions run on both libraries"
    for impl in contested:
        assert impl.measured[impl.backend] == min(impl.measured.values()), impl.measured
        assert all(v > 0 for v in impl.measured.values())
    # a second build reads the cache; another board with the same core shares it
    again: list[str] = []
    twin = compile_graph(graph, "keep", get_board("qemu-mps2-an500"), "auto", progress=again.append)
    assert again == [] and [i.function for i in twin.impls if i] == [i.function for i in compiled.impls if i]
    # the mixed build on the emulated board equals the golden model over the serial link
    out = tmp_path / "fw"
    write_project(twin, get_board("qemu-mps2-an500"), "keep", out, echo=lambda *_: None)
    manifest = load_manifest(out)
    assert any("measured_instructions" in layer for layer in manifest["layers"])
    rng = np.random.default_rng(3)
    xs = [rng.integers(-128, 128, graph.t(graph.inputs[0]).shape).astype(np.int8) for _ in range(4)]
    with open_device(out, manifest) as (link, _):
        got = run_samples(link, [x.tobytes() for x in xs])
    calls = lower_graph(graph)
    for x, y in zip(xs, got):
        want = run_int(graph, [x], calls)[graph.outputs[0]]
        np.testing.assert_array_equal(np.frombuffer(y, np.int8), want.reshape(-1))


@pytest.mark.usefixtures("cmsis_nn")
def test_measured_choice_keeps_layers_only_ref_implements():
    """Grouped convolutions run on ref alone; beside contested layers the measured choice leaves them there."""
    from edgeq.codegen.backends import select
    from edgeq.lowering import lower_graph
    from tests.test_kernels import _graph

    calls = lower_graph(_graph("conv", "pot"))
    asked: list[list[str]] = []

    def measure(libraries):  # CMSIS-NN "measures" fewer instructions on every layer
        asked.append(libraries)
        return {name: {call.layer: 200 - 100 * (name == "cmsis-nn") for call in calls} for name in libraries}

    impls = select(calls, get_board("qemu-mps2-an500"), "auto", measure)
    by_layer = {call.layer: impl for call, impl in zip(calls, impls)}
    assert asked == [["arm-dsp", "cmsis-nn"]]
    assert by_layer["grouped"].backend == "ref" and not by_layer["grouped"].measured
    assert by_layer["3x3_same"].backend == "cmsis-nn"
    assert by_layer["3x3_same"].measured == {"arm-dsp": 200, "cmsis-nn": 100}
