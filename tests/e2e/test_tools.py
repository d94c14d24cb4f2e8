"""Tools through the whole pipeline: the simulated device's MCP server (scenarios 22–24), the real
default model calling the device's volume tool and the time tool, failing and hanging tools, and
reminders spoken by the server on its own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from edge.assistant.fixed_texts import TOOL_FAILED, TOOL_TIMEOUT
from edge.bench.tool_calls import says_now
from edge.sim.device import SimDevice
from tests.e2e.scenario import assert_reply_bracket, auto_turn, texts
from tests.helpers import Running, wait_until

pytestmark = pytest.mark.models


async def _wait(condition: Any, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_22_mcp_handshake_lists_both_pages(server: Running) -> None:
    device = SimDevice(server.ws_url, device_id="aa:bb:cc:00:22:01")
    await device.connect()
    try:
        await _wait(lambda: len(device.mcp.requests) >= 4)
        # The hello comes first: ESP32-C3 boards on 2.2.6 drop an `initialize` sent before it,
        # and their session dies.
        assert device.json_messages()[0]["type"] == "hello"
        first_after_hello = device.json_messages()[1]
        assert first_after_hello["type"] == "mcp"
        init = first_after_hello["payload"]
        assert init["method"] == "initialize" and type(init["id"]) is int
        vision = init["params"]["capabilities"]["vision"]
        assert vision["url"].startswith("http://127.0.0.1:") and vision["url"].endswith(
            "/mcp/vision/explain"
        )
        methods = [
            (p.get("method"), (p.get("params") or {}).get("cursor")) for p in device.mcp.requests
        ]
        assert methods == [
            ("initialize", None),
            ("notifications/initialized", None),
            ("tools/list", ""),
            ("tools/list", "self.screen.set_brightness"),
        ]
        session = server.server.devices.sessions["aa:bb:cc:00:22:01"]
        tools = server.harness.call(session.tools.toolset())
        offered = [spec["function"]["name"] for spec in tools.specs()]
        assert offered[-4:] == [
            "self_get_device_status",
            "self_audio_speaker_set_volume",
            "self_screen_set_brightness",
            "self_screen_set_theme",
        ]
    finally:
        await device.drop()


async def test_23_volume_by_voice_then_a_failing_and_a_hanging_tool(
    make_server: Any, speak: Any, log_lines: list[dict[str, Any]], greedy: None
) -> None:
    # The model's own tool path: the command layer, which would take this one, is off here
    # (it has its test below).
    running: Running = make_server(tools={"device_call_timeout_s": 2.0, "local_commands": False})
    question = speak("Turn the volume down to 30.")

    device = SimDevice(running.ws_url, device_id="aa:bb:cc:00:23:01")
    await device.connect()
    mark = await auto_turn(device, question)
    assert device.mcp.volume == 30
    assert device.mcp.calls == [("self.audio_speaker.set_volume", {"volume": 30})]
    assert_reply_bracket(device, mark)
    assert "30" in " ".join(texts(device, "sentence", mark))
    await device.drop()

    failing = SimDevice(running.ws_url, device_id="aa:bb:cc:00:23:02")
    failing.mcp.fail_tools = {"self.audio_speaker.set_volume"}
    await failing.connect()
    mark = await auto_turn(failing, question)
    assert failing.mcp.calls and failing.mcp.volume == 70
    assert " ".join(texts(failing, "sentence", mark)) == TOOL_FAILED
    assert_reply_bracket(failing, mark)
    mark = await auto_turn(failing, speak("What is the capital of France?"))  # still answering
    assert_reply_bracket(failing, mark)
    await failing.drop()

    hanging = SimDevice(running.ws_url, device_id="aa:bb:cc:00:23:03")
    hanging.mcp.silent_tools = {"self.audio_speaker.set_volume"}
    await hanging.connect()
    mark = await auto_turn(hanging, question)
    assert " ".join(texts(hanging, "sentence", mark)) == TOOL_TIMEOUT
    assert_reply_bracket(hanging, mark)
    session = running.server.devices.sessions["aa:bb:cc:00:23:03"]
    assert session.tools.mcp is not None and session.tools.mcp._pending == {}
    await hanging.drop()

    failures = [
        line for line in log_lines if "tool self.audio_speaker.set_volume" in line["message"]
    ]
    assert {line["device"] for line in failures if "failed" in line["message"]} == {
        "aa:bb:cc:00:23:02",
        "aa:bb:cc:00:23:03",
    }


async def test_24_a_turn_before_the_tool_list_waits_a_bounded_time(
    make_server: Any, question: Any, log_lines: list[dict[str, Any]]
) -> None:
    running: Running = make_server(tools={"device_list_wait_s": 1.0})
    device = SimDevice(running.ws_url, device_id="aa:bb:cc:00:24:01")
    device.mcp.hold_list = True
    await device.connect()
    mark = await auto_turn(device, question)
    assert_reply_bracket(device, mark)
    assert any("device tools not listed yet" in line["message"] for line in log_lines)
    device.release_mcp_list()
    session = running.server.devices.sessions["aa:bb:cc:00:24:01"]
    mcp = session.tools.mcp
    await _wait(lambda: mcp is not None and len(mcp.tools) == 4)
    await device.drop()


async def test_the_time_by_voice(server: Running, speak: Any) -> None:
    # A household command: answered from the clock at once, never by the model (which copied
    # "12:00 PM" from its own earlier answers), and kept out of the history for that reason.
    device = SimDevice(server.ws_url, device_id="aa:bb:cc:00:25:01")
    await device.connect()
    mark = await auto_turn(device, speak("What time is it?"))
    assert_reply_bracket(device, mark)
    await device.drop()
    says_the_time = says_now("%H:%M", server.server.config.tools.timezone)
    spoken = " ".join(texts(device, "sentence", mark))
    assert spoken.startswith("It is ") and says_the_time(spoken), spoken
    memory = server.server.services.memory
    assert memory is not None
    assert server.harness.call(memory.recent_turns("aa:bb:cc:00:25:01", 1)) == []


async def test_household_commands_by_voice(server: Running, speak: Any) -> None:
    device = SimDevice(server.ws_url, device_id="aa:bb:cc:00:28:01")
    await device.connect()
    mark = await auto_turn(device, speak("Set the volume to thirty."))
    assert_reply_bracket(device, mark)
    assert texts(device, "sentence", mark) == ["Volume set to 30."]
    kinds = [
        "call"
        if m.get("type") == "mcp" and m["payload"].get("method") == "tools/call"
        else m["type"]
        for m in device.json_messages(mark)
    ]
    assert kinds.index("stt") < kinds.index("call")  # the words on screen, then the call
    mark = await auto_turn(device, speak("Turn the volume up."))  # reads the level first
    assert texts(device, "sentence", mark) == ["Volume set to 40."]
    mark = await auto_turn(device, speak("Switch the screen to dark mode."))
    assert texts(device, "sentence", mark) == ["The screen is dark now."]
    assert device.mcp.volume == 40 and device.mcp.theme == "dark"
    assert [name for name, _ in device.mcp.calls] == [
        "self.audio_speaker.set_volume",
        "self.get_device_status",
        "self.audio_speaker.set_volume",
        "self.screen.set_theme",
    ]
    await device.drop()


async def test_reminders_spoken_on_time_and_after_reconnecting(server: Running, speak: Any) -> None:
    request = speak("Remind me in one minute to check the oven.")
    present = SimDevice(server.ws_url, device_id="aa:bb:cc:00:26:01")
    away = SimDevice(server.ws_url, device_id="aa:bb:cc:00:26:02")
    await asyncio.gather(present.connect(), away.connect())
    marks = await asyncio.gather(auto_turn(present, request), auto_turn(away, request))
    await away.drop()  # gone before the reminder is due
    memory = server.server.services.memory
    assert memory is not None
    for device_id in ("aa:bb:cc:00:26:01", "aa:bb:cc:00:26:02"):
        [pending] = server.harness.call(memory.pending_reminders(device_id))
        # Due a minute after the tool set it (the command layer sets it at once; the model,
        # on a slow or busy CPU, could take many seconds to write the call).
        assert 55 <= pending.due - reminder_created(server, pending.id) <= 65

    # Spoken by the server on its own, from listening, as a complete bracket.
    after = len(present.events)
    await present.wait_json(lambda m: m.get("state") == "start", 90, after=after)
    await present.wait_tts_stop(30, after=after)
    assert texts(present, "sentence", after) == ["Reminder: check the oven."]
    assert_reply_bracket(present, after, with_stt=False)
    assert marks[0] < after
    await present.drop()

    # The absent device hears it as soon as it is back.
    back = SimDevice(server.ws_url, device_id="aa:bb:cc:00:26:02")
    await back.connect()
    await back.wait_tts_stop(30)
    assert "oven" in " ".join(texts(back, "sentence")).lower()
    # Marked delivered once its bracket is over: just after `tts stop`, not before it.
    await wait_until(
        lambda: server.harness.call(memory.pending_reminders("aa:bb:cc:00:26:02")) == [], 10
    )
    await back.drop()


def reminder_created(server: Running, reminder_id: int) -> float:
    memory = server.server.services.memory
    assert memory is not None
    row = memory._db.execute(
        "SELECT created FROM reminders WHERE id = ?", (reminder_id,)
    ).fetchone()
    return float(row[0])


async def test_goodbye_ends_the_conversation(make_server: Any, speak: Any) -> None:
    # An exit phrase ends it without asking the model (paraphrases go to its end_conversation
    # tool, tested in tests/session/test_answer.py).
    running: Running = make_server(session={"farewell": "Bye for now!"})
    device = SimDevice(running.ws_url, device_id="aa:bb:cc:00:27:01")
    await device.connect()
    mark = await auto_turn(device, speak("Okay, goodbye!"))
    assert texts(device, "sentence", mark) == ["Bye for now!"]
    assert_reply_bracket(device, mark)
    assert await device.wait_closed(10)
    memory = running.server.services.memory
    assert memory is not None
    [turn] = running.harness.call(memory.recent_turns("aa:bb:cc:00:27:01", 1))
    assert turn.assistant_text == "Bye for now!"
    await device.drop()
