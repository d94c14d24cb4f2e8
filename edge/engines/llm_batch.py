"""The decode loop: every running generation advances by one token in the same `llama_decode`.

On a small CPU one decode step of a 0.5B model costs about as much for four sequences as for
one (the weights are read once per step either way), so devices that talk at once are answered
together instead of one after another: llama-server's "parallel slots", on llama-cpp-python's
low-level API. Each request gets a sequence of its own in one llama context whose KV cache is
unified (`kv_unified`), so the shared prefix (system prompt and tools) is read once and shared
by every sequence through `llama_memory_seq_cp`, which only tags the cells.

A sequence keeps what it holds after its request ends, and a new request takes the free
sequence that shares the most with its prompt: a device's next turn (or its read-ahead) finds
its history still there. Before reading a prompt, the longest prefix anywhere is brought in:
another sequence's cells, or a saved state from host memory (`edge.engines.prompt_states`).

A new request's prompt is read in chunks alongside the others' next tokens, so running answers
slow down for a step or two but never stop. Everything here runs in one thread, the only one
that touches the context; the event loop talks to it through `submit` and each request's queue.
"""

from __future__ import annotations

import asyncio
import codecs
import ctypes
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from edge.engines.prompt_states import PromptStates, common_prefix_len
from edge.errors import ContextFull, EngineTimeout
from edge.workers import CpuTurns

DONE = object()  # the last item of a request's queue
BATCH_TOKENS = 256  # tokens per llama_decode (n_batch = n_ubatch)
# Prompt tokens read in one step. Beside writers: few, so that their next token is not held up
# long, yet enough for a question. Alone: ~1 s here, so that a request arriving meanwhile joins
# within a step. Only read-aheads: a short step, since every step is a turn at the CPU that
# speech recognition waits behind while the users are still speaking.
PREFILL_BESIDE_WRITERS = 64
PREFILL_ALONE = 128
PREFILL_AHEAD = 16
# The shortest run of a sequence's tokens moved back into place rather than read again: about
# a short turn (clock, question, answer), so that stray matches of a few tokens are left alone.
REUSE_MIN_TOKENS = 32
# Sampling as llama-cpp-python's completion does by default (repeat penalty 1.0: none).
TOP_K, TOP_P, MIN_P = 40, 0.95, 0.05


@dataclass(eq=False)
class Request:
    """One stretch of generation (or, with `max_tokens == 0`, a prompt read ahead). Written by
    the event loop before `submit`; afterwards only the decode thread changes it, except `stop`."""

    prompt: list[int]
    max_tokens: int
    temperature: float
    grammar: str | None  # GBNF text
    stop_texts: list[str]
    deadline: float  # monotonic; the generation fails with EngineTimeout past it
    budget_s: float  # for the message only
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[object]
    finished: asyncio.Event
    # Where the writer may give its sequence up to a waiting request, given all it has written
    # (None: never); and the text written before this stretch, so the check sees all of it.
    pause_point: Callable[[str], bool] | None = None
    written_before: str = ""
    # Read ahead only while nothing else needs the model.
    ahead: bool = False
    # Whose history the prompt carries (a device id; "" for none): the sequence it last used
    # is where its next prompt goes.
    owner: str = ""
    submitted: bool = False  # handed to the decode loop, which will set `finished`
    stop: threading.Event = field(default_factory=threading.Event)
    # Results, read by the event loop once `finished` is set.
    count: int = 0  # tokens generated
    evaluated: int = 0  # prompt tokens read (not found cached)
    paused: bool = False
    # Decode-thread state.
    seq: int = -1
    done_prompt: int = 0  # prompt tokens in the sequence's cells
    next_token: int = -1  # sampled, not yet in the cells
    sampler: Any = None
    text: str = ""  # written in this stretch
    held_back: str = ""  # text that may be the start of a stop string
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))

    def send(self, item: object) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


@dataclass(eq=False)
class _Sequence:
    seq: int
    tokens: list[int] = field(default_factory=list)  # what its cells hold, position by position
    request: Request | None = None
    used: float = 0.0
    owner: str = ""  # whose prompt it last held
    # Its cells below this position may be shared with another sequence (`llama_memory_seq_cp`
    # only tags cells); from it on they are its own, and only those may be moved.
    shared_below: int = 0


