"""The language model: llama.cpp through llama-cpp-python, tokens streamed to the event loop.

One model serves every device. Up to `llm.parallel` generations run at once, one sequence each,
advanced together one token per `llama_decode` by `edge.engines.llm_batch` (a decode step costs
about the same for four sequences as for one here). More requests wait in arrival order; past
`max_waiting` a request fails at once with `EngineBusy` and the device hears an apology, not a
long silence. The system prompt stays first and identical for all devices (anything that changes
per request goes after it), so its KV cells are read once at start-up and shared by every
sequence; a sequence keeps its device's history for the next turn, and saved states in host
memory (`edge.engines.prompt_states`) keep the others'.

Fairness when every sequence is taken: a long answer gives its sequence up at the end of a
sentence when another request waits, and queues again behind it; it resumes from its prompt plus
what it has written. So a waiting device hears its first sentence after at most one sentence of
a running answer, and that answer's listener still has that sentence to play meanwhile.
Generations under a grammar are not interrupted (a grammar cannot resume halfway).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, Protocol

from loguru import logger

from edge.config import LlmConfig
from edge.engines.llm_batch import DONE, DecodeLoop, Request
from edge.engines.sentences import ends_sentence
from edge.errors import EngineBusy, EngineTimeout
from edge.workers import CpuTurns

Message = dict[str, Any]
_GRAMMAR_CACHE_SIZE = 16
_CALL_START = ("{", "[", "<", "`")
# Stands in for the coming user message when a prompt is rendered ahead of it: the prompt up to
# here is what the request will start with, whatever the chat template puts around a message.
_USER_MARK = "\ue000edge-user-message\ue000"


def greeting_prompt(config: LlmConfig) -> list[Message]:
    """The system prompt and a greeting: what a warm-up evaluates when given no prompt."""
    return [
        {"role": "system", "content": config.system_prompt},
        {"role": "user", "content": "Hello"},
    ]


class LanguageModel(Protocol):
    """What answers, summaries and the server use: this module's `LlmEngine`, or
    `edge.engines.openai_llm.OpenAiLlm` for a server elsewhere on the LAN."""

    config: LlmConfig
    pauses: int

    @property
    def waiting(self) -> int: ...

    @property
    def busy(self) -> bool: ...

    @property
    def full(self) -> bool: ...

    def idle_for(self) -> float: ...

    async def warm_up(
        self, prompt: list[Message] | None = None, tools: list[dict[str, Any]] | None = None
    ) -> float: ...

    def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
        tools: list[dict[str, Any]] | None = None,
        json_schema: str | None = None,
        grammar: str | None = None,
        owner: str = "",
    ) -> AsyncGenerator[str, None]: ...

    async def prefetch(
        self, messages: list[Message], tools: list[dict[str, Any]] | None = None, owner: str = ""
    ) -> int: ...

    def close(self) -> None: ...


class LlmEngine:
    def __init__(self, model_path: Path, config: LlmConfig, cpu: CpuTurns | None = None) -> None:
        from llama_cpp import Llama

        self.config = config
        # The Llama object loads the weights and tokenizes; its own context is left small and
        # unused: the decode loop makes the one that serves every sequence.
        self._llama = Llama(
            model_path=str(model_path), n_ctx=256, n_batch=8, n_threads=1, verbose=False
        )
        self._format = _chat_formatter(self._llama)
        self.sequences = config.parallel
        # Each sequence may use `context_tokens` positions; the shared prefix is stored once,
        # so the cells are fewer than sequences x positions (and are made room for on demand).
        cells = config.context_tokens * (1 + self.sequences) // 2
        self._loop = DecodeLoop(
            self._llama,
            n_seq=self.sequences,
            n_ctx=cells,
            threads=config.threads,
            states_budget=config.prompt_cache_mb * 2**20,
            waiting=lambda: self.waiting,
            cpu=cpu or CpuTurns(),
        )
        self.states = self._loop.states
        self._tickets = _Tickets(self._places)
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

    def idle_for(self) -> float:
        """Seconds since the last generation ended (0 while one runs)."""
        return 0.0 if self.busy else time.monotonic() - self.idle_since

    async def warm_up(
        self, prompt: list[Message] | None = None, tools: list[dict[str, Any]] | None = None
    ) -> float:
        """Evaluate the shared prefix (system prompt and tool list) so the first turn does not
        pay for it; `prompt` defaults to the system prompt and a greeting."""
        started = time.monotonic()
        prompt = prompt or greeting_prompt(self.config)
        async for _ in self.stream(prompt, max_tokens=1, tools=tools):
            pass
        return time.monotonic() - started

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
        return list(self._llama.tokenize(text.encode(), add_bos=False, special=special))

    async def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
        tools: list[dict[str, Any]] | None = None,
        json_schema: str | None = None,
        grammar: str | None = None,
        owner: str = "",
    ) -> AsyncGenerator[str, None]:
        """Yield text pieces as the model writes them; an empty piece means the model paused
        at a sentence end for another request (speak what you have). Closing the iterator (or
        cancelling the task that reads it) stops the generation within one token. The timeout
        counts from the moment this request gets the model, not while it waits for another
        device's turn.

        `tools` are rendered by the GGUF's own chat template (the model answers with a call in
        text, read by `edge.tools.parsing`); `json_schema` or `grammar` (GBNF) constrain the
        output. `owner` (a device id) keeps a device's history in the sequence it used last."""
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
        pausable = gbnf is None and self.config.yield_between_sentences
        written = ""  # the answer so far, across pauses
        used = 0  # tokens generated so far
        running = 0.0  # seconds spent holding a sequence

        while True:
            resume = prompt + (self._tokens(written, special=False) if written else [])
            await self._tickets.acquire(self.config.max_waiting)
            held_since = time.monotonic()
            request = Request(
                prompt=resume,
                max_tokens=limit - used,
                temperature=self.config.temperature,
                grammar=gbnf,
                stop_texts=[s for s in stops if s],
                deadline=held_since + budget - running,
                budget_s=budget,
                loop=asyncio.get_running_loop(),
                queue=asyncio.Queue(),
                finished=asyncio.Event(),
                pause_point=_pause_point if pausable else None,
                written_before=written,
                owner=owner,
            )
            try:
                if time.monotonic() > request.deadline:
                    raise EngineTimeout(f"llm had no time left ({budget} s budget)")
                self._loop.submit(request)
                while (piece := await _next_piece(request)) is not None:
                    written += piece
                    yield piece
            finally:
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
        self, messages: list[Message], tools: list[dict[str, Any]] | None = None, owner: str = ""
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
        if not found or not self._tickets.try_acquire():
            return 0
        self._reading_ahead += 1
        request = Request(
            prompt=self._tokens(head, special=True),
            max_tokens=0,
            temperature=0.0,
            grammar=None,
            stop_texts=[],
            deadline=time.monotonic() + self.config.timeout_s,
            budget_s=self.config.timeout_s,
            loop=asyncio.get_running_loop(),
            queue=asyncio.Queue(),
            finished=asyncio.Event(),
            ahead=True,
            owner=owner,
        )
        try:
            self._loop.submit(request)
            while await _next_piece(request) is not None:
                pass
        finally:
            self._reading_ahead -= 1
            await self._let_go(request)
        return request.evaluated

    def close(self) -> None:
        self._loop.close()


