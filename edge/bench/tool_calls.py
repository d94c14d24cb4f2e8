"""Tool-call accuracy of a model on spoken-style requests: `edge bench tools`.

Each prompt goes through the real answer path (`AnswerWriter`: prompt, streaming, tolerant
parsing, argument validation, one repair, the tool, the spoken answer) with the built-in tools and
the firmware's common device tools served by the simulated device's MCP server; with `--commands`,
the household command layer first, as a session answers (a command is scored by the tool it
called and how). A prompt scores
when the first tool called is the expected one with the expected arguments, or when no tool is
called for a request that needs none. A question about the time or date scores when it is
answered, without a tool, from the clock the prompt carries (with the right time). Prints one
line per prompt, then the totals (and JSON).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from edge.tools.builtin import reminder_delay

Check = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Case:
    prompt: str
    tool: str | None  # expected tool (source name), None: answer without a tool
    check: Check = lambda _args: True
    language: str = "en"
    # An answer without the tool that serves the request all the same (the clock in the prompt).
    answered: Callable[[str], bool] | None = None


def says_now(pattern: str, timezone: str = "") -> Callable[[str], bool]:
    """The answer states the local time in `pattern` (strftime), now or a minute ago; a clock
    time may also be said on the 12-hour clock with its half of the day ("2:56 PM", "下午2:56")."""

    def check(answer: str) -> bool:
        from edge.tools.builtin import local_now

        now = local_now(timezone)
        moments = (now, now - dt.timedelta(minutes=1))
        if any(moment.strftime(pattern) in answer for moment in moments):
            return True
        return "%H:%M" in pattern and any(_twelve_hour(moment, answer) for moment in moments)

    return check


def _twelve_hour(moment: dt.datetime, answer: str) -> bool:
    """ "2:56 PM", "下午2:56"; also the Chinese 24-hour form "14点56分"."""
    if f"{moment.hour}点{moment.minute}分" in answer:
        return True
    clock = f"{moment.hour % 12 or 12}:{moment.minute:02d}"
    half = r"p\.?m\.?|下午|晚上|傍晚" if moment.hour >= 12 else r"a\.?m\.?|上午|早上|凌晨"
    return bool(re.search(rf"(?:{half})\s*{clock}(?!\d)|(?<!\d){clock}\s*(?:{half})", answer, re.I))


VOLUME = "self.audio_speaker.set_volume"
REMIND = "set_reminder"
CASES = [
    Case("Turn the volume down to 30.", VOLUME, lambda a: a.get("volume") == 30),
    Case("Could you make it louder, like 80?", VOLUME, lambda a: a.get("volume") == 80),
    Case("Set the volume to fifty percent.", VOLUME, lambda a: a.get("volume") == 50),
    Case("Mute the speaker.", VOLUME, lambda a: a.get("volume") == 0),
    # No clock tool: the clock in the prompt (and, in a session, the command layer).
    Case("What time is it?", None, answered=says_now("%H:%M")),
    Case("What's the date today?", None, answered=says_now("%-d %B")),
    Case("What day of the week is it?", None, answered=says_now("%A")),
    Case("Remind me in two minutes to check the oven.", REMIND, lambda a: reminder_delay(a) == 120),
    Case("Set a timer for ten minutes.", REMIND, lambda a: reminder_delay(a) == 600),
    Case(
        "Remind me in thirty seconds to stir the soup.", REMIND, lambda a: reminder_delay(a) == 30
    ),
    Case(
        "Make the screen brighter, set it to 90.",
        "self.screen.set_brightness",
        lambda a: a.get("brightness") == 90,
    ),
    Case(
        "Switch the screen to dark mode.", "self.screen.set_theme", lambda a: a == {"theme": "dark"}
    ),
    Case("How loud is the speaker right now?", "self.get_device_status"),
    Case("Okay, goodbye!", "end_conversation"),
    Case("What is the capital of France?", None),
    Case("Tell me a joke.", None),
    Case("Who wrote Hamlet?", None),
    Case("How many legs does a spider have?", None),
    Case("Good morning!", None),
    Case("Thank you very much.", None),
    Case("把音量调到50", VOLUME, lambda a: a.get("volume") == 50, "zh"),
    Case("现在几点了？", None, language="zh", answered=says_now("%H:%M")),
    Case("两分钟后提醒我关火", REMIND, lambda a: reminder_delay(a) == 120, "zh"),
    Case(
        "把屏幕亮度调到30", "self.screen.set_brightness", lambda a: a.get("brightness") == 30, "zh"
    ),
    Case("中国的首都是哪里？", None, language="zh"),
]


def _recorded(tool: Any, calls: list[tuple[str, dict[str, Any]]]) -> Any:
    """`tool`, noting each call the command layer makes to it."""
    import dataclasses

    async def handler(arguments: dict[str, Any], context: Any) -> str:
        calls.append((tool.name, dict(arguments)))
        return str(await tool.handler(arguments, context))

    return dataclasses.replace(tool, handler=handler)


async def run(
    model: Path | None, mode: str, quiet: bool = True, commands: bool = False
) -> dict[str, Any]:
    from edge.assistant.answer import AnswerWriter
    from edge.assistant.prompt import PromptBuilder
    from edge.bench.server import run_folder
    from edge.commands.runner import CommandRunner, match
    from edge.config import Config, with_overrides
    from edge.engines.llm.llama import LlmEngine
    from edge.memory.store import MemoryStore
    from edge.models.catalog import assemble_chunks, entry, profile
    from edge.sim.mcp_tools import McpLoopback, SimMcpServer
    from edge.tools.builtin import builtin_tools
    from edge.tools.registry import ToolContext, ToolSet
    from edge.tools.reminders import ReminderScheduler

    config = with_overrides(Config(), tools={"mode": mode})
    path = (
        model
        if model is not None
        else await asyncio.to_thread(assemble_chunks, entry(profile()["llm"]), config.cache_path)
    )
    llm = await asyncio.to_thread(LlmEngine, path, config.llm)
    store = MemoryStore(Path(tempfile.mkdtemp(prefix="memory-", dir=run_folder())) / "memory.db")

    async def never_delivered(_device: str, _text: str) -> bool:
        return False

    reminders = ReminderScheduler(store, never_delivered)
    client = McpLoopback(SimMcpServer(), log=logger).client
    await client.start()
    tools = ToolSet([*builtin_tools("", reminders, 8.0), *client.tools])
    command_calls: list[tuple[str, dict[str, Any]]] = []
    recording = ToolSet([_recorded(tool, command_calls) for tool in tools.tools])
    runner = CommandRunner("", reminders)
    if mode == "template":
        await llm.warm_up(tools=tools.specs())
    log = logger.bind(device="bench")
    rows = []
    try:
        for case in CASES:
            started = time.monotonic()
            command = match(case.prompt) if commands else None
            repairs = 0
            if command is not None and runner.can_run(command, recording):
                command_calls.clear()
                done = await runner.run(command, recording, ToolContext("bench"))
                spoken = done.spoken
                # "Louder" reads the status first: the call that changes something counts.
                changing = [c for c in command_calls if "status" not in c[0]]
                called, arguments = changing[-1] if changing else (None, {})
            else:
                writer = AnswerWriter(llm, config, tools, ToolContext("bench"), log)
                messages = PromptBuilder(config, tools).messages(case.prompt, [], "")
                spoken = "".join([p async for p in writer.pieces(messages)])
                calls = writer.answer.tool_calls
                called = calls[0].name if calls else None
                arguments = calls[0].arguments if calls else {}
                repairs = writer.answer.repairs
            seconds = time.monotonic() - started
            ok = called == case.tool and (case.tool is None or case.check(arguments))
            if case.answered is not None:
                ok = called is None and case.answered(spoken)
            rows.append(
                {
                    "prompt": case.prompt,
                    "language": case.language,
                    "expected": case.tool,
                    "called": called,
                    "arguments": arguments,
                    "ok": ok,
                    "repairs": repairs,
                    "command": command is not None,
                    "seconds": round(seconds, 2),
                    "answer": spoken,
                }
            )
            if not quiet:
                print(
                    f"{'ok ' if ok else 'BAD'} {seconds:5.1f}s {case.prompt!r}: "
                    f"{called or '-'} {json.dumps(arguments, ensure_ascii=False)} → {spoken!r}"
                )
    finally:
        client.close()
        store.close()
        llm.close()
    return _summary(path.name, mode, rows)


def _summary(model: str, mode: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    def share(selected: list[dict[str, Any]]) -> str:
        return f"{sum(r['ok'] for r in selected)}/{len(selected)}"

    return {
        "model": model,
        "mode": mode,
        "all": share(rows),
        "english": share([r for r in rows if r["language"] == "en"]),
        "chinese": share([r for r in rows if r["language"] == "zh"]),
        "tool_needed": share([r for r in rows if r["expected"]]),
        "no_tool_needed": share([r for r in rows if not r["expected"]]),
        "repairs": sum(r["repairs"] for r in rows),
        "median_seconds": statistics.median(r["seconds"] for r in rows),
        "rows": rows,
    }


def main(model: Path | None, mode: str, as_json: bool, commands: bool = False) -> int:
    logger.remove()
    result = asyncio.run(run(model, mode, quiet=as_json, commands=commands))
    if as_json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        print(
            f"\n{result['model']} mode={mode}{' with the command layer' if commands else ''}: "
            f"{result['all']} correct "
            f"(English {result['english']}, Chinese {result['chinese']}; needing a tool "
            f"{result['tool_needed']}, needing none {result['no_tool_needed']}); "
            f"{result['repairs']} repairs; median {result['median_seconds']:.1f} s per prompt"
        )
    return 0
