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
