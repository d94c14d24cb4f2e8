"""The server under test: `edge serve` started as its own process (as on a board), or one that
is already running. For a server on this machine, its process is found by the pid /health
reports, for its memory and CPU time."""

from __future__ import annotations

import asyncio
import atexit
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import psutil

from edge.config import env_name

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# The niceness systemd/edge.service gives the server (`Nice=`): on a board it also has
# `CPUWeight=200`, twice the share of another service's cgroup when both want the CPU, which a
# benchmark without systemd cannot reproduce. tests/service checks the two agree.
UNIT_NICE = -2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_set(cpus: int) -> set[int]:
    """The first `cpus` cores this process may use (all of them for 0)."""
    allowed = sorted(os.sched_getaffinity(0))
    return set(allowed[:cpus] if cpus else allowed)


def pinned(command: list[str], cores: set[int] | None, nice: int = 0) -> list[str]:
    """`command` run on `cores` only (None: wherever it likes), at niceness `nice`: both are
    set before exec, so every thread the program starts (llama.cpp's, onnxruntime's) inherits
    them, as on a board with that many cores. (A small Python step rather than preexec_fn,
    which is unsafe in a threaded parent, or taskset and nice, which a board may lack.) A
    niceness below 0 needs root; without it the program runs at 0, and says so in its log."""
    step = (
        "import os, sys\n"
        "if sys.argv[1]: os.sched_setaffinity(0, map(int, sys.argv[1].split(',')))\n"
        "try:\n"
        "    os.nice(int(sys.argv[2]))\n"
        "except OSError as e:\n"
        "    print(f'could not set niceness {sys.argv[2]}: {e}', file=sys.stderr)\n"
        "os.execv(sys.argv[3], sys.argv[3:])"
    )
    cpus = ",".join(map(str, sorted(cores))) if cores else ""
    return [sys.executable, "-c", step, cpus, str(nice), *command]


