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
from edge.commands.runner import CommandRunner
from edge.config import Config
from edge.engines.llm import Progress
from edge.engines.loader import Engines, load_engines
from edge.memory.store import MemoryStore
from edge.metrics import Metrics
from edge.process import OpenFilesWatch, raise_open_files_limit
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

# Each progress report of a long start-up gives systemd this much more time (it only ever sees
# progress while the prefix moves, so a hung start still ends at the unit's TimeoutStartSec).
EXTEND_S = 120.0


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
            make_app(
                config,
                lambda: self.ws_port,
                self.status,
                self.admission,
                metrics,
                cpu_waits=engines.cpu.waits_since,
                announcements=self.services.announcements,
                firmware=self.services.firmware,
            ),
            config.server.http_timeout_s,
            config.server.max_http_per_address,
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
        registry = ToolRegistry()
        template = config.tools.enabled and config.tools.mode == "template"
        tools_file = config.state_path / "prefix-tools.json" if template else None
        warmer = PrefixWarmer(engines.llm, config, registry, tools_file)
        summarizer = reminders = None
        if memory is not None and config.memory.summaries:
            store = memory

            async def read_ahead(device_id: str, specs: list[dict[str, Any]]) -> None:
                await warmer.for_returning_device(store, device_id, specs)

            summarizer = Summarizer(
                memory,
                engines.llm,
                config.memory.summary_max_tokens,
                quiet=lambda: self.devices.quiet(),
                after=read_ahead,
            )
        if memory is not None and config.tools.reminders:
            reminders = ReminderScheduler(memory, self._speak_to)
        tools = config.tools
        commands = (
            CommandRunner(tools.timezone, reminders)
            if tools.enabled and tools.local_commands
            else None
        )
        return Services(
            engines, registry, Metrics(), warmer, memory, reminders, summarizer, commands
        )

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
            # No device talks, no background work is left, and freed memory is given back
            # (`edge bench` measures the server's memory then).
            "at_rest": self.devices.trimmer.at_rest(),
        }

    async def start(self) -> None:
        """Prepare, then listen: devices can connect once this returns."""
        await self.prepare()
        await self.listen()

    async def prepare(self, progress: Progress | None = None) -> None:
        """Everything before the ports open: background tasks, tools, the prompt prefix (no
        time limit; `progress(read, total)` hears how far it got) and the fixed phrases."""
        config = self.config
        services = self.services
        if services.summarizer is not None:
            self._spawn(services.summarizer.run(), "summarizer")
        if services.reminders is not None:
            self._spawn(services.reminders.run(), "reminders")
        self._spawn(self.devices.trimmer.run(), "memory trimmer")
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
        await services.warmer.at_start(progress)
        # The greeting after a wake word and the farewell are heard at once, not after piper.
        try:
            await self.engines.tts.prerender(
                prerendered(config),
                config.audio.downlink_sample_rate,
                config.audio.frame_duration_ms,
            )
        except Exception as exc:  # they are rendered on first use instead
            logger.warning("could not pre-render the fixed phrases: {!r}", exc)

    async def listen(self) -> None:
        host = self.config.server.host
        self.ws_port = await self.devices.start(host, self.config.server.port)
        self.http_port = await self._http.start(host, self.config.server.http_port)
        self._spawn(OpenFilesWatch().run(), "open-files watch")

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
    before, files = raise_open_files_limit()
    logger.info(
        "edge {} starting (pid {}, open files {}{})",
        __version__,
        os.getpid(),
        files,
        f", raised from {before}" if files != before else "",
    )
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
    starting = _Starting(notifier)
    loading = HttpServer(
        loading_app(starting.health),
        config.server.http_timeout_s,
        config.server.max_http_per_address,
    )
    await loading.start(config.server.host, config.server.http_port)
    server: EdgeServer | None = None
    engines: Engines | None = None
    try:
        try:
            engines = await load_engines(config)
            starting.phase = "evaluating the prompt prefix"
            server = EdgeServer(config, engines)
            await server.prepare(starting.progress)
        finally:
            await loading.stop()
        await server.listen()
        logger.info(
            "edge ready: websocket ws://{}:{}{} config http://{}:{}/xiaozhi/ota/",
            config.server.host,
            server.ws_port,
            config.server.websocket_path,
            config.server.host,
            server.http_port,
        )
        running = server
        notifier.status = lambda: _status_line(running)
        notifier.ready()
        if ready is not None:
            ready.set()
        await stop.wait()
        logger.info("shutting down")
        notifier.stopping()
    finally:
        if server is not None:
            await server.stop()
        if engines is not None:
            engines.close()


class _Starting:
    """What start-up is doing, for /health (answered 503 until ready, never left unanswered)
    and for systemd: READY means the models are loaded, the prompt prefix is evaluated and
    both ports listen. A slow board (or a busy one) only takes longer: nothing times out, the
    progress is logged, and systemd's start timeout is extended while it moves."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.phase = "loading models"
        self.read = (0, 0)
        notifier.status = lambda: self.phase

    def health(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "status": "starting",
            "phase": self.phase,
            "version": __version__,
            "models_loaded": self.phase != "loading models",
        }
        if self.read[1]:
            status["prefix_tokens"] = {"read": self.read[0], "of": self.read[1]}
        return status

    def progress(self, read: int, total: int) -> None:
        self.read = (read, total)
        logger.info("prompt prefix: {} of {} tokens read (a slow or busy CPU)", read, total)
        self.notifier.send(
            status=f"{self.phase}: {read} of {total} tokens",
            extend_timeout_usec=str(int(EXTEND_S * 1e6)),
        )


def _status_line(server: EdgeServer) -> str:
    return (
        f"serving on ws port {server.ws_port}, http port {server.http_port}: "
        f"{server.devices.connections} connected, {len(server.devices.sessions)} in session"
    )
