"""Saved model states of recent prompts, so that one device's prompt survives another's turn.

A llama context holds one sequence: when device B's request (or read-ahead) runs after device
A's, only the part of the prompt they share (the system prompt and tools) stays cached, and A's
next request re-reads its history, its question and, for a paused answer, what it had written:
150 tokens are more than a second here. llama.cpp can copy one sequence's KV cells out and back
(`llama_state_seq_get_data` / `_set_data`, ~12 KB per token for Qwen2.5-0.5B, a few ms), so the
engine saves the sequence after every generation and read-ahead, and before evaluating a prompt
restores the saved state that shares the longest prefix with it, when that beats what the
context already holds. The idea is llama-server's host-memory prompt cache (`--cache-ram`).

Only called from the engine's worker thread while it holds the model.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from loguru import logger

# Restoring costs a few ms; evaluating 16 tokens costs ~0.1 s here. Below this gain, keep the
# context as it is.
MIN_GAIN_TOKENS = 16
_SEQ = 0  # llama-cpp-python's Llama evaluates everything in sequence 0


@dataclass(slots=True, eq=False)  # compared by identity: `==` on arrays is elementwise
class _Saved:
    tokens: np.ndarray  # int32: the tokens whose KV cells `data` holds, in order
    data: bytes
    used: float = field(default_factory=time.monotonic)


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if differ.size else n


class PromptStates:
    def __init__(self, llama: Any, budget_bytes: int) -> None:
        self._llama = llama
        self.budget_bytes = budget_bytes
        self._saved: list[_Saved] = []
        self.restored = 0  # restores done (for tests and logs)

    @property
    def size_bytes(self) -> int:
        return sum(len(s.data) for s in self._saved)

    def __len__(self) -> int:
        return len(self._saved)

    def save(self) -> None:
        """Keep the context's sequence as it is now. A saved prefix of it is superseded (every
        prompt shares at least as much with the longer one); a longer saved one covers it."""
        llama = self._llama
        if self.budget_bytes <= 0 or llama.n_tokens == 0:
            return
        tokens = np.asarray(llama._input_ids, dtype=np.int32).copy()
        for saved in self._saved:
            if common_prefix(saved.tokens, tokens) == len(tokens):
                saved.used = time.monotonic()
                return
        ctx = llama._ctx.ctx
        size = llama_cpp().llama_state_seq_get_size(ctx, _SEQ)
        if size <= 0 or size > self.budget_bytes:
            return
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp().llama_state_seq_get_data(ctx, buffer, size, _SEQ)
        if written <= 0:
            logger.warning("llm: could not save the prompt state ({} bytes)", size)
            return
        self._saved = [s for s in self._saved if common_prefix(s.tokens, tokens) < len(s.tokens)]
        self._saved.append(_Saved(tokens, bytes(memoryview(buffer)[:written])))
        while self.size_bytes > self.budget_bytes:
            self._saved.remove(min(self._saved, key=lambda s: s.used))

    def restore_for(self, prompt: list[int]) -> int:
        """Before `prompt` is evaluated: bring back the saved state that shares the most with it,
        when that is worth it. Returns the tokens of the prompt the context now holds."""
        llama = self._llama
        wanted = np.asarray(prompt, dtype=np.int32)
        held = common_prefix(np.asarray(llama._input_ids, dtype=np.int32), wanted)
        best, best_shared = None, held
        for saved in self._saved:
            shared = common_prefix(saved.tokens, wanted)
            if shared > best_shared:
                best, best_shared = saved, shared
        if best is None or best_shared - held < MIN_GAIN_TOKENS:
            return held
        ctx = llama._ctx.ctx
        llama._ctx.kv_cache_clear()
        buffer = (ctypes.c_uint8 * len(best.data)).from_buffer_copy(best.data)
        if llama_cpp().llama_state_seq_set_data(ctx, buffer, len(best.data), _SEQ) == 0:
            logger.warning("llm: a saved prompt state did not load; reading the prompt")
            llama._ctx.kv_cache_clear()
            llama.n_tokens = 0
            self._saved.remove(best)
            return 0
        llama.input_ids[: len(best.tokens)] = best.tokens
        llama.n_tokens = len(best.tokens)
        llama._requires_eval = True  # the logits are not those of the restored state
        best.used = time.monotonic()
        self.restored += 1
        return best_shared


def llama_cpp() -> Any:
    import llama_cpp as module

    return module
