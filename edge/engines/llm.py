"""The language model: llama.cpp through llama-cpp-python, tokens streamed to the event loop.

One `Llama` serves every device, one generation at a time (a llama context is not thread-safe);
waiting requests are served in arrival order. llama-cpp-python keeps the KV cache of the longest
prefix shared with the previous request, so the system prompt stays first and identical for all
devices (anything that changes per request goes after it), and is evaluated once at start-up.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from loguru import logger

from edge.config import LlmConfig
from edge.engines.worker import EngineTimeout, EngineWorker

Message = dict[str, Any]
_DONE = object()
_GRAMMAR_CACHE_SIZE = 16


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
        self._lock = asyncio.Lock()  # FIFO: generations are served in arrival order
        self._grammars: dict[str, Any] = {}  # JSON schema text → compiled LlamaGrammar
        self.idle_since = time.monotonic()  # when the last generation ended
        self.waiting = 0  # requests queued behind the running generation

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
        prompt = prompt or [
            {"role": "system", "content": self.config.system_prompt},
            {"role": "user", "content": "Hello"},
        ]
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
        """Yield text pieces as the model writes them. Closing the iterator (or cancelling the
        task that reads it) stops the generation within one token. The timeout counts from the
        moment this request gets the model, not while it waits for another device's turn.

        `tools` are rendered by the GGUF's own chat template (the model answers with a call in
        text, read by `edge.tools.parsing`); `json_schema` or `grammar` (GBNF) constrain the
        output."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()
        limit = max_tokens or self.config.max_tokens
        budget = timeout_s if timeout_s is not None else self.config.timeout_s
        deadline = 0.0

        def produce() -> None:
            try:
                if time.monotonic() > deadline:
                    raise EngineTimeout(f"llm had no time left ({budget} s budget)")
                chunks: Any = self._llama.create_chat_completion(
                    messages=messages,  # type: ignore[arg-type]
                    tools=tools or None,  # type: ignore[arg-type]
                    grammar=self._grammar(json_schema, grammar),
                    stream=True,
                    max_tokens=limit,
                    temperature=self.config.temperature,
                )
                for chunk in chunks:
                    if stop.is_set():
                        break
                    if time.monotonic() > deadline:
                        raise EngineTimeout(f"llm took longer than {budget} s")
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        loop.call_soon_threadsafe(queue.put_nowait, piece)
                chunks.close()
            except BaseException as exc:  # handed to the reader, re-raised there
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        self.waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self.waiting -= 1
        try:
            deadline = time.monotonic() + budget
            # The deadline is checked per token; the worker's own timeout is only a backstop.
            task = asyncio.ensure_future(self.worker.run(produce, timeout_s=budget + 5))
            try:
                while True:
                    item = await queue.get()
                    if item is _DONE:
                        break
                    if isinstance(item, BaseException):
                        raise item
                    yield str(item)
            finally:
                stop.set()
                # Wait for the thread to let go of the model before the next generation starts.
                try:
                    await asyncio.shield(task)
                except Exception as exc:
                    logger.debug("llm worker ended with {!r}", exc)
                self.idle_since = time.monotonic()
        finally:
            self._lock.release()
