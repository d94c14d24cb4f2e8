"""One device of `edge bench`: it fetches its config and connects as the firmware does, and a
turn is measured as the device lives it (end of speech → first audio frame received, `tts start`
→ first frame), with the server's own stage times and its engines' waits for the CPU."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from edge.bench.report import STAGES, Turn
from edge.bench.server import ServerUnderTest
from edge.bench.utterances import Utterance
from edge.sim.device import SimDevice
from edge.sim.mcp_tools import SimMcpServer
from edge.sim.run import fetch_ota

TURN_TIMEOUT_S = 90.0


async def connect(
    server: ServerUnderTest, device_id: str, mcp: SimMcpServer | None = None
) -> SimDevice:
    """The config call, then the WebSocket and the hello (MCP runs beside, as on a device).
    `mcp`: the board's tools and their state (kept across connections by the caller)."""
    answer = await fetch_ota(server.ota_url, device_id, f"bench-{device_id}")
    ws = answer["websocket"]
    device = SimDevice(
        ws["url"],
        device_id=device_id,
        protocol_version=int(ws.get("version", 1)),
        token="",
        mcp=mcp or SimMcpServer(),
    )
    device.token = ws.get("token", "")
    await device.connect()
    return device


async def measured_turn(server: ServerUnderTest, device: SimDevice, utterance: Utterance) -> Turn:
    """Speak `utterance` in auto mode and wait until the reply has been played."""
    mark = len(device.events)
    overflow_before = device.stats.dropped_overflow
    await device.listen_start("auto")
    await device.say(utterance.pcm, silence_s=TURN_TIMEOUT_S / 2)
    end = device.last_speech_sent or time.monotonic()
    delivered = True
    try:
        await device.wait_tts_stop(TURN_TIMEOUT_S, after=mark)
        await device.wait_played(30)
    except Exception:
        delivered = False
    events = device.events[mark:]
    stt_at = next((e.t for e in events if e.message and e.message.get("type") == "stt"), None)
    started_at = next(
        (e.t for e in events if e.message and e.message.get("state") == "start"), None
    )
    audio = device.audio_events(mark)
    latency = device.first_audio_latency(mark)
    stages: dict[str, float] = {}
    tools = 0
    turns, record_cpu = await server.recent_activity(end - 60)
    for record in reversed(turns):
        if record["device"] == device.device_id and record["vad_decision"] >= end - 30:
            stages = {s: record[s] - end for s in STAGES if record.get(s) is not None}
            tools = int(record["tools"])
            break
    first_audio_at = audio[0].t if audio else time.monotonic()
    waits: dict[str, float] = {}
    for at, engine, waited, _held in record_cpu:
        if end <= float(at) <= first_audio_at:
            waits[str(engine)] = max(waits.get(str(engine), 0.0), float(waited))
    return Turn(
        device.device_id,
        utterance.name,
        end,
        latency,
        stages,
        tools,
        delivered and latency is not None,
        device.stats.dropped_overflow - overflow_before,
        stt_at is not None and stt_at < end,
        speaking_wait=audio[0].t - started_at if audio and started_at is not None else None,
        cpu_waits=waits,
    )


async def started_after_a_device(
    config_file: Path | None,
    env: dict[str, str],
    *,
    cpus: int = 0,
    summaries: bool = False,
    nice: int = 0,
) -> ServerUnderTest:
    """A board restarts with its devices known: the first start meets a device (its tool
    list is kept), the second is the one measured, first turn included."""
    first = await ServerUnderTest.start(config_file, env, cpus=cpus, summaries=summaries, nice=nice)
    assert first.log is not None
    try:
        device = await connect(first, "be:00:00:00:00:01")
        deadline = time.monotonic() + 300
        while "prompt prefix with the device's tools" not in first.log.read_text():
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        await device.drop()
    finally:
        first.stop()
    return await ServerUnderTest.start(
        config_file, env, workdir=first.log.parent, cpus=cpus, summaries=summaries, nice=nice
    )
