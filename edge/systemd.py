"""systemd's service notification protocol (sd_notify): READY, STATUS, STOPPING and the watchdog.

The protocol is one datagram of `KEY=value` lines to the unix socket named by $NOTIFY_SOCKET
(a leading `@` means the abstract namespace). It is a few lines of code, so it lives here rather
than in a dependency: python-systemd needs libsystemd's headers to build, and the pure-Python
`sdnotify` package is unmaintained. Without $NOTIFY_SOCKET (a terminal, a test) every call is a
no-op, so the server runs the same everywhere.

The watchdog ping is sent by a task on the server's own event loop: if the loop blocks (a stuck
engine call made on the loop, a deadlock), the pings stop and systemd restarts the service.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Mapping

from loguru import logger


class Notifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        self.address = address
        self.watchdog_s = _watchdog_interval(env)
        self._socket: socket.socket | None = None
        # What the watchdog ping reports as STATUS; the server replaces it once it is ready.
        self.status: Callable[[], str] = lambda: "loading models"
        if address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def send(self, **fields: str) -> bool:
        """Send one notification (`ready="1"` → `READY=1`). False when not under systemd or the
        socket is gone; a missed notification is logged, never raised."""
        if self._socket is None:
            return False
        payload = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
        try:
            self._socket.sendto(payload.encode(), self.address)
        except OSError as exc:
            logger.warning("systemd notification {} not sent: {}", payload.split("\n")[0], exc)
            return False
        return True

    def ready(self) -> bool:
        return self.send(ready="1", status=self.status(), mainpid=str(os.getpid()))

    def stopping(self) -> bool:
        return self.send(stopping="1", status="shutting down")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    async def watchdog(self) -> None:
        """Ping the watchdog at half its timeout, from the event loop, until cancelled. The
        status line (connections, sessions) rides along so `systemctl status` shows it."""
        if self._socket is None or self.watchdog_s is None:
            return
        interval = self.watchdog_s / 2
        logger.info("systemd watchdog: pinging every {:.1f} s", interval)
        while True:
            self.send(watchdog="1", status=self.status())
            await asyncio.sleep(interval)


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """The watchdog timeout in seconds, if systemd asked this very process for pings."""
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (we were started by a wrapper)
    return int(usec) / 1_000_000
