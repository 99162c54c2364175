import os
from pathlib import Path

import pytest

from edgeq.codegen.backends.cmsis_nn_library import CMSIS_NN, KernelLibrary, cache_dir
from edgeq.codegen.backends.muriscv_nn import MURISCV_NN

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# The pinned kernel libraries beside the checkout, as `make test` exports them, so that a test run by hand (and
# the edgeq it starts) uses them too instead of fetching them.
THIRD_PARTY = Path(__file__).resolve().parents[1].parent / "shared" / "third_party"
for _library, _folder in ((CMSIS_NN, "CMSIS-NN"), (MURISCV_NN, "muriscv-nn")):
    if not os.environ.get(_library.env) and _library.is_library(THIRD_PARTY / _folder):
        os.environ[_library.env] = str(THIRD_PARTY / _folder)


def _local_copy(library: KernelLibrary) -> Path:
    """The library's local copy (its environment variable's, else edgeq's cached checkout); never a fetch: a test
    that would need the network skips instead."""
    if not os.environ.get(library.env) and not library.is_library(cache_dir() / library.cache_name):
        pytest.skip(f"{library.title} is not here: ../shared/third_party holds no copy, {library.env} is unset and "
                    f"edgeq has no cached checkout (make test uses ../shared's pinned copy)")
    return library.locate()


@pytest.fixture(scope="session")
def cmsis_nn() -> Path:
    """CMSIS-NN, for --kernels cmsis-nn, and auto on the Arm boards (it measures CMSIS-NN there)."""
    return _local_copy(CMSIS_NN)


@pytest.fixture(scope="session")
def muriscv_nn() -> Path:
    """muRISCV-NN, for --kernels cmsis-nn, and auto on the RISC-V boards."""
    return _local_copy(MURISCV_NN)
