"""`edge bench household`: the pattern real devices use, not one long connection.

A xiaozhi device opens a WebSocket when it is woken, talks, and drops the connection when the
conversation is over; minutes later the same device comes back, and the server should still know
it (its memory, its summary, its tools). So here `--devices` devices (3) each hold
`--conversations` conversations (4): the config call, the hello and the MCP handshake, one to
three spoken turns, a few idle seconds, then the connection dropped as the firmware drops it.
The devices keep their Device-Ids and start their conversations at random moments from a fixed
seed, so conversations overlap. Memory, summaries (written between conversations) and tools are
on, as in a home.

For every turn: end of speech → first audio frame at the device, the server's stages, how long
the device showed "speaking" before its first frame (`tts start` → first frame), and the longest
wait of each engine (ASR clip, LLM step, TTS sentence) for the CPU while the turn was on its way.

`--cpus N` pins the server (and every thread it starts) to N cores, to stand in for a slower
board; `--busy` runs a CPU-bound process per core beside it, at niceness 0: a board that
also runs other services. The server runs at the niceness its systemd unit gives it (`Nice=-2`;
`--nice 0` for the neighbours' own priority). The unit also gives it `CPUWeight=200`, twice
another service's share of a busy CPU, which a benchmark without systemd cannot reproduce.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.bench.report import STAGES, Turn, ms, percentile
from edge.bench.server import UNIT_NICE, BusyNeighbour, ServerUnderTest, cpu_set
from edge.bench.talk import connect, measured_turn, started_after_a_device
from edge.bench.utterances import Utterance

# What a household says: questions, a command for the device's own tools, a fact about the user
# and a question that needs it back (memory across connections).
HOUSEHOLD = (
    "What is the capital of France?",
    "How many legs does a spider have?",
    "Who wrote Hamlet?",
    "Tell me a joke.",
    "What time is it?",
    "Turn the volume down to 30.",
    "My name is Alice.",
    "What is my name?",
)
SPEAKING_WAIT_LIMIT_S = 1.0  # longer in "speaking" with nothing to hear feels broken


@dataclass
class HouseholdOptions:
    devices: int = 3
    conversations: int = 4  # per device
    seed: int = 7
    cpus: int = 0  # 0: every core
    busy: bool = False
    nice: int | None = None  # None: the service's (UNIT_NICE)
    profile: str = ""
    config: Path | None = None
    settings: list[str] = field(default_factory=list)
    json_out: str = ""


@dataclass(frozen=True)
class Planned:
    """One conversation: when it starts (seconds after the device's previous one ended, or
    after the run began), what is said, and how long the device then idles before it goes."""

    delay_s: float
    said: list[Utterance]
    idle_s: float


def plan(options: HouseholdOptions, speech: list[Utterance]) -> list[list[Planned]]:
    """Every device's conversations, from the seed: the same run every time."""
    rng = random.Random(options.seed)
    plans = []
    for _device in range(options.devices):
        conversations = []
        for index in range(options.conversations):
            delay = rng.uniform(0.0, 6.0) if index == 0 else rng.uniform(3.0, 12.0)
            said = [rng.choice(speech) for _ in range(rng.randint(1, 3))]
            conversations.append(Planned(delay, said, rng.uniform(1.0, 4.0)))
        plans.append(conversations)
    return plans


def device_name(index: int) -> str:
    return f"b0:05:e0:00:00:{index:02x}"


async def drive(
    server: ServerUnderTest, plans: list[list[Planned]], say: Callable[[str], None]
) -> tuple[list[Turn], int]:
    """Run every device's conversations at once; the turns, and the conversations held."""
    turns: list[Turn] = []
    held = 0

    async def device(index: int, conversations: list[Planned]) -> None:
        nonlocal held
        device_id = device_name(index)
        for planned in conversations:
            await asyncio.sleep(planned.delay_s)
            sim = await connect(server, device_id)
            try:
                for utterance in planned.said:
                    turn = await measured_turn(server, sim, utterance)
                    turns.append(turn)
                    say(
                        f"  {device_id} {utterance.name!r}: {ms(turn.first_audio)} "
                        f"(speaking {ms(turn.speaking_wait)} before the first frame)"
                    )
                await asyncio.sleep(planned.idle_s)
            finally:
                await sim.drop()  # no close frame, as the firmware leaves
            held += 1

    await asyncio.gather(*(device(i, c) for i, c in enumerate(plans)))
    return turns, held


