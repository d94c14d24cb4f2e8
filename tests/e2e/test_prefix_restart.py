"""After a restart the prompt prefix is evaluated with the tool list of the devices the board
served before, so their first question does not pay for it."""

from __future__ import annotations

from typing import Any

from edge.app import EdgeServer
from edge.sim.device import SimDevice
from tests.e2e.scenario import wait_log
from tests.helpers import ServerThread, server_config

DEVICE = "aa:0c:00:00:00:01"


async def _meet(server: EdgeServer, log_lines: list[dict[str, Any]]) -> str:
    dev = SimDevice(f"ws://127.0.0.1:{server.ws_port}/xiaozhi/v1/", device_id=DEVICE)
    await dev.connect()
    # Each connection ends in one of the warmer's lines: evaluated, already evaluated, or left
    # for the first question (a hang guard, not a time limit: a slow CPU takes a while).
    log = await wait_log(log_lines, DEVICE, "prompt prefix with the device's tools", timeout=180)
    await dev.drop()
    return log


async def test_the_first_question_after_a_restart_finds_the_devices_tools_ready(
    harness: ServerThread, log_lines: list[dict[str, Any]]
) -> None:
    config = server_config()
    server = harness.start_server(config)
    try:
        first = await _meet(server, log_lines)
    finally:
        harness.stop_server(server)
    assert "prompt prefix with the device's tools evaluated" in first
    assert (config.state_path / "prefix-tools.json").exists()

    log_lines.clear()
    server = harness.start_server(config)  # the restart: same state folder
    try:
        started = [line["message"] for line in log_lines if "prompt prefix (" in line["message"]]
        log_lines.clear()
        second = await _meet(server, log_lines)
    finally:
        harness.stop_server(server)
    assert started and "(3 tools)" not in started[-1]  # the shared tools and the device's
    assert "prompt prefix with the device's tools evaluated" not in second
    assert "prompt prefix with the device's tools: already evaluated" in second


async def test_a_restart_keeps_what_the_model_read(
    harness: ServerThread, speak: Any, log_lines: list[dict[str, Any]]
) -> None:
    """The model is restarted (a new engine, the same state folder): the prompt prefix comes
    back from disk instead of being read again, and so does a returning device's last prompt,
    so its first question reads only its own words."""
    import dataclasses
    import re

    from edge.engines.llm.llama import LlmEngine
    from edge.engines.loader import resolve_models
    from tests.e2e.scenario import auto_turn

    # Greedy, and a first question whose answer goes into the history: "My name is Alice." was
    # once answered with the clock, an answer that is (rightly) kept out of the history.
    config = server_config(tools={"enabled": False}, llm={"temperature": 0.0})
    path = resolve_models(config).llm
    assert path is not None

    async def life(question: str) -> tuple[int, list[tuple[int, int]]]:
        """Start a model and a server, have the device ask once, stop both: the prefix tokens
        read at start, and what was read for the device (read, of prompt tokens)."""
        llm = LlmEngine(
            path, config.llm, harness.engines.cpu, config.state_path, harness.engines.io
        )
        engines = dataclasses.replace(harness.engines, llm=llm)
        server = EdgeServer(config, engines)
        try:
            log_lines.clear()
            await server.start()
            started = [line["message"] for line in log_lines]
            log_lines.clear()
            dev = SimDevice(f"ws://127.0.0.1:{server.ws_port}/xiaozhi/v1/", device_id=DEVICE)
            await dev.connect()
            await auto_turn(dev, speak(question))
            await dev.wait_played()
            await dev.drop()
            await server.stop()  # the device's state is written to disk as its session ends
        finally:
            llm.close()
        [prefix_read] = [
            int(m.group(1)) for text in started if (m := re.search(r"tokens, (\d+) read", text))
        ]
        pattern = rf"reads (\d+) of (\d+) prompt tokens for {DEVICE}"
        reads = [
            (int(m.group(1)), int(m.group(2)))
            for line in log_lines
            if (m := re.search(pattern, line["message"]))
        ]
        return prefix_read, reads

    first_prefix, first = await life("What is the capital of France?")
    second_prefix, second = await life("Who wrote Hamlet?")
    assert first and second
    # The prefix came back from disk: left to read, at most the clock and greeting after it.
    assert first_prefix > 40 and second_prefix <= 24, (first_prefix, second_prefix)
    # After the restart the device's prompt (its history now) was found in place: each read
    # is a clock, words and the chat template around them.
    assert max(read for read, _of in second) <= 32, second
    assert sum(of for _read, of in second) > sum(of for _read, of in first)
