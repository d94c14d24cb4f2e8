"""The figures of `edge bench`: percentiles per stage, the floor's, the machine, and the printed
table (`edge.bench.latency` measures; this module summarises)."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from edge.bench.floor import FloorTurn

CONCURRENCY_LIMIT_S = 3.0  # p95 first audio beyond this is not a conversation any more
STAGES = ("vad_decision", "asr_done", "llm_first_token", "tts_first_audio", "first_frame_sent")
STAGE_NAMES = {
    "vad_decision": "end of speech → VAD decision",
    "asr_done": "ASR done",
    "llm_first_token": "LLM first token",
    "tts_first_audio": "first sentence synthesized",
    "first_frame_sent": "first audio frame sent",
    "first_audio": "first audio frame at the device",
}


@dataclass
class Turn:
    device: str
    utterance: str
    end_of_speech: float
    first_audio: float | None  # seconds after the end of speech
    stages: dict[str, float]  # server stage → seconds after the end of speech
    tools: int
    delivered: bool  # `tts stop` arrived after audio, and the last frame was played
    overflowed: int  # packets the device dropped: its queue was full (not paced)
    cut_early: bool  # the server answered before the device finished speaking
    # `tts start` → the first audio frame, as the device saw them: it shows "speaking" and
    # plays nothing meanwhile.
    speaking_wait: float | None = None
    # Per engine, the longest any of its steps waited for the CPU while this turn was on its
    # way to its first audio (the server's steps, whichever device they were for).
    cpu_waits: dict[str, float] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def spread(values: list[float]) -> dict[str, float | None]:
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "n": len(values)}


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def stage_table(turns: list[Turn]) -> dict[str, dict[str, float | None]]:
    table = {}
    for stage in STAGES:
        table[stage] = spread([t.stages[stage] for t in turns if stage in t.stages])
    table["first_audio"] = spread([t.first_audio for t in turns if t.first_audio is not None])
    return table


def floor_table(floor: list[FloorTurn]) -> dict[str, Any]:
    return {
        "vad_decision": spread([f.vad for f in floor]),
        "asr_done": spread([f.text_ready for f in floor]),
        "llm_first_token": spread([f.text_ready + f.llm_first_token for f in floor]),
        "tts_first_audio": spread([f.text_ready + f.llm_first_clause + f.tts for f in floor]),
        "first_audio": spread([f.total for f in floor]),
        "engines_alone": {
            "vad": spread([f.vad for f in floor]),
            "asr": spread([f.asr for f in floor]),
            "llm_first_token": spread([f.llm_first_token for f in floor]),
            "llm_first_clause": spread([f.llm_first_clause for f in floor]),
            "tts_first_clause": spread([f.tts for f in floor]),
        },
    }


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "python": platform.python_version(),
    }


def print_report(report: dict[str, Any]) -> None:
    options = report.get("options", {})
    board = ""
    if options.get("cpus") and options["cpus"] != report["machine"]["cpus"]:
        board += f", the server pinned to {options['cpus']}"
    if options.get("busy_neighbour"):
        board += ", a busy neighbour on each of its cores"
    print(
        f"\nedge bench on {report['machine']['machine']}, {report['machine']['cpus']} CPUs{board}"
    )
    one = report["one_talker"]
    floor = report.get("floor") or {}
    print(f"\none talking device, {one['turns']} turns (first turn: {ms(one['first_turn'])})")
    print(f"{'stage (from end of speech)':36} {'p50':>8} {'p95':>8} {'floor p50':>10}")
    for stage in (*STAGES, "first_audio"):
        row = one["stages"][stage]
        floor_p50 = (floor.get(stage) or {}).get("p50")
        print(
            f"{STAGE_NAMES[stage]:36} {ms(row['p50']):>8} {ms(row['p95']):>8} {ms(floor_p50):>10}"
        )
    if report.get("ratio_to_floor") is not None:
        print(f"pipeline / floor (p50 first audio): {report['ratio_to_floor']:.2f}")
    for kind in ("plain", "with_tools"):
        spread = one["by_kind"][kind]
        if spread["n"]:
            print(
                f"  {kind.replace('_', ' ')} turns: p50 {ms(spread['p50'])}, "
                f"p95 {ms(spread['p95'])} ({spread['n']})"
            )
    if one["cut_early"]:
        print(f"  {one['cut_early']} turns answered before the speaker finished (not counted)")
    engines = floor.get("engines_alone")
    if engines:
        print(
            "engines alone (p50): "
            + ", ".join(f"{name} {ms(v['p50'])}" for name, v in engines.items())
        )
    memory = report["memory"]
    print(
        f"\nserver memory: {memory.get('rss_mb_after_one_talker') or 0:.0f} MB RSS "
        f"after one talker, {memory.get('rss_mb_end') or 0:.0f} MB at the end"
    )
    idle = report.get("idle") or {}
    if "cpu_percent_of_core_per_device" in idle:
        print(
            f"{idle['devices']} idle devices: +{idle['cpu_percent_of_core_added']:.2f} % of one "
            f"core in all ({idle['cpu_percent_of_core_per_device']:.3f} % each), "
            f"+{idle['rss_mb_added']:.1f} MB RSS"
        )
    if report["concurrency"]:
        beside = f"with {idle['devices']} idle devices connected, " if idle.get("devices") else ""
        print(f"\ntalking at once ({beside}{CONCURRENCY_LIMIT_S:.0f} s p95 limit)")
        for level in report["concurrency"]:
            spread = level["first_audio"]
            print(
                f"  {level['talkers']}: p50 {ms(spread['p50'])}, p95 {ms(spread['p95'])}, "
                f"delivered {level['delivered']}/{level['turns']}, "
                f"overflowed packets {level['overflowed_packets']}"
            )
        print(f"most conversations at once within the limit: {report['max_talkers_within_limit']}")
    if report.get("household"):
        from edge.bench.household import print_household

        print_household(report["household"])


def progress_printer() -> Callable[[str], None]:
    """For the benches that start a server of their own: the library's log down to warnings,
    and progress lines on stderr stamped with the seconds since the start."""
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    began = time.monotonic()

    def say(line: str) -> None:
        print(f"[{time.monotonic() - began:7.1f}s] {line}", file=sys.stderr, flush=True)

    return say


def write_json(target: str, figures: Any) -> None:
    """The figures as JSON to the file `target` (or stdout for "-"); nothing for ""."""
    if not target:
        return
    text = json.dumps(figures, ensure_ascii=False, indent=2)
    if target == "-":
        print(text)
        return
    Path(target).write_text(text + "\n")
    print(f"\nJSON written to {target}")
