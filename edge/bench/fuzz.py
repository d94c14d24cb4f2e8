"""`edge bench fuzz`: malformed and out-of-order input against a live `edge serve`.

Connections with valid and odd identity headers send a seeded random mix of JSON messages
(hellos with NaN, Infinity or 1e999 audio parameters, wrong types anywhere, JSON nested past
any limit, MCP replies with odd ids and shapes, unknown types with huge names, text that is not
JSON), binary frames of random bytes and lying v2/v3 headers, oversized frames, and messages
out of order; HTTP requests go to the config endpoint with broken bodies and headers. A canary
device connects every few seconds and must get its hello. At the end the server's log must hold
no crash or traceback, no request may have got a 5xx, every frame the server sent must be legal,
and its open files and threads must be back where they were.
"""

from __future__ import annotations

import asyncio
import json
import random
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from edge.bench.server import ServerUnderTest
from edge.config import env_name
from edge.sim.device import SimDevice

CRASH_MARKS = ("session crashed", "Traceback", "Error handling request", "Unhandled exception")
KNOWN_TYPES = {"hello", "stt", "llm", "tts", "mcp", "iot", "goodbye", "alert", "system"}
CANARY_EVERY_S = 3.0
LONGEST_LOG_LINE = 600  # characters: a fault is shown as a short prefix with its size


@dataclass
class FuzzOptions:
    seconds: float = 60.0
    seed: int = 1
    connections: int = 4  # fuzzing connections at once
    json_out: str = ""


@dataclass
class FuzzReport:
    inputs: dict[str, int] = field(default_factory=dict)
    http_status: dict[str, int] = field(default_factory=dict)
    illegal_frames: list[str] = field(default_factory=list)
    canary: list[bool] = field(default_factory=list)
    crash_lines: list[str] = field(default_factory=list)
    longest_log_line: int = 0
    log_bytes: int = 0
    before: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def count(self, kind: str, n: int = 1) -> None:
        self.inputs[kind] = self.inputs.get(kind, 0) + n

    def as_json(self) -> dict[str, Any]:
        return {
            "inputs": sum(self.inputs.values()),
            "by_kind": self.inputs,
            "http_status": self.http_status,
            "http_5xx": sum(n for s, n in self.http_status.items() if s.startswith("5")),
            "illegal_frames": self.illegal_frames[:20],
            "canary_ok": sum(self.canary),
            "canary_tries": len(self.canary),
            "crash_lines": self.crash_lines[:20],
            "longest_log_line": self.longest_log_line,
            "log_bytes": self.log_bytes,
            "fds_before": self.before.get("fds"),
            "fds_after": self.after.get("fds"),
            "threads_before": self.before.get("threads"),
            "threads_after": self.after.get("threads"),
            "seconds": round(self.seconds, 1),
        }


# --- what is sent ---------------------------------------------------------------------------

_ODD = [float("nan"), float("inf"), -1, 0, 2**70, 1.5, "16000", None, [], {}, True, "²"]


def _odd(rng: random.Random) -> Any:
    return rng.choice(_ODD)


def _raw_json(rng: random.Random, value: Any) -> str:
    text = json.dumps(value, allow_nan=True)
    return text.replace("Infinity", "1e999") if rng.random() < 0.3 else text


def json_input(rng: random.Random) -> str:
    """One text frame a device (or something posing as one) might send."""
    params = {"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 60}
    choice = rng.randrange(12)
    if choice == 0:  # a hello, odd somewhere
        key = rng.choice(list(params))
        params[key] = _odd(rng)
        return _raw_json(rng, {"type": "hello", "version": rng.choice([1, 2, 3, _odd(rng)]),
                               "transport": "websocket", "audio_params": params})  # fmt: skip
    if choice == 1:
        return json.dumps({"type": "hello", "version": 1, "transport": "websocket",
                           "audio_params": params, "features": {"mcp": True}})  # fmt: skip
    if choice == 2:
        return _raw_json(rng, {"type": "listen", "state": rng.choice(["start", "stop", "detect",
                         _odd(rng)]), "mode": rng.choice(["auto", "manual", "realtime", _odd(rng)]),
                         "text": rng.choice(["hi", "", _odd(rng)])})  # fmt: skip
    if choice == 3:
        return _raw_json(rng, {"type": "abort", "reason": _odd(rng)})
    if choice == 4:  # MCP replies with odd ids and shapes
        payload = rng.choice([
            {"jsonrpc": "2.0", "id": _odd(rng), "result": {"tools": _odd(rng)}},
            {"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "x", "annotations": []}]}},
            {"jsonrpc": "2.0", "id": 2, "result": {"content": _odd(rng)}},
            {"jsonrpc": "2.0", "id": 3, "error": _odd(rng)},
            {"jsonrpc": "2.0", "method": "tools/call", "params": _odd(rng)},
        ])  # fmt: skip
        return _raw_json(rng, {"type": "mcp", "payload": payload})
    if choice == 5:
        return _raw_json(rng, {"type": "iot", "descriptors": _odd(rng), "states": _odd(rng)})
    if choice == 6:  # deep nesting, inside or outside an object
        depth = rng.choice([40, 500, 3000])
        inner = "[" * depth + "]" * depth
        return inner if rng.random() < 0.5 else '{"type":"listen","x":' + inner + "}"
    if choice == 7:  # unknown types, some huge
        return json.dumps({"type": "x" * rng.choice([1, 100, 60_000]) + str(rng.random())})
    if choice == 8:
        return rng.choice(["", "null", "[]", "42", '"hello"', "{", '{"type": 5}', "{}"])
    if choice == 9:  # not text at all
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))).decode("latin-1")
    if choice == 10:
        return json.dumps({"type": "goodbye", "session_id": _odd(rng)}, allow_nan=True)
    return json.dumps({"type": "listen", "state": "detect", "text": "x" * rng.randrange(5000)})


