"""The systemd side: notifications as a real unix datagram socket receives them, the watchdog
stopping when the event loop blocks, `edge serve` under a stand-in for systemd, and the unit file
as systemd-analyze sees it."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.systemd import Notifier
from tests.helpers import ServeProcess

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "edge.service"


class FakeSystemd:
    """A bound datagram socket standing in for systemd's notify socket; a thread records every
    message with the time it arrived."""

    def __init__(self, folder: Path) -> None:
        self.path = str(folder / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._running = True
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while self._running:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.messages.append((time.monotonic(), fields))

    def wait_for(self, key: str, timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _, fields in self.messages:
                if key in fields:
                    return fields
            time.sleep(0.05)
        raise AssertionError(f"no {key} in {self.messages}")

    def count(self, key: str) -> int:
        return sum(1 for _, fields in self.messages if key in fields)

    def close(self) -> None:
        self._running = False
        self.sock.close()
        self._thread.join(2)


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    fake = FakeSystemd(tmp_path)
    yield fake
    fake.close()


def test_ready_and_stopping_reach_the_socket(systemd: FakeSystemd) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": systemd.path})
    notifier.status = lambda: "serving 2 devices"
    assert notifier.ready()
    assert notifier.stopping()
    ready = systemd.wait_for("READY", 2)
    assert ready == {"READY": "1", "STATUS": "serving 2 devices", "MAINPID": str(os.getpid())}
    assert systemd.wait_for("STOPPING", 2)["STOPPING"] == "1"
    notifier.close()


def test_without_systemd_every_call_is_a_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and not notifier.ready() and notifier.watchdog_s is None
    asyncio.run(asyncio.wait_for(notifier.watchdog(), 1))  # returns at once


def test_watchdog_settings_are_read_as_systemd_writes_them() -> None:
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_s == 30.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog_s is None
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_s is None
    assert Notifier({"NOTIFY_SOCKET": "@edge-test"}).address == "\0edge-test"


def test_a_gone_socket_is_logged_not_raised(tmp_path: Path, log_lines: list[dict]) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})
    assert not notifier.ready()
    assert any("READY=1 not sent" in line["message"] for line in log_lines)


def test_a_blocked_event_loop_stops_the_watchdog_pings(systemd: FakeSystemd) -> None:
    # WATCHDOG_USEC=200 ms: a ping every 100 ms while the loop runs.
    notifier = Notifier({"NOTIFY_SOCKET": systemd.path, "WATCHDOG_USEC": "200000"})
    window: list[float] = []

    async def scenario() -> None:
        task = asyncio.create_task(notifier.watchdog())
        while systemd.count("WATCHDOG") < 3:  # noqa: ASYNC110 - the pings arrive on a thread
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.05)  # let the last ping land before the block starts
        window.append(time.monotonic())
        time.sleep(1.0)  # noqa: ASYNC251 - the point: a loop blocked by a stuck call
        window.append(time.monotonic())
        await asyncio.sleep(0.3)
        task.cancel()

    asyncio.run(scenario())
    notifier.close()
    pings = [at for at, fields in systemd.messages if "WATCHDOG" in fields]
    blocked_from, blocked_to = window
    # Times are when the fake's thread read each ping: one sent just before the block may be
    # read a little after it began (a busy CI machine). A running loop would ping ~7 times in
    # the rest of the window.
    assert not [at for at in pings if blocked_from + 0.3 < at < blocked_to]
    assert [at for at in pings if at >= blocked_to], "pings resume when the loop runs again"


@pytest.mark.models
def test_edge_serve_reports_ready_only_when_it_serves(tmp_path: Path) -> None:
    fake = FakeSystemd(tmp_path)
    serve = ServeProcess(
        tmp_path / "serve.log",
        env={
            "NOTIFY_SOCKET": fake.path,
            "WATCHDOG_USEC": "2000000",
            "EDGE_STATE_DIR": str(tmp_path),
        },
    )
    try:
        ready = fake.wait_for("READY", 240)
        # At READY both ports answer: ask the health endpoint right away.
        _ws_url, ota_url = serve.wait_ready(5)
        health = ota_url.replace("/xiaozhi/ota/", "/health")
        with urllib.request.urlopen(health, timeout=5) as response:
            assert response.status == 200
        assert ready["MAINPID"] == str(serve.proc.pid)
        assert "0 connected" in ready["STATUS"]
        pings_at_ready = fake.count("WATCHDOG")
        while fake.count("WATCHDOG") < pings_at_ready + 2:
            assert serve.proc.poll() is None
            time.sleep(0.1)
        serve.proc.send_signal(signal.SIGTERM)
        assert serve.proc.wait(30) == 0
        assert fake.wait_for("STOPPING", 1)["STOPPING"] == "1"
    finally:
        if serve.proc.poll() is None:
            serve.kill()
        fake.close()


def _unit_for_this_machine(tmp_path: Path) -> Path:
    # systemd-analyze checks that ExecStart exists: point it at this venv's edge.
    edge = Path(sys.executable).with_name("edge")
    unit = tmp_path / "edge.service"
    unit.write_text(UNIT.read_text().replace("/opt/edge/venv/bin/edge", str(edge)))
    return unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_unit_file_verifies(tmp_path: Path) -> None:
    out = subprocess.run(
        ["systemd-analyze", "verify", str(_unit_for_this_machine(tmp_path))],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
    text = UNIT.read_text()
    for setting in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "ProtectSystem=strict"):
        assert setting in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_unit_file_is_well_hardened(tmp_path: Path) -> None:
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(_unit_for_this_machine(tmp_path))],
        capture_output=True,
        text=True,
    )
    overall = [line for line in out.stdout.splitlines() if "Overall exposure" in line]
    assert overall, out.stdout + out.stderr
    if overall:
        level = float(overall[0].split("edge.service:")[1].split()[0])
        assert level < 2.5, overall[0]  # systemd calls up to 2.9 "OK"; stay well inside


def test_benchmarks_run_the_server_as_the_unit_does() -> None:
    """`edge bench` starts the server with the unit's niceness and malloc arenas."""
    from edge.bench.server import UNIT_NICE

    settings = [line.strip() for line in UNIT.read_text().splitlines()]
    assert f"Nice={UNIT_NICE}" in settings
    assert "Environment=MALLOC_ARENA_MAX=2" in settings
