"""The heavy engines take turns at the CPU: one at a time, first come, first served."""

from __future__ import annotations

import threading
import time

from edge.engines.worker import CpuTurns


def test_turns_are_taken_one_at_a_time_in_arrival_order() -> None:
    cpu = CpuTurns()
    order: list[str] = []
    inside = 0
    most_inside = 0
    lock = threading.Lock()

    def turn(name: str) -> None:
        nonlocal inside, most_inside
        with cpu:
            with lock:
                inside += 1
                most_inside = max(most_inside, inside)
                order.append(name)
            time.sleep(0.01)
            with lock:
                inside -= 1

    cpu.__enter__()  # a long turn holds the CPU while the others queue behind it
    threads = []
    for name in ("asr", "llm", "tts", "llm-again"):
        thread = threading.Thread(target=turn, args=(name,))
        thread.start()
        threads.append(thread)
        deadline = time.monotonic() + 5
        while cpu._next != len(threads) + 1 and time.monotonic() < deadline:
            time.sleep(0.001)  # this one has its ticket before the next one asks
    cpu.__exit__(None, None, None)
    for thread in threads:
        thread.join(5)
    assert order == ["asr", "llm", "tts", "llm-again"]
    assert most_inside == 1


def test_a_turn_that_raises_passes_the_cpu_on() -> None:
    cpu = CpuTurns()

    def fail() -> None:
        raise ValueError("a broken model")

    try:
        cpu.run(fail)
    except ValueError:
        pass
    assert cpu.run(lambda: "next") == "next"
