"""What every language model back-end offers: the local llama.cpp engine (`edge.engines.llm.llama`)
and an OpenAI-compatible server elsewhere on the LAN (`edge.engines.llm.openai`). Answers,
summaries and the server's warm-up talk to this protocol only."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any, Protocol

from edge.config import LlmConfig

Message = dict[str, Any]  # one chat message: {"role": ..., "content": ...}
ToolSpec = dict[str, Any]  # one OpenAI-style function spec: {"type": "function", ...}
# Given everything an answer has written so far: may it pause here for another device (a whole
# sentence is ready to be spoken meanwhile)? The speaker's sentence rule, passed in by the caller.
PauseRule = Callable[[str], bool]
Progress = Callable[[int, int], None]  # (prompt tokens read, tokens in all)


def greeting_prompt(config: LlmConfig) -> list[Message]:
    """The system prompt and a greeting: what a warm-up evaluates when given no prompt."""
    return [
        {"role": "system", "content": config.system_prompt},
        {"role": "user", "content": "Hello"},
    ]


class LanguageModel(Protocol):
    config: LlmConfig
    pauses: int  # generations that gave their place up to a waiting request

    @property
    def waiting(self) -> int:
        """Requests queued for the model."""
        ...

    @property
    def busy(self) -> bool:
        """A generation is running or waiting."""
        ...

    @property
    def full(self) -> bool:
        """A new answer would wait for a running one to end."""
        ...

    def idle_for(self) -> float:
        """Seconds since the last generation ended (0 while one runs)."""
        ...

    async def warm_up(
        self,
        prompt: list[Message] | None = None,
        tools: list[ToolSpec] | None = None,
        *,
        background: bool = False,
        progress: Progress | None = None,
    ) -> float:
        """Evaluate the shared prompt prefix now, with no time limit; the seconds it took.
        `background`: only while the model is free, giving way to any answer. `progress(read,
        total)` hears how far a long read got."""
        ...

    def stream(
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
        """Text pieces as the model writes them. An empty piece: the model paused at a point
        `pause_at` allowed, for another request (speak what you have). `background`: work
        nobody waits for (a summary), stopped with `Preempted` when a device needs the model."""
        ...

    async def prefetch(
        self, messages: list[Message], tools: list[ToolSpec] | None = None, owner: str = ""
    ) -> int:
        """Read a coming request's prompt ahead; the tokens read."""
        ...

    async def preload(self, owner: str) -> bool:
        """Bring `owner`'s (a device's) prompt state kept on disk back into memory."""
        ...

    async def keep(self, owner: str) -> bool:
        """Keep `owner`'s newest prompt state on disk, for after a restart."""
        ...

    async def rest(self, away: Callable[[str], bool]) -> int:
        """No device talks: hand the states of devices `away` from memory to disk (they are
        read back when they connect), and let go what is made again at the next request (the
        local model's context); the bytes of states freed."""
        ...

    def close(self) -> None: ...