def figures(turns: list[Turn], conversations: int, options: HouseholdOptions) -> dict[str, Any]:
    def spread(values: list[float]) -> dict[str, float | None]:
        return {
            "p50": percentile(values, 50),
            "p95": percentile(values, 95),
            "max": max(values) if values else None,
            "n": len(values),
        }

    counted = [t for t in turns if not t.cut_early]
    waits_by_engine: dict[str, list[float]] = {}
    for turn in counted:
        for engine, waited in turn.cpu_waits.items():
            waits_by_engine.setdefault(engine, []).append(waited)
    speaking = [t.speaking_wait for t in counted if t.speaking_wait is not None]
    return {
        "devices": options.devices,
        "conversations": conversations,
        "cpus": len(cpu_set(options.cpus)),
        "busy_neighbour": options.busy,
        "turns": len(turns),
        "delivered": sum(t.delivered for t in turns),
        "cut_early": len(turns) - len(counted),
        "first_audio": spread([t.first_audio for t in counted if t.first_audio is not None]),
        "stages": {s: spread([t.stages[s] for t in counted if s in t.stages]) for s in STAGES},
        "speaking_before_first_frame": spread(speaking),
        "speaking_over_1s": sum(w > SPEAKING_WAIT_LIMIT_S for w in speaking),
        "cpu_wait_worst_per_turn": {e: spread(w) for e, w in sorted(waits_by_engine.items())},
        "turns_detail": [
            {
                "device": t.device,
                "utterance": t.utterance,
                "first_audio": t.first_audio,
                "speaking_wait": t.speaking_wait,
                "stages": t.stages,
                "cpu_waits": t.cpu_waits,
                "tools": t.tools,
            }
            for t in turns
        ],
    }


def print_household(report: dict[str, Any]) -> None:
    row = report["first_audio"]
    where = f"{report['cpus']} cores" + (
        ", a busy neighbour on each" if report["busy_neighbour"] else ""
    )
    if report.get("server_niceness") is not None:
        where += f", the server at niceness {report['server_niceness']}"
    print(
        f"\nhousehold: {report['devices']} devices, {report['conversations']} conversations "
        f"(a new connection each), {report['turns']} turns, {where}; memory, summaries, tools on"
    )
    print(f"{'':36} {'p50':>8} {'p95':>8} {'max':>8}")

    def line(name: str, spread: dict[str, Any]) -> None:
        print(f"{name:36} {ms(spread['p50']):>8} {ms(spread['p95']):>8} {ms(spread['max']):>8}")

    line("end of speech → first audio", row)
    for stage in STAGES:
        line(f"  {stage}", report["stages"][stage])
    line("'speaking' before the first frame", report["speaking_before_first_frame"])
    for engine, spread in report["cpu_wait_worst_per_turn"].items():
        line(f"longest {engine} wait for the CPU", spread)
    print(
        f"delivered {report['delivered']}/{report['turns']}; turns 'speaking' over "
        f"{SPEAKING_WAIT_LIMIT_S:.0f} s before the first frame: {report['speaking_over_1s']}"
    )

    def memory(key: str) -> str:
        parts = report.get(f"rss_parts_mb_{key}", {})
        split = ", ".join(f"{k} {v:.0f} MB" for k, v in parts.items())
        return f"{report.get(f'rss_mb_{key}') or 0:.0f} MB ({split})"

    rest = (
        f"at rest {report['rest_after_s']:.0f} s later: {memory('rest')}"
        if report.get("rss_mb_rest") is not None
        else "not at rest within the wait"
    )
    print(
        f"server memory (RSS): as the last device left {memory('end')}; {rest}; "
        f"peak {report.get('rss_mb_peak') or 0:.0f} MB"
    )
    if report.get("first_turn_after_rest_s") is not None:
        print(f"a device back after the rest: first turn {ms(report['first_turn_after_rest_s'])}")
    if report.get("restart_ready_s") is not None:
        print(
            f"restart with the saved states → ready: {report['restart_ready_s']:.1f} s; a "
            f"returning device's first turn: {ms(report.get('first_turn_after_restart_s'))}"
        )