class _Tickets:
    """Places at the model, handed out first come, first served; a caller cancelled while it
    waits (abort, disconnect) leaves the queue at once. The number of places is read at every
    hand-out, so it follows the config."""

    def __init__(self, places: Any) -> None:
        self._places = places
        self.held = 0
        self._queue: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @property
    def free(self) -> bool:
        return self.held < self._places() and not self._queue

    def try_acquire(self) -> bool:
        if not self.free:
            return False
        self.held += 1
        return True

    async def acquire(self, max_waiting: int) -> None:
        if self.try_acquire():
            return
        if len(self._queue) >= max_waiting:
            raise EngineBusy(f"{len(self._queue)} requests already wait for the language model")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed a place just as it was cancelled: pass it on
            else:
                self._queue.remove(future)
            raise

    def release(self) -> None:
        self.held -= 1
        while self._queue and self.held < self._places():
            future = self._queue.popleft()
            if not future.done():
                self.held += 1
                future.set_result(None)


async def _next_piece(request: Request) -> str | None:
    """The next piece of text the decode loop sent for `request`; None once it is done. An
    exception it sent is raised here."""
    item = await request.queue.get()
    if isinstance(item, BaseException):
        raise item
    return None if item is DONE else str(item)


def _pause_point(text: str) -> bool:
    """Where a spoken answer may be paused: where the speaker has a whole sentence to say
    meanwhile, never inside a tool call."""
    stripped = text.lstrip()
    return bool(stripped) and not stripped.startswith(_CALL_START) and ends_sentence(text)


def _chat_formatter(llama: Any) -> Any:
    """The GGUF's own chat template, rendered by llama-cpp-python's Jinja formatter, exactly as
    its chat completion does: the prompt is rendered here so that a paused answer can resume
    from the prompt plus its own words."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        raise ValueError("the GGUF model has no chat template (tokenizer.chat_template)")
    eos, bos = llama.token_eos(), llama.token_bos()

    def text(token: int) -> str:
        return llama._model.token_get_text(token) if token != -1 else ""

    return Jinja2ChatFormatter(
        template=template, eos_token=text(eos), bos_token=text(bos), stop_token_ids=[eos]
    )
