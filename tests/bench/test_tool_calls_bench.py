"""`edge bench tools`: how it scores a clock in an answer and sees the command layer's calls."""

from __future__ import annotations

import datetime as dt
from typing import Any

from edge.bench.tool_calls import _recorded, _twelve_hour
from edge.tools.registry import Tool, ToolContext


def test_a_clock_time_may_be_said_on_the_twelve_hour_clock() -> None:
    afternoon = dt.datetime(2026, 12, 6, 14, 56)
    assert _twelve_hour(afternoon, "现在是下午2:56。")  # the 1.5B model's answer, right
    assert _twelve_hour(afternoon, "It is 2:56 PM.")
    assert _twelve_hour(afternoon, "现在是14点56分。")  # the command layer's answer
    assert not _twelve_hour(afternoon, "It is 2:56 AM.")
    assert not _twelve_hour(afternoon, "It is 12:56 pm.")
    assert _twelve_hour(dt.datetime(2026, 12, 6, 0, 5), "It is 12:05 a.m.")


async def test_the_command_layers_calls_are_recorded() -> None:
    async def set_volume(arguments: dict[str, Any], _ctx: ToolContext) -> str:
        return "true"

    calls: list[tuple[str, dict[str, Any]]] = []
    tool = _recorded(Tool("set_volume", "", {}, set_volume, source="device"), calls)
    assert await tool.handler({"volume": 30}, ToolContext("d")) == "true"
    assert calls == [("set_volume", {"volume": 30})]
