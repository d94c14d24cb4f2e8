"""Binary WebSocket framing versions 1, 2 and 3 (xiaozhi protocol §4.5).

v1: the message is one Opus packet. v2: 16-byte header (version, type, reserved, timestamp,
payload_size). v3: 4-byte header (type, reserved, payload_size). All big-endian. The device trusts
`payload_size` without bounds checks, so what we send must always be exact.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from edge.errors import FramingError

SUPPORTED_VERSIONS = (1, 2, 3)
_V2 = struct.Struct(">HHIII")
_V3 = struct.Struct(">BBH")


@dataclass(frozen=True, slots=True)
class AudioPacket:
    payload: bytes
    timestamp: int = 0  # v2 only: playback timestamp for server-side AEC, else 0


def decode(version: int, frame: bytes) -> AudioPacket:
    """Split one uplink binary message into its Opus payload (raises FramingError)."""
    if version == 1:
        return AudioPacket(bytes(frame))
    if version == 2:
        if len(frame) < _V2.size:
            raise FramingError(f"v2 frame of {len(frame)} bytes is shorter than its 16-byte header")
        _ver, _type, _reserved, timestamp, size = _V2.unpack_from(frame)
        if size != len(frame) - _V2.size:
            raise FramingError(
                f"v2 header says {size} payload bytes, frame carries {len(frame) - 16}"
            )
        return AudioPacket(bytes(frame[_V2.size :]), timestamp)
    if version == 3:
        if len(frame) < _V3.size:
            raise FramingError(f"v3 frame of {len(frame)} bytes is shorter than its 4-byte header")
        _type, _reserved, size = _V3.unpack_from(frame)
        if size != len(frame) - _V3.size:
            raise FramingError(
                f"v3 header says {size} payload bytes, frame carries {len(frame) - 4}"
            )
        return AudioPacket(bytes(frame[_V3.size :]))
    raise FramingError(f"unsupported binary protocol version {version}")


def encode(version: int, payload: bytes, timestamp: int = 0) -> bytes:
    """Wrap one downlink Opus packet for the device's framing version."""
    if version == 1:
        return payload
    if version == 2:
        return _V2.pack(2, 0, 0, timestamp & 0xFFFFFFFF, len(payload)) + payload
    if version == 3:
        if len(payload) > 0xFFFF:
            raise FramingError("v3 payload longer than 65535 bytes")
        return _V3.pack(0, 0, len(payload)) + payload
    raise FramingError(f"unsupported binary protocol version {version}")
