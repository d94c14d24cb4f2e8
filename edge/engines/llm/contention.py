"""How many threads the language model's steps should use, from how busy the other processes
keep this process's cores.

llama.cpp's threads meet at a barrier after every operation of a step, and wait there by
spinning. On a board shared with another CPU-bound service (Home Assistant, a neighbour in the
household benchmark's `--busy`), the kernel gives each core in turn to the neighbour, so one of
the two threads is often not running and the other spins for it: prompt steps took several times
longer with two threads than with one (household `--busy`: LLM first token p95 4.2 s with two,
2.9 s with one). On a quiet board two threads read prompts about twice as fast as one. So the
count follows what the other processes use: the CPU time of the cores this process may run on
(from /proc/stat, steal time included: a hypervisor's other guests are neighbours too), less
this process's own (/proc/self/stat), smoothed over a few seconds.

Where /proc is missing (not Linux), the configured count stays.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

SAMPLE_S = 1.0  # how often the counters are read (from the decode thread, between steps)
SMOOTHING = 0.5  # weight of the newest sample in the moving average
# Hysteresis, in cores the others use beyond those left for our threads: a thread is given up
# when they use more than 0.6 of its core, and taken back when they use less than 0.3 of it.
GIVE_UP, TAKE_BACK = 0.6, 0.3


@dataclass(frozen=True)
class CpuSample:
    at: float  # monotonic seconds
    busy_ticks: int  # non-idle time of our cores, all processes (clock ticks)
    total_ticks: int  # all time of our cores (clock ticks)
    own_ticks: int  # this process's user + system time (clock ticks)


def read_sample(cores: set[int]) -> CpuSample | None:
    """The counters now, or None where /proc cannot be read."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            lines = stat.read().splitlines()
        with open("/proc/self/stat", encoding="ascii") as mine:
            fields = mine.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError, UnicodeDecodeError):
        return None
    busy = total = 0
    for line in lines:
        name, *values = line.split()
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cores:
            continue
        # user nice system idle iowait irq softirq steal (guest time is inside user)
        ticks = [int(v) for v in values[:8]]
        total += sum(ticks)
        busy += sum(ticks) - ticks[3] - ticks[4]
    # utime and stime: fields 14 and 15 of proc(5), counted from the state (field 3).
    return CpuSample(time.monotonic(), busy, total, int(fields[11]) + int(fields[12]))


def others_cores(before: CpuSample, after: CpuSample, cores: int) -> float:
    """How many of the cores the other processes used between the samples."""
    total = after.total_ticks - before.total_ticks
    if total <= 0:
        return 0.0
    others = (after.busy_ticks - before.busy_ticks) - (after.own_ticks - before.own_ticks)
    return max(0.0, min(float(cores), cores * others / total))


class ThreadGovernor:
    """The decode loop asks `threads()` before each step; it changes at most once a second."""

    def __init__(
        self,
        wanted: int,
        sample: Callable[[set[int]], CpuSample | None] = read_sample,
        cores: set[int] | None = None,
    ) -> None:
        self.cores = cores if cores is not None else set(os.sched_getaffinity(0))
        self.wanted = max(1, min(wanted, len(self.cores)))
        self.current = self.wanted
        self.others = 0.0  # smoothed: the cores the other processes use
        self._sample = sample
        self._last = sample(self.cores)

    def threads(self) -> int:
        last = self._last
        if last is None or self.wanted == 1:
            return self.current
        if time.monotonic() - last.at < SAMPLE_S:
            return self.current
        now = self._sample(self.cores)
        if now is None:
            return self.current
        self._last = now
        used = others_cores(last, now, len(self.cores))
        self.others = SMOOTHING * used + (1 - SMOOTHING) * self.others
        spare = len(self.cores) - self.others  # cores left for our threads
        if spare < self.current - GIVE_UP and self.current > 1:
            self._change(max(1, int(spare + GIVE_UP)))
        elif spare > self.current + 1 - TAKE_BACK and self.current < self.wanted:
            self._change(min(self.wanted, int(spare + TAKE_BACK)))
        return self.current

    def _change(self, threads: int) -> None:
        if threads != self.current:
            logger.info(
                "llm: {} thread(s) instead of {}: other processes use {:.1f} of {} cores",
                threads,
                self.current,
                self.others,
                len(self.cores),
            )
            self.current = threads
