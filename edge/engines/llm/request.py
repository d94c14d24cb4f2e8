"""One request to the decode loop, and how its text comes back to the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge.engines.llm.sampling import StopFilter

DONE = object()  # the last item of a request's queue


@dataclass(eq=False)
class Request:
    """One stretch of generation, or with `max_tokens == 0` a prompt only read (ahead of a
    device's question, or a prefix evaluated ahead of everyone's). Written by the event loop
    before `submit`; afterwards only the decode thread changes it, except `stop`."""

    prompt: list[int]
    max_tokens: int
    temperature: float
    grammar: str | None  # GBNF text
    stops: StopFilter
    deadline: float  # monotonic; the generation fails with EngineTimeout past it
    budget_s: float  # for the message only
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[object] = field(default_factory=asyncio.Queue)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    # Where the writer may give its sequence up to a waiting request, given all it has written
    # (None: never); and the text written before this stretch, so the check sees all of it.
    pause_point: Callable[[str], bool] | None = None
    written_before: str = ""
    # Only while nothing else needs the model: gives way to any request that writes, within a
    # step, and reads in short steps meanwhile (a read-ahead, a prefix in the background).
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
    # When this stretch first had a whole sentence to say (monotonic; None before): how far its
    # speech is ahead of its speaker (`edge.engines.llm.pacing`).
    speaking_since: float | None = None
    stepped: int = 0  # the decode loop's step that last took its token

    @property
    def writes(self) -> bool:
        """It samples tokens (an answer); else it only reads its prompt into the cells."""
        return self.max_tokens > 0

    def send(self, item: object) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def send_text(self, text: str) -> None:
        if text:
            self.text += text
            self.send(text)

    def end(self, error: BaseException | None) -> None:
        """The last items: the error, if any, then DONE; and `finished` for the event loop."""
        if error is not None:
            self.send(error)
        self.send(DONE)
        self.loop.call_soon_threadsafe(self.finished.set)


async def next_piece(request: Request) -> str | None:
    """The next piece of text the decode loop sent for `request`; None once it is done. An
    exception it sent is raised here."""
    item = await request.queue.get()
    if isinstance(item, BaseException):
        raise item
    return None if item is DONE else str(item)
