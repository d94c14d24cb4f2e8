"""`edge sim`: one conversation from the command line, printing what the device receives."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from edge.audio.pcm import read_wav, write_wav
from edge.sim.device import UPLINK_RATE, SimDevice


async def fetch_ota(
    ota_url: str, device_id: str, client_id: str, firmware: str = "2.5.0"
) -> dict[str, Any]:
    """POST the firmware's config request (the body of board.cc GetSystemInfoJson)."""
    body = {
        "version": 2,
        "language": "en-US",
        "flash_size": 16777216,
        "minimum_free_heap_size": "8318916",  # a string in the real firmware
        "mac_address": device_id,
        "uuid": client_id,
        "chip_model_name": "esp32s3",
        "chip_info": {"model": 9, "cores": 2, "revision": 2, "features": 18},
        "application": {"name": "xiaozhi", "version": firmware, "idf_version": "v5.4"},
        "partition_table": [],
        "ota": {"label": "factory"},
        "display": {"monochrome": False, "width": 240, "height": 240},
        "board": {"type": "edge-sim", "name": "edge-sim", "ssid": "lan", "rssi": -50},
    }
    headers = {
        "Device-Id": device_id,
        "Client-Id": client_id,
        "User-Agent": f"edge-sim/{firmware}",
        "Accept-Language": "en-US",
        "Activation-Version": "1",
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(ota_url, json=body, headers=headers) as resp,
    ):
        resp.raise_for_status()
        return dict(await resp.json())


async def run(
    url: str | None,
    wav: Path,
    *,
    mode: str = "auto",
    protocol_version: int = 1,
    save_reply: Path | None = None,
    ota_url: str | None = None,
    device_id: str = "aa:bb:cc:dd:ee:01",
    timeout: float = 60.0,
    fail_tools: tuple[str, ...] = (),
    hang_tools: tuple[str, ...] = (),
) -> int:
    t0 = time.monotonic()

    def show(line: str) -> None:
        print(f"[{time.monotonic() - t0:7.3f}] {line}", flush=True)

    token = ""
    if ota_url:
        answer = await fetch_ota(ota_url, device_id, "7b5d3f1e-0000-4000-8000-000000000001")
        show(f"config: {json.dumps(answer, ensure_ascii=False)}")
        ws = answer.get("websocket") or {}
        url = url or ws.get("url")
        token = ws.get("token", "")
        protocol_version = int(ws.get("version", protocol_version))
    if not url:
        print("edge sim: give a WebSocket URL or --ota-url")
        return 2
    pcm, _ = read_wav(wav, UPLINK_RATE)
    device = SimDevice(url, device_id=device_id, protocol_version=protocol_version, token=token)
    device.mcp.fail_tools = set(fail_tools)
    device.mcp.silent_tools = set(hang_tools)
    printed = 0

    async def printer() -> None:
        nonlocal printed
        audio = 0
        while True:
            for event in device.events[printed:]:
                if event.message is not None:
                    show(f"← {json.dumps(event.message, ensure_ascii=False)}")
                else:
                    audio += 1
                    if audio == 1 or audio % 25 == 0:
                        show(f"← audio frame #{audio} ({event.size} bytes)")
            printed = len(device.events)
            await asyncio.sleep(0.01)

    show(f"→ connecting to {url} (framing v{protocol_version}, {mode} mode)")
    hello = await device.connect()
    show(f"← {json.dumps(hello, ensure_ascii=False)}")
    printed = len(device.events)
    task = asyncio.create_task(printer())
    try:
        mark = len(device.events)
        await device.listen_start(mode)
        show(f"→ listen start ({mode}); speaking {pcm.size / UPLINK_RATE:.1f} s from {wav}")
        if mode == "manual":
            await device.stream(pcm)
            device.last_speech_sent = time.monotonic()
            await device.listen_stop()
            show("→ listen stop")
        else:
            await device.say(pcm, silence_s=min(timeout, 10.0))
        await device.wait_tts_stop(timeout, after=mark)
        await device.wait_played()
        await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await device.drop()
    latency = device.first_audio_latency(mark)
    frames = len(device.audio_events(mark))
    stats = device.stats
    shown = "-" if latency is None else f"{latency * 1000:.0f} ms"
    show(
        f"end of speech → first audio frame: {shown}; {frames} frames received, "
        f"{stats.dropped_not_speaking} outside tts, {stats.dropped_overflow} overflowed"
    )
    mcp = device.mcp
    show(
        f"device: volume {mcp.volume}, brightness {mcp.brightness}, theme {mcp.theme}; "
        f"tool calls: {', '.join(f'{n}{json.dumps(a)}' for n, a in mcp.calls) or 'none'}"
    )
    if save_reply is not None:
        reply = device.reply_pcm()
        write_wav(save_reply, reply if reply.size else np.zeros(0, np.int16), device.reply_rate)
        show(f"reply saved to {save_reply} ({reply.size / device.reply_rate:.1f} s)")
    return 0
