"""How `edge bench answers` scores (no model: the scoring itself)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from edge.bench.answer_scoring import (
    CLAIM,
    Result,
    command_right,
    invented_facts,
    says_the_date,
    says_the_time,
    talks_about_tools,
)
from edge.bench.answer_sets import EN_COMMANDS, FRAGMENTS, QUESTIONS, ZH_COMMANDS, Expect, Item
from edge.bench.answers import AnswersOptions, plan
from edge.memory.store import MemoryStore

NOW = dt.datetime(2026, 12, 6, 14, 5)


def test_the_sets_are_as_large_as_the_issue_asks_and_every_item_is_said_once() -> None:
    assert len(EN_COMMANDS) + len(ZH_COMMANDS) >= 60 and len(ZH_COMMANDS) >= 20
    assert len(QUESTIONS) >= 40 and len(FRAGMENTS) >= 20
    conversations = plan(AnswersOptions(conversations=12))
    said = [item.text for conversation in conversations for item in conversation]
    assert len(conversations) == 12 and sorted(said) == sorted(
        i.text for i in (*EN_COMMANDS, *ZH_COMMANDS, *QUESTIONS, *FRAGMENTS)
    )
    assert "What is my name?" in [i.text for i in conversations[-1]]  # recall comes last


def test_time_and_date_answers_are_checked_against_the_clock() -> None:
    assert says_the_time("It is 14:05.", NOW) and says_the_time("It's 2:05 pm.", NOW)
    assert says_the_time("现在是下午2点05分。", NOW) and says_the_time("It is 14:04.", NOW)
    assert not says_the_time("It is 12:00 PM.", NOW) and not says_the_time("Hello.", NOW)
    assert says_the_date("Today is Sunday.", NOW) and says_the_date("今天是12月6日。", NOW)
    assert not says_the_date("Today is Monday.", NOW)


def test_tool_talk_and_claims_are_found() -> None:
    assert talks_about_tools("You can ask questions about the current condition,")
    assert talks_about_tools("I will call the set_volume function.")
    assert not talks_about_tools("The capital of France is Paris.")
    assert talks_about_tools('The text to be spoken is "The sky is blue."')
    assert not talks_about_tools("He spoke softly.")
    listed = (
        "I can set reminders, end the conversation, get device status, set volume, set brightness"
    )
    assert talks_about_tools(listed)
    assert not talks_about_tools("Let's end the conversation here.")
    assert CLAIM.search("I've set the volume to 30.") and CLAIM.search("音量设置成功。")
    assert not CLAIM.search("The sky is blue.")


def _result(answer: str = "", calls: list | None = None) -> Result:
    return Result("d", 0, "x", "command", "en", False, answer=answer, calls=calls or [])


def test_a_command_is_right_by_what_it_left_behind() -> None:
    state = {"volume": 70, "brightness": 80, "theme": "light", "tz": 0.0, "pending": 2}
    louder = Item("Louder.", "command", expect=Expect("volume", "+"))
    assert command_right(louder, state, {**state, "volume": 80}, _result(), [])
    assert not command_right(louder, state, state, _result(), [])
    dark = Item("Dark mode.", "command", expect=Expect("theme", "light"))
    assert not command_right(dark, state, state, _result(), [])  # light already: nothing done
    assert command_right(dark, state, state, _result(calls=[["self.screen.set_theme", {}]]), [])
    timer = Item("Timer for ten minutes.", "command", expect=Expect("remind", 600))
    assert command_right(timer, state, state, _result(), [(1600.0, 1000.0)])
    assert not command_right(timer, state, state, _result(), [(1300.0, 1000.0)])
    refuse = Item("Mute.", "command", expect=Expect("refuse"))
    assert command_right(refuse, state, state, _result("This device has no volume control."), [])
    assert not command_right(refuse, state, state, _result("Done.", [["x", {}]]), [])
    listed = Item("What reminders do I have?", "command", expect=Expect("list reminders"))
    assert command_right(listed, state, state, _result("You have 2 reminders. In 4 minutes…"), [])
    assert not command_right(listed, state, state, _result("You have 3 reminders."), [])
    cancel = Item("Cancel all reminders.", "command", expect=Expect("cancel reminders"))
    gone = {**state, "pending": 0}
    assert command_right(cancel, state, gone, _result("Cancelled 2 reminders."), [])
    assert not command_right(cancel, state, state, _result("Cancelled 2 reminders."), [])
    assert command_right(cancel, gone, gone, _result("You have no reminders to cancel."), [])


def test_a_summary_sentence_with_words_the_user_never_said_is_invented(tmp_path: Path) -> None:
    db = tmp_path / "memory.db"
    MemoryStore(db).close()  # the server's schema
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, first_seen, last_seen, summary) VALUES (?, 0, 0, ?)",
            (
                "d",
                "The user's name is Sam. The user mentioned a joke about a tomato. "
                "The user said: 'User called Sam'.",
            ),
        )
        conn.execute(
            "INSERT INTO turns (device_id, session_id, started, user_text) VALUES (?, ?, 0, ?)",
            ("d", "s", "My name is Sam."),
        )
    summary, invented = invented_facts(db, "d")
    assert summary.startswith("The user's name is Sam.")
    assert invented == ["The user mentioned a joke about a tomato."]


def test_a_word_the_user_only_asked_about_is_invented_in_a_fact(tmp_path: Path) -> None:
    db = tmp_path / "memory.db"
    MemoryStore(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, first_seen, last_seen, summary) VALUES (?, 0, 0, ?)",
            ("d", "The user's name is Sam. They are from France."),
        )
        for said in ("My name is Sam.", "What is the capital of France?"):
            conn.execute(
                "INSERT INTO turns (device_id, session_id, started, user_text) VALUES (?, ?, 0, ?)",
                ("d", "s", said),
            )
    assert invented_facts(db, "d")[1] == ["They are from France."]


def test_a_status_read_is_no_action_and_may_be_said_in_its_own_words() -> None:
    from edge.bench.answer_scoring import changes_something, talks_about_tools

    assert not changes_something([["self.get_device_status", {}]])
    assert changes_something([["self.audio_speaker.set_volume", {"volume": 0}]])
    said = "The current volume of the audio speaker is 70."
    assert not talks_about_tools(said, ("self.get_device_status",))
    assert talks_about_tools("You can ask questions about the current condition of the device.")


def test_commands_with_a_pause_inside_are_scored_apart_and_cuts_are_counted() -> None:
    from edge.bench.answer_sets import PAUSED
    from edge.bench.answers import figures

    # Each has a pause (a comma) after which the words so far may be a whole command.
    assert PAUSED and all("," in i.text and i.expect is not None for i in PAUSED)
    said = Result("d", 0, "Turn the volume up, to eighty.", "paused", "en", True)
    said.heard, said.cut_short, said.right = "Turn the volume up.", True, False
    whole = Result("d", 0, "Set a timer, for five minutes.", "paused", "en", True)
    whole.heard, whole.right = "Set a timer for five minutes.", True
    command = Result("d", 0, "Louder.", "command", "en", True, right=True, first_audio=0.4)
    report = figures([said, whole, command], "", [])
    assert report["paused"] == {
        "said": 2,
        "cut_short": [["Turn the volume up, to eighty.", "Turn the volume up."]],
        "right": 1,
    }
    assert report["commands"]["en"]["of"] == 1  # not among the commands' scores
    assert report["command_first_audio"]["n"] == 1
