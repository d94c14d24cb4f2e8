from __future__ import annotations

from edge.protocol.firmware import FirmwareVersions, plays_notify, version_tuple


def test_versions_are_read_loosely_and_compared_as_numbers() -> None:
    assert version_tuple("2.5.0") == (2, 5)
    assert version_tuple("v2.10.1-beta") == (2, 10)
    assert version_tuple("") is None and version_tuple("latest") is None
    assert plays_notify("2.5.0") and plays_notify("2.10.0") and plays_notify("3.0.0")
    assert not plays_notify("2.4.2") and not plays_notify("1.9.9") and not plays_notify("?")


def test_the_last_version_per_device_is_kept_and_the_list_is_bounded() -> None:
    versions = FirmwareVersions(limit=2)
    versions.seen("AA:00", "2.4.2")
    versions.seen("aa:00", "2.5.0")  # Device-Ids are MAC addresses: case does not matter
    versions.seen("bb:00", "2.5.0")
    versions.seen("", "2.5.0")
    assert versions.of("aa:00") == "2.5.0"
    versions.seen("cc:00", "x" * 100)
    assert versions.of("aa:00") == ""  # the oldest went
    assert versions.of("cc:00") == "x" * 32
