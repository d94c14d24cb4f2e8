"""Composition root: reads config, loads engines once, starts the servers, shuts down in order."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from typing import Any

from loguru import logger

from edge import __version__
from edge.config import Config
from edge.engines.loader import Engines, load_engines
from edge.transport.http_server import HttpServer, make_app
from edge.transport.ws_server import DeviceServer


class EdgeServer:
    """Both endpoints over one set of engines. `start` returns once devices can connect."""

    def __init__(self, config: Config, engines: Engines) -> None:
        self.config = config
        self.engines = engines
        self.devices = DeviceServer(config, engines)
        self.ws_port = 0
        self.http_port = 0
        self._http = HttpServer(make_app(config, lambda: self.ws_port, self.status))

    def status(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "models_loaded": True,
            "connections": self.devices.connections,
            "sessions": len(self.devices.sessions),
        }

    async def start(self) -> None:
        host = self.config.server.host
        self.ws_port = await self.devices.start(host, self.config.server.port)
        self.http_port = await self._http.start(host, self.config.server.http_port)

    async def stop(self) -> None:
        await self._http.stop()
        await self.devices.stop()


async def serve(config: Config, *, ready: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM (or until the task is cancelled)."""
    logger.info("edge {} starting (pid {})", __version__, os.getpid())
    engines = await load_engines(config)
    server = EdgeServer(config, engines)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        logger.info(
            "edge ready: websocket ws://{}:{}{} config http://{}:{}/xiaozhi/ota/",
            config.server.host,
            server.ws_port,
            config.server.websocket_path,
            config.server.host,
            server.http_port,
        )
        if ready is not None:
            ready.set()
        await stop.wait()
        logger.info("shutting down")
    finally:
        await server.stop()
        engines.close()
