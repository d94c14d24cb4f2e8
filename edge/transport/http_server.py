"""The HTTP side: the config ("OTA") endpoint the firmware calls first, /health and /metrics.

The OTA answer must always be usable: a malformed body still gets a `websocket` section (without
one the device falls back to MQTT with stale settings and never reaches us). CORS is open so that
browser test pages can call it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from loguru import logger

from edge.announcements import NOTIFY_PATH, Announcements
from edge.config import Config
from edge.faults import EveryMinute, bounded, left_out
from edge.metrics import CONTENT_TYPE, Metrics
from edge.protocol import ota
from edge.protocol.firmware import FirmwareVersions
from edge.protocol.ota import VISION_PATH
from edge.security.admission import Admission
from edge.transport.http_guard import AddressCap
from edge.transport.identity import repeated_header

_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "*",
    "Access-Control-Max-Age": "86400",
}


def _timezone_offset_min(config: Config) -> int:
    if config.server.timezone_offset_min is not None:
        return config.server.timezone_offset_min
    offset = datetime.now().astimezone().utcoffset()
    return int(offset.total_seconds() // 60) if offset else 0


def websocket_url(config: Config, request: web.Request, ws_port: int) -> str:
    """The URL devices should use: configured, or the address this request reached us on."""
    if config.server.public_websocket_url:
        return config.server.public_websocket_url
    try:
        host = request.url.host
    except ValueError:  # a Host header yarl refuses ("lan:70000"): use the address reached
        host = None
    if not host:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        host = sockname[0] if sockname else "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    return f"ws://{host}:{ws_port}{config.server.websocket_path}"


def _body_deadline(timeout_s: float) -> Any:
    """A body must arrive within `timeout_s`: one sent a byte at a time would hold its
    connection (and a file descriptor) for as long as the sender liked."""
    lines = EveryMinute()

    @web.middleware
    async def deadline(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.can_read_body:
            try:
                async with asyncio.timeout(timeout_s):
                    await request.read()  # kept by aiohttp for the handler
            except TimeoutError:
                address = request.remote or "?"
                repeats = lines.due(address, "slow body")
                if repeats is not None:
                    logger.bind(device=f"http@{address}").warning(
                        "request body not complete after {:.0f} s: answered 408{}",
                        timeout_s,
                        left_out(repeats),
                    )
                response = web.json_response({"error": "request body too slow"}, status=408)
                response.force_close()
                return response
        return await handler(request)

    return deadline


@web.middleware
async def _cors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.method == "OPTIONS":
        return web.Response(status=204, headers=_CORS)
    response = await handler(request)
    response.headers.update(_CORS)
    return response


def make_app(
    config: Config,
    ws_port: Callable[[], int],
    status: Callable[[], dict[str, Any]],
    admission: Admission,
    metrics: Metrics,
    cpu_waits: Callable[[float], list[Any]] = lambda _since: [],
    announcements: Announcements | None = None,
    firmware: FirmwareVersions | None = None,
) -> web.Application:
    """`cpu_waits(since)`: the heavy engines' turns at the CPU since then (`CpuTurns`).
    `announcements`: the files idle firmware-2.5 devices fetch after a `notify`; `firmware`:
    where the version each device reports is kept (what it can play depends on it)."""

    async def ota_endpoint(request: web.Request) -> web.Response:
        repeated = repeated_header(lambda name: request.headers.getall(name, []))
        if repeated is not None:
            address = request.remote or "?"
            admission.limiter.failed(address)  # counted like any refused attempt
            logger.bind(device=f"anonymous@{address}").warning(
                "config request refused (400): the {} header is sent more than once", repeated
            )
            return web.json_response({"error": f"{repeated} sent more than once"}, status=400)
        body = await request.read()  # read (and kept) by the body deadline already
        info = ota.parse_request(dict(request.headers), body)
        address = request.remote or "?"
        verdict, token = await admission.config_request(
            info.device_id.lower(), info.client_id, address
        )
        if not verdict.admitted:
            logger.bind(device=info.device_id or address).warning(
                "config request refused ({}): {}", verdict.status, verdict.reason
            )
            return web.json_response({"error": verdict.reason}, status=verdict.status)
        if firmware is not None:
            firmware.seen(info.device_id, info.firmware_version)
        url = websocket_url(config, request, ws_port())
        answer = ota.response(
            info,
            websocket_url=url,
            token=token,
            protocol_version=config.server.protocol_version,
            now_ms=int(time.time() * 1000),
            timezone_offset_min=_timezone_offset_min(config),
        )
        logger.bind(device=info.device_id or request.remote or "?").info(
            "config request ({}): client {} agent {!r} firmware {} board {} → {}{}",
            request.method,
            bounded(info.client_id or "-", 64),
            bounded(info.user_agent, 80),
            bounded(info.firmware_version or "?", 32),
            bounded(info.board_type or "?", 48),
            bounded(url, 120),
            " with its token" if token else "",
        )
        return web.json_response(answer)

    async def health(_request: web.Request) -> web.Response:
        return web.json_response(status())

    async def metrics_endpoint(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def recent_turns(request: web.Request) -> web.Response:
        # Stage timestamps of recent turns, and how long the engines waited for the CPU, for
        # `edge bench` on the same machine. They carry device ids: loopback callers only.
        if not _loopback(request):
            return web.json_response({"error": "loopback only"}, status=403)
        try:
            since = float(request.query.get("since", "0"))
        except ValueError:
            return web.json_response({"error": "since must be a number"}, status=400)
        return web.json_response(
            {"turns": metrics.recent_turns(since), "cpu_waits": cpu_waits(since)}
        )

    async def announcement(request: web.Request) -> web.Response:
        # No redirect, a 2xx or nothing: the firmware follows no redirects (docs/notify.md).
        data = announcements.fetch(request.match_info["token"]) if announcements else None
        if data is None:
            return web.Response(status=404, text="no such announcement\n")
        logger.bind(device=request.remote or "?").info("announcement fetched ({} bytes)", len(data))
        return web.Response(body=data, content_type="audio/ogg")

    async def vision(request: web.Request) -> web.Response:
        # Devices with a camera upload photos here (protocol §7.3); the body of our answer
        # becomes their tool result. There is no vision model on the board, and we say so.
        await request.read()
        logger.bind(device=request.headers.get("Device-Id", "?")).info(
            "camera photo received; no vision model configured"
        )
        return web.json_response(
            {"success": False, "message": "This assistant cannot look at photos."}
        )

    app = web.Application(
        middlewares=[_cors, _body_deadline(config.server.http_timeout_s)],
        client_max_size=4 * 1024 * 1024,
    )
    for path in ("/xiaozhi/ota", "/xiaozhi/ota/"):
        app.router.add_route("GET", path, ota_endpoint)
        app.router.add_route("POST", path, ota_endpoint)
        app.router.add_route("OPTIONS", path, ota_endpoint)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/debug/turns", recent_turns)
    app.router.add_post(VISION_PATH, vision)
    app.router.add_get(NOTIFY_PATH + "{token}.ogg", announcement)
    return app


def _loopback(request: web.Request) -> bool:
    try:
        address = ipaddress.ip_address((request.remote or "").split("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 from a dual-stack socket
    return bool((mapped or address).is_loopback)


def loading_app(status: Callable[[], dict[str, Any]]) -> web.Application:
    """Served while the models load (a minute or more on a Pi): /health says so, and the config
    endpoint answers 503 so the firmware retries instead of being sent to a WebSocket port that
    does not listen yet."""

    async def health(_request: web.Request) -> web.Response:
        return web.json_response(status(), status=503)

    async def not_yet(_request: web.Request) -> web.Response:
        return web.json_response({"error": "starting: models are loading"}, status=503)

    app = web.Application(middlewares=[_cors])
    app.router.add_get("/health", health)
    app.router.add_route("*", "/{tail:.*}", not_yet)
    return app


class HttpServer:
    """`timeout_s`: a connection's request line and headers must come within it (aiohttp closes
    a connection idle that long, and one that has not finished its headers is idle), and so
    must a body. `max_per_address`: connections one address may hold at once (0: no cap)."""

    def __init__(self, app: web.Application, timeout_s: float, max_per_address: int = 0) -> None:
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, keepalive_timeout=timeout_s
        )
        self._cap = AddressCap(max_per_address)
        self._listener: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        await self._runner.setup()
        assert self._runner.server is not None
        # Our own listener rather than a `TCPSite`, so that the cap sees each connection
        # before aiohttp does; `cleanup` still closes the connections aiohttp holds.
        self._listener = await asyncio.get_running_loop().create_server(
            self._cap.wrap(self._runner.server), host, port, reuse_address=True
        )
        return int(self._listener.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
        await self._runner.cleanup()
