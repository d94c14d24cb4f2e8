"""The language model: llama.cpp through llama-cpp-python, tokens streamed to the event loop.

One `Llama` serves every device, one generation at a time (a llama context is not thread-safe);
waiting requests are served in arrival order. llama-cpp-python keeps the KV cache of the longest
prefix shared with the previous request, so the system prompt stays first and identical for all
devices (anything that changes per request goes after it), and is evaluated once at start-up.
Other devices' prompts are saved and brought back by `edge.engines.prompt_states`.

Fairness: a long answer gives the model up at the end of a sentence when another request waits,
and queues again behind it; it resumes from its prompt plus what it has written. So a second
device hears its first sentence after at most one sentence of the first device's answer, and the
first device still has that sentence to play meanwhile. Generations under a grammar are not
interrupted (a grammar cannot resume halfway). The queue is bounded: past `max_waiting`, a
request fails at once with `EngineBusy` and the device hears an apology, not a long silence.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, Protocol

from loguru import logger

from edge.config import LlmConfig
from edge.engines.prompt_states import PromptStates
from edge.engines.worker import EngineTimeout, EngineWorker

Message = dict[str, Any]
_DONE = object()
_GRAMMAR_CACHE_SIZE = 16
# Where a spoken answer may be paused: after a sentence, never inside a tool call.
_SENTENCE_DONE = re.compile(r"[.!?。！？…]['\")\]]*\s*$|\n\s*$")
_CALL_START = ("{", "[", "<", "`")
# Stands in for the coming user message when a prompt is rendered ahead of it: the prompt up to
# here is what the request will start with, whatever the chat template puts around a message.
_USER_MARK = "\ue000edge-user-message\ue000"
# Tokens evaluated between checks for a waiting request while reading ahead (~0.1 s here).
_PREFETCH_CHUNK = 16


def greeting_prompt(config: LlmConfig) -> list[Message]:
    """The system prompt and a greeting: what a warm-up evaluates when given no prompt."""
    return [
        {"role": "system", "content": config.system_prompt},
        {"role": "user", "content": "Hello"},
    ]


class EngineBusy(RuntimeError):
    """More requests wait for the model than `llm.max_waiting`: refused at once."""


class LanguageModel(Protocol):
    """What answers, summaries and the server use: this module's `LlmEngine`, or
    `edge.engines.openai_llm.OpenAiLlm` for a server elsewhere on the LAN."""

    config: LlmConfig
    waiting: int
    pauses: int

    @property
    def busy(self) -> bool: ...

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
    ) -> AsyncGenerator[str, None]: ...

    async def prefetch(
        self, messages: list[Message], tools: list[dict[str, Any]] | None = None
    ) -> int: ...

    def close(self) -> None: ...


class LlmEngine:
    def __init__(self, model_path: Path, config: LlmConfig, worker: EngineWorker) -> None:
        from llama_cpp import Llama

        self.config = config
        self.worker = worker
        self._llama = Llama(
            model_path=str(model_path),
            n_ctx=config.context_tokens,
            n_threads=config.threads,
            n_batch=256,
            verbose=False,
        )
        self._format = _chat_formatter(self._llama)
        self.states = PromptStates(self._llama, config.prompt_cache_mb * 2**20)
        self._lock = asyncio.Lock()  # FIFO: generations are served in arrival order
        self._grammars: dict[str, Any] = {}  # JSON schema text → compiled LlamaGrammar
        self.idle_since = time.monotonic()  # when the last generation ended
        self.waiting = 0  # requests queued behind the running generation
        self.pauses = 0  # generations that gave the model up to a waiting request

    @property
    def busy(self) -> bool:
        """A generation is running or waiting."""
        return self._lock.locked()

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

    def _grammar(self, json_schema: str | None, gbnf: str | None) -> Any:
        from llama_cpp import LlamaGrammar

        if not json_schema and not gbnf:
            return None
        key = f"schema:{json_schema}" if json_schema else f"gbnf:{gbnf}"
        grammar = self._grammars.get(key)
        if grammar is None:
            if len(self._grammars) >= _GRAMMAR_CACHE_SIZE:
                self._grammars.pop(next(iter(self._grammars)))
            if json_schema:
                grammar = LlamaGrammar.from_json_schema(json_schema, verbose=False)
            else:
                grammar = LlamaGrammar.from_string(str(gbnf), verbose=False)
            self._grammars[key] = grammar
        return grammar

    async def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
        tools: list[dict[str, Any]] | None = None,
        json_schema: str | None = None,
        grammar: str | None = None,
    ) -> AsyncGenerator[str, None]:
        """Yield text pieces as the model writes them; an empty piece means the model paused
        at a sentence end for another request (speak what you have). Closing the iterator (or
        cancelling the task that reads it) stops the generation within one token. The timeout
        counts from the moment this request gets the model, not while it waits for another
        device's turn.

        `tools` are rendered by the GGUF's own chat template (the model answers with a call in
        text, read by `edge.tools.parsing`); `json_schema` or `grammar` (GBNF) constrain the
        output."""
        loop = asyncio.get_running_loop()
        limit = max_tokens or self.config.max_tokens
        budget = timeout_s if timeout_s is not None else self.config.timeout_s
        compiled = self._grammar(json_schema, grammar)
        rendered = self._format(messages=messages, tools=tools or None)
        prompt = self._llama.tokenize(rendered.prompt.encode(), add_bos=False, special=True)
        pausable = compiled is None and self.config.yield_between_sentences
        written = ""  # the answer so far, across pauses
        used = 0  # tokens generated so far
        running = 0.0  # seconds spent holding the model

        while True:
            queue: asyncio.Queue[object] = asyncio.Queue()
            stop = threading.Event()
            resume = prompt + (
                self._llama.tokenize(written.encode(), add_bos=False, special=False)
                if written
                else []
            )
            await self._acquire()
            held_since = time.monotonic()
            try:
                run = _Generation(
                    self, loop, queue, stop, written, budget, deadline=held_since + budget - running
                )
                # The deadline is checked per token; the worker's own timeout is a backstop.
                task = asyncio.ensure_future(
                    self.worker.run(
                        run.produce,
                        resume,
                        rendered,
                        compiled,
                        limit - used,
                        pausable,
                        timeout_s=budget + 5,
                    )
                )
                try:
                    while True:
                        item = await queue.get()
                        if item is _DONE:
                            break
                        if isinstance(item, BaseException):
                            raise item
                        written += str(item)
                        yield str(item)
                finally:
                    stop.set()
                    # Wait for the thread to let go of the model before the next one starts.
                    try:
                        await asyncio.shield(task)
                    except Exception as exc:
                        logger.debug("llm worker ended with {!r}", exc)
                    self.idle_since = time.monotonic()
                    paused, used = run.paused, used + run.count
            finally:
                running += time.monotonic() - held_since
                self._lock.release()
            if not paused or used >= limit:
                return
            # An empty piece says "what you have is a whole sentence": the next token, the one
            # that would show it, comes only after the other device's sentence.
            yield ""
            self.pauses += 1
            logger.debug("llm paused after {} tokens ({} waiting)", used, self.waiting)

    async def prefetch(
        self, messages: list[Message], tools: list[dict[str, Any]] | None = None
    ) -> int:
        """Evaluate the prompt a device's next request will start with (`messages`: everything
        before its coming user message) while the user is still speaking, so that only their
        words are left to read when speech recognition is done. Never waits for the model, and
        gives it up within a few tokens when a request arrives. Returns the tokens evaluated."""
        if self._lock.locked():
            return 0
        rendered = self._format(
            messages=[*messages, {"role": "user", "content": _USER_MARK}], tools=tools or None
        )
        head, found, _ = rendered.prompt.partition(_USER_MARK)
        if not found:
            return 0
        tokens = self._llama.tokenize(head.encode(), add_bos=False, special=True)
        async with self._lock:
            return int(await self.worker.run(self._evaluate_ahead, tokens))

    def _evaluate_ahead(self, tokens: list[int]) -> int:
        llama = self._llama
        cached = self.states.restore_for(tokens)
        if cached == len(tokens):
            return 0
        llama.n_tokens = cached  # `eval` drops the cache past this point
        done = 0
        for start in range(cached, len(tokens), _PREFETCH_CHUNK):
            chunk = tokens[start : start + _PREFETCH_CHUNK]
            llama.eval(chunk)
            done += len(chunk)
            if self.waiting:
                break  # a real request is queued: it matters more
        self.states.save()
        return done

    def close(self) -> None:
        self.worker.shutdown()

    async def _acquire(self) -> None:
        """Join the queue for the model (first come, first served), or refuse when it is full.
        A caller cancelled while queued (abort, disconnect) leaves the queue at once."""
        if self._lock.locked() and self.waiting >= self.config.max_waiting:
            raise EngineBusy(f"{self.waiting} requests already wait for the language model")
        self.waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self.waiting -= 1


class _Generation:
    """One stretch of generation in a worker thread: pieces go to the loop through `queue`,
    then an exception if one happened, then `_DONE`. `paused` says it stopped at a sentence end
    for a waiting request; `count` is the tokens it generated (read once the thread is done)."""

    def __init__(
        self,
        engine: LlmEngine,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[object],
        stop: threading.Event,
        written: str,
        budget: float,
        deadline: float,
    ) -> None:
        self.engine = engine
        self.loop = loop
        self.queue = queue
        self.stop = stop
        self.so_far = written
        self.budget = budget
        self.deadline = deadline
        self.paused = False
        self.count = 0

    def _send(self, item: object) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def produce(
        self, tokens: list[int], rendered: Any, grammar: Any, max_tokens: int, pausable: bool
    ) -> None:
        fresh = ""  # written in this stretch: a pause needs a sentence of its own
        try:
            if time.monotonic() > self.deadline:
                raise EngineTimeout(f"llm had no time left ({self.budget} s budget)")
            # Another device's turn may have replaced this prompt in the context since.
            self.engine.states.restore_for(tokens)
            chunks: Any = self.engine._llama.create_completion(
                prompt=tokens,
                stop=rendered.stop,
                stopping_criteria=rendered.stopping_criteria,
                grammar=grammar,
                stream=True,
                max_tokens=max_tokens,
                temperature=self.engine.config.temperature,
            )
            for chunk in chunks:
                if self.stop.is_set():
                    break
                if time.monotonic() > self.deadline:
                    raise EngineTimeout(f"llm took longer than {self.budget} s")
                self.count += 1
                piece = chunk["choices"][0]["text"]
                if piece:
                    self.so_far += piece
                    fresh += piece
                    self._send(piece)
                if (
                    pausable
                    and self.engine.waiting
                    and any(ch.isalnum() for ch in fresh)
                    and _pause_point(self.so_far)
                ):
                    self.paused = True
                    break
            chunks.close()
            self.engine.states.save()
        except BaseException as exc:  # handed to the reader, re-raised there
            self._send(exc)
        finally:
            self._send(_DONE)


def _pause_point(text: str) -> bool:
    stripped = text.lstrip()
    return (
        bool(stripped)
        and not stripped.startswith(_CALL_START)
        and bool(_SENTENCE_DONE.search(text))
    )


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
