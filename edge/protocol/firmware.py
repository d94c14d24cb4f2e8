"""What each device's firmware can do, from the version it reports in its config call.

The WebSocket upgrade does not carry the firmware version; the config ("OTA") call before it
does (`application.version`). The last version seen per Device-Id is kept here, in memory and
bounded: the firmware makes that call at every boot, so after a restart of edge a device is
known again once it reboots, and until then it gets what every firmware understands.
"""

from __future__ import annotations

import re
from collections import OrderedDict

NOTIFY_SINCE = (2, 5)  # `notify`: an idle device fetches and plays an Ogg/Opus file (PR #2191)
MAX_DEVICES = 4096
_VERSION = re.compile(r"^\s*v?(\d{1,4})\.(\d{1,4})")


def version_tuple(version: str) -> tuple[int, int] | None:
    """(major, minor) of "2.5.0", "v2.4.2-beta"; None for anything else."""
    match = _VERSION.match(version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def plays_notify(version: str) -> bool:
    parsed = version_tuple(version)
    return parsed is not None and parsed >= NOTIFY_SINCE


class FirmwareVersions:
    def __init__(self, limit: int = MAX_DEVICES) -> None:
        self._limit = limit
        self._versions: OrderedDict[str, str] = OrderedDict()

    def seen(self, device_id: str, version: str) -> None:
        device_id = device_id.lower()
        if not device_id or not version:
            return
        self._versions[device_id] = version[:32]
        self._versions.move_to_end(device_id)
        while len(self._versions) > self._limit:
            self._versions.popitem(last=False)

    def of(self, device_id: str) -> str:
        """The version last reported by this device ("" when none was)."""
        return self._versions.get(device_id.lower(), "")
