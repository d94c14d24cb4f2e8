"""One LAN host cannot lock the household out: half-open HTTP requests, slow bodies and idle
sessions from one address are bounded, and every other address is still served."""

from __future__ import annotations

import asyncio
import os
import resource

import pytest
from websockets.exceptions import InvalidStatus

from edge.sim.device import SimDevice

pytestmark = pytest.mark.models
OTHER_HOST = "127.0.0.2"  # all of 127/8 is loopback: a second LAN host for the server


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _status_line(port: int, request: bytes, source: str | None = None) -> bytes:
    local = {"local_addr": (source, 0)} if source else {}
    reader, writer = await asyncio.open_connection("127.0.0.1", port, **local)
    writer.write(request)
    line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    return line


async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    try:
        await asyncio.wait_for(reader.read(), 30)
    except (TimeoutError, ConnectionError):
        return False
    return True


HEALTH = b"GET /health HTTP/1.1\r\nHost: lan\r\n\r\n"


async def test_half_open_requests_from_one_host_leave_the_others_served(make_server) -> None:  # type: ignore[no-untyped-def]
    # 1,100 requests that never finish their headers once used up every file descriptor, and
    # /health, the config endpoint and new devices failed with nothing in the log.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    running = make_server(server={"max_http_per_address": 8, "http_timeout_s": 2.0})
    port = running.server.http_port
    files_before = _open_files()
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    for _ in range(1100):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: lan\r\n")  # and never the blank line
        held.append((reader, writer))
    # The server holds at most its cap for that address; the rest were told 503 at once.
    refusals = await asyncio.gather(*(r.read() for r, _w in held[8:20]))
    assert all(answer.startswith(b"HTTP/1.1 503") for answer in refusals)
    for _reader, writer in held[8:]:
        writer.close()
    assert (await _status_line(port, HEALTH, OTHER_HOST)).startswith(b"HTTP/1.1 200")
    device = SimDevice(running.ws_url, device_id="aa:00:00:00:11:01", local_address=OTHER_HOST)
    await device.connect()
    await device.drop()
    # The eight it held are closed when their headers do not come in time.
    assert all(await asyncio.gather(*(_closed_by_server(r) for r, _w in held[:8])))
    for _reader, writer in held[:8]:
        writer.close()
    await asyncio.sleep(0.2)
    assert _open_files() <= files_before + 4
    assert (await _status_line(port, HEALTH)).startswith(b"HTTP/1.1 200")  # the cap is freed


async def test_a_body_sent_a_byte_at_a_time_is_cut_off(make_server, log_lines) -> None:  # type: ignore[no-untyped-def]
    running = make_server(server={"http_timeout_s": 1.0})
    reader, writer = await asyncio.open_connection("127.0.0.1", running.server.http_port)
    writer.write(
        b"POST /xiaozhi/ota/ HTTP/1.1\r\nHost: lan\r\nDevice-Id: aa:00:00:00:11:02\r\n"
        b"Content-Type: application/json\r\nContent-Length: 400\r\n\r\n{"
    )
    answer = b""
    for _ in range(200):  # a byte every 100 ms: the body would take 40 s
        try:
            answer = await asyncio.wait_for(reader.read(4096), 0.1)
            break
        except TimeoutError:
            writer.write(b" ")
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408")
    assert any("request body not complete" in line["message"] for line in log_lines)


async def test_one_host_holding_its_sessions_does_not_stop_another(make_server) -> None:  # type: ignore[no-untyped-def]
    running = make_server(server={"max_sessions_per_address": 2})
    holders = [SimDevice(running.ws_url, device_id=f"aa:00:00:00:12:0{n}") for n in (1, 2)]
    for holder in holders:
        await holder.connect()
    with pytest.raises(InvalidStatus) as err:
        await SimDevice(running.ws_url, device_id="aa:00:00:00:12:03").connect()
    assert err.value.response.status_code == 503
    other = SimDevice(running.ws_url, device_id="aa:00:00:00:12:04", local_address=OTHER_HOST)
    assert (await other.connect())["transport"] == "websocket"
    await asyncio.gather(*(device.drop() for device in (*holders, other)))
