"""Firmware 2.5's `notify`: a reminder reaches an idle device as an announcement it fetches from
our HTTP port and plays (heard back by the ASR), while older firmware, and a device that is not
idle, hear it in a tts bracket as before."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from edge.audio.pcm import resample, to_float
from edge.sim.device import SimDevice
from edge.sim.run import fetch_ota
from tests.e2e.scenario import assert_reply_bracket, texts
from tests.helpers import Running, wait_until, word_error_rate

pytestmark = pytest.mark.models
CLIENT = "7b5d3f1e-0000-4000-8000-00000000bbbb"
TEXT = "Reminder: water the plants."


async def _device(server: Running, device_id: str, firmware: str) -> SimDevice:
    await fetch_ota(f"{server.http_url}/xiaozhi/ota/", device_id, CLIENT, firmware)
    device = SimDevice(server.ws_url, device_id=device_id, firmware=firmware)
    await device.connect()
    return device


def _remind(server: Running, device_id: str) -> None:
    reminders = server.server.services.reminders
    assert reminders is not None
    server.harness.call(reminders.add(device_id, 2.0, TEXT))


async def test_a_reminder_reaches_an_idle_firmware_25_device_by_notify(server: Running) -> None:
    device_id = "aa:bb:cc:00:31:01"
    device = await _device(server, device_id, "2.5.0")  # idle: no conversation started
    _remind(server, device_id)
    for _ in range(1200):
        if device.announcements.heard and device.state == "idle":
            break
        await asyncio.sleep(0.05)
    [heard] = device.announcements.heard
    assert heard.error == "" and heard.subtitle == TEXT
    assert heard.url.startswith(server.http_url + "/notify/") and heard.url.endswith(".ogg")
    pcm = resample(heard.pcm, 48000, 16000)
    spoken = server.harness.engines.asr.recognizer.transcribe(to_float(np.asarray(pcm, np.int16)))
    assert word_error_rate(TEXT, spoken) <= 0.5, spoken
    # Played on its own: no conversation was opened for it.
    assert not any(m.get("type") == "tts" for m in device.json_messages())
    memory = server.server.services.memory
    assert memory is not None
    # Marked delivered once the device has fetched it: just after, not before.
    await wait_until(lambda: server.harness.call(memory.pending_reminders(device_id)) == [], 10)
    await device.drop()


@pytest.mark.parametrize("firmware, listening", [("2.4.2", False), ("2.5.0", True)])
async def test_older_firmware_and_a_listening_device_hear_it_in_a_bracket(
    server: Running, firmware: str, listening: bool
) -> None:
    device_id = f"aa:bb:cc:00:32:0{int(listening)}"
    device = await _device(server, device_id, firmware)
    if listening:
        await device.listen_start("auto")
    after = len(device.events)
    _remind(server, device_id)
    await device.wait_tts_stop(60, after=after)
    assert texts(device, "sentence", after) == [TEXT]
    assert_reply_bracket(device, after, with_stt=False)
    assert not any(m.get("type") == "notify" for m in device.json_messages())
    assert device.announcements.heard == []
    await device.drop()
