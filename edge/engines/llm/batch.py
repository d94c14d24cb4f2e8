"""The decode loop: running generations advance by a token in the same `llama_decode`.

Devices that talk at once are answered side by side instead of one after another: llama-server's
"parallel slots", on llama-cpp-python's low-level API. Each request gets a sequence of its own in
one llama context whose KV cache is unified (`kv_unified`), so the shared prefix (system prompt
and tools) is read once and shared by every sequence; which sequence, and how much of its prompt
is already there, is `edge.engines.llm.kv_cache`'s job. Which writers take part in a step is
`edge.engines.llm.pacing`'s (an answer far ahead of its speaker waits for another's first
sentence); whether they share it or take turns, one per step, is measured on the board
(`edge.engines.llm.step_costs`: a wide step is not always the cheaper one).

A new request's prompt is read in chunks alongside the others' next tokens, so running answers
slow down for a step or two but never stop. Everything here runs in one thread, the only one
that touches the context; the event loop talks to it through `submit` and each request's queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from loguru import logger

from edge.engines.llm.contention import ThreadGovernor
from edge.engines.llm.kv_cache import KvCache
from edge.engines.llm.pacing import stepped_writers
from edge.engines.llm.prompt_states import PREFIX_OWNER
from edge.engines.llm.request import Request
from edge.engines.llm.sampling import TokenPieces, make_sampler
from edge.engines.llm.step_costs import StepCosts
from edge.errors import ContextFull, EngineTimeout, Preempted
from edge.workers import CpuTurns

BATCH_TOKENS = 256  # tokens per llama_decode (n_batch = n_ubatch)
# Prompt tokens read in one step. Beside writers: few, so that their next token is not held up
# long, yet enough for a question. Alone: ~1 s here, so that a request arriving meanwhile joins
# within a step. Only read-aheads: a short step, since every step is a turn at the CPU that
# speech recognition waits behind while the users are still speaking.
PREFILL_BESIDE_WRITERS = 64
PREFILL_ALONE = 128
PREFILL_AHEAD = 16

Entry = tuple[Request, int, int, bool]  # request, token, position, wants logits


def _settle(asked: Future[bool] | None, result: Callable[[], bool]) -> None:
    """Answer a rest asked for, unless its waiter gave up (then nothing is done)."""
    if asked is not None and asked.set_running_or_notify_cancel():
        asked.set_result(result())


class DecodeLoop:
    """Owns the llama context: runs every submitted request to its end in one thread."""

    def __init__(
        self,
        model: Any,
        n_seq: int,
        n_ctx: int,
        threads: ThreadGovernor,
        states_budget: int,
        waiting: Callable[[], int],
        cpu: CpuTurns,
        kv_type: str = "f16",
    ) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self.model = model  # llama-cpp-python's LlamaModel
        params = llama_cpp.llama_context_default_params()
        # As llama-cpp-python's `Llama` set them when this loop used its parameters: its YaRN
        # factors, and flash attention only with a quantized cache (which needs it).
        params.yarn_attn_factor, params.yarn_beta_fast, params.yarn_beta_slow = 1.0, 32.0, 1.0
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = BATCH_TOKENS
        params.n_seq_max = n_seq + 1  # and a scratch sequence for the saved states' tails
        params.kv_unified = True  # the shared prefix is stored once for every sequence
        if kv_type in ("q8_0-keys", "q8_0"):
            params.type_k = llama_cpp.GGML_TYPE_Q8_0  # keys: any attention takes them
        if kv_type == "q8_0":
            params.type_v = llama_cpp.GGML_TYPE_Q8_0
            params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        self._threads = threads  # the count follows how busy other processes keep the cores
        self._applied = threads.current
        self._params = params
        self.context: Any = self._new_context()  # None while at rest (`rest`)
        self._batch = llama_cpp.llama_batch_init(BATCH_TOKENS, 0, 1)
        self.cache = KvCache(llama_cpp, self.ctx, self.context.memory, n_seq, states_budget)
        self._rest_asked: Future[bool] | None = None
        self.states = self.cache.states
        self._pieces = TokenPieces(llama_cpp, self.model.vocab)
        self._waiting = waiting  # requests queued for a sequence, on the event loop's side
        self._cpu = cpu  # each decode step is a turn at the CPU
        self._incoming: list[Request] = []
        self._running: list[Request] = []
        self._wake = threading.Condition()
        self._closed = False
        self.costs = StepCosts()  # whether writers are cheaper together or one per step
        self._steps = 0
        self._thread = threading.Thread(target=self._run, name="edge-llm", daemon=True)
        self._thread.start()

    @property
    def ctx(self) -> Any:
        """The llama_context pointer."""
        return self.context.ctx

    def _new_context(self) -> Any:
        from llama_cpp import _internals

        self._params.n_threads = self._params.n_threads_batch = self._applied
        return _internals.LlamaContext(model=self.model, params=self._params, verbose=False)

    @property
    def placed(self) -> Any:
        """(prompt tokens, of which found in the cells) of recent requests, newest last."""
        return self.cache.placed

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

    def rest(self) -> Future[bool]:
        """The server is at rest: let the context go once no request runs or waits. Its KV
        cells and compute buffers are ~60 MB here that a board's other services may want while
        nobody talks; the next request makes it again (~40 ms) and brings back the saved states
        its prompt starts with, as after a restart. Kept when the shared prefix has no saved
        state: it would be read again, which takes seconds. The future: whether it went."""
        asked: Future[bool] = Future()
        with self._wake:
            _settle(self._rest_asked, lambda: False)  # superseded
            self._rest_asked = asked
            self._wake.notify()
        return asked

    def close(self) -> None:
        with self._wake:
            self._closed = True
            for request in self._running:
                request.stop.set()
            self._wake.notify()
        self._thread.join(timeout=30)
        if not self._thread.is_alive():
            self._lib.llama_batch_free(self._batch)
            if self.context is not None:
                self.context.close()

    # --- the decode thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wake:
                while not (self._incoming or self._running or self._closed or self._rest_asked):
                    self._wake.wait()
                if self._closed and not self._running:
                    for request in self._incoming:
                        self._end(request, RuntimeError("the language model is closed"))
                    self._incoming.clear()
                    _settle(self._rest_asked, lambda: False)
                    return
                rest, self._rest_asked = self._rest_asked, None
                idle = not self._incoming and not self._running
            _settle(rest, self._let_context_go if idle else lambda: False)
            if self.context is None and (idle or not self._make_context()):
                continue  # at rest: wait for a request; a context that failed: wait for another
            try:
                self._start_waiting_requests()
                self._step()
            except Exception as exc:  # a broken context fails every request, not the thread
                logger.exception("llm decode loop failed")
                for request in list(self._running):
                    self._release(request, exc)
                self.cache.clear()

    def _let_context_go(self) -> bool:
        """What the sequences hold was saved as their requests ended (`KvCache.release`), as
        far as it is worth keeping: a summary's cells are not, and go with the context."""
        if self.context is None:
            return True
        if PREFIX_OWNER not in self.states.owners():
            return False
        self.cache.forget()
        self.context.close()
        self.context = None
        logger.debug("llm: at rest, the context is let go")
        return True

    def _make_context(self) -> bool:
        """Make the context again after a rest; False (each waiting request failed) if it
        cannot be made."""
        try:
            context = self._new_context()
        except Exception as exc:
            logger.error("llm: the context could not be made again: {!r}", exc)
            with self._wake:
                waiting, self._incoming = self._incoming, []
            for request in waiting:
                self._end(request, exc)
            return False
        self.context = context
        self.cache.bind(context.ctx, context.memory)
        logger.debug("llm: the context is made again")
        return True

    def _start_waiting_requests(self) -> None:
        with self._wake:
            self._yield_reading_ahead()
            free = self.cache.free()
            while self._incoming and free:
                request = self._incoming.pop(0)
                if request.stop.is_set() or self._closed:
                    self._end(request, None)
                    continue
                try:
                    target = self.cache.place(request, free)
                    if request.writes:
                        request.sampler = make_sampler(
                            self._lib, self.model.vocab, request.temperature, request.grammar
                        )
                except Exception as exc:  # e.g. a grammar that does not parse
                    logger.warning("llm: a request could not start: {!r}", exc)
                    self.cache.release(request)
                    self._end(request, exc)
                    continue
                free.remove(target)
                self._running.append(request)
            self._yield_reading_ahead()  # also one placed just now beside a real request

    def _yield_reading_ahead(self) -> None:
        """Background work yields to any real request, and before that request is placed: a
        device's question then finds its own sequence free, holding the part of its prompt read
        so far, instead of taking another device's. A read-ahead just stops (what it read
        stays); background writing (a summary) is told it was preempted."""
        if self._waiting() or self.writing:
            for request in [r for r in self._running if r.ahead]:
                preempted = Preempted("gave way to a live turn") if request.writes else None
                self._release(request, preempted)

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
        readers = [r for r in self._running if r.next_token < 0]
        writers = [r for r in self._running if r.next_token >= 0]
        writers = stepped_writers(writers, readers, now)  # the others wait, their token kept
        if not readers and self.costs.take_turns(self._applied, len(writers)):
            writers = [min(writers, key=lambda r: r.stepped)]  # the one that waited longest
        self._steps += 1
        for request in writers:
            request.stepped = self._steps
        entries: list[Entry] = []
        for request in writers:
            entries.append((request, request.next_token, len(self.cache.of(request).tokens), True))
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
                last = start + offset == len(request.prompt) - 1 and request.writes
                entries.append((request, request.prompt[start + offset], start + offset, last))
            room -= take
        if entries:
            entries = self._decode(entries, writing_only=not readers)  # less any failed for room
        outputs: dict[int, int] = {}
        for index, (request, token, _position, logits) in enumerate(entries):
            self.cache.of(request).tokens.append(token)
            if request in writers:
                request.next_token = -1
            else:
                request.done_prompt += 1
                request.evaluated += 1
            if logits:
                outputs[id(request)] = index
        for request in list(self._running):
            if not request.writes:
                if request.done_prompt >= len(request.prompt):
                    self._release(request)
            elif id(request) in outputs:
                self._sample(request, outputs[id(request)])

    def _decode(self, entries: list[Entry], writing_only: bool) -> list[Entry]:
        """Decode the entries; returns those decoded (a request failed for lack of KV cells
        has its entries left out). `writing_only`: each a writer's next token (timed)."""
        lib, batch = self._lib, self._batch
        while True:
            batch.n_tokens = len(entries)
            for i, (request, token, position, logits) in enumerate(entries):
                batch.token[i] = token
                batch.pos[i] = position
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = request.seq
                batch.logits[i] = logits
            threads = self._threads.threads()
            if threads != self._applied:
                lib.llama_set_n_threads(self.ctx, threads, threads)
                self._applied = threads
            narrow = threads < len(self._threads.cores)  # a core left to the speech engines
            with self._cpu.turn(engine="llm", narrow=narrow):
                started = time.monotonic()
                result = lib.llama_decode(self.ctx, batch)
                took = time.monotonic() - started
            if result == 0 and writing_only:
                self.costs.record(threads, len(entries), took)
            self.cache.moved_unrotated = False  # every decode first applies pending moves
            if result == 0:
                return entries
            if result != 1:
                raise RuntimeError(f"llama_decode failed ({result})")
            # No room in the KV cache: drop what idle sequences keep, then the newest request
            # (the older ones are being spoken already).
            if not self.cache.evict_idle():
                victim = self._running[-1]
                self._release(victim, ContextFull("the conversation is too long for the model"))
                self.cache.evict_idle()
                entries = [e for e in entries if e[0] is not victim]
                if not entries:
                    return entries

    def _sample(self, request: Request, index: int) -> None:
        lib = self._lib
        token = lib.llama_sampler_sample(request.sampler, self.ctx, index)
        if lib.llama_vocab_is_eog(self.model.vocab, token):
            self._release(request)
            return
        request.count += 1
        text, stopped = request.stops.feed(self._pieces(token))
        request.send_text(text)
        if (
            text
            and request.speaking_since is None
            and request.pause_point is not None
            and request.pause_point(request.written_before + request.text)
        ):
            request.speaking_since = time.monotonic()
        if stopped:
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

    def _release(self, request: Request, error: BaseException | None = None) -> None:
        """End the request's stretch; its sequence keeps its cells for the next request."""
        if request in self._running:
            self._running.remove(request)
        self.cache.release(request)
        if error is None and not request.paused:
            request.send_text(request.stops.flush())  # the end of the answer, not a stop
        self._end(request, error)

    def _end(self, request: Request, error: BaseException | None) -> None:
        if request.sampler is not None:
            self._lib.llama_sampler_free(request.sampler)
            request.sampler = None
        request.end(error)
