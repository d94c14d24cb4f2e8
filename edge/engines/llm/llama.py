"""The language model: llama.cpp through llama-cpp-python, tokens streamed to the event loop.

One model serves every device. Up to `llm.parallel` generations run at once, one sequence each,
advanced together one token per `llama_decode` by `edge.engines.llm.batch` (a decode step costs
about the same for four sequences as for one here). More requests wait in arrival order; past
`max_waiting` a request fails at once with `EngineBusy` and the device hears an apology, not a
long silence. The system prompt stays first and identical for all devices (anything that changes
per request goes after it), so its KV cells are read once at start-up and shared by every
sequence; a sequence keeps its device's history for the next turn, and saved states in host
memory (`edge.engines.llm.prompt_states`) keep the others'.

Fairness when every sequence is taken: a long answer gives its sequence up where its caller's
pause rule allows (the end of a sentence) when another request waits, and queues again behind
it; it resumes from its prompt plus what it has written. So a waiting device hears its first
sentence after at most one sentence of a running answer, and that answer's listener still has
that sentence to play meanwhile.
Generations under a grammar are not interrupted (a grammar cannot resume halfway).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

from loguru import logger

from edge.config import LlmConfig
from edge.engines.llm.base import Message, PauseRule, Progress, ToolSpec, greeting_prompt
from edge.engines.llm.batch import DecodeLoop
from edge.engines.llm.contention import ThreadGovernor, read_sample
from edge.engines.llm.model_file import chat_formatter, load_model
from edge.engines.llm.places import Places
from edge.engines.llm.prompt_states import PREFIX_OWNER
from edge.engines.llm.request import Request, next_piece
from edge.engines.llm.sampling import StopFilter
from edge.engines.llm.state_files import (
    STATES_FOLDER,
    DiskStates,
    StateFiles,
    model_fingerprint,
)
from edge.errors import EngineTimeout, Preempted
from edge.workers import CpuTurns, Worker, usable_threads

_GRAMMAR_CACHE_SIZE = 16
PROGRESS_S = 10.0  # how often a long prefix read reports how far it got
REST_WAIT_S = 10.0  # for the decode thread to let its context go (it ends its step first)
# Stands in for the coming user message when a prompt is rendered ahead of it: the prompt up to
# here is what the request will start with, whatever the chat template puts around a message.
_USER_MARK = "\ue000edge-user-message\ue000"


class LlmEngine:
    """The local model (see the module docstring); implements `LanguageModel`."""

    def __init__(
        self,
        model_path: Path,
        config: LlmConfig,
        cpu: CpuTurns | None = None,
        state_dir: Path | None = None,
        io: Worker | None = None,
    ) -> None:
        """`state_dir`: where prompt states are kept across restarts (None: not kept), read
        and written in `io`'s thread."""
        import llama_cpp

        self.config = config
        self.model_path = model_path
        self._model = load_model(model_path)
        self._format = chat_formatter(self._model)
        self.sequences = config.parallel
        # Each sequence may use `context_tokens` positions; the shared prefix is stored once,
        # so the cells are fewer than sequences x positions (and are made room for on demand).
        cells = config.context_tokens * (1 + self.sequences) // 2
        self._loop = DecodeLoop(
            self._model,
            n_seq=self.sequences,
            n_ctx=cells,
            threads=ThreadGovernor(
                usable_threads(config.threads),
                read_sample if config.adapt_threads else lambda _cores: None,
            ),
            states_budget=config.prompt_cache_mb * 2**20,
            waiting=lambda: self.waiting,
            cpu=cpu or CpuTurns(),
            kv_type=config.kv_cache_type,
        )
        self.states = self._loop.states
        self._disk: DiskStates | None = None
        self._own_io: Worker | None = None
        if state_dir is not None and config.saved_states_mb > 0:
            # States of one cache type do not load into the other.
            engine = f"{llama_cpp.__version__}/{config.kv_cache_type}"
            fingerprint = model_fingerprint(model_path, engine)
            files = StateFiles(state_dir / STATES_FOLDER, fingerprint, config.saved_states_mb << 20)
            if io is None:
                io = self._own_io = Worker("llm-states", threads=1)
            self._disk = DiskStates(files, self.states, io)
        self._tickets = Places(self._places)
        self._grammars: dict[str, str] = {}  # JSON schema text → GBNF text
        self.idle_since = time.monotonic()  # when the last generation ended
        self.pauses = 0  # generations that gave their sequence up to a waiting request
        self._reading_ahead = 0  # places held by read-aheads

    def _places(self) -> int:
        """Requests that may hold a sequence at once (`llm.parallel` may be lowered at run
        time, never above the sequences the context was made with)."""
        return min(self.config.parallel, self.sequences)

    @property
    def waiting(self) -> int:
        """Requests queued for a sequence."""
        return self._tickets.waiting

    @property
    def busy(self) -> bool:
        """A generation is running or waiting."""
        return self._tickets.held > 0 or self._tickets.waiting > 0

    @property
    def full(self) -> bool:
        """A new answer would wait for a running one to end (read-aheads give way at once)."""
        held_by_answers = self._tickets.held - self._reading_ahead
        return self._tickets.waiting > 0 or held_by_answers >= self._places()

    @property
    def resting(self) -> bool:
        """The context is let go until the next request (`rest`)."""
        return self._loop.context is None

    def idle_for(self) -> float:
        """Seconds since the last generation ended (0 while one runs)."""
        return 0.0 if self.busy else time.monotonic() - self.idle_since

    async def warm_up(
        self,
        prompt: list[Message] | None = None,
        tools: list[ToolSpec] | None = None,
        *,
        background: bool = False,
        progress: Progress | None = None,
    ) -> float:
        """Evaluate the shared prefix (system prompt and tool list) so the first turn does not
        pay for it; `prompt` defaults to the system prompt and a greeting. No time limit: on a
        slow or busy board it takes what it takes, and `progress(read, total)` hears how far it
        got every few seconds. `background`: only while the model is free, giving way to any
        answer within a step (a device's tools, evaluated while devices may talk)."""
        started = time.monotonic()
        prompt = prompt or greeting_prompt(self.config)
        rendered = self._format(messages=prompt, tools=tools or None)
        tokens = self._tokens(rendered.prompt, special=True)
        await self.preload(PREFIX_OWNER)  # as a restart left it: then little is left to read
        read = await self._read(
            tokens, background=background, progress=progress, owner=PREFIX_OWNER
        )
        if read:
            await self.keep(PREFIX_OWNER)
        logger.debug("llm: prompt prefix of {} tokens, {} read", len(tokens), read)
        return time.monotonic() - started

    async def preload(self, owner: str) -> bool:
        """Read `owner`'s prompt state back from disk into host memory (a device that returns
        after a restart: its first question then reads only its words). False: none kept."""
        return await self._disk.preload(owner) if self._disk is not None else False

    async def keep(self, owner: str) -> bool:
        """Write `owner`'s newest prompt state to disk (a device that leaves)."""
        return await self._disk.keep(owner) if self._disk is not None else False

    async def rest(self, away: Callable[[str], bool]) -> int:
        """The server has gone quiet: the states of devices that are away live on disk until
        they come back (every connection reads its device's state back anyway), not in this
        process's memory, which a board's other services may want meanwhile. Each is written
        out first, so what is dropped is always the newest. The shared prefix's stays. The
        context goes too, until the next request (`DecodeLoop.rest`)."""
        freed = 0
        for owner in self.states.owners() if self._disk is not None else []:
            if owner != PREFIX_OWNER and away(owner) and not self.busy and await self.keep(owner):
                if away(owner):  # not back while its state was written: its preload stays
                    freed += self.states.drop(owner)
        if not self.busy:
            with contextlib.suppress(TimeoutError):  # a step still running: the next rest
                await asyncio.wait_for(asyncio.wrap_future(self._loop.rest()), REST_WAIT_S)
        return freed

    def _grammar(self, json_schema: str | None, gbnf: str | None) -> str | None:
        from llama_cpp import LlamaGrammar

        if not json_schema and not gbnf:
            return None
        if gbnf:
            return gbnf
        text = self._grammars.get(str(json_schema))
        if text is None:
            if len(self._grammars) >= _GRAMMAR_CACHE_SIZE:
                self._grammars.pop(next(iter(self._grammars)))
            text = LlamaGrammar.from_json_schema(str(json_schema), verbose=False)._grammar
            self._grammars[str(json_schema)] = text
        return text

    def _tokens(self, text: str, special: bool) -> list[int]:
        return list(self._model.tokenize(text.encode(), add_bos=False, special=special))

    async def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
        tools: list[ToolSpec] | None = None,
        json_schema: str | None = None,
        grammar: str | None = None,
        owner: str = "",
        pause_at: PauseRule | None = None,
        background: bool = False,
    ) -> AsyncGenerator[str, None]:
        """Yield text pieces as the model writes them; an empty piece means the model paused
        at a sentence end for another request (speak what you have). Closing the iterator (or
        cancelling the task that reads it) stops the generation within one token. The timeout
        counts from the moment this request gets the model, not while it waits for another
        device's turn.

        `tools` are rendered by the GGUF's own chat template (the model answers with a call in
        text, read by `edge.tools.parsing`); `json_schema` or `grammar` (GBNF) constrain the
        output. `owner` (a device id) keeps a device's history in the sequence it used last.
        `pause_at` says where an answer may give its place up to a waiting request (never
        under a grammar: a grammar cannot resume halfway). `background` (a summary): only with
        a place free at once, and stopped with `Preempted` within a step when an answer needs
        the model."""
        limit = max_tokens or self.config.max_tokens
        budget = timeout_s if timeout_s is not None else self.config.timeout_s
        gbnf = self._grammar(json_schema, grammar)
        rendered = self._format(messages=messages, tools=tools or None)
        prompt = self._tokens(rendered.prompt, special=True)
        if len(prompt) >= self.config.context_tokens:
            raise ValueError(
                f"the prompt has {len(prompt)} tokens; the model takes {self.config.context_tokens}"
            )
        limit = min(limit, self.config.context_tokens - len(prompt))
        stops = rendered.stop if isinstance(rendered.stop, list) else [rendered.stop]
        pausable = gbnf is None and self.config.yield_between_sentences and pause_at is not None
        written = ""  # the answer so far, across pauses
        used = 0  # tokens generated so far
        running = 0.0  # seconds spent holding a sequence

        while True:
            resume = prompt + (self._tokens(written, special=False) if written else [])
            if background:
                if self.full or self._loop.writing or not self._tickets.try_acquire():
                    raise Preempted("the model is answering a device")
                self._reading_ahead += 1
            else:
                await self._tickets.acquire(self.config.max_waiting)
            held_since = time.monotonic()
            request = Request(
                prompt=resume,
                max_tokens=limit - used,
                temperature=self.config.temperature,
                grammar=gbnf,
                stops=StopFilter(stops),
                deadline=held_since + budget - running,
                budget_s=budget,
                loop=asyncio.get_running_loop(),
                pause_point=pause_at if pausable and not background else None,
                written_before=written,
                # Resumed after a pause at a sentence end: its device has that sentence to say.
                speaking_since=held_since if written else None,
                owner=owner,
                ahead=background,
            )
            try:
                if time.monotonic() > request.deadline:
                    raise EngineTimeout(f"llm had no time left ({budget} s budget)")
                self._loop.submit(request)
                while (piece := await next_piece(request)) is not None:
                    written += piece
                    yield piece
            finally:
                if background:
                    self._reading_ahead -= 1
                await self._let_go(request)
                running += time.monotonic() - held_since
            used += request.count
            if not request.paused or used >= limit:
                return
            # An empty piece says "what you have is a whole sentence": the next token, the one
            # that would show it, comes only after the waiting device's first sentence.
            yield ""
            self.pauses += 1
            logger.debug("llm paused after {} tokens ({} waiting)", used, self.waiting)

    async def _let_go(self, request: Request) -> None:
        """Stop the request and give its ticket back once the decode loop has let go of its
        sequence (within one step), even when the caller is cancelled meanwhile."""
        request.stop.set()
        try:
            if request.submitted:
                await asyncio.shield(request.finished.wait())
        finally:
            self.idle_since = time.monotonic()
            self._tickets.release()

    async def prefetch(
        self, messages: list[Message], tools: list[ToolSpec] | None = None, owner: str = ""
    ) -> int:
        """Evaluate the prompt a device's next request will start with (`messages`: everything
        before its coming user message) while the user is still speaking, so that only their
        words are left to read when speech recognition is done. Only while no answer is being
        written or waits (other devices' read-ahead is read alongside); gives the model up
        within a step when an answer arrives. Returns the tokens evaluated."""
        if self.full or self._loop.writing:
            return 0
        rendered = self._format(
            messages=[*messages, {"role": "user", "content": _USER_MARK}], tools=tools or None
        )
        head, found, _ = rendered.prompt.partition(_USER_MARK)
        if not found:
            return 0
        tokens = self._tokens(head, special=True)
        return await self._read(
            tokens, background=True, owner=owner, budget_s=self.config.timeout_s
        )

    async def _read(
        self,
        tokens: list[int],
        *,
        background: bool,
        owner: str = "",
        budget_s: float = math.inf,
        progress: Progress | None = None,
    ) -> int:
        """Read `tokens` into a sequence and write nothing; the tokens evaluated. In the
        background it needs a free place at once and gives way to any answer within a step;
        in the foreground (the warm-up at start) it waits for its place and holds it."""
        if background:
            if not self._tickets.try_acquire():
                return 0
            self._reading_ahead += 1
        else:
            await self._tickets.acquire(self.config.max_waiting)
        request = Request(
            prompt=tokens,
            max_tokens=0,
            temperature=0.0,
            grammar=None,
            stops=StopFilter([]),
            deadline=time.monotonic() + budget_s,
            budget_s=budget_s,
            loop=asyncio.get_running_loop(),
            ahead=background,
            owner=owner,
        )
        try:
            self._loop.submit(request)
            while True:
                try:
                    async with asyncio.timeout(PROGRESS_S if progress else None):
                        if await next_piece(request) is None:
                            break
                except TimeoutError:
                    assert progress is not None
                    progress(request.done_prompt, len(tokens))
        finally:
            if background:
                self._reading_ahead -= 1
            await self._let_go(request)
        return request.evaluated

    def close(self) -> None:
        self._loop.close()
        if self._own_io is not None:
            self._own_io.shutdown()
