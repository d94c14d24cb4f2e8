"""The device registry (approval, tokens, pairing window) and the per-address attempt limits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edge.security.limits import AttemptLimiter
from edge.security.registry import APPROVED, PENDING, REVOKED, DeviceRegistry

DEVICE = "aa:bb:cc:00:00:10"


def test_unknown_device_waits_until_approved(tmp_path: Path) -> None:
    registry = DeviceRegistry(tmp_path / "devices.db")
    assert registry.on_config_request(DEVICE, "client", "10.0.0.5") == (PENDING, "")
    assert not registry.token_matches(DEVICE, "")
    assert registry.approve(DEVICE)
    status, token = registry.on_config_request(DEVICE, "client", "10.0.0.5")
    assert status == APPROVED and len(token) >= 32
    # The same token at every boot: the device stores whatever the config answer says.
    assert registry.on_config_request(DEVICE, "client", "10.0.0.5") == (APPROVED, token)
    assert registry.token_matches(DEVICE, token)
    assert not registry.token_matches(DEVICE, token[:-1] + ("y" if token[-1] == "x" else "x"))
    assert not registry.token_matches("aa:bb:cc:00:00:11", token)  # tokens are per device
    [record] = registry.devices()
    assert record.address == "10.0.0.5" and record.has_token and record.status == APPROVED


def test_revoked_device_is_shut_out_even_in_a_pairing_window(tmp_path: Path) -> None:
    registry = DeviceRegistry(tmp_path / "devices.db")
    registry.add(DEVICE)
    _, token = registry.on_config_request(DEVICE, "c", "a")
    assert registry.revoke(DEVICE) and not registry.token_matches(DEVICE, token)
    registry.open_pairing(60)
    assert registry.on_config_request(DEVICE, "c", "a") == (REVOKED, "")
    # Re-approval issues a new token: the old one stays dead.
    assert registry.approve(DEVICE)
    _, fresh = registry.on_config_request(DEVICE, "c", "a")
    assert fresh != token and registry.token_matches(DEVICE, fresh)
    assert not registry.revoke("aa:bb:cc:00:00:99") and not registry.approve("aa:bb:cc:00:00:99")


def test_pairing_window_approves_new_devices_until_it_closes(tmp_path: Path) -> None:
    registry = DeviceRegistry(tmp_path / "devices.db")
    registry.open_pairing(60)
    status, token = registry.on_config_request(DEVICE, "c", "a")
    assert status == APPROVED and registry.token_matches(DEVICE, token)
    registry.open_pairing(0)  # closed
    assert registry.on_config_request("aa:bb:cc:00:00:11", "c", "a") == (PENDING, "")


def test_another_process_sees_changes_at_once(tmp_path: Path) -> None:
    """The server holds the file open while `edge devices approve` writes to it."""
    registry = DeviceRegistry(tmp_path / "devices.db")
    registry.on_config_request(DEVICE, "c", "a")
    code = (
        "import sys; from pathlib import Path; from edge.security.registry import DeviceRegistry;"
        f"r = DeviceRegistry(Path(sys.argv[1])); assert r.approve({DEVICE!r}); r.close()"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "devices.db")], check=True)
    status, token = registry.on_config_request(DEVICE, "c", "a")
    assert status == APPROVED and token


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_attempts_per_address_are_limited_over_a_sliding_minute() -> None:
    clock = FakeClock()
    limiter = AttemptLimiter(3, 0, clock=clock)
    assert [limiter.attempt("10.0.0.5") for _ in range(3)] == [None, None, None]
    assert limiter.attempt("10.0.0.5") is not None
    assert limiter.attempt("10.0.0.6") is None  # another address has its own budget
    clock.now += 61
    assert limiter.attempt("10.0.0.5") is None


def test_refused_attempts_lock_the_address_out_for_a_while() -> None:
    clock = FakeClock()
    limiter = AttemptLimiter(0, 2, clock=clock)
    for _ in range(2):
        assert limiter.attempt("10.0.0.5") is None
        limiter.failed("10.0.0.5")
    assert "refused attempts" in (limiter.attempt("10.0.0.5") or "")
    clock.now += 61
    assert limiter.attempt("10.0.0.5") is None


def test_the_limiter_forgets_old_addresses() -> None:
    clock = FakeClock()
    limiter = AttemptLimiter(10, 10, clock=clock, max_addresses=100)
    for n in range(1000):
        limiter.attempt(f"10.0.{n // 256}.{n % 256}")
        limiter.failed(f"10.0.{n // 256}.{n % 256}")
    assert limiter.tracked() <= 200


def test_the_pending_list_is_bounded_and_keeps_the_approved(tmp_path: Path) -> None:
    from edge.security.registry import MAX_PENDING

    registry = DeviceRegistry(tmp_path / "devices.db")
    registry.on_config_request("aa:bb:cc:00:00:01", "c", "10.0.0.2")
    assert registry.approve("aa:bb:cc:00:00:01")
    for i in range(MAX_PENDING + 50):  # made-up Device-Ids
        registry.on_config_request(f"de:ad:00:00:{i // 256:02x}:{i % 256:02x}", "c", "10.0.0.9")
    devices = registry.devices()
    pending = [d.device_id for d in devices if d.status == PENDING]
    assert len(pending) == MAX_PENDING
    assert "de:ad:00:00:00:00" not in pending  # the oldest went first
    assert registry.status("aa:bb:cc:00:00:01") == APPROVED
    registry.close()
