"""`edge bench answers`: can a household trust what the assistant says and does?

One device (every firmware tool) holds `--conversations` conversations, a new connection each,
with memory and summaries on; a second device, without a speaker volume tool, holds one. They
say the sets in `answer_sets.py`: commands (English spoken by the voice and recognised by the
real ASR; Chinese sent as text, as boards send `listen detect`), open questions and chit-chat,
and unclear fragments. Scored, from what the device received and what the server stored:

- commands right: the device's state afterwards (volume, brightness, theme), the reminder
  stored with its delay, the clock read out, or an honest refusal without any call;
- answers that talk about tools, functions or JSON;
- claimed actions ("I set…", "已经把…") in a turn where no tool succeeded;
- time answers more than a minute off the clock;
- actions taken on a fragment;
- invented memory: summary sentences whose words the user never said;
- end of speech → first audio for the spoken commands;
- commands said with a pause inside that the turn's end at that pause cut short (a conversation
  of their own, `PAUSED`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge.bench.answer_scoring import (
    CLAIM,
    Result,
    changes_something,
    command_right,
    invented_facts,
    talks_about_tools,
)
from edge.bench.answer_sets import (
    EN_COMMANDS,
    FRAGMENTS,
    PAUSED,
    QUESTIONS,
    WITHOUT_VOLUME,
    ZH_COMMANDS,
    Item,
)
from edge.bench.report import percentile
from edge.bench.server import ServerUnderTest
from edge.bench.talk import TURN_TIMEOUT_S, connect
from edge.bench.utterances import words
from edge.sim.device import SimDevice
from edge.sim.mcp_tools import SimMcpServer

VOLUME_TOOL = "self.audio_speaker.set_volume"
IDLE_BETWEEN_S = 10.0
NOT_HEARD_S = 20.0  # no `stt` this long after the words: they were not heard


@dataclass
class AnswersOptions:
    conversations: int = 12
    seed: int = 5
    config: Path | None = None
    settings: list[str] = field(default_factory=list)
    json_out: str = ""


def plan(options: AnswersOptions) -> list[list[Item]]:
    """The main device's conversations: every item once, shuffled from the seed, with the
    questions that need a remembered fact in the last conversation."""
    rng = random.Random(options.seed)
    recall = [q for q in QUESTIONS if q.text.startswith(("What is my", "What music do I", "Where"))]
    items = [i for i in (*EN_COMMANDS, *ZH_COMMANDS, *QUESTIONS, *FRAGMENTS) if i not in recall]
    rng.shuffle(items)
    n = max(options.conversations, 2)
    conversations = [items[k::n] for k in range(n)]
    conversations[-1].extend(recall)
    return conversations


def _state(device: SimDevice, tz: float, db: Path) -> dict[str, Any]:
    mcp = device.mcp
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        (pending,) = conn.execute(
            "SELECT COUNT(*) FROM reminders WHERE device_id = ? AND delivered IS NULL AND due > ?",
            (device.device_id, time.time()),
        ).fetchone()
    return {
        "volume": mcp.volume,
        "brightness": mcp.brightness,
        "theme": mcp.theme,
        "tz": tz,
        "pending": int(pending),  # reminders still to come
    }


def _new_reminders(db: Path, device_id: str, since: float) -> list[tuple[float, float]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT due, created FROM reminders WHERE device_id = ? AND created >= ?",
            (device_id, since),
        ).fetchall()
    return [(float(due), float(created)) for due, created in rows]


async def reminders_heard(device: SimDevice, db: Path, horizon_s: float = 15.0) -> None:
    """Nobody talks over a reminder: one due about now is heard before the next words."""
    deadline = time.monotonic() + TURN_TIMEOUT_S
    while time.monotonic() < deadline:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            (due,) = conn.execute(
                "SELECT COUNT(*) FROM reminders WHERE device_id = ? AND delivered IS NULL "
                "AND due <= ?",
                (device.device_id, time.time() + horizon_s),
            ).fetchone()
        if not due:
            return
        await asyncio.sleep(0.5)


def _index_of(device: SimDevice, kind: str, after: int) -> int | None:
    for index in range(after, len(device.events)):
        message = device.events[index].message
        if message is not None and message.get("type") == kind:
            return index
    return None


async def one_turn(
    device: SimDevice, item: Item, speech: dict[str, Any], conversation: int, tz: float, db: Path
) -> Result:
    await reminders_heard(device, db)
    mark = len(device.events)
    calls_before = len(device.mcp.calls)
    before = _state(device, tz, db)
    started = time.time()
    spoken = item.text in speech
    await device.listen_start("auto")
    if spoken:
        await device.say(speech[item.text], silence_s=NOT_HEARD_S)
    else:
        await device.send_json({"type": "listen", "state": "detect", "text": item.text})
    result = Result(device.device_id, conversation, item.text, item.kind, item.language, spoken)
    try:
        # The turn's own bracket: the one after its `stt` (a reminder has none). Words not
        # heard at all get no `stt`: the user would say them again; here the turn is lost.
        await device.wait_json(lambda m: m.get("type") == "stt", NOT_HEARD_S, after=mark)
        heard = _index_of(device, "stt", mark) or mark
        await device.wait_tts_stop(TURN_TIMEOUT_S, after=heard)
    except Exception:
        result.answer = "(no answer)"
        heard = mark
    sentences = [
        str(m.get("text", ""))
        for m in device.json_messages(heard)
        if m.get("type") == "tts" and m.get("state") == "sentence_start"
    ]
    result.answer = result.answer or " ".join(sentences)
    stt = [str(m.get("text", "")) for m in device.json_messages(mark) if m.get("type") == "stt"]
    result.heard = stt[0] if stt else ""
    if item.kind == "paused":
        result.cut_short = len(words(result.heard)) < len(words(item.text))
    result.calls = [list(c) for c in device.mcp.calls[calls_before:]]
    reminders = _new_reminders(db, device.device_id, started - 1)
    acted = bool(result.calls or reminders)
    result.tool_talk = talks_about_tools(result.answer, tuple(str(c[0]) for c in result.calls))
    result.false_claim = bool(CLAIM.search(result.answer)) and not acted
    if spoken and item.kind == "command":
        result.first_audio = device.first_audio_latency(mark)
    if item.kind in ("command", "paused"):
        result.right = command_right(item, before, _state(device, tz, db), result, reminders)
        if item.expect is not None and item.expect.what == "time":
            result.wrong_time = not result.right
    if item.kind == "fragment":  # reading the device's status is no action
        result.acted_on_fragment = changes_something(result.calls) or bool(reminders)
    return result


async def summaries_written(db: Path, device_ids: list[str], timeout_s: float = 120.0) -> None:
    """Until every device's summary covers its last turn (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            behind = conn.execute(
                "SELECT COUNT(*) FROM devices d WHERE summary_turn < "
                "(SELECT MAX(id) FROM turns t WHERE t.device_id = d.device_id)"
            ).fetchone()[0]
        if not behind:
            return
        await asyncio.sleep(1.0)


