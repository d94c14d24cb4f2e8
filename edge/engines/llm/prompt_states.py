"""Saved model states of recent prompts, so that one device's prompt survives other turns.

The context has a few sequences (`llm.parallel`), each keeping what its last request left; with
more devices than sequences, device A's history is overwritten by others' turns and its next
request would re-read it (150 tokens are more than a second here). llama.cpp can copy one
sequence's KV cells out and back (`llama_state_seq_get_data` / `_set_data`, ~9 KB per token for
Qwen2.5-0.5B, a few ms), so the decode loop saves a sequence whenever a request ends, and before
reading a prompt restores the saved state that shares the longest prefix with it, when that
beats what the context already holds. The idea is llama-server's host-memory prompt cache
(`--cache-ram`).

Most of a device's prompt is the shared prefix (system prompt and tools: ~720 of ~870 tokens
with a device's six tools), and every sequence holds its cells already. So a state that starts
as one kept whole does (the prefix's) keeps only its own cells from where they part, its tail
(~2 MB instead of ~10): copied out through a scratch sequence (`llama_memory_seq_cp` of those
positions, then `llama_state_seq_get_data` of the scratch), and brought back the same way on top
of the base's cells, which the target sequence holds or which are restored first.

Saved and restored from the decode thread (`edge.engines.llm.batch`); the states' list is also
read and added to from worker threads (`snapshot`, `add`: a device's state written to disk when it
leaves, read back when it returns, `edge.engines.llm.state_files`), hence the lock.
"""

from __future__ import annotations

import ctypes
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from loguru import logger

# Restoring costs a few ms; evaluating 16 tokens costs ~0.1 s here. Below this gain, keep the
# context as it is.
MIN_GAIN_TOKENS = 16
# A state shares at least this much with one kept whole for only the rest of it to be kept.
MIN_BASE_TOKENS = 64
# Whose state the shared prompt prefix is, on disk and in memory. Its states are kept whole:
# they are the others' base, and what a restart loads first.
PREFIX_OWNER = "\0prefix"


@dataclass(slots=True, eq=False)  # compared by identity: `==` on arrays is elementwise
class _Saved:
    tokens: np.ndarray  # int32: the tokens whose KV cells `data` holds, in order
    data: bytes
    used: float = field(default_factory=time.monotonic)
    owner: str = ""  # the device whose prompt it holds ("" for the shared prefix)
    # `data` holds the cells of tokens[base:] only, to go on top of cells holding tokens[:base]
    # (those of `under`, a state kept whole that starts the same, or the target sequence's).
    base: int = 0
    under: _Saved | None = None


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if differ.size else n


