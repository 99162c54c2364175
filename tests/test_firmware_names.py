"""Models named like a library the firmware links (c, gcc), a CMake-reserved target (all) or edgeq's own
CMSIS-NN target (cmsis_nn): the firmware's CMake target has a fixed name, the ELF keeps the model's, and the
firmware runs bit-exact with the golden model and TFLite Micro on the emulated boards."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.oracles import tflm_run
from tests.tflite_builder import Op, T, build, q8

RISCV_TOOLS = ("clang-19", "ld.lld-19", "qemu-system-riscv32", "cmake")
ARM_TOOLS = ("arm-none-eabi-gcc", "qemu-system-arm", "cmake")


def _need(tools: tuple[str, ...]) -> None:
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (make test installs them)")


def _tiny_model() -> bytes:
    """One fully connected layer, 8 -> 4: the whole firmware compiles in about a second."""
    rng = np.random.default_rng(4)
    w = T((4, 8), "int8", 0.02, 0, rng.integers(-127, 128, (4, 8)).astype(np.int8))
    b = T((4,), "int32", 0.05 * 0.02, 0, rng.integers(-500, 500, 4).astype(np.int32))
    return build([Op("FULLY_CONNECTED", [q8((1, 8), 0.05, 3), w, b], [q8((1, 4), 0.1, -5)],
                     "FullyConnectedOptions", {})])


def _build(tmp_path: Path, name: str, board: str, kernels: str = "ref") -> tuple[Path, bytes]:
    from edgeq.build import compile_graph, write_project
    from edgeq.frontends import load_model
    from edgeq.targets.boards import get_board

    data = _tiny_model()
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(data)
    b = get_board(board)
    out = tmp_path / "fw"
    write_project(compile_graph(load_model(path), "keep", b, kernels), b, "keep", out, path, echo=lambda *_: None)
    return out, data


def _check_on_board(out: Path, data: bytes, prefix: str) -> None:
    from edgeq.build import load_manifest
    from edgeq.frontends.tflite import load_tflite
    from edgeq.lowering import lower_graph
    from edgeq.quant.executor import run_int
    from edgeq.run import run_build

    assert load_manifest(out)["firmware"]["elf"] == f"{prefix}.elf" and (out / f"{prefix}.elf").is_file()
    graph = load_tflite(data, prefix)
    calls = lower_graph(graph)
    xs = np.random.default_rng(9).integers(-128, 128, (6, 1, 8)).astype(np.int8)
    ys = run_build(out, [xs])[0]
    for k, x in enumerate(xs):
        golden = run_int(graph, [x], calls)[graph.outputs[0]]
        np.testing.assert_array_equal(ys[k].reshape(-1), golden.reshape(-1), err_msg=f"sample {k} != golden model")
        np.testing.assert_array_equal(ys[k].reshape(-1), tflm_run(data, [x])[0].reshape(-1),
                                      err_msg=f"sample {k} != TFLite Micro")
    assert len({y.tobytes() for y in ys}) > 1, "distinct inputs gave one output: the check would be blind"


def test_model_named_c_runs_on_riscv(tmp_path):
    """The RISC-V firmware links picolibc and libgcc by name (-lc -lgcc): a target named c was taken for them."""
    _need(RISCV_TOOLS)
    out, data = _build(tmp_path, "c", "qemu-riscv32-virt")
    _check_on_board(out, data, "c")


@pytest.mark.parametrize("name,kernels", [("all", "ref"), ("cmsis_nn", "cmsis-nn")])
def test_reserved_target_names_run_on_arm(tmp_path, request, name, kernels):
    """all is reserved by CMake; cmsis_nn is the target CMSIS-NN's sources are built into."""
    _need(ARM_TOOLS)
    if kernels == "cmsis-nn":
        request.getfixturevalue("cmsis_nn")
    out, data = _build(tmp_path, name, "qemu-mps2-an500", kernels)
    _check_on_board(out, data, name)


@pytest.mark.parametrize("name,prefix", [("m", "m"), ("gcc", "gcc"), ("1st-model", "m_1st_model"),
                                         ("my model", "my_model")])
def test_awkward_names_build_for_riscv(tmp_path, name, prefix):
    """Built only (running is the test above): the ELF takes the model's C prefix."""
    from edgeq.build import load_manifest

    _need(RISCV_TOOLS)
    out, _ = _build(tmp_path, name, "qemu-riscv32-virt")
    assert load_manifest(out)["firmware"]["elf"] == f"{prefix}.elf" and (out / f"{prefix}.elf").is_file()
