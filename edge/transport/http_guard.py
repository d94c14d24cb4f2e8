"""Fairness on the HTTP side: one address may hold only so many connections at once.

aiohttp accepts every connection and keeps each until the client finishes it. 1,100 half-open
requests from one host once used up the process's file descriptors, and then /health, the
config endpoint and every new device failed. The cap is checked as the connection is accepted,
before a byte is parsed: a connection past it is answered 503 and closed at once, so one host
holds at most the cap, and everyone else is served. The read deadlines are aiohttp's own
(`keepalive_timeout` closes a connection whose request line and headers have not come) plus the
body deadline in `http_server`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

from loguru import logger

from edge.faults import EveryMinute, left_out

REFUSAL_LINGER_S = 1.0  # a refused connection is closed at the latest this long after its 503
_REFUSAL_BODY = b"too many connections from this address\n"
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\n"
    b"Connection: close\r\n"
    b"\r\n"
) % len(_REFUSAL_BODY) + _REFUSAL_BODY


class AddressCap:
    """Counts open HTTP connections per peer address; `wrap` puts the count in front of the
    real protocol factory (aiohttp's server)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit  # 0: no cap
        self.open: Counter[str] = Counter()
        self._lines = EveryMinute()

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Capped(factory, self)

    def admit(self, address: str) -> bool:
        if self.limit and self.open[address] >= self.limit:
            repeats = self._lines.due(address, "cap")
            if repeats is not None:
                logger.bind(device=f"http@{address}").warning(
                    "refused (503): {} HTTP connections from {} already "
                    "(server.max_http_per_address){}",
                    self.open[address],
                    address,
                    left_out(repeats),
                )
            return False
        self.open[address] += 1
        return True

    def release(self, address: str) -> None:
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]


class _Capped(asyncio.Protocol):
    """The real protocol behind the cap: created only for an admitted connection, and told
    everything the transport says."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], cap: AddressCap) -> None:
        self._factory = factory
        self._cap = cap
        self._inner: asyncio.Protocol | None = None
        self._address = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer: Any = transport.get_extra_info("peername")
        self._address = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if not self._cap.admit(self._address):
            self._refuse(transport)
            return
        self._inner = self._factory()
        self._inner.connection_made(transport)

    def _refuse(self, transport: asyncio.BaseTransport) -> None:
        # Closing with the request unread would reset the connection, and the client would
        # never read the 503: say it, end our side, and discard what comes for a moment.
        if isinstance(transport, asyncio.WriteTransport):
            transport.write(_REFUSAL)
            if transport.can_write_eof():
                transport.write_eof()
        asyncio.get_running_loop().call_later(REFUSAL_LINGER_S, transport.close)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        # For a refused connection: the client has read the answer and is done.
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is None:
            return
        self._cap.release(self._address)
        inner, self._inner = self._inner, None
        inner.connection_lost(exc)
