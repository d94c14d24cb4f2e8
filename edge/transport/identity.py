"""Who is connecting: headers read case-insensitively, with the query-parameter fallbacks that
browser clients use (they cannot set headers on a WebSocket)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers


@dataclass(frozen=True)
class DeviceIdentity:
    device_id: str
    client_id: str
    protocol_version: int | None  # from the Protocol-Version header, if it was usable
    token: str  # bearer token without the "Bearer " prefix; "" when absent
    peer: str

    @property
    def label(self) -> str:
        return self.device_id or f"anonymous@{self.peer}"


def _query(path: str) -> dict[str, str]:
    params = parse_qs(urlsplit(path).query)
    return {k.lower().replace("_", "-"): v[0] for k, v in params.items() if v}


IDENTITY_HEADERS = ("Device-Id", "Client-Id", "Authorization", "Protocol-Version")


def repeated_header(values: Callable[[str], list[str]]) -> str | None:
    """The first identity header sent more than once (`values(name)`: all its values), or None.
    Which one is meant cannot be known: such a request is refused, never guessed."""
    for name in IDENTITY_HEADERS:
        if len(values(name)) > 1:
            return name
    return None


def identify(path: str, headers: Headers, peer: str) -> DeviceIdentity:
    query = _query(path)

    def pick(name: str) -> str:
        return (headers.get(name) or query.get(name.lower(), "")).strip()

    raw_version = pick("Protocol-Version")
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    version = int(raw_version) if raw_version.isascii() and raw_version.isdigit() else None
    auth = pick("Authorization")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else auth
    if auth.lower() == "bearer":
        token = ""  # xiaozhi-sdk sends "Bearer " with an empty token
    return DeviceIdentity(pick("Device-Id").lower(), pick("Client-Id"), version, token, peer)
