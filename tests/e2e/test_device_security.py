"""Device security on the LAN, end to end: the real server with auth on, the simulated firmware
fetching its config and connecting, and the owner's `edge devices` commands as real processes
beside the running server."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import aiohttp
import pytest
from websockets.exceptions import InvalidStatus

from edge.sim.device import SimDevice
from edge.sim.run import fetch_ota
from tests.helpers import EDGE_COMMAND, Running

pytestmark = pytest.mark.models
CLIENT = "7b5d3f1e-0000-4000-8000-00000000aaaa"


def edge_devices(running: Running, *args: str) -> str:
    env = {**os.environ, "EDGE_STATE_DIR": running.server.config.state_dir}
    out = subprocess.run(
        [*EDGE_COMMAND, "devices", *args], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


async def config_token(running: Running, device_id: str) -> str:
    answer = await fetch_ota(f"{running.http_url}/xiaozhi/ota/", device_id, CLIENT)
    return str(answer["websocket"]["token"])


async def refused(running: Running, device_id: str, token: str) -> int:
    with pytest.raises(InvalidStatus) as err:
        await SimDevice(running.ws_url, device_id=device_id, token=token).connect()
    return int(err.value.response.status_code)


async def connects(running: Running, device_id: str, token: str) -> None:
    device = SimDevice(running.ws_url, device_id=device_id, token=token)
    hello = await device.connect()
    assert hello["transport"] == "websocket"
    await device.drop()


async def test_unknown_device_waits_for_approval_then_connects(make_server, log_lines) -> None:  # type: ignore[no-untyped-def]
    running = make_server(auth={"enabled": True})
    device = "aa:00:00:00:0a:01"
    assert await config_token(running, device) == ""
    assert await refused(running, device, "") == 401
    assert any(
        line["device"] == device and "not approved yet" in line["message"] for line in log_lines
    )
    listed = edge_devices(running, "list")
    assert device in listed and "pending" in listed

    edge_devices(running, "approve", device)
    token = await config_token(running, device)  # the device's next boot
    assert token
    await connects(running, device, token)
    assert await refused(running, device, token[::-1]) == 401
    assert await refused(running, "aa:00:00:00:0a:02", token) == 401  # not its token
    assert not any(token in line["message"] for line in log_lines)  # tokens are never logged

    edge_devices(running, "revoke", device)
    assert await refused(running, device, token) == 401
    assert await config_token(running, device) == ""
    assert any(line["device"] == device and "revoked" in line["message"] for line in log_lines)


async def test_a_pairing_window_admits_new_devices_as_they_start(make_server) -> None:  # type: ignore[no-untyped-def]
    running = make_server(auth={"enabled": True})
    assert "pairing open until" in edge_devices(running, "pair", "--minutes", "5")
    for n in range(3):
        device = f"aa:00:00:00:0b:0{n}"
        token = await config_token(running, device)
        await connects(running, device, token)
    assert edge_devices(running, "list").count("approved") == 3


async def test_allowlist_and_shared_token_for_firmware_that_cannot_fetch_one(make_server) -> None:  # type: ignore[no-untyped-def]
    running = make_server(
        auth={"enabled": True, "allowed_devices": ["AA:00:00:00:0C:01"], "tokens": ["shared-1"]}
    )
    await connects(running, "aa:00:00:00:0c:01", "")
    await connects(running, "aa:00:00:00:0c:02", "shared-1")
    assert await refused(running, "aa:00:00:00:0c:03", "") == 401


async def test_guessing_tokens_locks_the_address_out(make_server, log_lines) -> None:  # type: ignore[no-untyped-def]
    running = make_server(auth={"enabled": True, "failures_per_minute": 3, "tokens": ["right"]})
    for guess in ("a", "b", "c"):
        assert await refused(running, "aa:00:00:00:0d:01", guess) == 401
    # Locked out now, even with the right token, until the minute has passed.
    assert await refused(running, "aa:00:00:00:0d:01", "right") == 429
    assert any("refused (429)" in line["message"] for line in log_lines)


async def test_too_many_config_calls_from_one_address_get_429(make_server) -> None:  # type: ignore[no-untyped-def]
    running = make_server(auth={"attempts_per_minute": 5})
    statuses = []
    async with aiohttp.ClientSession() as http:
        for _ in range(7):
            async with http.post(f"{running.http_url}/xiaozhi/ota/", json={}) as response:
                statuses.append(response.status)
    assert statuses == [200] * 5 + [429] * 2


def test_devices_commands_work_without_a_running_server(tmp_path: Path) -> None:
    env = {**os.environ, "EDGE_STATE_DIR": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*EDGE_COMMAND, "devices", *args], capture_output=True, text=True, env=env
        )

    approved = run("approve", "AA:00:00:00:0E:01")
    assert approved.returncode == 0 and "ahead of time" in approved.stdout
    assert "aa:00:00:00:0e:01  approved" in run("list").stdout
    assert run("revoke", "aa:00:00:00:0e:99").returncode == 1


async def _raw_request(port: int, request: bytes) -> bytes:
    """One HTTP request written by hand (clients will not repeat headers), the status line
    back."""
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    return line


async def test_repeated_identity_headers_are_refused_and_counted(make_server) -> None:  # type: ignore[no-untyped-def]
    # Which of two Device-Ids is meant cannot be known: refused with 400, never guessed (it
    # was a 500 with a traceback), and counted against the address like a wrong token.
    running = make_server(auth={"failures_per_minute": 2})
    upgrade = (
        b"GET /xiaozhi/v1/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\nDevice-Id: aa:00:00:00:0f:01\r\n"
        b"Device-Id: aa:00:00:00:0f:02\r\nProtocol-Version: 1\r\n\r\n"
    )
    assert (await _raw_request(running.server.ws_port, upgrade)).startswith(b"HTTP/1.1 400")
    config = (
        b"POST /xiaozhi/ota/ HTTP/1.1\r\nHost: 127.0.0.1\r\nDevice-Id: aa:00:00:00:0f:01\r\n"
        b"Device-Id: aa:00:00:00:0f:02\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert (await _raw_request(running.server.http_port, config)).startswith(b"HTTP/1.1 400")
    # Two failures: the address is now locked out, for config calls as for connections.
    again = config.replace(b"Device-Id: aa:00:00:00:0f:02\r\n", b"")
    assert (await _raw_request(running.server.http_port, again)).startswith(b"HTTP/1.1 429")


async def test_a_host_header_with_an_impossible_port_gets_the_config_anyway(
    server: Running,
) -> None:
    config = (
        b"POST /xiaozhi/ota/ HTTP/1.1\r\nHost: 127.0.0.1:70000\r\n"
        b"Device-Id: aa:00:00:00:0f:03\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert (await _raw_request(server.server.http_port, config)).startswith(b"HTTP/1.1 200")


async def test_one_address_cannot_take_every_session(make_server) -> None:  # type: ignore[no-untyped-def]
    # With auth off (the default) one host reopening idle sessions once took all 64 places.
    running = make_server(server={"max_sessions_per_address": 2})
    first = SimDevice(running.ws_url, device_id="aa:00:00:00:10:01")
    second = SimDevice(running.ws_url, device_id="aa:00:00:00:10:02")
    await first.connect()
    await second.connect()
    with pytest.raises(InvalidStatus) as err:
        await SimDevice(running.ws_url, device_id="aa:00:00:00:10:03").connect()
    assert err.value.response.status_code == 503
    await first.drop()
    for _ in range(100):  # the server notices the dropped socket
        if running.server.devices.connections < 2:
            break
        await asyncio.sleep(0.05)
    third = SimDevice(running.ws_url, device_id="aa:00:00:00:10:03")
    await third.connect()
    await asyncio.gather(second.drop(), third.drop())
