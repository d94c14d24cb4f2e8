"""Composition root: reads config, loads engines once, builds the shared services (tools, memory,
reminders), starts the servers, and shuts everything down in order."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from typing import Any

from loguru import logger

from edge import __version__
from edge.assistant.fixed_texts import prerendered
from edge.assistant.summarizer import Summarizer
from edge.assistant.warmup import PrefixWarmer
from edge.config import Config
from edge.engines.loader import Engines, load_engines
from edge.memory.store import MemoryStore
from edge.metrics import Metrics
from edge.security.admission import Admission
from edge.security.registry import DeviceRegistry
from edge.services import Services
from edge.systemd import Notifier
from edge.tools.builtin import builtin_tools
from edge.tools.external_mcp import ExternalMcpServer
from edge.tools.registry import ToolRegistry
from edge.tools.reminders import ReminderScheduler
from edge.transport.http_server import HttpServer, loading_app, make_app
from edge.transport.ws_server import DeviceServer


class EdgeServer:
    """Both endpoints over one set of engines. `start` returns once devices can connect."""

    def __init__(self, config: Config, engines: Engines) -> None:
        self.config = config
        self.engines = engines
        self.services = self._services(config, engines)
        # The device registry is opened only when devices must be approved: an open server
        # keeps no list of who called.
        self.registry = DeviceRegistry(config.registry_file) if config.auth.enabled else None
        self.admission = Admission(config.auth, self.registry)
        self.devices = DeviceServer(
            config, self.services, self.admission, http_port=lambda: self.http_port
        )
        self.external_mcp = [
            ExternalMcpServer(server, self.services.registry) for server in config.tools.mcp_servers
        ]
        self.ws_port = 0
        self.http_port = 0
        metrics = self.services.metrics
        self._http = HttpServer(
            make_app(config, lambda: self.ws_port, self.status, self.admission, metrics)
        )
        self._background: list[asyncio.Task[None]] = []
        metrics.models_loaded(True)  # the engines are loaded before a server is built
        metrics.watch(
            "edge_sessions",
            "Connections, and devices in a session (past their hello)",
            lambda: {
                "connected": self.devices.connections,
                "in_session": len(self.devices.sessions),
            },
            "state",
        )
        metrics.watch(
            "edge_engine_queue_depth",
            "Requests waiting for an engine",
            lambda: {
                "vad": engines.vad.worker.waiting,
                "asr": engines.asr.worker.waiting,
                "llm": engines.llm.waiting,
                "tts": engines.tts.worker.waiting,
            },
            "engine",
        )

    def _services(self, config: Config, engines: Engines) -> Services:
        memory = MemoryStore(config.memory_file) if config.memory.enabled else None
        summarizer = reminders = None
        if memory is not None and config.memory.summaries:
            summarizer = Summarizer(memory, engines.llm, config.memory.summary_max_tokens)
        if memory is not None and config.tools.reminders:
            reminders = ReminderScheduler(memory, self._speak_to)
        registry = ToolRegistry()
        template = config.tools.enabled and config.tools.mode == "template"
        tools_file = config.state_path / "prefix-tools.json" if template else None
        warmer = PrefixWarmer(engines.llm, config, registry, tools_file)
        return Services(engines, registry, Metrics(), warmer, memory, reminders, summarizer)

    async def _speak_to(self, device_id: str, text: str) -> bool:
        return await self.devices.speak_to(device_id, text)

    def status(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "models_loaded": True,
            "pid": os.getpid(),  # for `edge bench` on the same machine (memory, CPU time)
            "connections": self.devices.connections,
            "sessions": len(self.devices.sessions),
        }

    async def start(self) -> None:
        config = self.config
        services = self.services
        if services.summarizer is not None:
            self._spawn(services.summarizer.run(), "summarizer")
        if services.reminders is not None:
            self._spawn(services.reminders.run(), "reminders")
        if config.tools.enabled:
            services.registry.set_source(
                "builtin",
                builtin_tools(
                    config.tools.timezone, services.reminders, config.tools.call_timeout_s
                ),
            )
            for server in self.external_mcp:
                self._spawn(server.run(), f"mcp:{server.config.name}")
            await asyncio.gather(*(s.ready.wait() for s in self.external_mcp))
        await services.warmer.at_start()
        # The greeting after a wake word and the farewell are heard at once, not after piper.
        try:
            await self.engines.tts.prerender(
                prerendered(config),
                config.audio.downlink_sample_rate,
                config.audio.frame_duration_ms,
            )
        except Exception as exc:  # they are rendered on first use instead
            logger.warning("could not pre-render the fixed phrases: {!r}", exc)
        host = config.server.host
        self.ws_port = await self.devices.start(host, config.server.port)
        self.http_port = await self._http.start(host, config.server.http_port)

    def _spawn(self, coro: Any, name: str) -> None:
        self._background.append(asyncio.create_task(coro, name=name))

    async def stop(self) -> None:
        await self._http.stop()
        await self.devices.stop()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        if self.services.memory is not None:
            self.services.memory.close()
        if self.registry is not None:
            self.registry.close()


async def serve(config: Config, *, ready: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM (or until the task is cancelled). Under systemd, READY=1 is sent
    only once the models are loaded and both ports accept connections."""
    logger.info("edge {} starting (pid {})", __version__, os.getpid())
    notifier = Notifier()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    # The watchdog runs from the start: loading models on a Pi takes a while, and a loop that
    # hangs while loading should be restarted as well.
    watchdog = asyncio.create_task(notifier.watchdog(), name="watchdog")
    try:
        await _run(config, notifier, stop, ready)
    finally:
        watchdog.cancel()
        await asyncio.gather(watchdog, return_exceptions=True)
        notifier.close()


async def _run(
    config: Config, notifier: Notifier, stop: asyncio.Event, ready: asyncio.Event | None
) -> None:
    engines = await _load_while_answering_health(config)
    server = EdgeServer(config, engines)
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
        notifier.status = lambda: _status_line(server)
        notifier.ready()
        if ready is not None:
            ready.set()
        await stop.wait()
        logger.info("shutting down")
        notifier.stopping()
    finally:
        await server.stop()
        engines.close()


async def _load_while_answering_health(config: Config) -> Engines:
    """Load the engines; meanwhile the HTTP port answers /health with "loading"."""
    loading = HttpServer(
        loading_app(lambda: {"status": "loading", "version": __version__, "models_loaded": False})
    )
    await loading.start(config.server.host, config.server.http_port)
    try:
        return await load_engines(config)
    finally:
        await loading.stop()


def _status_line(server: EdgeServer) -> str:
    return (
        f"serving on ws port {server.ws_port}, http port {server.http_port}: "
        f"{server.devices.connections} connected, {len(server.devices.sessions)} in session"
    )
