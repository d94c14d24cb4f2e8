"""`edge bench`: how fast edge answers, how close that is to what its engines allow, and how many
devices one board serves.

1. The floor: every stage on its engine alone (`edge.bench.floor`), in this process.
2. A fresh server (`edge serve` as its own process), or one given by `--url`.
3. One talking device, `--turns` turns, the first turn after start included: end of speech →
   first audio frame as the device receives it, and each server stage from the server's own
   timestamps (`/debug/turns`), all measured from the moment the device sent its last frame of
   speech.
4. `--idle` devices connected and silent: the server's CPU time and memory they add.
5. With them still connected, 1, 2, 3… devices talking at once (`--rounds` turns each), until
   p95 first audio passes 3 s (but at least up to 4, the household the target is set for) or
   `--max-talkers` is reached. Every answer must arrive, be played to its end and never
   overflow the device's 40-packet queue.

Prints a table, and the same figures as JSON with `--json FILE` (`-` for standard output).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

from edge.bench.floor import FloorBench, FloorTurn, as_row
from edge.bench.report import (
    CONCURRENCY_LIMIT_S,
    STAGES,
    Turn,
    floor_table,
    machine,
    ms,
    print_report,
    rounded,
    spread,
    stage_table,
)
from edge.bench.server import ServerUnderTest
from edge.bench.utterances import QUESTIONS, RATE, Utterance, recorded, synthesized
from edge.config import env_name
from edge.sim.device import SimDevice
from edge.sim.run import fetch_ota

TARGET_TALKERS = 4  # always measured (within --max-talkers), whatever the levels before gave
TURN_TIMEOUT_S = 90.0


@dataclass
class Options:
    turns: int = 10
    idle: int = 50
    max_talkers: int = 6
    rounds: int = 2
    idle_window_s: float = 10.0
    profile: str = ""
    config: Path | None = None
    url: str = ""  # an existing server's HTTP base, e.g. http://192.168.1.20:8003
    wavs: list[Path] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)  # section.key=value, as EDGE_* variables
    json_out: str = ""
    skip_floor: bool = False
    real_speech: bool = False  # the shipped human recordings instead of the spoken questions


def _setting_env(settings: list[str]) -> dict[str, str]:
    env = {}
    for item in settings:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        if not value or not name:
            raise SystemExit(f"edge bench: --set wants section.key=value, not {item!r}")
        env[env_name(section, name)] = value
    return env


# --- the floor -----------------------------------------------------------------------------


async def _floor(options: Options, env: dict[str, str]) -> tuple[list[Utterance], list[FloorTurn]]:
    from edge.config import load
    from edge.engines.loader import load_engines, resolve_models

    config = load(options.config, {**os.environ, **env})
    engines = await load_engines(config)
    try:
        speech = recorded(options.wavs) if options.wavs else []
        if options.real_speech:
            speech += recorded()
        if not speech:
            # Steady speech: every run (and the floor) hears exactly the same questions.
            pcm = {q: engines.tts.synthesize_pcm(q, RATE, steady=True) for q in QUESTIONS}
            speech = synthesized(pcm)
        if options.skip_floor:
            return speech, []
        bench = FloorBench(engines, config, resolve_models(config).vad)
        await bench.start()
        try:
            turns = []
            for utterance in speech:
                turn = await bench.measure(utterance)
                if turn is not None:
                    turns.append(turn)
            return speech, turns
        finally:
            bench.close()
    finally:
        engines.close()


# --- devices ---------------------------------------------------------------------------------


async def _connect(server: ServerUnderTest, device_id: str) -> SimDevice:
    answer = await fetch_ota(server.ota_url, device_id, f"bench-{device_id}")
    ws = answer["websocket"]
    device = SimDevice(
        ws["url"], device_id=device_id, protocol_version=int(ws.get("version", 1)), token=""
    )
    device.token = ws.get("token", "")
    await device.connect()
    return device


async def _turn(server: ServerUnderTest, device: SimDevice, utterance: Utterance) -> Turn:
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
    stt_at = next(
        (e.t for e in device.events[mark:] if e.message and e.message.get("type") == "stt"), None
    )
    latency = device.first_audio_latency(mark)
    stages: dict[str, float] = {}
    tools = 0
    for record in reversed(await server.recent_turns(end - 60)):
        if record["device"] == device.device_id and record["vad_decision"] >= end - 30:
            stages = {s: record[s] - end for s in STAGES if record.get(s) is not None}
            tools = int(record["tools"])
            break
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
    )


# --- phases ----------------------------------------------------------------------------------


async def _started_after_a_device(options: Options, env: dict[str, str]) -> ServerUnderTest:
    """A board restarts with its devices known: the first start meets a device (its tool
    list is kept), the second is the one measured, first turn included."""
    first = await ServerUnderTest.start(options.config, env)
    assert first.log is not None
    try:
        device = await _connect(first, "be:00:00:00:00:01")
        deadline = time.monotonic() + 120
        while "device's tools evaluated" not in first.log.read_text():
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        await device.drop()
    finally:
        first.stop()
    return await ServerUnderTest.start(options.config, env, workdir=first.log.parent)


async def _one_talker(
    server: ServerUnderTest, speech: list[Utterance], turns: int, say: Any
) -> list[Turn]:
    device = await _connect(server, "be:00:00:00:01:00")
    results = []
    try:
        for index in range(turns):
            turn = await _turn(server, device, speech[index % len(speech)])
            results.append(turn)
            say(f"  turn {index + 1}/{turns} {turn.utterance!r}: {ms(turn.first_audio)}")
    finally:
        await device.drop()
    return results


async def _wait_quiet(server: ServerUnderTest, limit_s: float = 180.0) -> None:
    """Until the server used under 5 % of a core for two seconds in a row."""
    quiet = 0
    deadline = time.monotonic() + limit_s
    while quiet < 2 and time.monotonic() < deadline:
        before = server.cpu_seconds()
        await asyncio.sleep(1.0)
        after = server.cpu_seconds()
        if before is None or after is None:
            return
        quiet = quiet + 1 if after - before < 0.05 else 0


async def _idle_cost(
    server: ServerUnderTest, count: int, window_s: float, say: Any
) -> tuple[dict[str, Any], list[SimDevice]]:
    async def cpu_over_window() -> float | None:
        before = server.cpu_seconds()
        await asyncio.sleep(window_s)
        after = server.cpu_seconds()
        return None if before is None or after is None else after - before

    await _wait_quiet(server)  # the talker's memory writes and summary
    base_cpu = await cpu_over_window()
    base_rss = server.rss_mb()
    devices: list[SimDevice] = []
    for index in range(count):
        devices.append(await _connect(server, f"be:00:00:00:02:{index:02x}"))
    await asyncio.sleep(3)  # their MCP handshakes
    idle_cpu = await cpu_over_window()
    idle_rss = server.rss_mb()
    figures: dict[str, Any] = {"devices": count, "window_s": window_s}
    if base_cpu is not None and idle_cpu is not None and base_rss and idle_rss:
        figures |= {
            "cpu_percent_of_core_without": 100 * base_cpu / window_s,
            "cpu_percent_of_core_with": 100 * idle_cpu / window_s,
            "cpu_percent_of_core_added": 100 * (idle_cpu - base_cpu) / window_s,
            "cpu_percent_of_core_per_device": 100 * (idle_cpu - base_cpu) / window_s / count
            if count
            else 0.0,
            "rss_mb_without": base_rss,
            "rss_mb_with": idle_rss,
            "rss_mb_added": idle_rss - base_rss,
        }
    say(f"  {count} idle devices connected: {json.dumps(rounded(figures))}")
    return figures, devices


async def _concurrency(
    server: ServerUnderTest, speech: list[Utterance], options: Options, say: Any
) -> tuple[list[dict[str, Any]], list[Turn]]:
    talkers = [
        await _connect(server, f"be:00:00:00:03:{k:02x}") for k in range(options.max_talkers)
    ]
    levels: list[dict[str, Any]] = []
    all_turns: list[Turn] = []
    try:
        for count in range(1, options.max_talkers + 1):
            turns: list[Turn] = []
            for round_index in range(options.rounds):
                picks = [speech[(k + round_index * count) % len(speech)] for k in range(count)]
                turns += await asyncio.gather(
                    *(_turn(server, talkers[k], picks[k]) for k in range(count))
                )
            all_turns += turns
            audio = spread([t.first_audio for t in turns if t.first_audio is not None])
            delivered = sum(t.delivered for t in turns)
            levels.append(
                {
                    "talkers": count,
                    "first_audio": audio,
                    "stages": {
                        stage: spread([t.stages[stage] for t in turns if stage in t.stages])
                        for stage in STAGES
                    },
                    "turns": len(turns),
                    "delivered": delivered,
                    "overflowed_packets": sum(t.overflowed for t in turns),
                }
            )
            p95 = audio["p95"]
            stage_p50 = ", ".join(
                f"{stage} {ms(levels[-1]['stages'][stage]['p50'])}" for stage in STAGES
            )
            say(
                f"  {count} talking at once: p50 {ms(audio['p50'])}, "
                f"p95 {ms(p95)}, delivered {delivered}/{len(turns)} (p50 by stage: {stage_p50})"
            )
            beyond = p95 is None or p95 > CONCURRENCY_LIMIT_S or delivered < len(turns)
            if beyond and count >= TARGET_TALKERS:
                break
    finally:
        await asyncio.gather(*(t.drop() for t in talkers), return_exceptions=True)
    return levels, all_turns


async def run(options: Options) -> dict[str, Any]:
    started = time.monotonic()
    env = _setting_env(options.settings)
    if options.profile:
        env["EDGE_MODELS_PROFILE"] = options.profile

    def say(line: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {line}", file=sys.stderr, flush=True)

    say("measuring each engine alone (the floor)")
    speech, floor = await _floor(options, env)
    for f in floor:
        say(
            f"  {f.name!r}: vad {ms(f.vad)} text {ms(f.text_ready)} "
            f"llm {ms(f.llm_first_clause)} tts {ms(f.tts)} = {ms(f.total)} ({f.first_clause!r})"
        )
    if options.url:
        server = await ServerUnderTest.attach(options.url)
        say(f"using the server at {options.url}")
    else:
        say("starting edge serve, and once a device has been seen, again (as a board in use)")
        server = await _started_after_a_device(options, env)
        say(f"edge serve ready ({server.http_base}), log in {server.log}")
    idle_devices: list[SimDevice] = []
    try:
        say(f"one talking device, {options.turns} turns")
        one = await _one_talker(server, speech, options.turns, say)
        rss_one = server.rss_mb()
        idle: dict[str, Any] = {}
        if options.idle:
            say(f"{options.idle} idle devices, {options.idle_window_s:.0f} s CPU windows")
            idle, idle_devices = await _idle_cost(server, options.idle, options.idle_window_s, say)
        levels: list[dict[str, Any]] = []
        if options.max_talkers:
            say("devices talking at once")
            levels, _ = await _concurrency(server, speech, options, say)
        rss_end = server.rss_mb()
    finally:
        await asyncio.gather(*(d.drop() for d in idle_devices), return_exceptions=True)
        if not options.url:
            server.stop()
    counted = [t for t in one if not t.cut_early]
    stages = stage_table(counted)
    floor_figures = floor_table(floor) if floor else None
    ratio = None
    if floor_figures and stages["first_audio"]["p50"] and floor_figures["first_audio"]["p50"]:
        ratio = stages["first_audio"]["p50"] / floor_figures["first_audio"]["p50"]
    within = 0  # the most talkers for which this and every smaller level kept the limit
    for level in levels:
        p95 = level["first_audio"]["p95"]
        if p95 is None or p95 > CONCURRENCY_LIMIT_S or level["delivered"] < level["turns"]:
            break
        within = level["talkers"]
    report = {
        "machine": machine(),
        "options": {
            "turns": options.turns,
            "idle": options.idle,
            "max_talkers": options.max_talkers,
            "rounds": options.rounds,
            "profile": options.profile or "(config)",
            "settings": options.settings,
            "server": options.url or "started by the bench",
        },
        "one_talker": {
            "turns": len(one),
            "first_turn": one[0].first_audio if one else None,
            "stages": stages,
            "by_kind": {
                "plain": spread([t.first_audio for t in counted if t.first_audio and not t.tools]),
                "with_tools": spread([t.first_audio for t in counted if t.first_audio and t.tools]),
            },
            "cut_early": len(one) - len(counted),
            "delivered": sum(t.delivered for t in one),
            "overflowed_packets": sum(t.overflowed for t in one),
            "turns_detail": [
                {
                    "utterance": t.utterance,
                    "first_audio": t.first_audio,
                    "stages": t.stages,
                    "tools": t.tools,
                    "cut_early": t.cut_early,
                }
                for t in one
            ],
        },
        "floor": floor_figures,
        "floor_turns": [as_row(f) for f in floor],
        "ratio_to_floor": ratio,
        "memory": {"rss_mb_after_one_talker": rss_one, "rss_mb_end": rss_end},
        "idle": idle,
        "concurrency": levels,
        "max_talkers_within_limit": within,
        "seconds": time.monotonic() - started,
    }
    return dict(rounded(report))


def main(options: Options) -> int:
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    report = asyncio.run(run(options))
    print_report(report)
    if options.json_out:
        text = json.dumps(report, ensure_ascii=False, indent=2)
        if options.json_out == "-":
            print(text)
        else:
            Path(options.json_out).write_text(text + "\n")
            print(f"\nJSON written to {options.json_out}")
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0
