"""Commands carried out with the firmware's own MCP tools (the simulated device's server, over
the real MCP client) and the server's reminder tool on a real memory store."""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

from loguru import logger

from edge.commands.intents import AskClock, ManageReminders, SetLevel, SetTheme, StartTimer
from edge.commands.runner import CommandRunner, match
from edge.memory.store import MemoryStore
from edge.sim.mcp_tools import McpLoopback, SimMcpServer
from edge.tools.builtin import builtin_tools, local_now
from edge.tools.registry import Tool, ToolContext, ToolSet
from edge.tools.reminders import ReminderScheduler

CONTEXT = ToolContext("aa:bb:cc:00:00:01")


async def device_tools(device: SimMcpServer) -> list[Tool]:
    client = McpLoopback(device, log=logger).client
    await client.start()
    return client.tools


async def never_delivered(_device: str, _text: str) -> bool:
    return False


def reminders() -> ReminderScheduler:
    store = MemoryStore(Path(tempfile.mkdtemp(prefix="edge-commands-")) / "memory.db")
    return ReminderScheduler(store, never_delivered)


async def test_levels_are_set_on_the_device_and_confirmed_with_the_value_set() -> None:
    device = SimMcpServer()
    tools = ToolSet(await device_tools(device))
    runner = CommandRunner("")

    done = await runner.run(SetLevel("en", "volume", value=30), tools, CONTEXT)
    assert done is not None and done.spoken == "Volume set to 30." and done.ok
    assert device.volume == 30

    done = await runner.run(SetLevel("en", "volume", step=1), tools, CONTEXT)  # "louder"
    assert done is not None and done.spoken == "Volume set to 40."
    assert [name for name, _ in device.calls[-2:]] == [
        "self.get_device_status",
        "self.audio_speaker.set_volume",
    ]

    done = await runner.run(SetLevel("zh", "brightness", value=300), tools, CONTEXT)
    assert done is not None and done.spoken == "亮度已调到100。"  # the schema's maximum
    assert device.brightness == 100


async def test_mute_then_unmute_comes_back_to_the_volume_before() -> None:
    device = SimMcpServer(volume=65)
    tools = ToolSet(await device_tools(device))
    runner = CommandRunner("")
    done = await runner.run(SetLevel("en", "volume", value=0), tools, CONTEXT)
    assert done is not None and done.spoken == "Muted." and device.volume == 0
    done = await runner.run(SetLevel("en", "volume", restore=True), tools, CONTEXT)
    assert done is not None and done.spoken == "Volume set to 65." and device.volume == 65


async def test_a_device_without_the_tool_is_told_so_and_nothing_else_is_called() -> None:
    device = SimMcpServer()
    offered = [t for t in await device_tools(device) if "volume" not in t.name]
    tools = ToolSet(offered)
    done = await CommandRunner("").run(SetLevel("en", "volume", value=30), tools, CONTEXT)
    assert done is not None and done.spoken == "This device has no volume control."
    assert done.tool == "" and device.calls == []


async def test_a_failing_device_tool_is_never_confirmed() -> None:
    device = SimMcpServer(fail_tools={"self.screen.set_theme"})
    tools = ToolSet(await device_tools(device))
    done = await CommandRunner("").run(SetTheme("en", "dark"), tools, CONTEXT)
    assert done is not None and not done.ok
    assert done.spoken == "Sorry, that did not work just now."
    assert device.theme == "light"


async def test_theme_is_switched_with_the_firmware_tool() -> None:
    device = SimMcpServer()
    tools = ToolSet(await device_tools(device))
    done = await CommandRunner("").run(SetTheme("zh", "dark"), tools, CONTEXT)
    assert done is not None and done.spoken == "已切换到深色主题。" and device.theme == "dark"


async def test_louder_with_no_way_to_read_the_level_goes_to_the_model() -> None:
    device = SimMcpServer()
    tools = ToolSet([t for t in await device_tools(device) if "status" not in t.name])
    assert not CommandRunner("").can_run(SetLevel("en", "volume", step=1), tools)
    assert CommandRunner("").can_run(SetLevel("en", "volume", value=20), tools)
    assert device.calls == []


async def test_timers_and_reminders_are_stored_with_the_server_reminder_tool() -> None:
    scheduler = reminders()
    tools = ToolSet(builtin_tools("", scheduler, 5.0))
    runner = CommandRunner("")
    before = time.time()
    done = await runner.run(StartTimer("en", 120, "check the oven"), tools, CONTEXT)
    assert done is not None and done.spoken == "OK. I will remind you in 2 minutes."
    done = await runner.run(StartTimer("zh", 600), tools, CONTEXT)
    assert done is not None and done.spoken == "好的。10分钟后提醒你。"
    stored = await scheduler.store.pending_reminders(CONTEXT.device_id)
    assert [r.text for r in stored] == ["Reminder: check the oven.", "10分钟的计时到了。"]
    assert [round(r.due - before) for r in stored] == [120, 600]


async def test_a_reminder_at_a_clock_time_is_due_then() -> None:
    scheduler = reminders()
    tools = ToolSet(builtin_tools("", scheduler, 5.0))
    at = (local_now("") + dt.timedelta(hours=2)).strftime("%H:%M")
    done = await CommandRunner("").run(StartTimer("en", 0, "leave", at), tools, CONTEXT)
    assert done is not None and done.spoken == f"OK. I will remind you at {at}."
    [reminder] = await scheduler.store.pending_reminders(CONTEXT.device_id)
    assert 7080 <= reminder.due - time.time() <= 7200


