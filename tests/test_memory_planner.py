"""The arena planner: valid plans (no two buffers live at once share bytes), aligned, and tight."""
from __future__ import annotations

import numpy as np
import pytest

from edgeq.memory.planner import ArenaPlanner


def check_valid(planner: ArenaPlanner) -> None:
    bufs = planner.buffers
    for b in bufs:
        assert b.offset % planner.alignment == 0
        assert b.offset + b.size <= planner.peak()
    for i, a in enumerate(bufs):
        for b in bufs[i + 1:]:
            if a.size and b.size and a.overlaps_in_time(b):
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, (a, b)


def test_chain_reuses_memory():
    p = ArenaPlanner(16)
    for t in range(6):
        p.add_buffer(1000 * (t % 2 + 1), t, t + 1)
    p.plan()
    check_valid(p)
    assert p.lower_bound() == 1008 + 2000
    assert p.peak() == p.lower_bound()


def test_residual_block_reaches_the_bound():
    p = ArenaPlanner(16)
    x = p.add_buffer(4096, 0, 3)  # skip connection stays alive across the block
    p.add_buffer(4096, 1, 2)
    p.add_buffer(4096, 2, 3)
    p.add_buffer(4096, 3, 4)
    p.plan()
    check_valid(p)
    assert p.offset(x) >= 0 and p.peak() == p.lower_bound() == 3 * 4096


@pytest.mark.parametrize("seed", range(30))
def test_random_lifetimes_are_valid_and_close_to_the_bound(seed):
    rng = np.random.default_rng(seed)
    p = ArenaPlanner(16)
    for _ in range(int(rng.integers(2, 60))):
        first = int(rng.integers(0, 40))
        p.add_buffer(int(rng.integers(0, 5000)), first, first + int(rng.integers(0, 6)))
    p.plan()
    check_valid(p)
    assert p.lower_bound() <= p.peak() <= 2 * p.lower_bound()


def test_zero_sized_and_empty():
    p = ArenaPlanner(16)
    p.plan()
    assert p.peak() == 0 and p.lower_bound() == 0
    b = p.add_buffer(0, 0, 1)
    p.plan()
    assert p.offset(b) == 0 and p.peak() == 0