async def drive(
    server: ServerUnderTest, options: AnswersOptions, speech: dict[str, Any], say: Any
) -> dict[str, Any]:
    assert server.log is not None
    db = server.log.parent / "state" / "memory.db"
    tz = dt.datetime.now().astimezone().utcoffset() or dt.timedelta()
    offset = tz.total_seconds()
    results: list[Result] = []
    boards = {
        "a0:05:00:00:00:01": SimMcpServer(),
        "a0:05:00:00:00:02": SimMcpServer(without={VOLUME_TOOL}),
    }
    schedule = [("a0:05:00:00:00:01", c) for c in [*plan(options), PAUSED]] + [
        ("a0:05:00:00:00:02", WITHOUT_VOLUME)
    ]
    for number, (device_id, items) in enumerate(schedule):
        device = await connect(server, device_id, boards[device_id])
        await asyncio.sleep(1.0)  # the tool list is in before the first words
        try:
            for item in items:
                if device.closed_by_server:  # closed while idle (a turn not heard, say)
                    await device.drop()
                    device = await connect(server, device_id, boards[device_id])
                result = await one_turn(device, item, speech, number, offset, db)
                results.append(result)
                mark = "" if result.right is None else (" ok" if result.right else " WRONG")
                say(f"  [{number}] {item.text!r} → {result.answer[:90]!r}{mark}")
        finally:
            await device.drop()
        # The device is away a while, as between conversations at home: the summary of what
        # was said is written then (the model must have been idle a few seconds).
        await asyncio.sleep(IDLE_BETWEEN_S)
    await summaries_written(db, list(boards))
    summary, invented = invented_facts(db, "a0:05:00:00:00:01")
    return figures(results, summary, invented)