async def test_without_reminders_a_timer_is_refused_honestly() -> None:
    tools = ToolSet([*builtin_tools("", None, 5.0), *await device_tools(SimMcpServer())])
    done = await CommandRunner("").run(StartTimer("en", 60), tools, CONTEXT)
    assert done is not None and done.spoken == "I cannot set reminders here." and not done.tool


async def test_the_time_and_date_come_from_the_clock() -> None:
    runner = CommandRunner("UTC")
    tools = ToolSet([])
    now = local_now("UTC")
    done = await runner.run(AskClock("en", "time"), tools, CONTEXT)
    minutes = {now.strftime("%H:%M"), (now + dt.timedelta(minutes=1)).strftime("%H:%M")}
    assert done is not None and done.spoken[len("It is ") : -1] in minutes
    done = await runner.run(AskClock("zh", "date"), tools, CONTEXT)
    assert done is not None and done.spoken.startswith(f"今天是{now.year}年{now.month}月")


async def test_iot_style_tools_are_found_by_name_and_schema() -> None:
    calls: list[dict[str, object]] = []

    async def set_volume(arguments: dict[str, object], _ctx: ToolContext) -> str:
        calls.append(arguments)
        return "done"

    schema = {"type": "object", "properties": {"volume": {"type": "integer"}}}
    tool = Tool("iot.Speaker.SetVolume", "Speaker: set volume", schema, set_volume, source="iot")
    command = match("把音量调到七")
    assert command is not None
    done = await CommandRunner("").run(command, ToolSet([tool]), CONTEXT)
    assert done is not None and done.spoken == "音量已调到7。" and calls == [{"volume": 7}]


async def test_reminders_are_read_out_and_cancelled_on_request() -> None:
    scheduler = reminders()
    tools = ToolSet(builtin_tools("", scheduler, 5.0))
    runner = CommandRunner("", scheduler)
    listed, cancel = ManageReminders("en", "list"), ManageReminders("en", "cancel")
    done = await runner.run(listed, tools, CONTEXT)
    assert done.spoken == "You have no reminders or timers." and not done.tool
    done = await runner.run(cancel, tools, CONTEXT)
    assert done.spoken == "You have no reminders to cancel." and not done.tool

    await runner.run(StartTimer("en", 240, "check the tea"), tools, CONTEXT)
    await runner.run(StartTimer("en", 600), tools, CONTEXT)
    other = ToolContext("aa:bb:cc:00:00:02")  # another device's timer is not this one's
    await runner.run(StartTimer("en", 60), tools, other)
    done = await runner.run(listed, tools, CONTEXT)
    first, second = (
        dt.datetime.fromtimestamp(r.due, local_now("").tzinfo)
        for r in await scheduler.upcoming(CONTEXT.device_id)
    )
    assert done.spoken == (
        f"You have 2 reminders. In 4 minutes, at {first:%H:%M}: Reminder: check the tea. "
        f"In 10 minutes, at {second:%H:%M}: Your 10 minutes timer is done."
    )
    zh = await runner.run(ManageReminders("zh", "list"), tools, CONTEXT)
    assert zh.spoken.startswith("你有2个提醒。4分钟后，")

    # "Cancel the timer" with two pending: which one is not known, so neither is cancelled.
    done = await runner.run(cancel, tools, CONTEXT)
    assert done.spoken.startswith("You have 2 reminders. Say cancel all") and not done.tool
    assert len(await scheduler.upcoming(CONTEXT.device_id)) == 2
    done = await runner.run(ManageReminders("en", "cancel", every=True), tools, CONTEXT)
    assert done.spoken == "Cancelled 2 reminders." and done.tool == "reminders"
    assert await scheduler.upcoming(CONTEXT.device_id) == []
    [kept] = await scheduler.upcoming(other.device_id)

    # One pending: "cancel the timer" cancels it, and says which.
    done = await runner.run(cancel, tools, other)
    due = dt.datetime.fromtimestamp(kept.due, local_now("").tzinfo)
    assert done.spoken == f"Cancelled the reminder at {due:%H:%M}."
    assert await scheduler.store.pending_reminders() == []


async def test_without_reminders_listing_them_is_refused_honestly() -> None:
    tools = ToolSet(builtin_tools("", None, 5.0))
    done = await CommandRunner("").run(ManageReminders("zh", "cancel"), tools, CONTEXT)
    assert done.spoken == "这里不能设置提醒。" and not done.tool


def test_only_replies_without_values_are_kept_as_audio() -> None:
    from edge.commands.replies import unchanging

    assert unchanging("Muted.") and unchanging("这个设备不能调节音量。")
    assert unchanging("This device has no volume control.")
    assert not unchanging("Volume set to 30.") and not unchanging("It is 17:25.")


async def test_what_the_assistant_can_do_is_what_this_device_offers() -> None:
    from edge.bench.answer_scoring import talks_about_tools
    from edge.commands.intents import AskAbilities

    full = ToolSet([*builtin_tools("", reminders(), 5.0), *await device_tools(SimMcpServer())])
    asked = match("What can you do?")
    assert isinstance(asked, AskAbilities)
    done = await CommandRunner("").run(asked, full, CONTEXT)
    assert done.spoken == (
        "I can answer questions, tell you the time and the date, set timers and reminders, "
        "change the volume, change the screen brightness and switch the screen between light "
        "and dark."
    )
    assert not done.tool and not talks_about_tools(done.spoken)  # no tool's name, nothing run
    # A board without a speaker volume tool and without the reminder tool: neither is offered.
    bare = SimMcpServer(without={"self.audio_speaker.set_volume"})
    done = await CommandRunner("").run(
        AskAbilities("zh"), ToolSet(await device_tools(bare)), CONTEXT
    )
    assert done.spoken == "我可以回答问题、告诉你时间和日期、调节屏幕亮度和切换深浅色主题。"