class PromptStates:
    def __init__(self, ctx: Any, budget_bytes: int, scratch: int = -1) -> None:
        """`scratch`: a sequence id no request uses, through which tails are copied (-1: none,
        every state is kept whole)."""
        self._ctx = ctx  # the llama_context pointer
        self.budget_bytes = budget_bytes
        self.scratch = scratch
        self._saved: list[_Saved] = []
        self._lock = threading.Lock()
        self.restored = 0  # restores done (for tests and logs)

    def bind(self, ctx: Any) -> None:
        """The context made again after a rest."""
        self._ctx = ctx

    @property
    def size_bytes(self) -> int:
        return sum(len(s.data) for s in self._saved)

    def __len__(self) -> int:
        return len(self._saved)

    def kept(self) -> list[tuple[str, int, int, int]]:
        """(owner, tokens, base, bytes) of each state kept, oldest first (tests, logs)."""
        with self._lock:
            return [(s.owner, s.tokens.size, s.base, len(s.data)) for s in self._saved]

    def owners(self) -> list[str]:
        """Whose states are kept (each once)."""
        with self._lock:
            return list(dict.fromkeys(s.owner for s in self._saved))

    def drop(self, owner: str) -> int:
        """Forget `owner`'s states, except one that another's tail is kept on top of; the
        bytes freed."""
        with self._lock:
            bases = {id(s.under) for s in self._saved if s.under is not None}
            gone = [s for s in self._saved if s.owner == owner and id(s) not in bases]
            self._saved = [s for s in self._saved if not any(s is g for g in gone)]
            return sum(len(s.data) for s in gone)

    def save(self, seq: int, held: list[int], owner: str = "") -> None:
        """Keep sequence `seq`, which holds the tokens `held` of `owner`'s prompt. A saved prefix
        of it is superseded (every prompt shares at least as much with the longer one); a
        longer saved one covers it."""
        if self.budget_bytes <= 0 or not held:
            return
        tokens = np.asarray(held, dtype=np.int32)
        with self._lock:
            for saved in self._saved:
                if common_prefix(saved.tokens, tokens) == len(tokens):
                    saved.used = time.monotonic()
                    saved.owner = saved.owner or owner  # a longer state keeps its owner
                    return
            under, base = self._base_for(tokens) if owner != PREFIX_OWNER else (None, 0)
        data = self._cells(seq, base)
        if data is None:
            return
        self._add(_Saved(tokens, data, owner=owner, base=base, under=under))

    def _base_for(self, tokens: np.ndarray) -> tuple[_Saved | None, int]:
        """The state kept whole that shares the most with `tokens` from the start, and how
        much: the tail is kept from there. (The prefix's state ends with a greeting that a
        device's prompt does not have: they share the system prompt and tools.)"""
        if self.scratch < 0:
            return None, 0
        best, best_shared = None, 0
        for saved in self._saved:
            if saved.base == 0:
                shared = common_prefix(saved.tokens, tokens)
                if best_shared < shared < tokens.size:
                    best, best_shared = saved, shared
        return (best, best_shared) if best_shared >= MIN_BASE_TOKENS else (None, 0)

    def _cells(self, seq: int, start: int) -> bytes | None:
        """The sequence's cells from position `start` on, as llama.cpp's sequence data."""
        lib = llama_cpp()
        memory = lib.llama_get_memory(self._ctx)
        source = seq
        if start > 0:
            lib.llama_memory_seq_rm(memory, self.scratch, -1, -1)
            lib.llama_memory_seq_cp(memory, seq, self.scratch, start, -1)
            source = self.scratch
        try:
            size = lib.llama_state_seq_get_size(self._ctx, source)
            if size <= 0 or size > self.budget_bytes:
                return None
            buffer = (ctypes.c_uint8 * size)()
            written = lib.llama_state_seq_get_data(self._ctx, buffer, size, source)
        finally:
            if start > 0:
                lib.llama_memory_seq_rm(memory, self.scratch, -1, -1)
        if written <= 0:
            logger.warning("llm: could not save the prompt state ({} bytes)", size)
            return None
        return bytes(memoryview(buffer)[:written])

    def _add(self, entry: _Saved) -> None:
        with self._lock:
            tokens = entry.tokens
            kept = [*self._saved, entry]
            bases = {id(s.under) for s in kept if s.under is not None}
            # A shorter state is superseded, unless a tail is kept on top of it.
            self._saved = [
                s
                for s in self._saved
                if common_prefix(s.tokens, tokens) < len(s.tokens) or id(s) in bases
            ]
            self._saved.append(entry)
            while self.size_bytes > self.budget_bytes:
                self._saved.remove(min(self._saved, key=lambda s: s.used))

    def add(self, tokens: np.ndarray, data: bytes, owner: str, base: int = 0) -> None:
        """A state read back from disk (any thread): kept as if saved just now. A tail
        (`base` > 0) goes on top of a state kept whole with its first `base` tokens, if there
        is one; else only on top of a sequence holding them."""
        if self.budget_bytes <= 0 or len(data) > self.budget_bytes:
            return
        with self._lock:
            under = None
            if base > 0:
                whole = [
                    s
                    for s in self._saved
                    if s.base == 0 and common_prefix(s.tokens, tokens) >= base
                ]
                under = whole[0] if whole else None
        self._add(_Saved(tokens, data, owner=owner, base=base, under=under))

    def snapshot(self, owner: str) -> tuple[np.ndarray, bytes, int] | None:
        """The newest state of `owner`'s prompt (any thread), for writing to disk: its tokens,
        its data and its base (0: whole)."""
        with self._lock:
            mine = [s for s in self._saved if s.owner == owner]
            if not mine:
                return None
            newest = max(mine, key=lambda s: s.used)
            return newest.tokens, newest.data, newest.base

    def restore(self, seq: int, prompt: list[int], held: int) -> tuple[int, int] | None:
        """Before `prompt` is read into sequence `seq`, which holds `held` tokens of it: bring
        back the saved state that shares the most with it, when that is worth it. Returns None
        when the sequence was left as it was, else (how many tokens of the prompt it holds now,
        below which position its cells are the ones it held before); its cells hold all of the
        saved state's tokens: the caller trims them."""
        wanted = np.asarray(prompt, dtype=np.int32)
        best, best_shared = None, held
        with self._lock:
            candidates = list(self._saved)
            present = {id(s) for s in self._saved}
        for saved in candidates:
            shared = common_prefix(saved.tokens, wanted)
            if shared <= best_shared:
                continue
            if saved.base > 0 and shared < saved.base:
                continue  # it parts from the prompt inside its base
            if saved.base > held and (saved.under is None or id(saved.under) not in present):
                continue  # nothing to put the tail on
            best, best_shared = saved, shared
        if best is None or best_shared - held < MIN_GAIN_TOKENS:
            return None
        lib = llama_cpp()
        memory = lib.llama_get_memory(self._ctx)
        kept_below = 0
        if best.base == 0:
            loaded = self._load(memory, seq, best.data)
        else:
            if best.base > held:
                assert best.under is not None
                loaded = self._load(memory, seq, best.under.data)
                best.under.used = time.monotonic()
            else:
                loaded = True
                kept_below = best.base
            loaded = loaded and self._load_tail(memory, seq, best.base, best.data)
        if not loaded:
            logger.warning("llm: a saved prompt state did not load; reading the prompt")
            lib.llama_memory_seq_rm(memory, seq, -1, -1)
            with self._lock:
                if best in self._saved:
                    self._saved.remove(best)
            return 0, 0
        best.used = time.monotonic()
        if best.under is not None:
            best.under.used = best.used  # its tails keep it in use
        self.restored += 1
        return best_shared, kept_below

    def _load(self, memory: Any, seq: int, data: bytes) -> bool:
        lib = llama_cpp()
        lib.llama_memory_seq_rm(memory, seq, -1, -1)
        buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        return bool(lib.llama_state_seq_set_data(self._ctx, buffer, len(data), seq) != 0)

    def _load_tail(self, memory: Any, seq: int, base: int, data: bytes) -> bool:
        """Put a tail's cells on top of the sequence's first `base` cells."""
        lib = llama_cpp()
        lib.llama_memory_seq_rm(memory, seq, base, -1)
        lib.llama_memory_seq_rm(memory, self.scratch, -1, -1)
        buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if lib.llama_state_seq_set_data(self._ctx, buffer, len(data), self.scratch) == 0:
            lib.llama_memory_seq_rm(memory, self.scratch, -1, -1)
            return False
        lib.llama_memory_seq_cp(memory, self.scratch, seq, -1, -1)
        lib.llama_memory_seq_rm(memory, self.scratch, -1, -1)
        return True


def common_prefix_len(a: list[int], b: list[int]) -> int:
    """How many tokens two token lists share from the start."""
    if not a or not b:
        return 0
    return common_prefix(np.asarray(a, dtype=np.int32), np.asarray(b, dtype=np.int32))


def llama_cpp() -> Any:
    import llama_cpp as module

    return module
