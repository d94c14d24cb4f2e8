"""Who may call the config endpoint and open a WebSocket: the rules of `[auth]` in one place.

Both endpoints ask here before doing anything else. A refusal is an HTTP status the firmware
understands (401 for "not allowed", 429 for "too many attempts") and one log line with the
device id and the reason; tokens never appear in a log line.
"""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass

from loguru import logger

from edge.config import AuthConfig
from edge.security.limits import AttemptLimiter
from edge.security.registry import APPROVED, PENDING, REVOKED, DeviceRegistry


@dataclass(frozen=True)
class Verdict:
    status: int  # 200 admitted, 401 not authorised, 429 too many attempts
    reason: str = ""

    @property
    def admitted(self) -> bool:
        return self.status == 200


ADMITTED = Verdict(200)


class Admission:
    def __init__(self, auth: AuthConfig, registry: DeviceRegistry | None) -> None:
        self.auth = auth
        self.registry = registry
        self.limiter = AttemptLimiter(auth.attempts_per_minute, auth.failures_per_minute)
        self._allowed = {device.lower() for device in auth.allowed_devices}

    async def config_request(
        self, device_id: str, client_id: str, address: str
    ) -> tuple[Verdict, str]:
        """(verdict, token for the config answer). Unknown devices are recorded as pending."""
        limited = self.limiter.attempt(address)
        if limited:
            return Verdict(429, limited), ""
        if not self.auth.enabled or self.registry is None:
            return ADMITTED, ""
        log = logger.bind(device=device_id or f"anonymous@{address}")
        if not device_id:
            log.warning("config request without a Device-Id: no token (it cannot be approved)")
            return ADMITTED, ""
        if device_id in self._allowed:
            return ADMITTED, ""
        status, token = await asyncio.to_thread(
            self.registry.on_config_request, device_id, client_id, address
        )
        if status == PENDING:
            log.warning(
                "unknown device asked for its config; it waits for approval "
                "(edge devices approve {} or edge devices pair)",
                device_id,
            )
        elif status == REVOKED:
            log.warning("revoked device asked for its config; no token given")
        return ADMITTED, token

    async def connection(self, device_id: str, token: str, address: str) -> Verdict:
        limited = self.limiter.attempt(address)
        if limited:
            return Verdict(429, limited)
        if not self.auth.enabled:
            return ADMITTED
        if device_id and device_id in self._allowed:
            return ADMITTED
        # Every configured token is compared in constant time, so timing says nothing.
        shared = False
        for expected in self.auth.tokens:
            shared |= bool(token) and hmac.compare_digest(token.encode(), expected.encode())
        if shared:
            return ADMITTED
        if self.registry is not None and device_id:
            if await asyncio.to_thread(self.registry.token_matches, device_id, token):
                return ADMITTED
            status = await asyncio.to_thread(self.registry.status, device_id)
        else:
            status = None
        self.limiter.failed(address)
        if status == APPROVED:
            reason = "wrong token" if token else "no token (restart the device to fetch it)"
        elif status == PENDING:
            reason = f"not approved yet (edge devices approve {device_id})"
        elif status == REVOKED:
            reason = "revoked"
        else:
            reason = "unknown device" + ("" if token else ", no token")
        return Verdict(401, reason)
