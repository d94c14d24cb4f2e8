"""The language model on another machine: any OpenAI-compatible chat completion server on the
LAN (llama.cpp's `llama-server`, llama-cpp-python's server, Ollama, vLLM), streamed over SSE.

It stands in for `LlmEngine` (same `stream`, `warm_up`, queue figures), so answers, tools and
summaries work unchanged. Tools go in the request's `tools`: a server that renders them with the
model's own template answers with the call in text (`<tool_call>…`), as the local model does; a
server that parses calls itself streams `tool_calls` deltas, which are handed on written out the
same way, so one parser reads both. `json_schema` becomes `response_format` and a GBNF grammar
the llama.cpp `grammar` field; servers without them ignore them, and the tolerant parser copes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

import aiohttp
from loguru import logger

from edge.config import LlmConfig
from edge.engines.llm.base import Message, PauseRule, Progress, ToolSpec, greeting_prompt
from edge.errors import EngineBusy, EngineTimeout, LlmUnavailable

IN_FLIGHT = 4  # requests sent at once; the server queues or batches them (llama-server slots)


class OpenAiLlm:
    """A model server elsewhere on the LAN; implements `LanguageModel`."""

    def __init__(self, config: LlmConfig) -> None:
        if not config.url:
            raise ValueError("llm.backend = 'openai' needs llm.url (e.g. http://host:8080/v1)")
        self.config = config
        self.endpoint = config.url.rstrip("/") + "/chat/completions"
        self._slots = asyncio.Semaphore(IN_FLIGHT)
        self._running = 0
        self.idle_since = time.monotonic()
        self.waiting = 0
        self.pauses = 0  # the server shares itself between requests; nothing to count here
        self._session: aiohttp.ClientSession | None = None
        self._closing: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        return self._running > 0 or self.waiting > 0

    @property
    def full(self) -> bool:
        return self._running >= IN_FLIGHT or self.waiting > 0

    def idle_for(self) -> float:
        return 0.0 if self.busy else time.monotonic() - self.idle_since

    async def prefetch(
        self, messages: list[Message], tools: list[ToolSpec] | None = None, owner: str = ""
    ) -> int:
        """Reading ahead is left to the server's own prompt cache: a request sent only to warm
        it would hold one of its slots while another device may need it."""
        return 0

    async def preload(self, owner: str) -> bool:
        """The server elsewhere keeps its own prompt cache: nothing to read back here."""
        return False

    async def keep(self, owner: str) -> bool:
        return False

    async def rest(self, away: Callable[[str], bool]) -> int:
        return 0

    async def warm_up(
        self,
        prompt: list[Message] | None = None,
        tools: list[ToolSpec] | None = None,
        *,
        background: bool = False,
        progress: Progress | None = None,
    ) -> float:
        """Have the server evaluate (and, if it caches prompts, keep) the shared prefix. A server
        that is down is not fatal here: it may come up later, and each turn says so."""
        started = time.monotonic()
        prompt = prompt or greeting_prompt(self.config)
        try:
            async for _ in self.stream(prompt, max_tokens=1, tools=tools):
                pass
        except (LlmUnavailable, EngineTimeout) as exc:
            logger.warning("language model server {}: {}", self.config.url, exc)
        return time.monotonic() - started

    def _request(
        self,
        messages: list[Message],
        max_tokens: int,
        tools: list[ToolSpec] | None,
        json_schema: str | None,
        grammar: str | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.config.model or "edge",
            "messages": messages,
            "stream": True,
            "max_tokens": max_tokens,
            "temperature": self.config.temperature,
        }
        if tools:
            body["tools"] = tools
        if json_schema:
            body["response_format"] = {"type": "json_object", "schema": json.loads(json_schema)}
        if grammar:
            body["grammar"] = grammar
        return body

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
        """Yield text as the server streams it; closing the iterator closes the request, which
        makes llama.cpp's servers stop generating. The server shares itself between requests:
        `pause_at` is not needed."""
        if self.waiting >= self.config.max_waiting:
            raise EngineBusy(f"{self.waiting} requests already wait for the language model")
        body = self._request(
            messages, max_tokens or self.config.max_tokens, tools, json_schema, grammar
        )
        budget = timeout_s if timeout_s is not None else self.config.timeout_s
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self._running += 1
        try:
            async with asyncio.timeout(budget):
                async for piece in self._post(body):
                    yield piece
        except TimeoutError:
            raise EngineTimeout(f"llm server took longer than {budget} s") from None
        finally:
            self._running -= 1
            self._slots.release()
            self.idle_since = time.monotonic()

    async def _post(self, body: dict[str, Any]) -> AsyncGenerator[str, None]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        headers = {"Accept": "text/event-stream"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        calls: dict[int, dict[str, str]] = {}  # structured tool calls, by index
        try:
            async with self._session.post(self.endpoint, json=body, headers=headers) as resp:
                if resp.status != 200:
                    detail = (await resp.text())[:200]
                    raise LlmUnavailable(f"{self.endpoint} answered {resp.status}: {detail}")
                async for raw in resp.content:
                    line = raw.decode("utf-8", "replace").strip()
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    delta = _delta(data)
                    if delta.get("content"):
                        yield str(delta["content"])
                    for call in delta.get("tool_calls") or []:
                        _merge_call(calls, call)
        except aiohttp.ClientError as exc:
            raise LlmUnavailable(f"{self.endpoint}: {exc}") from None
        for call in calls.values():
            arguments = call["arguments"] or "{}"
            yield f'<tool_call>{{"name": {json.dumps(call["name"])}, "arguments": {arguments}}}'
            yield "</tool_call>"

    def close(self) -> None:
        if self._session is not None and not self._session.closed:
            session, self._session = self._session, None
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop left: the connector is dropped with the process
            self._closing = loop.create_task(session.close())


def _delta(data: str) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
        choices = chunk.get("choices") or [{}]
        return dict(choices[0].get("delta") or {})
    except (ValueError, AttributeError, IndexError, TypeError):
        raise LlmUnavailable(f"unreadable stream chunk: {data[:120]!r}") from None


def _merge_call(calls: dict[int, dict[str, str]], piece: dict[str, Any]) -> None:
    """Streamed tool calls arrive in fragments: the name first, the arguments in pieces."""
    slot = calls.setdefault(int(piece.get("index", 0)), {"name": "", "arguments": ""})
    function = piece.get("function") or {}
    slot["name"] += function.get("name") or ""
    slot["arguments"] += function.get("arguments") or ""
