import struct

import pytest

from edge.protocol import framing


@pytest.mark.parametrize("version", [1, 2, 3])
def test_round_trip(version: int) -> None:
    payload = bytes(range(200))
    frame = framing.encode(version, payload, timestamp=1234)
    assert framing.decode(version, frame).payload == payload


def test_v2_header_is_exact() -> None:
    frame = framing.encode(2, b"abc", timestamp=7)
    assert frame[:16] == struct.pack(">HHIII", 2, 0, 0, 7, 3)
    assert framing.decode(2, frame).timestamp == 7


def test_v3_header_is_exact() -> None:
    frame = framing.encode(3, b"x" * 300)
    assert frame[:4] == bytes([0, 0, 0x01, 0x2C])
    assert len(frame) == 304


def test_v1_is_the_bare_packet() -> None:
    assert framing.encode(1, b"opus") == b"opus"


@pytest.mark.parametrize(
    ("version", "frame"),
    [
        (2, b"\x00" * 10),  # shorter than the header
        (3, b"\x00\x00"),
        (2, struct.pack(">HHIII", 2, 0, 0, 0, 99) + b"short"),  # header/payload mismatch
        (3, b"\x00\x00\x00\x05abc"),
        (3, b"\x00\x00\x00\x01abc"),
    ],
)
def test_mismatched_frames_are_rejected(version: int, frame: bytes) -> None:
    with pytest.raises(framing.FramingError):
        framing.decode(version, frame)


def test_unknown_version() -> None:
    with pytest.raises(framing.FramingError):
        framing.decode(4, b"abc")
    with pytest.raises(framing.FramingError):
        framing.encode(0, b"abc")
