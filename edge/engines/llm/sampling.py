"""From logits to text: the sampler chain of one request, the bytes of each token, and the filter
that stops an answer at the chat template's stop strings without ever speaking part of one.

Only used from the decode thread (`edge.engines.llm.batch`).
"""

from __future__ import annotations

import codecs
import ctypes
import random
from typing import Any

# Sampling as llama-cpp-python's completion does by default (repeat penalty 1.0: none).
TOP_K, TOP_P, MIN_P = 40, 0.95, 0.05


def make_sampler(lib: Any, vocab: Any, temperature: float, grammar: str | None) -> Any:
    """A llama.cpp sampler chain: the grammar first (if any), then greedy at temperature 0, else
    top-k, top-p, min-p, temperature and a random draw. Free it with `lib.llama_sampler_free`."""
    chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
    if grammar:
        made = lib.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
        if not made:
            lib.llama_sampler_free(chain)
            raise ValueError("the grammar does not parse")
        lib.llama_sampler_chain_add(chain, made)
    if temperature <= 0:
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
        return chain
    for sampler in (
        lib.llama_sampler_init_top_k(TOP_K),
        lib.llama_sampler_init_top_p(TOP_P, 1),
        lib.llama_sampler_init_min_p(MIN_P, 1),
        lib.llama_sampler_init_temp(temperature),
        lib.llama_sampler_init_dist(random.getrandbits(32)),
    ):
        lib.llama_sampler_chain_add(chain, sampler)
    return chain


class TokenPieces:
    """Each token's bytes as text (control tokens give none), as llama-cpp-python's own
    detokenizer renders them; kept, since answers use a few thousand distinct tokens."""

    def __init__(self, lib: Any, vocab: Any) -> None:
        self._lib = lib
        self._vocab = vocab
        self._pieces: dict[int, bytes] = {}

    def __call__(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            size = 32
            while True:
                buffer = ctypes.create_string_buffer(size)
                n = self._lib.llama_token_to_piece(self._vocab, token, buffer, size, 0, False)
                if n >= 0:
                    break
                size = -n  # the buffer was too small: this is what it needs
            piece = self._pieces[token] = buffer.raw[:n]
        return piece


class StopFilter:
    """Turns a request's token bytes into text and holds back any tail that may be the start of
    a stop string, so that neither a stop string nor a piece of one is ever sent."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.held_back = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, data: bytes) -> tuple[str, bool]:
        """(text that may be sent now, whether a stop string was reached)."""
        pending = self.held_back + self._decoder.decode(data)
        for stop in self.stops:
            at = pending.find(stop)
            if at >= 0:
                self.held_back = ""
                return pending[:at], True
        keep = max(
            (n for stop in self.stops for n in range(1, len(stop)) if pending.endswith(stop[:n])),
            default=0,
        )
        self.held_back = pending[len(pending) - keep :]
        return pending[: len(pending) - keep], False

    def flush(self) -> str:
        """The held-back tail, once the answer ended without reaching a stop string."""
        tail, self.held_back = self.held_back, ""
        return tail