def figures(results: list[Result], summary: str, invented: list[str]) -> dict[str, Any]:
    commands = [r for r in results if r.kind == "command"]

    def share(rows: list[Result]) -> dict[str, Any]:
        right = sum(bool(r.right) for r in rows)
        return {
            "right": right,
            "of": len(rows),
            "percent": 100 * right / len(rows) if rows else None,
        }

    audio = [r.first_audio for r in commands if r.first_audio is not None]
    paused = [r for r in results if r.kind == "paused"]
    time_rows = [r for r in commands if r.right is not None and "time" in r.text.lower() + r.text]
    return {
        "turns": len(results),
        "commands": {
            "en": share([r for r in commands if r.language == "en"]),
            "zh": share([r for r in commands if r.language == "zh"]),
        },
        "tool_talk": [r.text for r in results if r.tool_talk],
        "false_claims": [[r.text, r.answer] for r in results if r.false_claim],
        "wrong_time": [[r.text, r.answer] for r in results if r.wrong_time],
        "acted_on_fragments": [[r.text, r.calls] for r in results if r.acted_on_fragment],
        "invented_facts": invented,
        "summary": summary,
        "command_first_audio": {
            "p50": percentile(audio, 50),
            "p95": percentile(audio, 95),
            "max": max(audio, default=None),
            "n": len(audio),
        },
        "wrong_commands": [[r.device, r.text, r.answer, r.calls] for r in commands if not r.right],
        "paused": {
            "said": len(paused),
            "cut_short": [[r.text, r.heard] for r in paused if r.cut_short],
            "right": sum(bool(r.right) for r in paused),
        },
        "time_turns": len(time_rows),
        "results": [asdict(r) for r in results],
    }


def print_answers(report: dict[str, Any]) -> None:
    def pct(row: dict[str, Any]) -> str:
        return f"{row['right']}/{row['of']} ({row['percent']:.0f} %)" if row["of"] else "-"

    audio = report["command_first_audio"]
    print(f"\nanswers: {report['turns']} turns over two devices (memory and summaries on)")
    print(f"  commands right, English:            {pct(report['commands']['en'])}")
    print(f"  commands right, Chinese:            {pct(report['commands']['zh'])}")
    print(f"  answers talking about tools:        {len(report['tool_talk'])}")
    print(f"  claimed actions without a call:     {len(report['false_claims'])}")
    print(f"  time answers off the clock:         {len(report['wrong_time'])}")
    print(f"  actions on fragments:               {len(report['acted_on_fragments'])}")
    print(f"  invented memory facts:              {len(report['invented_facts'])}")
    if audio["n"]:
        print(
            f"  spoken commands, end of speech → first audio: p50 {audio['p50'] * 1000:.0f} ms, "
            f"p95 {audio['p95'] * 1000:.0f} ms, max {audio['max'] * 1000:.0f} ms (n={audio['n']})"
        )
    paused = report["paused"]
    if paused["said"]:
        print(
            f"  commands said with a pause inside:  {paused['said']}, cut short at the pause "
            f"{len(paused['cut_short'])}, carried out as meant {paused['right']}"
        )
    for text, heard in paused["cut_short"]:
        print(f"  cut short: {text!r} heard as {heard!r}")
    for device, text, answer, calls in report["wrong_commands"]:
        print(f"  wrong: {device} {text!r} → {answer[:80]!r} calls={calls}")
    for text, answer in report["false_claims"]:
        print(f"  claimed: {text!r} → {answer[:80]!r}")
    for sentence in report["invented_facts"]:
        print(f"  invented: {sentence!r}")


def main(options: AnswersOptions) -> int:
    from edge.bench.household import HouseholdOptions, voice_speech
    from edge.bench.report import progress_printer, write_json
    from edge.bench.server import setting_env

    say = progress_printer()
    env = setting_env(options.settings)
    spoken = tuple(i.text for i in (*EN_COMMANDS, *PAUSED))
    voiced = asyncio.run(voice_speech(HouseholdOptions(config=options.config), env, spoken))
    speech = {utterance.name: utterance.pcm for utterance in voiced}

    async def go() -> dict[str, Any]:
        server = await ServerUnderTest.start(options.config, env, summaries=True)
        try:
            return await drive(server, options, speech, say)
        finally:
            server.stop()

    report = asyncio.run(go())
    print_answers(report)
    write_json(options.json_out, report)
    return 0
