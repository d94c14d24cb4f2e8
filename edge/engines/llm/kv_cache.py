"""Sequence placement in the one llama context every device shares: which sequence a request's
prompt goes into, and how much of that prompt is already there.

A sequence keeps what it holds after its request ends, and a new request takes the free sequence
its device used last (its history is still there). Before the prompt is read, the longest prefix
of it found anywhere is brought in: its own cells moved into place after a history trim, another
sequence's cells (`llama_memory_seq_cp` only tags them), or a saved state from host memory
(`edge.engines.llm.prompt_states`).

Only used from the decode thread (`edge.engines.llm.batch`).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from edge.engines.llm.prompt_states import PromptStates, common_prefix_len
from edge.engines.llm.request import Request

# The shortest run of a sequence's tokens moved back into place rather than read again: about
# a short turn (clock, question, answer), so that stray matches of a few tokens are left alone.
REUSE_MIN_TOKENS = 32


@dataclass(eq=False)
class Sequence:
    seq: int
    tokens: list[int] = field(default_factory=list)  # what its cells hold, position by position
    request: Request | None = None
    used: float = 0.0
    owner: str = ""  # whose prompt it last held
    # Its cells below this position may be shared with another sequence (`llama_memory_seq_cp`
    # only tags cells); from it on they are its own, and only those may be moved.
    shared_below: int = 0


class KvCache:
    def __init__(self, lib: Any, ctx: Any, memory: Any, n_seq: int, states_budget: int) -> None:
        self._lib = lib
        self.memory = memory
        self.sequences = [Sequence(seq) for seq in range(n_seq)]
        # The context has one sequence more than requests use: the states' scratch.
        self.states = PromptStates(ctx, states_budget, scratch=n_seq)
        # Moved cells have their new positions at once but their keys are rotated only by the
        # next llama_decode; a state saved in between would come back wrong.
        self.moved_unrotated = False
        # (prompt tokens, of which found in the cells) of recent requests, newest last.
        self.placed: deque[tuple[int, int]] = deque(maxlen=64)

    def of(self, request: Request) -> Sequence:
        return self.sequences[request.seq]

    def free(self) -> list[Sequence]:
        return [s for s in self.sequences if s.request is None]

    def place(self, request: Request, free: list[Sequence]) -> Sequence:
        """Give the request one of the `free` sequences, holding the longest prefix of its
        prompt found. Raises (the sequence stays free) when the request cannot start."""
        shares = [common_prefix_len(s.tokens, request.prompt) for s in self.sequences]
        target = self._choose(free, request, shares)
        try:
            self._place(request, target, shares)
        except Exception:
            target.request = None
            raise
        return target

    def _choose(self, free: list[Sequence], request: Request, shares: list[int]) -> Sequence:
        """The free sequence to read this request's prompt into: the one its owner (a device)
        used last; else one that holds nothing the prompt does not start with (it loses
        nothing), the fullest first; else the least recently used. Whichever it is, `_place`
        copies in the longest prefix of the prompt found anywhere. (Choosing the sequence that
        merely shares the most with the prompt took other devices' histories: every prompt
        shares the system prompt and tools, and in `edge bench`, with the same questions at the
        same minute, even the first turn. With four devices talking, each took another's
        sequence in turn and read ~150 tokens again.)"""
        if request.owner:
            own = [s for s in free if s.owner == request.owner]
            if own:
                return max(own, key=lambda s: s.used)
        whole = [s for s in free if shares[s.seq] == len(s.tokens)]
        if whole:
            return max(whole, key=lambda s: len(s.tokens))
        return min(free, key=lambda s: s.used)

    def _place(self, request: Request, target: Sequence, shares: list[int]) -> None:
        lib, prompt = self._lib, request.prompt
        target.request, target.used, request.seq = request, time.monotonic(), target.seq
        target.owner = request.owner
        # Keep one token to read: its logits start the answer.
        last = len(prompt) if not request.writes else len(prompt) - 1
        held = min(shares[target.seq], last)
        moves = self._chunk_moves(target, prompt, held, last)
        reach = moves[-1][0] + moves[-1][2] if moves else held
        # The sequence holding the most of the prompt; the target itself when none holds more.
        source = max(
            self.sequences, key=lambda s: (reach if s is target else shares[s.seq], s is target)
        )
        shared = reach if source is target else min(shares[source.seq], last)
        if source is target:
            self._move(target, moves)
            lib.llama_memory_seq_rm(self.memory, target.seq, shared, -1)
            target.tokens = prompt[:shared]
        else:
            lib.llama_memory_seq_rm(self.memory, target.seq, -1, -1)
            lib.llama_memory_seq_cp(self.memory, source.seq, target.seq, 0, shared)
            target.tokens = prompt[:shared]
            target.shared_below = shared
            source.shared_below = max(source.shared_below, shared)
        restored = self.states.restore(target.seq, prompt, shared)
        if restored is not None:
            found, kept_below = restored
            shared = min(found, last)
            lib.llama_memory_seq_rm(self.memory, target.seq, shared, -1)
            target.tokens = prompt[:shared]
            # The saved cells came back as its own; those it kept below them are as they were.
            target.shared_below = min(target.shared_below, kept_below)
        request.done_prompt = shared
        self.placed.append((len(prompt), shared))
        logger.debug(
            "llm: seq {} reads {} of {} prompt tokens{} for {}",
            target.seq,
            len(prompt) - shared,
            len(prompt),
            " ahead" if request.ahead else "" if request.writes else " (prefix)",
            request.owner or "-",
        )

    def _chunk_moves(
        self, target: Sequence, prompt: list[int], held: int, last: int
    ) -> list[tuple[int, int, int]]:
        """Where the prompt parts from what the sequence holds (at `held`), runs of the prompt's
        next tokens found further on in the sequence, as (to, from, length) in positions: cells
        that `_move` brings back into place instead of the model reading them again.

        This is what a device's history needs when it drops its older turns: the turns kept
        follow the system prompt at once, and without this every one of them (~150 tokens)
        is read again. llama-server's `--cache-reuse` does the same: the moved cells' keys are
        rotated to their new positions, while what they computed from the dropped turns
        before them stays in them (a close approximation: llama.cpp's context shift). Only
        the sequence's own cells move (`shared_below`), never ones another sequence holds."""
        tokens = target.tokens
        if len(tokens) <= held or not self._lib.llama_memory_can_shift(self.memory):
            return []
        moves: list[tuple[int, int, int]] = []
        head_p, head_c = held, max(held, target.shared_below)
        while head_c < len(tokens) and head_p < last:
            match = 0
            while (
                head_c + match < len(tokens)
                and head_p + match < last
                and tokens[head_c + match] == prompt[head_p + match]
            ):
                match += 1
            if match < REUSE_MIN_TOKENS:
                head_c += 1
                continue
            moves.append((head_p, head_c, match))
            head_p, head_c = head_p + match, head_c + match
        return moves

    def _move(self, target: Sequence, moves: list[tuple[int, int, int]]) -> None:
        """Carry out `_chunk_moves`: drop what lies before each run, slide the run down."""
        lib = self._lib
        for to, start, length in moves:
            lib.llama_memory_seq_rm(self.memory, target.seq, to, start)
            lib.llama_memory_seq_add(self.memory, target.seq, start, start + length, to - start)
        if moves:
            self.moved_unrotated = True
            moved = sum(length for _to, _start, length in moves)
            logger.debug("llm: seq {} moved {} cached tokens into place", target.seq, moved)

    def release(self, request: Request) -> None:
        """The request's stretch ended: its sequence keeps its cells (saved to host memory too)
        and is free for the next request."""
        if request.seq < 0:
            return
        sequence = self.of(request)
        sequence.request, sequence.used = None, time.monotonic()
        # A summary (written in the background) is not kept: no prompt starts with it past the
        # shared prefix, which has a state of its own, and it would push a device's out.
        summary = request.ahead and request.writes
        if sequence.tokens and not self.moved_unrotated and not summary:
            self.states.save(sequence.seq, sequence.tokens, sequence.owner)

    def evict_idle(self) -> bool:
        """Drop what idle sequences keep (to make room); whether there was any."""
        idle = [s for s in self.sequences if s.request is None and s.tokens]
        for sequence in idle:
            self._lib.llama_memory_seq_rm(self.memory, sequence.seq, -1, -1)
            sequence.tokens, sequence.shared_below = [], 0
        return bool(idle)

    def forget(self) -> None:
        """The context is let go: no sequence holds anything (the states stay)."""
        for sequence in self.sequences:
            sequence.tokens, sequence.shared_below, sequence.owner = [], 0, ""
        self.moved_unrotated = False

    def bind(self, ctx: Any, memory: Any) -> None:
        """A context made again (empty) takes the place of the one let go."""
        self.memory = memory
        self.states.bind(ctx)

    def clear(self) -> None:
        """After a failed decode no cell can be trusted."""
        self._lib.llama_memory_clear(self.memory, True)
        for sequence in self.sequences:
            sequence.tokens, sequence.shared_below = [], 0
