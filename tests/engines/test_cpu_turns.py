"""The heavy engines take turns at the CPU: one at a time, except a speech turn beside a narrow
model step; speech turns (a clip, a sentence) before the language model's steps; first come,
first served within each kind."""

from __future__ import annotations

import threading
import time

from edge.workers import CpuTurns


def _queue_turns(cpu: CpuTurns, turns: list[tuple[str, bool]]) -> list[str]:
    """Hold the CPU while the turns queue up one after another, then let them run; returns the
    order in which they ran, and checks that no two ran at once."""
    order: list[str] = []
    inside = 0
    most_inside = 0
    lock = threading.Lock()

    def turn(name: str, speech: bool) -> None:
        nonlocal inside, most_inside
        with cpu.turn(speech):
            with lock:
                inside += 1
                most_inside = max(most_inside, inside)
                order.append(name)
            time.sleep(0.01)
            with lock:
                inside -= 1

    holder = cpu.turn()
    holder.__enter__()  # a long step holds the CPU while the others queue behind it
    threads = []
    for name, speech in turns:
        thread = threading.Thread(target=turn, args=(name, speech))
        thread.start()
        threads.append(thread)
        deadline = time.monotonic() + 5
        while cpu.waiting < len(threads) and time.monotonic() < deadline:
            time.sleep(0.001)  # this one waits before the next one asks
    holder.__exit__(None, None, None)
    for thread in threads:
        thread.join(5)
    assert most_inside == 1
    return order


def test_model_steps_take_turns_one_at_a_time_in_arrival_order() -> None:
    turns = [("step 1", False), ("step 2", False), ("step 3", False)]
    assert _queue_turns(CpuTurns(), turns) == ["step 1", "step 2", "step 3"]


def test_speech_turns_go_before_waiting_model_steps() -> None:
    turns = [("step 1", False), ("asr", True), ("step 2", False), ("tts", True)]
    assert _queue_turns(CpuTurns(), turns) == ["asr", "tts", "step 1", "step 2"]


def test_a_turn_that_raises_passes_the_cpu_on() -> None:
    cpu = CpuTurns()

    def fail() -> None:
        raise ValueError("a broken model")

    try:
        cpu.run(fail, speech=True, engine="asr")
    except ValueError:
        pass
    assert cpu.run(lambda: "next", engine="llm") == "next"
    assert cpu.waiting == 0


def _holding(
    cpu: CpuTurns, speech: bool, narrow: bool = False
) -> tuple[threading.Event, threading.Thread]:
    """A turn held in a thread of its own until the returned event is set."""
    release = threading.Event()
    held = threading.Event()

    def hold() -> None:
        with cpu.turn(speech, engine="tts" if speech else "llm", narrow=narrow):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(5)
    return release, thread


def test_every_turn_records_how_long_it_waited_and_held_the_cpu() -> None:
    cpu = CpuTurns()
    started = time.monotonic()
    release, step = _holding(cpu, speech=False)
    clip = threading.Thread(target=cpu.run, args=(lambda: None,), kwargs={"engine": "asr"})
    clip.start()
    while cpu.waiting == 0:  # the clip queued behind the step
        time.sleep(0.001)
    time.sleep(0.05)
    release.set()
    step.join(5)
    clip.join(5)
    waits = {engine: (waited, held) for _at, engine, waited, held in cpu.waits_since(started)}
    assert set(waits) == {"llm", "asr"}
    assert waits["asr"][0] >= 0.05 > waits["llm"][0]  # the clip waited out the step ...
    assert waits["llm"][1] >= 0.05  # ... which held the CPU that long
    assert cpu.waits_since(time.monotonic() + 1) == []


def _runs_at_once(cpu: CpuTurns, speech: bool, narrow: bool = False) -> bool:
    """Whether a turn gets the CPU while the current holder keeps it."""
    done = threading.Event()

    def go() -> None:
        with cpu.turn(speech, engine="tts" if speech else "llm", narrow=narrow):
            done.set()

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return done.wait(0.3)


def test_a_speech_turn_runs_beside_a_narrow_model_step_only() -> None:
    cpu = CpuTurns()
    release, holder = _holding(cpu, speech=False, narrow=True)
    assert _runs_at_once(cpu, speech=True)  # the step left a core free
    release.set()
    holder.join(5)
    assert cpu.overlapped == 1

    cpu = CpuTurns()
    release, holder = _holding(cpu, speech=False, narrow=False)
    assert not _runs_at_once(cpu, speech=True)  # the step uses every core
    release.set()
    holder.join(5)


def test_a_narrow_step_joins_a_speech_turn_and_two_of_a_kind_never_overlap() -> None:
    cpu = CpuTurns()
    release, holder = _holding(cpu, speech=True)
    assert not _runs_at_once(cpu, speech=False)  # a full step waits for the sentence
    assert not _runs_at_once(cpu, speech=True)  # so does another sentence
    release.set()
    holder.join(5)

    cpu = CpuTurns()
    release, holder = _holding(cpu, speech=True)
    assert _runs_at_once(cpu, speech=False, narrow=True)
    release.set()
    holder.join(5)

    cpu = CpuTurns()
    release, holder = _holding(cpu, speech=False, narrow=True)
    assert not _runs_at_once(cpu, speech=False, narrow=True)  # one decode at a time
    release.set()
    holder.join(5)
