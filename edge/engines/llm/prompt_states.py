"""Saved model states of recent prompts, so that one device's prompt survives other turns.

The context has a few sequences (`llm.parallel`), each keeping what its last request left; with
more devices than sequences, device A's history is overwritten by others' turns and its next
request would re-read it (150 tokens are more than a second here). llama.cpp can copy one
sequence's KV cells out and back (`llama_state_seq_get_data` / `_set_data`, ~12 KB per token for
Qwen2.5-0.5B, a few ms), so the decode loop saves a sequence whenever a request ends, and before
reading a prompt restores the saved state that shares the longest prefix with it, when that
beats what the context already holds. The idea is llama-server's host-memory prompt cache
(`--cache-ram`).

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


@dataclass(slots=True, eq=False)  # compared by identity: `==` on arrays is elementwise
class _Saved:
    tokens: np.ndarray  # int32: the tokens whose KV cells `data` holds, in order
    data: bytes
    used: float = field(default_factory=time.monotonic)
    owner: str = ""  # the device whose prompt it holds ("" for the shared prefix)


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if differ.size else n


class PromptStates:
    def __init__(self, ctx: Any, budget_bytes: int) -> None:
        self._ctx = ctx  # the llama_context pointer
        self.budget_bytes = budget_bytes
        self._saved: list[_Saved] = []
        self._lock = threading.Lock()
        self.restored = 0  # restores done (for tests and logs)

    @property
    def size_bytes(self) -> int:
        return sum(len(s.data) for s in self._saved)

    def __len__(self) -> int:
        return len(self._saved)

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
        size = llama_cpp().llama_state_seq_get_size(self._ctx, seq)
        if size <= 0 or size > self.budget_bytes:
            return
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp().llama_state_seq_get_data(self._ctx, buffer, size, seq)
        if written <= 0:
            logger.warning("llm: could not save the prompt state ({} bytes)", size)
            return
        self._add(_Saved(tokens, bytes(memoryview(buffer)[:written]), owner=owner))

    def _add(self, entry: _Saved) -> None:
        with self._lock:
            tokens = entry.tokens
            self._saved = [
                s for s in self._saved if common_prefix(s.tokens, tokens) < len(s.tokens)
            ]
            self._saved.append(entry)
            while self.size_bytes > self.budget_bytes:
                self._saved.remove(min(self._saved, key=lambda s: s.used))

    def add(self, tokens: np.ndarray, data: bytes, owner: str) -> None:
        """A state read back from disk (any thread): kept as if saved just now."""
        if self.budget_bytes > 0 and len(data) <= self.budget_bytes:
            self._add(_Saved(tokens, data, owner=owner))

    def snapshot(self, owner: str) -> tuple[np.ndarray, bytes] | None:
        """The newest state of `owner`'s prompt (any thread), for writing to disk."""
        with self._lock:
            mine = [s for s in self._saved if s.owner == owner]
            if not mine:
                return None
            newest = max(mine, key=lambda s: s.used)
            return newest.tokens, newest.data

    def restore(self, seq: int, prompt: list[int], held: int) -> int | None:
        """Before `prompt` is read into sequence `seq`, which holds `held` tokens of it: bring
        back the saved state that shares the most with it, when that is worth it. Returns None
        when the sequence was left as it was, else how many tokens of the prompt it holds now
        (its cells hold all of the saved state's tokens: the caller trims them)."""
        wanted = np.asarray(prompt, dtype=np.int32)
        best, best_shared = None, held
        with self._lock:
            candidates = list(self._saved)
        for saved in candidates:
            shared = common_prefix(saved.tokens, wanted)
            if shared > best_shared:
                best, best_shared = saved, shared
        if best is None or best_shared - held < MIN_GAIN_TOKENS:
            return None
        lib = llama_cpp()
        lib.llama_memory_seq_rm(lib.llama_get_memory(self._ctx), seq, -1, -1)
        buffer = (ctypes.c_uint8 * len(best.data)).from_buffer_copy(best.data)
        if lib.llama_state_seq_set_data(self._ctx, buffer, len(best.data), seq) == 0:
            logger.warning("llm: a saved prompt state did not load; reading the prompt")
            lib.llama_memory_seq_rm(lib.llama_get_memory(self._ctx), seq, -1, -1)
            with self._lock:
                if best in self._saved:
                    self._saved.remove(best)
            return 0
        best.used = time.monotonic()
        self.restored += 1
        return best_shared


def common_prefix_len(a: list[int], b: list[int]) -> int:
    """How many tokens two token lists share from the start."""
    if not a or not b:
        return 0
    return common_prefix(np.asarray(a, dtype=np.int32), np.asarray(b, dtype=np.int32))


def llama_cpp() -> Any:
    import llama_cpp as module

    return module