def _spawn(
    command: list[str], log: Path, env: dict[str, str], cpus: int = 0, nice: int = 0
) -> subprocess.Popen[bytes]:
    if cpus or nice:
        command = pinned(command, cpu_set(cpus) if cpus else None, nice)
    with open(log, "ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)


class BusyNeighbour:
    """A CPU-bound process per core of the server's (a board shared with other services, at
    the same priority): started with `start`, ended with `stop`."""

    def __init__(self, cpus: int = 0) -> None:
        self.cores = cpu_set(cpus)
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        for core in sorted(self.cores):
            busy = pinned([sys.executable, "-c", "while True: pass"], {core})
            self._procs.append(subprocess.Popen(busy))

    def stop(self) -> None:
        for proc in self._procs:
            proc.kill()
            proc.wait(10)
        self._procs.clear()


@functools.cache
def run_folder() -> Path:
    """Where this bench run's servers keep their state and logs, removed when the run ends
    (a failed start prints its log's tail first): runs used to leave hundreds in /tmp."""
    folder = Path(tempfile.mkdtemp(prefix="edge-bench-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


class ServerUnderTest:
    def __init__(self, http_base: str, proc: subprocess.Popen[bytes] | None, log: Path | None):
        self.http_base = http_base.rstrip("/")
        self.proc = proc
        self.log = log
        self.process: psutil.Process | None = None
        self.ws_url = ""
        self.ready_s: float | None = None  # from the process's start to ready (/health)
        self.workdir = log.parent if log is not None else None  # its state, for a restart

    @property
    def ota_url(self) -> str:
        return f"{self.http_base}/xiaozhi/ota/"

    @property
    def local(self) -> bool:
        return urlsplit(self.http_base).hostname in _LOOPBACK

    @classmethod
    async def start(
        cls,
        config_file: Path | None,
        env: dict[str, str],
        timeout_s: float = 900,
        workdir: Path | None = None,
        cpus: int = 0,
        summaries: bool = False,
        nice: int = 0,
    ) -> ServerUnderTest:
        """`workdir` holds the server's state; given again, the server starts as a board that
        has served before (it knows its devices' tool list). `cpus`: pinned to that many
        cores (0: all). `nice`: its niceness (`UNIT_NICE` is the service's)."""
        workdir = workdir or Path(tempfile.mkdtemp(prefix="server-", dir=run_folder()))
        log = workdir / "edge.log"
        http_port = free_port()
        command = [sys.executable, "-m", "edge", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(free_port()), "--http-port", str(http_port)]
        if config_file is not None:
            command += ["--config", str(config_file)]
        # Summaries are written when the model is idle: in the latency benchmark that would be
        # in the middle of the idle-CPU window. The household benchmark has them on.
        defaults = {
            "EDGE_STATE_DIR": str(workdir / "state"),
            "MALLOC_ARENA_MAX": "2",  # as systemd/edge.service runs it
            env_name("memory", "summaries"): "true" if summaries else "false",
            # Every simulated device connects from loopback.
            env_name("server", "max_sessions_per_address"): "0",
        }
        environment = {**defaults, **os.environ, **env}
        started = time.monotonic()
        proc = _spawn(command, log, environment, cpus, nice)
        server = cls(f"http://127.0.0.1:{http_port}", proc, log)
        await server.wait_ready(timeout_s)
        server.ready_s = time.monotonic() - started
        return server

    @classmethod
    async def attach(cls, http_base: str) -> ServerUnderTest:
        server = cls(http_base, None, None)
        await server.wait_ready(30)
        return server

    async def health(self) -> tuple[int, dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.http_base}/health", timeout=aiohttp.ClientTimeout(total=5)) as resp,
        ):
            return resp.status, dict(await resp.json(content_type=None))

    async def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                tail = self.log.read_text()[-3000:] if self.log else ""
                raise RuntimeError(f"edge serve exited with {self.proc.returncode}:\n{tail}")
            try:
                status, body = await self.health()
            except (aiohttp.ClientError, TimeoutError):
                status, body = 0, {}
            if status == 200 and body.get("models_loaded"):
                pid = body.get("pid")
                if self.local and isinstance(pid, int) and psutil.pid_exists(pid):
                    self.process = psutil.Process(pid)
                return
            await asyncio.sleep(0.3)
        raise RuntimeError(f"the server at {self.http_base} was not ready in {timeout_s:.0f} s")

    async def recent_turns(self, since: float) -> list[dict[str, Any]]:
        """Stage timestamps of the server's recent turns (only for a server on this machine,
        whose monotonic clock is ours)."""
        return (await self.recent_activity(since))[0]

    async def recent_activity(self, since: float) -> tuple[list[dict[str, Any]], list[Any]]:
        """The server's recent turns, and its engines' turns at the CPU as (when, engine,
        waited, held); empty for a server elsewhere (its clock is not ours)."""
        if not self.local:
            return [], []
        url = f"{self.http_base}/debug/turns?since={since}"
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            if resp.status != 200:
                return [], []
            body = await resp.json()
            return list(body["turns"]), list(body.get("cpu_waits", []))

    def rss_mb(self) -> float | None:
        return self.process.memory_info().rss / 1e6 if self.process else None

    def peak_rss_mb(self) -> float | None:
        """The most RSS the process ever had (the kernel's high-water mark)."""
        return self._status_mb().get("VmHWM")

    async def rest(self, limit_s: float = 300.0) -> bool:
        """Wait until the server is at rest (no device talking, its summaries and read-aheads
        done, freed memory given back); False if it was not within `limit_s`."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            try:
                _status, body = await self.health()
            except (aiohttp.ClientError, TimeoutError):
                body = {}
            if body.get("at_rest"):
                return True
            await asyncio.sleep(1.0)
        return False

    def _status_mb(self) -> dict[str, float]:
        if self.process is None:
            return {}
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return {}
        fields = {}
        for line in status.splitlines():
            key, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                fields[key] = int(value.split()[0]) / 1000
        return fields

    def rss_parts_mb(self) -> dict[str, float]:
        """RSS split as the kernel counts it: anonymous memory (what edge allocated) and
        file-backed pages (mostly the language model's memory-mapped weights: shared with the
        page cache, and given back under pressure)."""
        status = self._status_mb()
        return {
            key.removeprefix("Rss").lower(): status[key]
            for key in ("RssAnon", "RssFile", "RssShmem")
            if key in status
        }

    def niceness(self) -> int | None:
        return int(self.process.nice()) if self.process is not None else None

    def cpu_seconds(self) -> float | None:
        if self.process is None:
            return None
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def setting_env(settings: list[str]) -> dict[str, str]:
    """`--set section.key=value` items as the EDGE_* variables the server reads."""
    env = {}
    for item in settings:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        if not value or not name:
            raise SystemExit(f"edge bench: --set wants section.key=value, not {item!r}")
        env[env_name(section, name)] = value
    return env
