"""aiohttp's client-fault tracebacks become one bounded line per kind per address a minute."""

from __future__ import annotations

import logging

from loguru import logger

from edge import logs


def test_client_faults_are_one_line_per_kind_and_address() -> None:
    lines: list[str] = []
    logs.setup("INFO")
    sink = logger.add(lambda m: lines.append(str(m)), format="{extra[device]} {message}")
    server = logging.getLogger("aiohttp.server")
    try:
        for address in ("10.0.0.7", "10.0.0.7", "10.0.0.7", "10.0.0.8"):
            try:
                raise ValueError("Bad status line:\n  b'GARBAGE" + "x" * 500 + "'")
            except ValueError:
                server.exception("Error handling request from %s", address)
    finally:
        logger.remove(sink)
        logs.setup("INFO")
    assert len(lines) == 2, lines
    assert lines[0].startswith("http@10.0.0.7 bad HTTP request (ValueError): Bad status line:")
    assert "\n" not in lines[0].rstrip("\n") and len(lines[0]) < 260
    assert lines[1].startswith("http@10.0.0.8 ")
