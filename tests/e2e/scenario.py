"""Helpers for conformance scenarios: run a turn with the simulated device, check the bracket."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from edge.sim.device import SimDevice, SimEvent


async def auto_turn(dev: SimDevice, pcm: np.ndarray, *, listen: bool = True) -> int:
    """listen start (auto), speak, keep the mic open until the reply; wait for tts stop.
    Returns the event index where this turn began."""
    mark = len(dev.events)
    if listen:
        await dev.listen_start("auto")
    await dev.say(pcm, silence_s=8.0)
    await dev.wait_tts_stop(60, after=mark)
    return mark


async def manual_turn(dev: SimDevice, pcm: np.ndarray) -> int:
    mark = len(dev.events)
    await dev.listen_start("manual")
    await dev.stream(pcm)
    dev.last_speech_sent = time.monotonic()
    await dev.listen_stop()
    await dev.wait_tts_stop(60, after=mark)
    return mark


def turn_events(dev: SimDevice, after: int = 0) -> list[SimEvent]:
    """Events of the conversation, without the MCP exchange that runs beside it."""
    return [e for e in dev.events[after:] if e.message is None or e.message.get("type") != "mcp"]


def kinds(dev: SimDevice, after: int = 0) -> list[str]:
    """The turn as a sequence: 'stt', 'tts:start', 'llm', 'tts:sentence_start', 'audio', ..."""
    out: list[str] = []
    for event in turn_events(dev, after):
        if event.message is None:
            if not out or out[-1] != "audio":
                out.append("audio")
            continue
        kind = str(event.message.get("type"))
        if kind == "tts":
            kind += ":" + str(event.message.get("state"))
        out.append(kind)
    return out


def assert_reply_bracket(dev: SimDevice, after: int = 0, *, with_stt: bool = True) -> None:
    seq = kinds(dev, after)
    start = seq.index("tts:start")
    stop = len(seq) - 1 - seq[::-1].index("tts:stop")
    if with_stt:
        assert seq.index("stt") < start, seq
    assert "audio" in seq[start:stop], seq
    assert "audio" not in seq[:start] and "audio" not in seq[stop:], seq
    assert seq.count("tts:start") == seq.count("tts:stop"), seq
    assert dev.stats.dropped_not_speaking == 0 and dev.stats.dropped_overflow == 0
    assert dev.stats.bad_json == 0


def texts(dev: SimDevice, kind: str, after: int = 0) -> list[str]:
    return [
        str(m.get("text", ""))
        for m in dev.json_messages(after)
        if (m.get("type") == kind) or (kind == "sentence" and m.get("state") == "sentence_start")
    ]


def max_device_queue(audio: list[SimEvent], frame_s: float) -> int:
    """The deepest the firmware's playback queue gets: frames arrived but not yet played, with
    playback running whenever the queue is not empty."""
    playing_until = 0.0
    ends: list[float] = []
    deepest = 0
    for event in audio:
        start = max(event.t, playing_until)
        playing_until = start + frame_s
        ends.append(playing_until)
        deepest = max(deepest, sum(1 for end in ends if end > event.t + 1e-4))
    return deepest


async def wait_log(lines: list[dict[str, Any]], device: str, text: str, timeout: float = 5) -> str:
    """Wait until the server has logged `text` for `device`; return that device's log."""
    deadline = time.monotonic() + timeout
    while True:
        log = "\n".join(line["message"] for line in lines if line["device"] == device)
        if text in log or time.monotonic() > deadline:
            return log
        await asyncio.sleep(0.05)


def first(messages: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    return next(m for m in messages if all(m.get(k) == v for k, v in match.items()))
