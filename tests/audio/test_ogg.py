"""The Ogg/Opus files behind firmware 2.5's `notify`, read back by libopusfile as a player
would, and the announcement store that serves them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.announcements import Announcements
from edge.audio.ogg import PRE_SKIP, ogg_opus, read_ogg_opus
from edge.audio.opus import OpusEncoder
from edge.audio.pcm import frames
from edge.errors import OpusError


@pytest.mark.parametrize("rate, frame_ms", [(24000, 60), (16000, 60), (48000, 20)])
def test_packets_become_a_file_that_plays_the_same_sound(rate: int, frame_ms: int) -> None:
    encoder = OpusEncoder(rate, frame_ms)
    t = np.arange(rate) / rate
    tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    packets = [encoder.encode(frame) for frame in frames(tone, encoder.frame_samples)]
    encoder.close()
    data = ogg_opus(packets, rate, frame_ms)
    assert data[:4] == b"OggS" and b"OpusHead" in data[:64] and b"OpusTags" in data
    pcm = read_ogg_opus(data)
    assert len(pcm) == len(packets) * 48 * frame_ms - PRE_SKIP  # the granule positions add up
    spectrum = np.abs(np.fft.rfft(pcm[4800:43200].astype(np.float64)))
    assert abs(np.argmax(spectrum) * 48000 / 38400 - 440) < 5  # still a 440 Hz tone


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400))
def test_anything_else_is_refused_with_an_error(junk: bytes) -> None:
    try:
        read_ogg_opus(junk)
    except OpusError:
        pass


async def test_an_announcement_is_fetched_by_its_token_only() -> None:
    store = Announcements()
    item = store.publish(b"OggS...")
    assert item.path.startswith("/notify/") and len(item.token) >= 24
    assert store.fetch("not-" + item.token) is None and not item.fetched.is_set()
    assert store.fetch(item.token) == b"OggS..." and item.fetched.is_set()
    store.withdraw(item)
    assert store.fetch(item.token) is None
