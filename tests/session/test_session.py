"""A `DeviceSession` driven with scripted engines (no model loads): the messages the device
receives, in order, for the turns that are hard to reach end to end: early recognition used and
discarded, a held answer used and dropped, barge-in, abort mid-sentence, a tool call then speech,
push-to-talk, exit phrases, failing engines."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from edge.assistant.fixed_texts import APOLOGY, in_language
from edge.assistant.honesty import UNCLEAR
from edge.engines.llm import Message
from edge.protocol.messages import LlmEmotion, Notify, Stt, TtsSentence, TtsStart, TtsStop
from edge.sim.mcp_tools import SimMcpServer
from tests.session.fakes import Audio, last_user_text, make_rig

BRACKET = ["Stt", "TtsStart", "LlmEmotion", "TtsSentence", "Audio", "TtsStop"]


def echo(messages: list[Message]) -> str:
    return f"You said: {last_user_text(messages)}."


async def test_a_spoken_question_gets_its_stt_then_a_whole_reply_bracket() -> None:
    rig = make_rig(echo, texts={10: "what is the capital of France"})
    rig.start()
    rig.listen()
    rig.say(10, quiet=8)
    await rig.reply_done()
    assert rig.link.kinds() == BRACKET
    assert rig.link.messages() == [
        Stt("what is the capital of France"),
        TtsStart(),
        LlmEmotion("neutral"),
        TtsSentence("You said: what is the capital of France."),
        TtsStop(),
    ]
    assert sum(isinstance(m, Audio) for m in rig.link.sent) == 2
    await rig.end()
    assert rig.vad.lent == 0  # the detector went back to the pool
    [turn] = await _stored(rig)
    assert (turn.user_text, turn.assistant_text) == (
        "what is the capital of France",
        "You said: what is the capital of France.",
    )
    await rig.stop()


async def test_tts_start_waits_for_something_to_say() -> None:
    rig = make_rig(echo, texts={10: "what is the capital of France"})
    rig.llm.hold = asyncio.Event()  # the model is held up (other devices, a busy board)
    rig.start()
    rig.listen()
    rig.say(10, quiet=8)
    await rig.until(lambda: rig.llm.prompts)
    await asyncio.sleep(0.1)
    # The device knows it was heard, and keeps listening: no "speaking" with nothing to say.
    assert rig.link.kinds() == ["Stt"]
    rig.llm.hold.set()
    await rig.reply_done()
    assert rig.link.kinds() == BRACKET
    await rig.stop()


async def test_the_early_text_is_used_when_the_pause_ends_the_utterance() -> None:
    rig = make_rig(echo, texts={10: "hello there"}, vad={"preemptive_answer": False})
    rig.start()
    rig.listen()
    rig.say(10, quiet=8)
    await rig.reply_done()
    assert rig.asr.heard == [10]  # recognised once, at the pause; not again at the end
    assert rig.link.messages()[0] == Stt("hello there")
    assert _metric(rig, "edge_early_asr_total", outcome="used") == 1
    await rig.stop()


async def test_the_early_text_is_dropped_when_the_user_speaks_on() -> None:
    rig = make_rig(
        echo, texts={5: "turn the", 12: "turn the lights off"}, vad={"preemptive_answer": False}
    )
    rig.start()
    rig.listen()
    rig.say(5, quiet=3)  # a pause: the speech so far is recognised at once
    await rig.until(lambda: rig.asr.heard == [5])
    rig.say(7, quiet=8)  # ... but the user goes on
    await rig.reply_done()
    assert rig.link.messages()[0] == Stt("turn the lights off")
    assert rig.link.messages()[3] == TtsSentence("You said: turn the lights off.")
    assert _metric(rig, "edge_early_asr_total", outcome="discarded") == 1
    assert _metric(rig, "edge_early_asr_total", outcome="used") == 1  # the second pause's
    await rig.stop()


async def test_a_held_answer_is_written_at_the_pause_and_heard_once_it_is_confirmed() -> None:
    rig = make_rig(echo, texts={10: "tell me a joke"})
    rig.start()
    rig.listen()
    rig.say(10, quiet=3)  # the pause: recognised and answered, held back
    await rig.until(lambda: rig.llm.prompts and rig.tts.said)
    assert rig.link.kinds() == []  # nothing reaches the device before the hang-over ends
    assert await _stored(rig) == []  # nor the memory
    rig.say(0, quiet=5)  # the hang-over ends: the pause was the end
    await rig.reply_done()
    assert rig.link.kinds() == BRACKET
    assert len(rig.llm.prompts) == 1  # the held answer is the answer: written once
    # Counted when the held task ends, which is just after its `tts stop` went out.
    await rig.until(lambda: _metric(rig, "edge_held_answers_total", outcome="used") == 1)
    await rig.stop()


async def test_a_held_answer_is_dropped_when_the_user_speaks_on() -> None:
    rig = make_rig(echo, texts={4: "what is", 9: "what is the weather like"})
    rig.start()
    rig.listen()
    rig.llm.hold = asyncio.Event()  # the model is still writing the held answer ...
    rig.say(4, quiet=3)
    await rig.until(lambda: len(rig.llm.prompts) == 1)
    rig.say(5, quiet=0)  # ... when the user speaks on
    await rig.until(lambda: rig.llm.cancelled == 1)
    rig.llm.hold.set()
    rig.say(0, quiet=8)
    await rig.reply_done()
    assert rig.link.messages()[0] == Stt("what is the weather like")
    assert rig.tts.said == ["You said: what is the weather like."]
    assert _metric(rig, "edge_held_answers_total", outcome="dropped") == 1
    [turn] = await _stored(rig)
    assert turn.user_text == "what is the weather like"
    await rig.stop()


async def test_barge_in_stops_the_reply_and_answers_the_new_utterance() -> None:
    story = "Once upon a time there was a fox. " * 6
    rig = make_rig(lambda m: story if "story" in last_user_text(m) else echo(m))
    rig.asr.texts = {10: "tell me a story", 6: "stop"}
    rig.start()
    rig.listen("realtime")
    rig.say(10, quiet=8)
    await rig.until(lambda: "Audio" in rig.link.kinds())
    rig.say(6, quiet=8)  # the user talks over the reply
    await rig.until(lambda: rig.link.kinds().count("TtsStop") == 2)
    first_stop = rig.link.kinds().index("TtsStop")
    assert rig.link.kinds()[first_stop + 1 : first_stop + 3] == ["Stt", "TtsStart"]
    assert Stt("stop") in rig.link.messages()
    assert len(rig.tts.said) < story.count(".")  # the story was cut short
    await rig.stop()


async def test_abort_mid_sentence_ends_the_bracket_and_keeps_what_was_said() -> None:
    story = "One. Two. Three. Four. Five. Six. Seven. Eight. Nine. Ten."
    rig = make_rig(lambda _m: story, texts={10: "count to ten"})
    rig.start()
    rig.listen()
    rig.say(10, quiet=8)
    await rig.until(lambda: rig.link.kinds().count("TtsSentence") == 2)
    rig.link.push({"type": "abort", "reason": "wake_word_detected"})
    await rig.reply_done()
    kinds = rig.link.kinds()
    assert kinds[-1] == "TtsStop" and kinds.count("TtsStart") == kinds.count("TtsStop") == 1
    await rig.end()
    [turn] = await _stored(rig)
    assert turn.assistant_text.startswith("One.") and "Ten." not in turn.assistant_text
    await rig.stop()


def _tool_call(name: str, arguments: dict[str, object]) -> str:
    """A call as the model writes it in template mode."""
    call = {"name": name, "arguments": arguments}
    return f"<tool_call>\n{json.dumps(call)}\n</tool_call>"


async def test_a_device_tool_is_called_then_the_result_is_spoken() -> None:
    def volume(messages: list[Message]) -> str:
        if any(str(m["content"]).startswith("You called the tool") for m in messages):
            return "The volume is now 30."
        return _tool_call("self.audio_speaker.set_volume", {"volume": 30})

    device = SimMcpServer()
    # Not a command the command layer is sure of: the model decides.
    rig = make_rig(volume, texts={10: "can you do something about the volume"}, mcp=device)
    rig.start()
    await rig.until(lambda: rig.session.tools.listed)
    rig.listen()
    rig.say(10, quiet=8)
    await rig.reply_done()
    assert device.calls == [("self.audio_speaker.set_volume", {"volume": 30})]
    assert device.volume == 30
    assert rig.link.kinds() == BRACKET
    assert rig.link.messages()[3] == TtsSentence("The volume is now 30.")
    # The device's tools extended the prompt prefix, evaluated as soon as they were listed.
    assert rig.llm.warmed and "set_volume" in str(rig.llm.warmed[-1])
    await rig.stop()


async def test_a_level_no_tool_gave_is_asked_again_with_the_state_read_first() -> None:
    def guess(messages: list[Message]) -> str:
        text = " ".join(str(m["content"]) for m in messages)
        if "You called the tool self.get_device_status" in text:
            return "The volume is 70 percent."  # read: the simulated device's level
        if "known only from self.get_device_status" in text:
            return _tool_call("self.get_device_status", {})
        return "The volume is set to 75%."  # a guess: never spoken

    device = SimMcpServer()
    rig = make_rig(guess, texts={10: "how loud is the speaker right now"}, mcp=device)
    rig.start()
    await rig.until(lambda: rig.session.tools.listed)
    rig.listen()
    rig.say(10, quiet=8)
    await rig.reply_done()
    assert device.calls == [("self.get_device_status", {})]
    assert rig.tts.said == ["The volume is 70 percent."]
    assert len(rig.llm.prompts) == 3  # the guess, the call, the answer from its result
    await rig.stop()


async def test_a_household_command_is_carried_out_without_the_model() -> None:
    device = SimMcpServer()
    rig = make_rig(echo, texts={10: "set the volume to thirty", 6: "what is my name"}, mcp=device)
    rig.start()
    await rig.until(lambda: rig.session.tools.listed)
    rig.listen()
    rig.say(10, quiet=8)
    await rig.reply_done()
    assert device.calls == [("self.audio_speaker.set_volume", {"volume": 30})]
    assert rig.link.messages()[0] == Stt("set the volume to thirty")
    assert rig.tts.said == ["Volume set to 30."] and rig.llm.prompts == []
    assert rig.link.kinds() == BRACKET
    # Not stored, not in the next prompt: the model would learn the fixed confirmations.
    rig.listen()
    rig.say(6, quiet=8)
    await rig.reply_done(after=len(rig.link.sent))
    [prompt] = rig.llm.prompts
    assert "Volume set" not in str(prompt) and "set the volume" not in str(prompt)
    assert [turn.user_text for turn in await _stored(rig)] == ["what is my name"]
    await rig.stop()


async def test_a_replys_prerendered_first_piece_is_heard_without_synthesis() -> None:
    """Any reply that begins with a sentence rendered already (the command layer's "OK.", here
    the date's first clause) sends those packets and synthesizes only the rest."""
    rig = make_rig(echo, texts={10: "what is the date today"})

    def rendered(sentence: str, rate: int, frame_ms: int) -> list[bytes] | None:
        return [b"\xf8\xff\xfe"] if sentence.startswith("Today is") else None

    rig.tts.rendered = rendered  # type: ignore[method-assign]
    rig.start()
    rig.listen()
    rig.say(10, quiet=8)
    await rig.reply_done()
    sentences = [m.text for m in rig.link.messages() if isinstance(m, TtsSentence)]
    # The date is said in two pieces, cut at its comma; the first was not synthesized.
    assert len(sentences) == 2 and sentences[0].startswith("Today is")
    assert sentences[0].endswith(",") and rig.tts.said == sentences[1:]
    await rig.stop()


async def test_a_complete_command_at_the_first_pause_ends_the_utterance_there() -> None:
    texts = {
        10: "what time is it",
        4: "remind me in ten minutes",
        8: "remind me in ten minutes to call Bob",
    }
    rig = make_rig(echo, texts=texts)
    rig.start()
    rig.listen()
    rig.say(10, quiet=3)  # the first pause only (the hang-over would take 6 quiet frames)
    await rig.reply_done()
    assert rig.link.messages()[0] == Stt("what time is it")
    assert _metric(rig, "edge_semantic_ends_total") == 1 and rig.llm.prompts == []
    # A command that often goes on waits a little longer (`timer_end_silence_ms`): the user
    # who speaks on meanwhile is heard to the end.
    rig.listen()
    after = len(rig.link.sent)
    rig.say(4, quiet=3)
    rig.say(4, quiet=8)
    await rig.reply_done(after=after)
    assert rig.link.messages(after)[0] == Stt("remind me in ten minutes to call Bob")
    assert _metric(rig, "edge_semantic_ends_total") == 1
    # ... and when nothing follows, that longer pause ends it, before the hang-over.
    rig.listen()
    after = len(rig.link.sent)
    rig.say(4, quiet=3)
    await rig.reply_done(after=after)
    assert rig.link.messages(after)[0] == Stt("remind me in ten minutes")
    assert _metric(rig, "edge_semantic_ends_total") == 2
    await rig.stop()


async def test_an_introduction_is_answered_at_once_and_remembered() -> None:
    rig = make_rig(echo, texts={10: "My name is Alice.", 6: "what is my name"})
    rig.start()
    rig.listen()
    rig.say(10, quiet=8)
    await rig.reply_done()
    assert " ".join(rig.tts.said) == "Nice to meet you, Alice." and rig.llm.prompts == []
    rig.listen()
    rig.say(6, quiet=8)
    await rig.reply_done(after=len(rig.link.sent))
    # Unlike other commands, kept: the model (and the summary) know the name.
    assert "Nice to meet you, Alice." in str(rig.llm.prompts[-1])
    stored = [(t.user_text, t.assistant_text) for t in await _stored(rig)]
    assert ("My name is Alice.", "Nice to meet you, Alice.") in stored
    await rig.stop()


async def test_a_tool_the_user_did_not_ask_for_is_not_called() -> None:
    asked = 0

    def eager(_messages: list[Message]) -> str:
        nonlocal asked
        asked += 1
        if asked == 1:  # what the 0.5B model did with "My name is Alice."
            return _tool_call("self.audio_speaker.set_volume", {"volume": 30})
        return "Nice to meet you, Alice."

    device = SimMcpServer()
    rig = make_rig(eager, texts={10: "my name is alice"}, mcp=device)
    rig.start()
    await rig.until(lambda: rig.session.tools.listed)
    rig.listen()
    rig.say(10, quiet=8)
    await rig.reply_done()
    assert device.calls == [] and device.volume == 70
    assert " ".join(rig.tts.said) == "Nice to meet you, Alice."
    assert len(rig.llm.prompts) == 2  # asked again, for words only
    await rig.stop()


async def test_an_answer_stating_a_time_is_not_kept_as_an_example() -> None:
    def clock(messages: list[Message]) -> str:
        return "It is 12:00 PM." if "late" in last_user_text(messages) else "Sure."

    rig = make_rig(clock, texts={10: "is it late", 6: "thanks"})
    rig.start()
    rig.listen()
    rig.say(10, quiet=8)
    await rig.reply_done()
    rig.listen()
    rig.say(6, quiet=8)
    await rig.reply_done(after=len(rig.link.sent))
    # The next prompt has the clock, never an earlier answer's time to copy.
    assert "12:00" not in str(rig.llm.prompts[-1])
    assert ("is it late", "It is 12:00 PM.") in [
        (t.user_text, t.assistant_text) for t in await _stored(rig)
    ]
    await rig.stop()


async def test_a_stock_refusal_is_said_but_not_kept_as_an_example() -> None:
    def refusing(messages: list[Message]) -> str:
        if "joke" in last_user_text(messages):
            return "I'm sorry, but I can't assist with that."
        return "Here is one."

    rig = make_rig(refusing, texts={10: "tell me a joke", 6: "what about"})
    rig.start()
    rig.listen()
    rig.say(10, quiet=8)
    await rig.reply_done()
    assert rig.tts.said == ["I'm sorry, but I can't assist with that."]
    rig.listen()
    rig.say(6, quiet=8)
    await rig.reply_done(after=len(rig.link.sent))
    # The 0.5B model gave the refusal again to the next words when it was in the history.
    assert "assist with that" not in str(rig.llm.prompts[-1])
    await rig.stop()


async def test_tool_talk_is_never_spoken_nor_kept_as_an_example() -> None:
    def talk(messages: list[Message]) -> str:
        if "timer" in last_user_text(messages):
            return "You could call the set reminder function to set a timer. It is easy."
        return "Hello again."

    rig = make_rig(talk, texts={10: "about a timer", 6: "hello"})
    rig.start()
    rig.listen()
    rig.say(10, quiet=8)
    await rig.reply_done()
    assert " ".join(rig.tts.said) == UNCLEAR  # neither the dropped sentence nor the next
    rig.listen()
    rig.say(6, quiet=8)
    await rig.reply_done(after=len(rig.link.sent))
    # The next prompt holds no trace of it: the model cannot copy the pattern.
    assert "function" not in str(rig.llm.prompts[-1]) and UNCLEAR not in str(rig.llm.prompts[-1])
    stored = await _stored(rig)
    assert [(t.user_text, t.assistant_text) for t in stored][-2] == ("about a timer", UNCLEAR)
    await rig.stop()


async def test_a_json_ping_is_answered_with_a_pong_and_a_pong_is_ignored() -> None:
    # Firmware 2.5 era: some clients keep their channel alive with JSON ping/pong.
    rig = make_rig(echo)
    rig.start()
    rig.link.push({"type": "ping"})
    await rig.until(lambda: rig.link.kinds() == ["Pong"])
    rig.link.push({"type": "pong"})
    rig.link.push({"type": "ping"})
    await rig.until(lambda: rig.link.kinds() == ["Pong", "Pong"])
    assert rig.session.faults.counts == {}
    await rig.stop()


async def test_an_idle_firmware_25_device_gets_a_reminder_as_a_notify_it_fetches() -> None:
    rig = make_rig(echo, http_base="http://10.0.0.2:8003")
    rig.services.firmware.seen("aa:bb:cc:00:00:01", "2.5.1")
    rig.start()  # connected, not listening: idle
    speaking = asyncio.create_task(rig.session.speak_proactive("Reminder: feed the cat."))
    await rig.until(lambda: rig.link.kinds() == ["Notify"])
    [notify] = rig.link.messages()
    assert notify == Notify(notify.audio_url, "Reminder: feed the cat.")
    token = notify.audio_url.removeprefix("http://10.0.0.2:8003/notify/").removesuffix(".ogg")
    assert (rig.services.announcements.fetch(token) or b"")[:4] == b"OggS"  # the device fetches
    assert await speaking
    assert rig.link.kinds() == ["Notify"]  # nothing else: no conversation opened for it
    await rig.stop()


async def test_a_notify_not_fetched_is_withdrawn_and_the_reminder_spoken(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The device was busy after all (it never acknowledges): the file must not play late.
    monkeypatch.setattr("edge.session.announcer.FETCH_WAIT_S", 0.2)
    rig = make_rig(echo, http_base="http://10.0.0.2:8003")
    rig.services.firmware.seen("aa:bb:cc:00:00:01", "2.5.0")
    rig.start()
    await asyncio.sleep(0.1)  # the session is up
    assert await rig.session.speak_proactive("Reminder: feed the cat.")
    assert rig.link.kinds() == ["Notify", *BRACKET[1:]]
    [notify] = [m for m in rig.link.messages() if isinstance(m, Notify)]
    token = notify.audio_url.rsplit("/", 1)[1].removesuffix(".ogg")
    assert rig.services.announcements.fetch(token) is None
    await rig.stop()


async def test_older_firmware_or_a_listening_device_hears_a_reminder_spoken() -> None:
    rig = make_rig(echo, http_base="http://10.0.0.2:8003")
    rig.services.firmware.seen("aa:bb:cc:00:00:01", "2.4.2")
    rig.start()
    await asyncio.sleep(0.1)  # the session is up
    assert await rig.session.speak_proactive("Reminder: feed the cat.")
    assert "Notify" not in rig.link.kinds() and rig.link.kinds()[-1] == "TtsStop"
    await rig.stop()


async def test_push_to_talk_is_answered_at_release_and_a_click_is_not() -> None:
    rig = make_rig(echo, texts={8: "good morning"})
    rig.start()
    rig.listen("manual")
    rig.say(2)  # 0.12 s: a click
    rig.link.push({"type": "listen", "state": "stop"})
    await rig.until(lambda: rig.session.turn.state.value == "idle")
    assert rig.link.kinds() == [] and rig.asr.heard == []
    rig.listen("manual")
    rig.say(8)
    rig.link.push({"type": "listen", "state": "stop"})
    await rig.reply_done()
    assert rig.link.messages()[0] == Stt("good morning")
    # Manual mode: idle until the next press.
    await rig.until(lambda: rig.session.turn.state.value == "idle")
    await rig.stop()


async def test_an_exit_phrase_says_the_farewell_and_closes_without_the_model() -> None:
    rig = make_rig(echo, texts={6: "okay, goodbye"}, session={"farewell": "Bye for now!"})
    rig.start()
    rig.listen()
    rig.say(6, quiet=8)
    await rig.reply_done()
    assert rig.link.messages()[3] == TtsSentence("Bye for now!")
    await asyncio.wait_for(rig.task, 5)  # the session ended: it closed the connection
    assert rig.link.closed and rig.llm.prompts == []
    await rig.stop()


async def test_a_failing_model_gets_the_apology_in_a_whole_bracket() -> None:
    def broken(_messages: list[Message]) -> str:
        raise RuntimeError("the model fell over")

    rig = make_rig(broken, texts={10: "hello", 6: "讲个故事"})
    rig.start()
    rig.listen()
    rig.say(10, quiet=8)
    await rig.reply_done()
    assert rig.link.kinds() == BRACKET
    assert rig.link.messages()[3] == TtsSentence(APOLOGY)
    # In the language the user spoke (once the failed turn is stored and over: the device's
    # `listen start` before then only notes the mode).
    await rig.until(lambda: not rig.session.turn.busy)
    rig.listen()
    after = len(rig.link.sent)
    rig.say(6, quiet=8)
    await rig.reply_done(after=after)
    assert rig.link.messages(after)[3] == TtsSentence(in_language(APOLOGY, "讲个故事"))
    assert in_language(APOLOGY, "讲个故事") == "抱歉，我刚才没能想出回答。"
    await rig.stop()


async def test_nothing_recognised_is_not_answered_and_the_device_keeps_listening() -> None:
    rig = make_rig(echo, texts={})  # every clip is heard as no words
    rig.start()
    rig.listen()
    rig.say(10, quiet=8)
    await rig.until(lambda: len(rig.asr.heard) >= 1)
    await asyncio.sleep(0.1)
    assert rig.link.kinds() == [] and rig.llm.prompts == []
    assert rig.session.turn.state.value == "listening"
    await rig.stop()


async def test_the_next_prompt_is_read_ahead_when_speech_starts_and_after_an_answer() -> None:
    rig = make_rig(echo, texts={10: "my name is Ann and I like tea"})
    rig.start()
    rig.listen()
    rig.say(10, quiet=8)
    await rig.reply_done()
    await rig.until(lambda: len(rig.llm.read_ahead) >= 2)
    after_answer = rig.llm.read_ahead[-1]
    # Read ahead after the answer: the history already holds the turn, as it will be spoken.
    assert {"role": "user", "content": "my name is Ann and I like tea"} in after_answer
    assert {
        "role": "assistant",
        "content": "You said: my name is Ann and I like tea.",
    } in after_answer
    await rig.stop()


async def test_a_new_connection_of_the_same_device_goes_on_with_its_memory() -> None:
    rig = make_rig(echo, texts={10: "my name is Ann and I like tea"})
    rig.start()
    rig.listen()
    rig.say(10, quiet=8)
    await rig.reply_done()
    rig.link.hang_up()
    await asyncio.wait_for(rig.task, 5)

    again = make_rig(echo, texts={10: "what is my name"})
    again.services = rig.services  # the same memory
    from edge.session.session import DeviceSession

    again.session = DeviceSession(
        again.link, _hello(), rig.services, rig.config, device_id=rig.link.device_id
    )
    again.start()
    again.listen()
    again.say(10, quiet=8)
    await again.reply_done()
    prompt = rig.llm.prompts[-1] if again.llm.prompts == [] else again.llm.prompts[-1]
    assert {"role": "user", "content": "my name is Ann and I like tea"} in prompt
    await again.stop()


async def _stored(rig: Any) -> list[Any]:
    memory = rig.services.memory
    return await memory.recent_turns(rig.link.device_id, 10) if memory else []


def _metric(rig: Any, name: str, **labels: str) -> float:
    from tests.helpers import metric_value

    return metric_value(rig.services.metrics.exposition().decode(), name, **labels)


def _hello() -> Any:
    from edge.protocol.messages import AudioParams, Hello

    return Hello(1, "websocket", AudioParams(), {})