def binary_input(rng: random.Random, version: int) -> bytes:
    """Audio that is not: random bytes, lying v2/v3 headers, now and then a frame too big."""
    size = rng.choice([0, 1, 3, 16, 200, 1200, 70_000 if rng.random() < 0.05 else 400])
    body = bytes(rng.randrange(256) for _ in range(min(size, 2048))) * max(1, size // 2048)
    if version == 2:
        claimed = rng.choice([len(body), 0, 65535, len(body) + 7])
        return struct.pack(">HHIII", 2, rng.randrange(3), 0, rng.randrange(2**32), claimed) + body
    if version == 3:
        claimed = rng.choice([len(body), 0, 65535, len(body) - 1 if body else 9])
        return struct.pack(">BBH", rng.randrange(3), 0, claimed & 0xFFFF) + body
    return body


# --- how it is sent -------------------------------------------------------------------------


def _legal(frame: str | bytes, report: FuzzReport) -> None:
    if isinstance(frame, bytes):
        if len(frame) > 4096:
            report.illegal_frames.append(f"binary frame of {len(frame)} bytes")
        return
    try:
        message = json.loads(frame)
    except ValueError:
        report.illegal_frames.append(f"not JSON: {frame[:80]!r}")
        return
    if not isinstance(message, dict) or message.get("type") not in KNOWN_TYPES:
        report.illegal_frames.append(f"unknown message: {frame[:80]!r}")


async def _drain(ws: Any, report: FuzzReport) -> None:
    try:
        async for frame in ws:
            _legal(frame, report)
    except (WebSocketException, OSError):
        pass


async def fuzz_connection(url: str, rng: random.Random, report: FuzzReport) -> None:
    version = rng.choice([1, 2, 3])
    headers = {"Device-Id": f"fu:zz:{rng.randrange(256):02x}:00:00:01", "Client-Id": "fuzz",
               "Protocol-Version": rng.choice([str(version), "²", "9", ""])}  # fmt: skip
    try:
        async with connect(url, additional_headers=headers, max_size=None, open_timeout=10,
                           close_timeout=1) as ws:  # fmt: skip
            reader = asyncio.create_task(_drain(ws, report))
            for _ in range(rng.randrange(1, 200)):
                if rng.random() < 0.6:
                    await ws.send(json_input(rng))
                    report.count("json")
                else:
                    await ws.send(binary_input(rng, version))
                    report.count("binary")
                if rng.random() < 0.02:
                    await asyncio.sleep(rng.random() * 0.2)
            await asyncio.sleep(rng.random() * 0.2)
            if rng.random() < 0.5 and ws.transport is not None:
                ws.transport.abort()  # as the firmware leaves: no close frame
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    except InvalidStatus as exc:
        status = str(exc.response.status_code)
        report.http_status[status] = report.http_status.get(status, 0) + 1
    except (WebSocketException, OSError, TimeoutError):
        pass


_GARBAGE = [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /xiaozhi/ota/ HTTP/1.1\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
]


async def raw_http(base: str, rng: random.Random, report: FuzzReport) -> None:
    """A request no client library would write."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    try:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(rng.choice(_GARBAGE))
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            key = parts[1].decode()
            report.http_status[key] = report.http_status.get(key, 0) + 1
    except (OSError, TimeoutError, ValueError):
        pass
    report.count("http")


async def fuzz_http(base: str, rng: random.Random, report: FuzzReport) -> None:
    if rng.random() < 0.3:
        await raw_http(base, rng, report)
        return
    choice = rng.randrange(5)
    headers = {"Device-Id": f"fu:zz:{rng.randrange(4096):03x}:00:02", "Content-Type": "x"}
    body: bytes = b""
    if choice == 0:
        depth = rng.choice([40, 5000])
        body = ("[" * depth + "]" * depth).encode()
    elif choice == 1:
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000)))
    elif choice == 2:
        body = json.dumps({"application": _odd(rng), "board": {"type": _odd(rng)},
                           "mac_address": _odd(rng)}, allow_nan=True).encode()  # fmt: skip
    elif choice == 3:
        headers["Host"] = rng.choice(["127.0.0.1:70000", "[::1", "x" * 300, "a b"])
    path = rng.choice(["/xiaozhi/ota/", "/xiaozhi/ota/", "/health", "/metrics", "/nope", "/%ff"])
    try:
        async with aiohttp.ClientSession() as http:
            method = rng.choice(["POST", "GET", "PUT"])
            async with http.request(method, base + path, data=body, headers=headers) as resp:
                await resp.read()
                key = str(resp.status)
                report.http_status[key] = report.http_status.get(key, 0) + 1
    except (aiohttp.ClientError, ValueError, TimeoutError):
        pass
    report.count("http")


async def canary(server: ServerUnderTest, url: str, report: FuzzReport, stop: asyncio.Event):
    """A well-behaved device, now and then: it must always get its hello."""
    n = 0
    while not stop.is_set():
        device = SimDevice(url, device_id=f"ca:na:ry:00:00:{n % 256:02x}")
        n += 1
        try:
            await asyncio.wait_for(device.connect(), 15)
            report.canary.append(device.server_hello is not None)
        except Exception:
            report.canary.append(False)
        finally:
            await device.drop()
        try:
            await asyncio.wait_for(stop.wait(), CANARY_EVERY_S)
        except TimeoutError:
            pass


def _process_counts(server: ServerUnderTest) -> dict[str, int]:
    if server.process is None:
        return {}
    return {"fds": server.process.num_fds(), "threads": server.process.num_threads()}


async def run(options: FuzzOptions, server: ServerUnderTest) -> FuzzReport:
    """Fuzz `server` for `options.seconds`; the report says what went wrong, if anything."""
    rng = random.Random(options.seed)
    report = FuzzReport()
    url = server.ws_url or server.http_base.replace("http://", "ws://")
    await asyncio.sleep(1.0)
    report.before = _process_counts(server)
    log_start = server.log.stat().st_size if server.log and server.log.exists() else 0
    stop = asyncio.Event()
    watcher = asyncio.create_task(canary(server, url, report, stop))
    started = time.monotonic()

    async def worker(seed: int) -> None:
        mine = random.Random(seed)
        while time.monotonic() - started < options.seconds:
            if mine.random() < 0.25:
                await fuzz_http(server.http_base, mine, report)
            else:
                await fuzz_connection(url, mine, report)

    await asyncio.gather(*(worker(rng.randrange(2**32)) for _ in range(options.connections)))
    stop.set()
    await watcher
    report.seconds = time.monotonic() - started
    await asyncio.sleep(3.0)  # sessions notice their dropped sockets
    report.after = _process_counts(server)
    if server.log is not None:
        await asyncio.to_thread(_read_log, server.log, log_start, report)
    return report


def _read_log(path: Path, start: int, report: FuzzReport) -> None:
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as log:
        log.seek(start)
        for line in log:
            report.log_bytes += len(line)
            report.longest_log_line = max(report.longest_log_line, len(line.rstrip("\n")))
            if _crash(line):
                report.crash_lines.append(line.strip()[:200])


def _crash(line: str) -> bool:
    return any(mark in line for mark in CRASH_MARKS)


def main(options: FuzzOptions) -> int:
    async def go() -> FuzzReport:
        # The attempt limits have their own tests: here every input must reach the server.
        limits = {env_name("auth", "attempts_per_minute"): "0",
                  env_name("auth", "failures_per_minute"): "0"}  # fmt: skip
        server = await ServerUnderTest.start(None, limits)
        try:
            server.ws_url = await _ws_url(server)
            return await run(options, server)
        finally:
            server.stop()

    report = asyncio.run(go())
    figures = report.as_json()
    print(f"fuzz: {figures['inputs']} inputs in {figures['seconds']} s "
          f"({', '.join(f'{k} {v}' for k, v in sorted(report.inputs.items()))})")  # fmt: skip
    print(f"  HTTP statuses: {figures['http_status']}; 5xx: {figures['http_5xx']}")
    print(f"  canary: {figures['canary_ok']}/{figures['canary_tries']} got their hello")
    print(f"  illegal frames from the server: {len(report.illegal_frames)}")
    print(f"  crash lines in the server log: {len(report.crash_lines)}; "
          f"{figures['log_bytes'] / 1e6:.1f} MB of log, longest line "
          f"{figures['longest_log_line']} chars")  # fmt: skip
    print(f"  open files {figures['fds_before']} → {figures['fds_after']}, "
          f"threads {figures['threads_before']} → {figures['threads_after']}")  # fmt: skip
    if options.json_out:
        text = json.dumps(figures, indent=2)
        if options.json_out == "-":
            print(text)
        else:
            with open(options.json_out, "w", encoding="utf-8") as out:
                out.write(text)
    ok = not (figures["http_5xx"] or report.illegal_frames or report.crash_lines)
    ok = ok and report.longest_log_line <= LONGEST_LOG_LINE
    ok = ok and all(report.canary)
    if not ok:
        print("fuzz found problems", file=sys.stderr)
    return 0 if ok else 1


async def _ws_url(server: ServerUnderTest) -> str:
    """The WebSocket URL the config endpoint hands out."""
    async with aiohttp.ClientSession() as http:
        headers = {"Device-Id": "fu:zz:00:00:00:00", "Client-Id": "fuzz"}
        async with http.post(server.ota_url, json={}, headers=headers) as resp:
            answer = await resp.json()
    return str(answer["websocket"]["url"])
