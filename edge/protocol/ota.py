"""The HTTP config ("OTA") endpoint's answer (xiaozhi protocol §1.2).

The device writes every `websocket` member to flash and keeps absent keys from an earlier server,
so all three (`url`, `token`, `version`) are always sent. `mqtt` and `activation` are never sent:
the mere presence of `mqtt` switches the device to MQTT.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

VISION_PATH = "/mcp/vision/explain"  # camera photos, on the HTTP port (protocol §7.3)


@dataclass(frozen=True, slots=True)
class OtaRequest:
    device_id: str
    client_id: str
    user_agent: str
    firmware_version: str
    board_type: str


def parse_request(headers: dict[str, str], body: bytes) -> OtaRequest:
    """Read what the device tells about itself. A malformed body still yields a request."""
    lower = {k.lower(): v for k, v in headers.items()}
    info: dict[str, Any] = {}
    if body:
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            parsed = None
        if isinstance(parsed, dict):
            info = parsed
    app = info.get("application") if isinstance(info.get("application"), dict) else {}
    board = info.get("board") if isinstance(info.get("board"), dict) else {}
    version = app.get("version") if isinstance(app, dict) else None
    board_type = board.get("type") if isinstance(board, dict) else None
    mac = info.get("mac_address")
    return OtaRequest(
        device_id=lower.get("device-id") or (mac if isinstance(mac, str) else ""),
        client_id=lower.get("client-id", ""),
        user_agent=lower.get("user-agent", ""),
        firmware_version=version if isinstance(version, str) else "",
        board_type=board_type if isinstance(board_type, str) else "",
    )


def response(
    request: OtaRequest,
    *,
    websocket_url: str,
    token: str,
    protocol_version: int,
    now_ms: int,
    timezone_offset_min: int,
) -> dict[str, Any]:
    return {
        "server_time": {"timestamp": now_ms, "timezone_offset": timezone_offset_min},
        # Echo the device's own version with no URL: the device never sees an upgrade.
        "firmware": {"version": request.firmware_version or "0.0.0", "url": ""},
        "websocket": {"url": websocket_url, "token": token, "version": protocol_version},
    }
