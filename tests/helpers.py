"""Shared test helpers: the server harness, speech fixtures, word error rate."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sys
import tempfile
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from edge.app import EdgeServer
from edge.config import Config, with_overrides
from edge.engines.loader import Engines, load_engines

T = TypeVar("T")
SHARED = Path(__file__).resolve().parents[2] / "shared"
BECKETT = SHARED / "fixtures" / "speech" / "beckett_16k.wav"
BECKETT_TEXT = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."
SHERPA_WHISPER = SHARED / "models" / "sherpa-whisper-tiny.en-int8"


def words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)] / max(len(ref), 1)


def server_config(**sections: dict[str, Any]) -> Config:
    """Defaults, on ephemeral loopback ports and a fresh state folder (memory, device registry),
    with some sections changed. Summaries are off unless a test turns them on: written after
    every one of the hundreds of sessions of the suite, they would keep the shared model busy
    all along. So is the limit on attempts per address: every test device comes from 127.0.0.1
    (the limits have tests of their own)."""
    state = Path(tempfile.mkdtemp(prefix="edge-test-"))
    base = with_overrides(
        Config().replace(state_dir=str(state)),
        server={"host": "127.0.0.1", "port": 0, "http_port": 0},
        memory={"path": str(state / "memory.db"), "summaries": False},
        auth={"attempts_per_minute": 0},
    )
    return with_overrides(base, **sections) if sections else base


class ServerThread:
    """One event loop in a thread, like the real process: engines load once and any number of
    EdgeServers (with different configs) share them. Tests talk to them over loopback."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="edge-test-server")
        self._thread.start()
        self.engines: Engines = self.call(load_engines(server_config()))

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start_server(self, config: Config) -> EdgeServer:
        server = EdgeServer(config, self.engines)
        self.call(server.start())
        return server

    def stop_server(self, server: EdgeServer) -> None:
        """Stop a server; if it does not stop in time, show what its tasks are stuck on."""
        try:
            self.call(server.stop(), timeout=20)
        except TimeoutError:
            self.call(self._dump_tasks())
            raise

    @staticmethod
    async def _dump_tasks() -> None:
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                print(f"--- task {task.get_name()}", file=sys.stderr)
                task.print_stack(limit=12, file=sys.stderr)

    def tasks(self) -> int:
        async def count() -> int:
            return len(asyncio.all_tasks()) - 1  # not this coroutine's own task

        return self.call(count())

    def close(self) -> None:
        self.engines.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()


@dataclasses.dataclass
class Running:
    server: EdgeServer
    harness: ServerThread

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.server.ws_port}/xiaozhi/v1/"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}"

    def sessions(self) -> int:
        return len(self.server.devices.sessions)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * 16000), np.int16)


EDGE_COMMAND = [sys.executable, "-m", "edge"]


class ServeProcess:
    """`edge serve` as a real process on ephemeral loopback ports, with its log in a file."""

    def __init__(
        self, log: Path, *args: str, env: dict[str, str] | None = None, ephemeral: bool = True
    ) -> None:
        """`ephemeral`: on loopback ports the system picks (else as the config says)."""
        import os
        import subprocess

        self.log = log
        ports = ["--host", "127.0.0.1", "--port", "0", "--http-port", "0"] if ephemeral else []
        with open(log, "a") as out:
            self.proc = subprocess.Popen(
                [*EDGE_COMMAND, "serve", *ports, *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
        self._offset = log.stat().st_size if log.exists() else 0

    def wait_ready(self, timeout: float = 240) -> tuple[str, str]:
        """(websocket URL, config URL) from this run's ready line."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text()[self._offset :]
            match = re.search(r"websocket (ws://\S+)\s+config (http://\S+/xiaozhi/ota/)", text)
            if match:
                return match.group(1), match.group(2)
            assert self.proc.poll() is None, text
            time.sleep(0.2)
        raise AssertionError("edge serve did not become ready:\n" + self.log.read_text())

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(30)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(30)


async def wait_until(condition: Any, limit: float = 60.0) -> None:
    """Poll state that offers no event to wait on (an engine's queue, for one)."""
    import time

    deadline = time.monotonic() + limit
    while True:
        if condition():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {limit} s")
        await asyncio.sleep(0.01)


async def http_get(url: str) -> tuple[int, str, str]:
    """Status, content type and body of a GET."""
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


def metric_value(text: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus text exposition (0 when absent)."""
    label_text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(f"{name}{{{label_text}}}" if labels else name) + r" ([0-9.e+-]+)"
    match = re.search(r"^" + pattern + "$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0
