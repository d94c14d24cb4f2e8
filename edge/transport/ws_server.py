"""The WebSocket device endpoint (xiaozhi protocol §1.3, §2).

Refusals (authorisation, capacity) happen before the upgrade with a plain HTTP status and a
message, so a refused device reports a clean "cannot connect" instead of hanging. After the
upgrade the first job is the hello, answered at once: nothing slow happens before it.
"""

from __future__ import annotations

import asyncio
import http
import time
import uuid
from collections import Counter
from collections.abc import Callable

from loguru import logger
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from edge.config import Config
from edge.faults import EveryMinute, FaultLog, left_out
from edge.process import MemoryTrimmer
from edge.protocol import messages
from edge.protocol.framing import SUPPORTED_VERSIONS
from edge.protocol.messages import AudioParams, Hello, Invalid, ServerHello
from edge.security.admission import Admission
from edge.services import Services
from edge.session.session import DeviceSession
from edge.transport.connection import WebSocketLink
from edge.transport.identity import DeviceIdentity, identify, repeated_header

MAX_FRAME_BYTES = 1 << 20  # websockets closes with 1009 above this; devices send ≤ 64 KiB


class DeviceServer:
    def __init__(
        self,
        config: Config,
        services: Services,
        admission: Admission,
        http_port: Callable[[], int] = lambda: 0,
    ) -> None:
        """`http_port`: where the HTTP side listens (for the vision URL given to devices)."""
        self.config = config
        self.services = services
        self.admission = admission
        self.http_port = http_port
        summarizer = services.summarizer
        self.trimmer = MemoryTrimmer(
            services.engines.io,
            quiet=lambda: self.quiet() and not (summarizer is not None and summarizer.pending),
            model_idle=services.engines.llm.idle_for,
            shed=self._shed,
        )
        self.sessions: dict[str, DeviceSession] = {}  # by device label
        self.connections = 0
        self._by_address: Counter[str] = Counter()  # open connections per peer address
        self._refusal_lines = EveryMinute()
        self._server: Server | None = None
        self._housekeeping: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._admit,
            compression=None,  # the firmware never negotiates permessage-deflate
            max_size=MAX_FRAME_BYTES,
            ping_interval=20,
            ping_timeout=20,
            close_timeout=2,  # devices never answer a close frame
            server_header="edge",
        )
        sockets = list(self._server.sockets)
        return int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
        for task in list(self._housekeeping):
            task.cancel()
        await asyncio.gather(*self._housekeeping, return_exceptions=True)

    # --- before the upgrade ---------------------------------------------------------------

    async def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        peer = connection.remote_address
        repeated = repeated_header(request.headers.get_all)
        if repeated is not None:
            address = peer[0] if peer else "?"
            self.admission.limiter.failed(address)  # counted like any refused attempt
            logger.bind(device=f"anonymous@{address}").warning(
                "refused (400): the {} header is sent more than once", repeated
            )
            return connection.respond(
                http.HTTPStatus.BAD_REQUEST, f"{repeated} header sent more than once\n"
            )
        identity = self._identity(connection, request)
        verdict = await self.admission.connection(
            identity.device_id, identity.token, peer[0] if peer else "?"
        )
        address = peer[0] if peer else "?"
        if not verdict.admitted:
            # The reason names the device's state, never the token it sent.
            self._refused(identity.label, address, f"refused ({verdict.status}): {verdict.reason}")
            body = (
                "device not authorised on this edge server\n"
                if verdict.status == http.HTTPStatus.UNAUTHORIZED
                else "too many connection attempts; try again in a minute\n"
            )
            return connection.respond(http.HTTPStatus(verdict.status), body)
        cap = self.config.server.max_sessions_per_address
        if cap and self._by_address[address] >= cap:
            self._refused(
                identity.label,
                address,
                f"refused: {self._by_address[address]} connections from {address} already "
                "(server.max_sessions_per_address)",
            )
            return connection.respond(
                http.HTTPStatus.SERVICE_UNAVAILABLE, "too many connections from this address\n"
            )
        if self.connections >= self.config.server.max_sessions:
            self._refused(
                identity.label,
                address,
                f"refused: {self.connections} connections already (server.max_sessions)",
            )
            return connection.respond(
                http.HTTPStatus.SERVICE_UNAVAILABLE, "edge server is at its connection limit\n"
            )
        return None

    def _refused(self, label: str, address: str, line: str) -> None:
        """One line per address and kind of refusal a minute: a host retrying in a loop is
        told once, with the count of the rest."""
        repeats = self._refusal_lines.due(address, line.split(":", 1)[0])
        if repeats is not None:
            logger.bind(device=label).warning("{}{}", line, left_out(repeats))

    @staticmethod
    def _identity(connection: ServerConnection, request: Request) -> DeviceIdentity:
        peer = connection.remote_address
        return identify(request.path, request.headers, f"{peer[0]}:{peer[1]}" if peer else "?")

    # --- after the upgrade ----------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        identity = self._identity(ws, ws.request)
        log = logger.bind(device=identity.label)
        peer = ws.remote_address
        address = peer[0] if peer else "?"
        self.connections += 1
        self._by_address[address] += 1
        try:
            await self._serve_device(ws, identity, log)
        except Exception:
            log.exception("session crashed; connection closed")
            self.services.metrics.error("session crashed")
        finally:
            self.connections -= 1
            self._by_address[address] -= 1
            if self._by_address[address] <= 0:
                del self._by_address[address]

    async def _serve_device(
        self, ws: ServerConnection, identity: DeviceIdentity, log: object
    ) -> None:
        faults = FaultLog(log, self.services.metrics.error)
        connected = time.monotonic()
        hello = await self._await_hello(ws, faults)
        if hello is None:
            return
        version = self._framing_version(identity, hello, faults)
        link = WebSocketLink(ws, identity.label, version, faults, session_id=str(uuid.uuid4()))
        audio = self.config.audio
        reply = ServerHello(
            AudioParams("opus", audio.downlink_sample_rate, 1, audio.frame_duration_ms)
        )
        if not await link.send(reply):
            return
        link.log.info(
            "connected in {:.1f} ms: client {} framing v{} uplink {} Hz/{} ms mcp={}",
            (time.monotonic() - connected) * 1000,
            identity.client_id or "-",
            version,
            hello.audio_params.sample_rate,
            hello.audio_params.frame_duration,
            hello.mcp,
        )
        session = DeviceSession(
            link,
            hello,
            self.services,
            self.config,
            identity.device_id,
            http_base=self._http_base(ws),
        )
        self._replace(identity.label, session)
        try:
            await session.run()
        finally:
            if self.sessions.get(identity.label) is session:
                del self.sessions[identity.label]
            link.log.info("disconnected after {} turns", session.turns_answered)
        await self.trimmer.after_conversation()

    def _http_base(self, ws: ServerConnection) -> str:
        # The host the device used to reach us is reachable from the LAN by definition.
        host = ws.request.headers.get("Host", "") if ws.request is not None else ""
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        if not host:
            address = ws.local_address
            host = str(address[0]) if address else "127.0.0.1"
        return f"http://{host}:{self.http_port()}"

    async def _shed(self) -> int:
        """At rest: the idle VAD detectors go, and the prompt states of devices that are away
        (on disk already); the bytes of prompt states let go."""
        detectors = self.services.engines.vad.rest()
        if detectors:
            logger.debug("at rest: {} idle VAD detector(s) let go", detectors)
        return await self.services.engines.llm.rest(away=self._away)

    def _away(self, device_id: str) -> bool:
        """Not connected now."""
        return all(session.runner.owner != device_id for session in list(self.sessions.values()))

    def quiet(self) -> bool:
        """No device is talking: none speaks, none waits for or hears its answer."""
        return not any(session.talking for session in list(self.sessions.values()))

    async def speak_to(self, device_id: str, text: str) -> bool:
        """Server-initiated speech to a connected device; False if it is not connected."""
        session = self.sessions.get(device_id)
        if session is None or session.link.closed:
            return False
        return await session.speak_proactive(text)

    def _replace(self, label: str, session: DeviceSession) -> None:
        old = self.sessions.get(label)
        self.sessions[label] = session
        if old is not None and not old.link.closed:
            # A device opens a new socket only after giving up on the old one (120 s rule).
            old.log.info("replaced by a newer connection from the same device; closing")
            task = asyncio.create_task(old.link.close("replaced by a newer connection"))
            self._housekeeping.add(task)
            task.add_done_callback(self._housekeeping.discard)

    async def _await_hello(self, ws: ServerConnection, faults: FaultLog) -> Hello | None:
        deadline = time.monotonic() + self.config.session.hello_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                async with asyncio.timeout(max(remaining, 0.001)):
                    frame = await ws.recv()
            except TimeoutError:
                faults("no hello", f"nothing usable within {self.config.session.hello_timeout_s} s")
                await WebSocketLink(ws, "", 1, faults).close("hello expected")
                return None
            except ConnectionClosed:
                return None
            if isinstance(frame, bytes):
                faults("binary before hello", f"{len(frame)}-byte frame dropped")
                continue
            parsed = messages.parse_device_message(frame)
            if isinstance(parsed, Hello):
                if parsed.transport not in (None, "websocket"):
                    faults(
                        "hello transport", f"{parsed.transport!r} on a WebSocket; answering anyway"
                    )
                return parsed
            if isinstance(parsed, Invalid) and parsed.type == "hello":
                # Answer a hello with mistyped fields with our defaults rather than leave the
                # device waiting 10 s for a hello that never comes.
                faults("bad hello", f"{parsed.reason}; using defaults")
                return Hello(None, "websocket", AudioParams())
            detail = parsed.reason if isinstance(parsed, Invalid) else type(parsed).__name__
            faults("message before hello", detail)

    @staticmethod
    def _framing_version(identity: DeviceIdentity, hello: Hello, faults: FaultLog) -> int:
        # The header is what the firmware keys its own framing on; the hello repeats it.
        version = identity.protocol_version or hello.version or 1
        if version not in SUPPORTED_VERSIONS:
            faults("framing version", f"unsupported binary protocol {version}; using 1")
            return 1
        if (
            identity.protocol_version
            and hello.version
            and hello.version != identity.protocol_version
        ):
            faults(
                "framing version",
                f"header {identity.protocol_version}, hello {hello.version}; using the header",
            )
        return version
