"""Logging with loguru: one format everywhere, every line tagged with the device it concerns."""

from __future__ import annotations

import logging
import sys
import time

from loguru import logger

from edge.faults import bounded

FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[device]}</cyan> {message}"
)


def setup(level: str = "INFO") -> None:
    logger.remove()
    logger.configure(extra={"device": "-"})
    # Under systemd the journal adds its own timestamps, but keeping ours costs little and keeps
    # `edge serve` readable in a terminal.
    logger.add(sys.stderr, level=level.upper(), format=FORMAT, backtrace=False, diagnose=False)
    _route_library_logs()


# Client faults aiohttp logs with a whole traceback (a malformed request line, a bad header):
# 33 MB of log in 8 minutes of fuzzing. They become one line per kind of fault per address,
# at most once a minute, through loguru like everything else.
FAULT_LINE_EVERY_S = 60.0
MAX_FAULT_KEYS = 1024


class _ClientFaults(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self._last: dict[tuple[str, str], float] = {}
        self._counts: dict[tuple[str, str], int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        kind = type(exc).__name__ if exc is not None else record.levelname.lower()
        message = record.getMessage()
        address = message.rsplit(" from ", 1)[-1] if " from " in message else "?"
        key = (address[:64], kind)
        now = time.monotonic()
        self._counts[key] = self._counts.get(key, 0) + 1
        if now - self._last.get(key, -FAULT_LINE_EVERY_S) < FAULT_LINE_EVERY_S:
            return
        if len(self._last) >= MAX_FAULT_KEYS:
            self._last.clear()
            self._counts.clear()
        self._last[key] = now
        repeats = self._counts.pop(key, 1) - 1
        detail = bounded(" ".join((str(exc) if exc is not None else message).split()), 120)
        more = f" (and {repeats} more like it since the last line)" if repeats else ""
        logger.bind(device=f"http@{key[0]}").warning(
            "bad HTTP request ({}): {}{}", kind, detail, more
        )


def _route_library_logs() -> None:
    """aiohttp's server and access loggers go through `_ClientFaults` (errors) or nowhere
    (access lines: the config endpoint logs its own)."""
    server = logging.getLogger("aiohttp.server")
    server.handlers = [_ClientFaults()]
    server.propagate = False
    logging.getLogger("aiohttp.access").disabled = True
