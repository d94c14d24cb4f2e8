"""The language model's thread count follows how busy other processes keep its cores."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from edge.engines.llm.contention import CpuSample, ThreadGovernor, others_cores, read_sample


def test_the_others_share_is_the_cores_busy_time_less_this_process() -> None:
    before = CpuSample(0.0, busy_ticks=1000, total_ticks=10_000, own_ticks=50)
    # 200 ticks of 2 cores passed: 150 busy, 50 of them ours: the others used half a core.
    after = CpuSample(1.0, busy_ticks=1150, total_ticks=10_200, own_ticks=100)
    assert others_cores(before, after, 2) == pytest.approx(1.0)
    assert others_cores(after, after, 2) == 0.0  # no time passed
    ours = CpuSample(1.0, busy_ticks=1150, total_ticks=10_200, own_ticks=300)
    assert others_cores(before, ours, 2) == 0.0  # counters read apart: never below nothing


def scripted(others: list[float]) -> ThreadGovernor:
    """A governor on two cores whose neighbours use `others[k]` cores in its k-th second."""
    samples = iter(range(len(others) + 1))

    def sample(_cores: set[int]) -> CpuSample:
        k = next(samples)
        busy = sum(int(100 * o) for o in others[:k])
        return CpuSample(0.0, busy, 200 * k, 0)  # at 0.0: always a second old

    return ThreadGovernor(2, sample, cores={0, 1})


def test_a_thread_is_given_up_under_a_busy_neighbour_and_taken_back_after() -> None:
    governor = scripted([2.0, 2.0, 0.5, 0.5, 0.0, 0.0, 0.0])
    counts = [governor.threads() for _ in range(7)]
    # Smoothed: one busy second is enough; half a core of others keeps the one thread; the
    # thread comes back once they are quiet for a couple of seconds.
    assert counts[:4] == [1, 1, 1, 1]
    assert counts[-1] == 2


def test_a_light_neighbour_does_not_cost_a_thread() -> None:
    governor = scripted([0.2] * 6)
    assert {governor.threads() for _ in range(6)} == {2}


def test_without_proc_the_configured_count_stays() -> None:
    governor = ThreadGovernor(2, lambda _cores: None, cores={0, 1})
    assert governor.threads() == 2


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_real_busy_processes_on_every_core_leave_the_model_one_thread() -> None:
    cores = os.sched_getaffinity(0)
    governor = ThreadGovernor(len(cores), read_sample)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(len(cores))]
    try:
        deadline = time.monotonic() + 30
        while governor.threads() > 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert governor.threads() == 1, governor.others
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
