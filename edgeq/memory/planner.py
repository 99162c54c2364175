"""Offsets for buffers with known lifetimes in one arena (TFLM's planner interface).

Greedy placement (each buffer at the lowest aligned offset that no time-overlapping, already placed
buffer occupies), tried over several deterministic orders; the best plan wins. The lower bound is
the largest sum of buffers live at one step, which no plan can beat.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Buffer:
    id: int
    size: int  # aligned
    first_use: int
    last_use: int
    offset: int = -1

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return self.first_use <= other.last_use and other.first_use <= self.last_use


class ArenaPlanner:
    def __init__(self, alignment: int = 16):
        self.alignment = alignment
        self.buffers: list[Buffer] = []
        self._peak = 0

    def _align(self, n: int) -> int:
        return (n + self.alignment - 1) // self.alignment * self.alignment

    def add_buffer(self, size: int, first_use: int, last_use: int) -> int:
        assert size >= 0 and first_use <= last_use, (size, first_use, last_use)
        self.buffers.append(Buffer(len(self.buffers), self._align(size), first_use, last_use))
        return len(self.buffers) - 1

    def lower_bound(self) -> int:
        if not self.buffers:
            return 0
        steps = range(min(b.first_use for b in self.buffers), max(b.last_use for b in self.buffers) + 1)
        return max(sum(b.size for b in self.buffers if b.first_use <= t <= b.last_use) for t in steps)

    def _place(self, order: list[Buffer]) -> tuple[int, dict[int, int]]:
        placed: list[Buffer] = []
        offsets: dict[int, int] = {}
        peak = 0
        for b in order:
            if b.size == 0:
                offsets[b.id] = 0
                continue
            busy = sorted((offsets[o.id], offsets[o.id] + o.size) for o in placed if o.overlaps_in_time(b))
            best, best_gap = None, None
            cursor = 0
            for start, end in busy + [(None, None)]:
                gap_end = start if start is not None else None
                if gap_end is None or gap_end - cursor >= b.size:
                    gap = None if gap_end is None else gap_end - cursor
                    # best fit: the smallest gap that holds the buffer, else the end
                    if best is None or (gap is not None and (best_gap is None or gap < best_gap)):
                        best, best_gap = cursor, gap
                if end is not None:
                    cursor = max(cursor, end)
            offsets[b.id] = best
            placed.append(b)
            peak = max(peak, best + b.size)
        return peak, offsets

    def plan(self) -> None:
        orders = [
            sorted(self.buffers, key=lambda b: (-b.size, b.first_use, b.id)),
            sorted(self.buffers, key=lambda b: (-(b.size * (b.last_use - b.first_use + 1)), b.id)),
            sorted(self.buffers, key=lambda b: (b.first_use, -b.size, b.id)),
            sorted(self.buffers, key=lambda b: (-(b.last_use - b.first_use), -b.size, b.id)),
        ]
        best = None
        for order in orders:
            peak, offsets = self._place(order)
            if best is None or peak < best[0]:
                best = (peak, offsets)
        self._peak, offsets = best
        for b in self.buffers:
            b.offset = offsets[b.id]

    def offset(self, buffer_id: int) -> int:
        return self.buffers[buffer_id].offset

    def peak(self) -> int:
        return self._peak