class DecodeLoop:
    """Owns the llama context: runs every submitted request to its end in one thread."""

    def __init__(
        self,
        llama: Any,
        n_seq: int,
        n_ctx: int,
        threads: int,
        states_budget: int,
        waiting: Callable[[], int],
        cpu: CpuTurns,
    ) -> None:
        import llama_cpp
        from llama_cpp import _internals

        self._lib = llama_cpp
        self.model = llama._model
        params = llama.context_params
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = BATCH_TOKENS
        params.n_seq_max = n_seq
        params.kv_unified = True  # the shared prefix is stored once for every sequence
        params.n_threads = params.n_threads_batch = threads
        self.context = _internals.LlamaContext(model=self.model, params=params, verbose=False)
        self.ctx = self.context.ctx
        self.memory = self.context.memory
        self._batch = llama_cpp.llama_batch_init(BATCH_TOKENS, 0, 1)
        self._sequences = [_Sequence(seq) for seq in range(n_seq)]
        self._pieces: dict[int, bytes] = {}
        self.states = PromptStates(self.ctx, states_budget)
        self._waiting = waiting  # requests queued for a sequence, on the event loop's side
        self._cpu = cpu  # each decode step is a turn at the CPU
        self._incoming: list[Request] = []
        self._running: list[Request] = []
        self._wake = threading.Condition()
        self._closed = False
        self.widest = 0  # the most sequences that ever wrote in one step
        # Moved cells have their new positions at once but their keys are rotated only by the
        # next llama_decode; a state saved in between would come back wrong.
        self._moved_unrotated = False
        # (prompt tokens, of which found in the cells) of recent requests, newest last.
        self.placed: deque[tuple[int, int]] = deque(maxlen=64)
        self._thread = threading.Thread(target=self._run, name="edge-llm", daemon=True)
        self._thread.start()

    # --- the event loop's side ------------------------------------------------------------------

    def submit(self, request: Request) -> None:
        with self._wake:
            if self._closed:
                raise RuntimeError("the language model is closed")
            self._incoming.append(request)
            request.submitted = True
            self._wake.notify()

    @property
    def writing(self) -> int:
        """Requests that are not reading ahead, running or about to."""
        return sum(not r.ahead for r in (*self._incoming, *self._running))

    def close(self) -> None:
        with self._wake:
            self._closed = True
            for request in self._running:
                request.stop.set()
            self._wake.notify()
        self._thread.join(timeout=30)
        if not self._thread.is_alive():
            self._lib.llama_batch_free(self._batch)
            self.context.close()

    # --- the decode thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._incoming and not self._running and not self._closed:
                    self._wake.wait()
                if self._closed and not self._running:
                    for request in self._incoming:
                        self._end(request, RuntimeError("the language model is closed"))
                    self._incoming.clear()
                    return
            try:
                self._start_waiting_requests()
                self._step()
            except Exception as exc:  # a broken context fails every request, not the thread
                logger.exception("llm decode loop failed")
                for request in list(self._running):
                    self._release(request, exc)
                self._lib.llama_memory_clear(self.memory, True)  # no cell can be trusted now
                for sequence in self._sequences:
                    sequence.tokens, sequence.shared_below = [], 0

    def _start_waiting_requests(self) -> None:
        with self._wake:
            self._yield_reading_ahead()
            free = [s for s in self._sequences if s.request is None]
            while self._incoming and free:
                request = self._incoming.pop(0)
                if request.stop.is_set() or self._closed:
                    self._end(request, None)
                    continue
                # How much of the prompt each sequence holds, by sequence number.
                shares = [common_prefix_len(s.tokens, request.prompt) for s in self._sequences]
                target = self._choose(free, request, shares)
                free.remove(target)
                try:
                    self._place(request, target, shares)
                except Exception as exc:  # e.g. a grammar that does not parse
                    logger.warning("llm: a request could not start: {!r}", exc)
                    target.request = None
                    free.append(target)
                    self._end(request, exc)
                    continue
                self._running.append(request)
            self._yield_reading_ahead()  # also one placed just now beside a real request

    def _yield_reading_ahead(self) -> None:
        """Reading ahead yields to any real request, and before that request is placed: a
        device's question then finds its own sequence free, holding the part of its prompt read
        so far, instead of taking another device's."""
        if self._waiting() or self.writing:
            for request in [r for r in self._running if r.ahead]:
                self._release(request)

    def _choose(self, free: list[_Sequence], request: Request, shares: list[int]) -> _Sequence:
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

    def _place(self, request: Request, target: _Sequence, shares: list[int]) -> None:
        """Give the request its sequence, holding the longest prefix of its prompt found
        (`shares`: how much of the prompt each sequence holds)."""
        lib, prompt = self._lib, request.prompt
        target.request, target.used, request.seq = request, time.monotonic(), target.seq
        target.owner = request.owner
        # Keep one token to read: its logits start the answer.
        last = len(prompt) if request.ahead else len(prompt) - 1
        held = min(shares[target.seq], last)
        moves = self._chunk_moves(target, prompt, held, last)
        reach = moves[-1][0] + moves[-1][2] if moves else held
        # The sequence holding the most of the prompt; the target itself when none holds more.
        source = max(
            self._sequences, key=lambda s: (reach if s is target else shares[s.seq], s is target)
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
            shared = min(restored, last)
            lib.llama_memory_seq_rm(self.memory, target.seq, shared, -1)
            target.tokens = prompt[:shared]
            target.shared_below = 0  # the saved cells came back as its own
        request.done_prompt = shared
        self.placed.append((len(prompt), shared))
        logger.debug(
            "llm: seq {} reads {} of {} prompt tokens{} for {} ({} running)",
            target.seq,
            len(prompt) - shared,
            len(prompt),
            " ahead" if request.ahead else "",
            request.owner or "-",
            len(self._running),
        )
        if not request.ahead:
            request.sampler = self._sampler(request.temperature, request.grammar)

    def _chunk_moves(
        self, target: _Sequence, prompt: list[int], held: int, last: int
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

    def _move(self, target: _Sequence, moves: list[tuple[int, int, int]]) -> None:
        """Carry out `_chunk_moves`: drop what lies before each run, slide the run down."""
        lib = self._lib
        for to, start, length in moves:
            lib.llama_memory_seq_rm(self.memory, target.seq, to, start)
            lib.llama_memory_seq_add(self.memory, target.seq, start, start + length, to - start)
        if moves:
            self._moved_unrotated = True
            moved = sum(length for _to, _start, length in moves)
            logger.debug("llm: seq {} moved {} cached tokens into place", target.seq, moved)

    def _sampler(self, temperature: float, grammar: str | None) -> Any:
        lib = self._lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if grammar:
            made = lib.llama_sampler_init_grammar(self.model.vocab, grammar.encode(), b"root")
            if not made:
                lib.llama_sampler_free(chain)
                raise ValueError("the grammar does not parse")
            lib.llama_sampler_chain_add(chain, made)
        if temperature <= 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
        else:
            for sampler in (
                lib.llama_sampler_init_top_k(TOP_K),
                lib.llama_sampler_init_top_p(TOP_P, 1),
                lib.llama_sampler_init_min_p(MIN_P, 1),
                lib.llama_sampler_init_temp(temperature),
                lib.llama_sampler_init_dist(random.getrandbits(32)),
            ):
                lib.llama_sampler_chain_add(chain, sampler)
        return chain

    def _step(self) -> None:
        """One llama_decode: every writer's next token, then prompt chunks while room is left."""
        now = time.monotonic()
        for request in list(self._running):
            if request.stop.is_set():
                self._release(request)
            elif now > request.deadline:
                self._release(request, EngineTimeout(f"llm took longer than {request.budget_s} s"))
        if not self._running:
            return
        writers = [r for r in self._running if r.next_token >= 0]
        readers = [r for r in self._running if r.next_token < 0]
        entries: list[tuple[Request, int, int, bool]] = []  # request, token, position, logits
        for request in writers:
            entries.append((request, request.next_token, len(self._seq(request).tokens), True))
        readers.sort(key=lambda r: r.ahead)  # answers first, in arrival order
        if writers:
            room = PREFILL_BESIDE_WRITERS
        elif readers and not readers[0].ahead:
            room = PREFILL_ALONE
        else:
            room = PREFILL_AHEAD
        for request in readers:
            if room <= 0:
                break
            take = min(room, len(request.prompt) - request.done_prompt)
            start = request.done_prompt
            for offset in range(take):
                last = start + offset == len(request.prompt) - 1 and not request.ahead
                entries.append((request, request.prompt[start + offset], start + offset, last))
            room -= take
        if entries:
            entries = self._decode(entries)  # without a request that failed for room
        self.widest = max(self.widest, len(writers))
        outputs: dict[int, int] = {}
        for index, (request, token, _position, logits) in enumerate(entries):
            self._seq(request).tokens.append(token)
            if request in writers:
                request.next_token = -1
            else:
                request.done_prompt += 1
                request.evaluated += 1
            if logits:
                outputs[id(request)] = index
        for request in list(self._running):
            if request.ahead:
                if request.done_prompt >= len(request.prompt):
                    self._release(request)
            elif id(request) in outputs:
                self._sample(request, outputs[id(request)])

    def _decode(
        self, entries: list[tuple[Request, int, int, bool]]
    ) -> list[tuple[Request, int, int, bool]]:
        """Decode the entries; returns those decoded (a request failed for lack of KV cells
        has its entries left out)."""
        lib, batch = self._lib, self._batch
        while True:
            batch.n_tokens = len(entries)
            for i, (request, token, position, logits) in enumerate(entries):
                batch.token[i] = token
                batch.pos[i] = position
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = request.seq
                batch.logits[i] = logits
            with self._cpu.turn():
                result = lib.llama_decode(self.ctx, batch)
            self._moved_unrotated = False  # every decode first applies pending moves
            if result == 0:
                return entries
            if result != 1:
                raise RuntimeError(f"llama_decode failed ({result})")
            # No room in the KV cache: drop what idle sequences keep, then the newest request
            # (the older ones are being spoken already).
            if not self._evict_idle():
                victim = self._running[-1]
                self._release(victim, ContextFull("the conversation is too long for the model"))
                self._evict_idle()
                entries = [e for e in entries if e[0] is not victim]
                if not entries:
                    return entries

    def _evict_idle(self) -> bool:
        idle = [s for s in self._sequences if s.request is None and s.tokens]
        for sequence in idle:
            self._lib.llama_memory_seq_rm(self.memory, sequence.seq, -1, -1)
            sequence.tokens, sequence.shared_below = [], 0
        return bool(idle)

    def _sample(self, request: Request, index: int) -> None:
        lib = self._lib
        token = lib.llama_sampler_sample(request.sampler, self.ctx, index)
        if lib.llama_vocab_is_eog(self.model.vocab, token):
            self._release(request)
            return
        request.count += 1
        piece = request.decoder.decode(self._piece(token))
        if self._emit(request, piece):
            self._release(request)
            return
        request.next_token = token
        if request.count >= request.max_tokens:
            self._release(request)
        elif (
            request.pause_point is not None
            and self._waiting()
            and any(ch.isalnum() for ch in request.text)
            and request.pause_point(request.written_before + request.text)
        ):
            request.paused = True
            self._release(request)

    def _piece(self, token: int) -> bytes:
        """The token's bytes as text (control tokens give none), as llama-cpp-python's own
        detokenizer renders them."""
        piece = self._pieces.get(token)
        if piece is None:
            size = 32
            while True:
                buffer = ctypes.create_string_buffer(size)
                n = self._lib.llama_token_to_piece(self.model.vocab, token, buffer, size, 0, False)
                if n >= 0:
                    break
                size = -n  # the buffer was too small: this is what it needs
            piece = self._pieces[token] = buffer.raw[:n]
        return piece

    def _emit(self, request: Request, piece: str) -> bool:
        """Send the text that cannot be the start of a stop string; True at a stop string."""
        pending = request.held_back + piece
        for stop in request.stop_texts:
            at = pending.find(stop)
            if at >= 0:
                self._send_text(request, pending[:at])
                request.held_back = ""
                return True
        keep = max(
            (
                n
                for stop in request.stop_texts
                for n in range(1, len(stop))
                if pending.endswith(stop[:n])
            ),
            default=0,
        )
        self._send_text(request, pending[: len(pending) - keep])
        request.held_back = pending[len(pending) - keep :]
        return False

    def _send_text(self, request: Request, text: str) -> None:
        if text:
            request.text += text
            request.send(text)

    def _release(self, request: Request, error: BaseException | None = None) -> None:
        """End the request's stretch: its sequence keeps its cells (saved to host memory too) and
        is free for the next request."""
        if request in self._running:
            self._running.remove(request)
        sequence = self._seq(request)
        if sequence is not None:
            sequence.request, sequence.used = None, time.monotonic()
            if sequence.tokens and not self._moved_unrotated:
                self.states.save(sequence.seq, sequence.tokens)
        if error is None and request.held_back and not request.paused:
            self._send_text(request, request.held_back)  # the end of the answer, not a stop
        self._end(request, error)

    def _end(self, request: Request, error: BaseException | None) -> None:
        if request.sampler is not None:
            self._lib.llama_sampler_free(request.sampler)
            request.sampler = None
        if error is not None:
            request.send(error)
        request.send(DONE)
        request.loop.call_soon_threadsafe(request.finished.set)

    def _seq(self, request: Request) -> Any:
        return self._sequences[request.seq] if request.seq >= 0 else None
