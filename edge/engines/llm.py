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
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from loguru import logger

from edge.config import LlmConfig
from edge.engines.worker import EngineTimeout, EngineWorker

Message = dict[str, str]
_DONE = object()


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

    def prompt_messages(self, history: list[Message], user_text: str) -> list[Message]:
        return [
            {"role": "system", "content": self.config.system_prompt},
            *history,
            {"role": "user", "content": user_text},
        ]

    async def warm_up(self) -> float:
        """Evaluate the shared system-prompt prefix so the first turn does not pay for it."""
        started = time.monotonic()
        async for _ in self.stream(self.prompt_messages([], "Hello"), max_tokens=1):
            pass
        return time.monotonic() - started

    async def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
    ) -> AsyncIterator[str]:
        """Yield text pieces as the model writes them. Closing the iterator (or cancelling the
        task that reads it) stops the generation within one token. The timeout counts from the
        moment this request gets the model, not while it waits for another device's turn."""
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

        async with self._lock:
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