async def run_household(
    options: HouseholdOptions,
    speech: list[Utterance],
    env: dict[str, str],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Start a server as a board in use (pinned to `--cpus`), with `--busy` neighbours, and
    drive the household."""
    neighbour = BusyNeighbour(options.cpus) if options.busy else None
    say(f"household: starting edge serve on {len(cpu_set(options.cpus))} cores")
    nice = UNIT_NICE if options.nice is None else options.nice
    server = await started_after_a_device(
        options.config, env, cpus=options.cpus, summaries=True, nice=nice
    )
    say(f"  the server runs at niceness {server.niceness()} (the service's: {UNIT_NICE})")
    try:
        if neighbour is not None:
            neighbour.start()
            say(f"  a busy neighbour on each of cores {sorted(neighbour.cores)}")
        plans = plan(options, speech)
        started = time.monotonic()
        turns, held = await drive(server, plans, say)
        report = figures(turns, held, options)
        report["seconds"] = time.monotonic() - started
        report["server_niceness"] = server.niceness()
        report["rss_mb_end"] = server.rss_mb()  # the last conversation just closed
        report["rss_parts_mb_end"] = server.rss_parts_mb()
        say("waiting for the server to be at rest (summaries written, memory given back)")
        rest_started = time.monotonic()
        if await server.rest():
            report["rest_after_s"] = time.monotonic() - rest_started
            report["rss_mb_rest"] = server.rss_mb()
            report["rss_parts_mb_rest"] = server.rss_parts_mb()
        # The kernel's high-water mark lags behind RSS by a few MB: never below what was seen.
        seen = [v for v in (server.peak_rss_mb(), report["rss_mb_end"]) if v is not None]
        report["rss_mb_peak"] = max(seen) if seen else None
        # The household's usual case: a device comes back to a server at rest (the model's
        # context let go, the device's state on disk).
        report["first_turn_after_rest_s"] = await returning_turn(server, plans, len(plans) - 1)
        server.stop()
        say("restarting edge serve: a device comes back")
        server = await ServerUnderTest.start(
            options.config,
            env,
            workdir=server.workdir,
            cpus=options.cpus,
            summaries=True,
            nice=nice,
        )
        report["restart_ready_s"] = server.ready_s  # with the saved states
        report["first_turn_after_restart_s"] = await returning_turn(server, plans, 0)
        return report
    finally:
        if neighbour is not None:
            neighbour.stop()
        server.stop()


async def returning_turn(
    server: ServerUnderTest, plans: list[list[Planned]], device: int
) -> float | None:
    """End of speech → first audio of a device that comes back and says its first phrase."""
    returning = await connect(server, device_name(device))
    try:
        turn = await measured_turn(server, returning, plans[device][0].said[0])
    finally:
        await returning.drop()
    return turn.first_audio


def household_speech(tts: Any, rate: int, texts: tuple[str, ...] = HOUSEHOLD) -> list[Utterance]:
    """Phrases in the voice (steady: the same audio every run)."""
    from edge.bench.utterances import synthesized

    return synthesized({text: tts.synthesize_pcm(text, rate, steady=True) for text in texts})


def main(options: HouseholdOptions) -> int:
    from edge.bench.report import progress_printer, write_json
    from edge.bench.server import setting_env

    say = progress_printer()
    env = setting_env(options.settings)
    if options.profile:
        env["EDGE_MODELS_PROFILE"] = options.profile
    speech = asyncio.run(voice_speech(options, env))
    report = asyncio.run(run_household(options, speech, env, say))
    print_household(report)
    write_json(options.json_out, report)
    return 0 if report["delivered"] == report["turns"] else 1


async def voice_speech(
    options: HouseholdOptions, env: dict[str, str], texts: tuple[str, ...] = HOUSEHOLD
) -> list[Utterance]:
    """Only the voice is loaded here (not the other models): the phrases in steady speech."""
    import os

    from edge.bench.utterances import RATE
    from edge.config import load
    from edge.engines.loader import resolve_models
    from edge.engines.tts import TtsEngine
    from edge.workers import Worker

    config = load(options.config, {**os.environ, **env})
    worker = Worker("tts", threads=1)
    try:
        tts = await asyncio.to_thread(TtsEngine, resolve_models(config).voice, config.tts, worker)
        return household_speech(tts, RATE, texts)
    finally:
        worker.shutdown()
