"""Logging with loguru: one format everywhere, every line tagged with the device it concerns."""

from __future__ import annotations

import sys

from loguru import logger

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
