"""Logging with loguru: one format everywhere, every line tagged with the device it concerns."""

from __future__ import annotations

import logging
import sys

from loguru import logger

from edge.faults import EveryMinute, bounded, left_out

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
        self._lines = EveryMinute(FAULT_LINE_EVERY_S, MAX_FAULT_KEYS)

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        kind = type(exc).__name__ if exc is not None else record.levelname.lower()
        message = record.getMessage()
        address = message.rsplit(" from ", 1)[-1][:64] if " from " in message else "?"
        repeats = self._lines.due(address, kind)
        if repeats is None:
            return
        detail = bounded(" ".join((str(exc) if exc is not None else message).split()), 120)
        logger.bind(device=f"http@{address}").warning(
            "bad HTTP request ({}): {}{}", kind, detail, left_out(repeats)
        )


def _route_library_logs() -> None:
    """aiohttp's server and access loggers go through `_ClientFaults` (errors) or nowhere
    (access lines: the config endpoint logs its own)."""
    server = logging.getLogger("aiohttp.server")
    server.handlers = [_ClientFaults()]
    server.propagate = False
    logging.getLogger("aiohttp.access").disabled = True
