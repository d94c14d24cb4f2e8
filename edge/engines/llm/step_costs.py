"""Whether writing several answers' next tokens in one decode step pays on this board.

One step for every writer reads the weights once, which is why llama-server batches its slots.
But measured on x86 with the default 0.5B model (q4_K_M: most of its tensors are q5_0/q8_0, as
896 columns do not split into K-quant blocks), a step of 2-6 tokens goes through llama.cpp's
matrix-multiply path for prompts, much slower per token than the one-token path: on one core
one token took 20 ms, two 73 ms, four 98 ms, eight 128 ms; on two cores 16, 43, 55, 69 ms. So
whether to batch depends on the CPU, its threads and the build, and is measured here, step by
step: pure writing steps of each width are timed, and writers take turns one per step while
that is cheaper than writing them together.
"""

from __future__ import annotations

# Weight of the newest step in each running average: a board that gets busy is seen within a
# few steps.
NEWEST = 0.25
# While taking turns, every this many chances the writers are stepped together again, so that
# the cost of a wide step is measured afresh (it changes with the threads and the load).
REMEASURE_EVERY = 16


class StepCosts:
    def __init__(self) -> None:
        self._seconds: dict[tuple[int, int], float] = {}  # (threads, tokens) → average s
        self._chances = 0

    def record(self, threads: int, tokens: int, seconds: float) -> None:
        """A decode step of `tokens` writers' tokens (and nothing else) took `seconds`."""
        key = (threads, tokens)
        before = self._seconds.get(key)
        self._seconds[key] = seconds if before is None else before + NEWEST * (seconds - before)

    def take_turns(self, threads: int, writers: int) -> bool:
        """Whether `writers` writers should each get a step of their own: a one-token step
        costs less than a `writers`-th of a step for all of them, as measured (batched until
        both are known)."""
        if writers < 2:
            return False
        one = self._seconds.get((threads, 1))
        together = self._seconds.get((threads, writers))
        if one is None or together is None or together <= writers * one:
            return False
        self._chances += 1
        return self._chances % REMEASURE_EVERY != 0
