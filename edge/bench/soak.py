"""`edge bench soak`: many turns in the household pattern, half of them cut off, and the
server's memory, file descriptors and threads watched for a leak.

Real devices lose Wi-Fi, are switched off mid-answer and are woken again at once. Here
`--devices` devices talk for `--turns` turns in all, a new connection per conversation (1–3
turns), and about `--drop` of the turns end with the connection dropped as the firmware drops it
(no close frame): while the user speaks, while the server thinks, or while the answer plays.
Every `--every` turns the server's RSS, open files and threads are printed; the figure that
matters is the RSS slope after the warm-up (MB per turn, least squares), which should be near
zero: caches and pools fill during the warm-up and then stay.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.bench.fuzz import CRASH_MARKS
from edge.bench.server import ServerUnderTest
from edge.bench.talk import TURN_TIMEOUT_S, connect
from edge.bench.utterances import Utterance
from edge.sim.device import SimDevice

DROP_POINTS = ("speaking", "thinking", "answering")
WARM_UP_SHARE = 0.2  # the first fifth of the turns fills caches; the slope is taken after it


@dataclass
class SoakOptions:
    turns: int = 1000
    devices: int = 3
    drop: float = 0.5
    every: int = 50
    seed: int = 11
    config: Path | None = None
    settings: list[str] = field(default_factory=list)
    json_out: str = ""


@dataclass
class Sample:
    turns: int
    seconds: float
    rss_mb: float
    fds: int
    threads: int


@dataclass
class SoakReport:
    turns: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_POINTS, 0))
    answered: int = 0  # turns kept to the end that got their whole answer
    unanswered: int = 0  # turns kept to the end that did not
    samples: list[Sample] = field(default_factory=list)
    crash_lines: list[str] = field(default_factory=list)

    def slope_mb_per_turn(self) -> float | None:
        """RSS growth per turn after the warm-up (least squares over the samples)."""
        start = self.turns * WARM_UP_SHARE
        points = [(s.turns, s.rss_mb) for s in self.samples if s.turns >= start]
        if len(points) < 3:
            return None
        mean_x = sum(x for x, _ in points) / len(points)
        mean_y = sum(y for _, y in points) / len(points)
        spread = sum((x - mean_x) ** 2 for x, _ in points)
        return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else None

    def to_json(self) -> dict[str, Any]:
        return {
            "turns": self.turns,
            "dropped": self.dropped,
            "answered": self.answered,
            "unanswered": self.unanswered,
            "rss_slope_mb_per_turn": self.slope_mb_per_turn(),
            "samples": [vars(s) for s in self.samples],
            "crash_lines": self.crash_lines,
        }


async def kept_turn(device: SimDevice, utterance: Utterance) -> bool:
    """A turn heard to the end of its answer."""
    mark = len(device.events)
    await device.listen_start("auto")
    await device.say(utterance.pcm, silence_s=TURN_TIMEOUT_S / 2)
    try:
        await device.wait_tts_stop(TURN_TIMEOUT_S, after=mark)
    except Exception:
        return False
    return bool(device.audio_events(mark))


async def dropped_turn(device: SimDevice, utterance: Utterance, point: str, rng: Any) -> None:
    """A turn cut off at `point`: the connection is dropped there, without a close frame."""
    mark = len(device.events)
    await device.listen_start("auto")
    if point == "speaking":
        await device.stream(utterance.pcm[: len(utterance.pcm) // 2])
    else:
        await device.say(utterance.pcm, silence_s=TURN_TIMEOUT_S / 2)  # returns at the reply
        if point == "answering":
            try:
                await device.wait_audio(1, TURN_TIMEOUT_S, after=mark)
            except Exception:
                pass
            await asyncio.sleep(rng.uniform(0.0, 1.5))
    await device.drop()


async def drive(
    server: ServerUnderTest, options: SoakOptions, speech: list[Utterance], say: Any
) -> SoakReport:
    report = SoakReport()
    rng = random.Random(options.seed)
    started = time.monotonic()
    next_sample = 0

    def sample() -> None:
        nonlocal next_sample
        process = server.process
        if process is None:
            return
        row = Sample(
            report.turns,
            time.monotonic() - started,
            process.memory_info().rss / 1e6,
            process.num_fds(),
            process.num_threads(),
        )
        report.samples.append(row)
        next_sample = report.turns + options.every
        say(
            f"  {row.turns:5d} turns: RSS {row.rss_mb:7.1f} MB, {row.fds} files, "
            f"{row.threads} threads"
        )

    sample()

    async def device(index: int) -> None:
        device_id = f"50:a4:00:00:00:{index:02x}"
        mine = random.Random(rng.randrange(2**32))
        while report.turns < options.turns:
            sim = await connect(server, device_id)
            for _ in range(mine.randint(1, 3)):
                if report.turns >= options.turns:
                    break
                report.turns += 1
                utterance = mine.choice(speech)
                if mine.random() < options.drop:
                    point = mine.choice(DROP_POINTS)
                    report.dropped[point] += 1
                    await dropped_turn(sim, utterance, point, mine)
                    break  # the connection is gone: the next turn is a new conversation
                if await kept_turn(sim, utterance):
                    report.answered += 1
                else:
                    report.unanswered += 1
                if report.turns >= next_sample:
                    sample()
            await sim.drop()
            if report.turns >= next_sample:
                sample()

    await asyncio.gather(*(device(i) for i in range(options.devices)))
    await asyncio.sleep(3.0)  # the last sessions notice their dropped sockets
    sample()
    return report


def _crash_lines(log: Path | None) -> list[str]:
    if log is None or not log.exists():
        return []
    with open(log, encoding="utf-8", errors="replace") as lines:
        return [line.strip()[:200] for line in lines if any(m in line for m in CRASH_MARKS)]


def print_soak(report: dict[str, Any], options: SoakOptions) -> None:
    samples = report["samples"]
    first, last = samples[0], samples[-1]
    slope = report["rss_slope_mb_per_turn"]
    dropped = sum(report["dropped"].values())
    print(
        f"\nsoak: {report['turns']} turns on {options.devices} devices, a new connection per "
        f"conversation; {dropped} dropped mid-turn ({report['dropped']}), "
        f"{report['answered']} answered, {report['unanswered']} kept but not answered"
    )
    print(
        f"RSS {first['rss_mb']:.0f} → {last['rss_mb']:.0f} MB, files {first['fds']} → "
        f"{last['fds']}, threads {first['threads']} → {last['threads']}; slope after the "
        f"warm-up: {'n/a' if slope is None else f'{slope:.4f}'} MB/turn; "
        f"crash lines: {len(report['crash_lines'])}"
    )


def main(options: SoakOptions) -> int:
    from edge.bench.household import HouseholdOptions, voice_speech
    from edge.bench.report import progress_printer, write_json
    from edge.bench.server import setting_env
    from edge.bench.talk import started_after_a_device

    say = progress_printer()
    env = setting_env(options.settings)
    speech = asyncio.run(voice_speech(HouseholdOptions(config=options.config), env))

    async def go() -> SoakReport:
        server = await started_after_a_device(options.config, env, summaries=True)
        try:
            report = await drive(server, options, speech, say)
        finally:
            server.stop()
        report.crash_lines = _crash_lines(server.log)
        return report

    report = asyncio.run(go())
    figures = report.to_json()
    print_soak(figures, options)
    write_json(options.json_out, figures)
    return 0 if not report.crash_lines and report.unanswered == 0 else 1
