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

`--cpus N` pins the server (and the floor) to N cores, to stand in for a slower board, and
`--busy` runs a CPU-bound neighbour on each of them through every phase, as `edge bench
household` does; the household phase then runs the same way.

Prints a table, and the same figures as JSON with `--json FILE` (`-` for standard output).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

from edge.bench.floor import FloorBench, FloorTurn, as_row
from edge.bench.household import HouseholdOptions, household_speech, run_household
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
from edge.bench.server import UNIT_NICE, BusyNeighbour, ServerUnderTest, cpu_set, setting_env
from edge.bench.talk import connect, measured_turn, started_after_a_device
from edge.bench.utterances import QUESTIONS, RATE, Utterance, recorded, synthesized
from edge.sim.device import SimDevice

TARGET_TALKERS = 4  # always measured (within --max-talkers), whatever the levels before gave


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
    household: int = 3  # devices of the household phase (`edge.bench.household`); 0: none
    household_conversations: int = 4  # each
    cpus: int = 0  # the server's cores (0: every core)
    busy: bool = False  # a CPU-bound neighbour on each of them


# --- the floor -----------------------------------------------------------------------------


async def _floor(
    options: Options, env: dict[str, str]
) -> tuple[list[Utterance], list[FloorTurn], list[Utterance]]:
    """What the devices say, the floor's turns, and what the household says."""
    from edge.config import load
    from edge.engines.loader import load_engines, resolve_models

    config = load(options.config, {**os.environ, **env})
    engines = await load_engines(config)
    try:
        home = household_speech(engines.tts, RATE) if options.household else []
        speech = recorded(options.wavs) if options.wavs else []
        if options.real_speech:
            speech += recorded()
        if not speech:
            # Steady speech: every run (and the floor) hears exactly the same questions.
            pcm = {q: engines.tts.synthesize_pcm(q, RATE, steady=True) for q in QUESTIONS}
            speech = synthesized(pcm)
        if options.skip_floor:
            return speech, [], home
        bench = FloorBench(engines, config, resolve_models(config).vad)
        await bench.start()
        try:
            turns = []
            for utterance in speech:
                turn = await bench.measure(utterance)
                if turn is not None:
                    turns.append(turn)
            return speech, turns, home
        finally:
            bench.close()
    finally:
        engines.close()


# --- devices ---------------------------------------------------------------------------------


# --- phases ----------------------------------------------------------------------------------


async def _one_talker(
    server: ServerUnderTest, speech: list[Utterance], turns: int, say: Any
) -> list[Turn]:
    device = await connect(server, "be:00:00:00:01:00")
    results = []
    try:
        for index in range(turns):
            turn = await measured_turn(server, device, speech[index % len(speech)])
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
        devices.append(await connect(server, f"be:00:00:00:02:{index:02x}"))
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
    talkers = [await connect(server, f"be:00:00:00:03:{k:02x}") for k in range(options.max_talkers)]
    levels: list[dict[str, Any]] = []
    all_turns: list[Turn] = []
    try:
        for count in range(1, options.max_talkers + 1):
            turns: list[Turn] = []
            for round_index in range(options.rounds):
                picks = [speech[(k + round_index * count) % len(speech)] for k in range(count)]
                turns += await asyncio.gather(
                    *(measured_turn(server, talkers[k], picks[k]) for k in range(count))
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
    env = setting_env(options.settings)
    if options.profile:
        env["EDGE_MODELS_PROFILE"] = options.profile

    def say(line: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {line}", file=sys.stderr, flush=True)

    say("measuring each engine alone (the floor)")
    with _pinned(options.cpus):
        speech, floor, home = await _floor(options, env)
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
        server = await started_after_a_device(
            options.config, env, cpus=options.cpus, nice=UNIT_NICE
        )
        say(f"edge serve ready ({server.http_base}), log in {server.log}")
    idle_devices: list[SimDevice] = []
    neighbour = BusyNeighbour(options.cpus) if options.busy and not options.url else None
    try:
        if neighbour is not None:
            neighbour.start()
            say(f"a busy neighbour on each of cores {sorted(neighbour.cores)}")
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
        if neighbour is not None:
            neighbour.stop()
        if not options.url:
            server.stop()
    household = None
    if options.household and not options.url:
        household = await run_household(
            HouseholdOptions(
                devices=options.household,
                conversations=options.household_conversations,
                cpus=options.cpus,
                busy=options.busy,
                config=options.config,
            ),
            home,
            env,
            say,
        )
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
            "cpus": len(cpu_set(options.cpus)),
            "busy_neighbour": options.busy,
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
        "household": household,
        "seconds": time.monotonic() - started,
    }
    return dict(rounded(report))


@contextlib.contextmanager
def _pinned(cpus: int) -> Iterator[None]:
    """This thread on the server's cores while the floor is measured: the engines' thread pools,
    made meanwhile, inherit them (and size themselves by them), as the server's do."""
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpu_set(cpus))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


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
