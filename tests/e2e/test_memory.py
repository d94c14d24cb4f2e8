"""Memory across restarts of real `edge serve` processes, and a `kill -9` in the middle of a
turn."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from edge.assistant.prompt import PromptBuilder
from edge.assistant.summarizer import _grounded
from edge.sim.device import SimDevice
from edge.tools.registry import ToolSet
from tests.e2e.scenario import auto_turn, texts
from tests.helpers import Running, ServeProcess, words

pytestmark = pytest.mark.models
DEVICE = "aa:bb:cc:00:00:42"


async def _converse(url: str, questions: list[np.ndarray]) -> list[str]:
    device = SimDevice(url, device_id=DEVICE)
    await device.connect()
    answers = []
    try:
        for pcm in questions:
            mark = await auto_turn(device, pcm)
            answers.append(" ".join(texts(device, "sentence", mark)))
    finally:
        await device.drop()
    return answers


async def _start_turn_and_wait_for_reply(url: str, pcm: np.ndarray) -> SimDevice:
    device = SimDevice(url, device_id=DEVICE)
    await device.connect()
    await device.listen_start("auto")
    await device.say(pcm, silence_s=8.0)
    await device.wait_json(lambda m: m.get("type") == "tts" and m.get("state") == "start", 60)
    return device


def _turns(db_path: Path) -> list[tuple[str, str, int]]:
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return db.execute(
            "SELECT user_text, assistant_text, complete FROM turns ORDER BY id"
        ).fetchall()
    finally:
        db.close()


async def test_memory_survives_a_restart_and_a_kill(tmp_path: Path, speak) -> None:  # type: ignore[no-untyped-def]
    # Tools off: this is about memory, and the 0.5B model sometimes answers "what is my name?"
    # with a call to the time tool.
    env = {"EDGE_STATE_DIR": str(tmp_path), "EDGE_TOOLS_ENABLED": "false"}
    log = tmp_path / "serve.log"
    serve = ServeProcess(log, env=env)
    url, _ = await asyncio.to_thread(serve.wait_ready)
    await _converse(url, [speak("Hello! My name is Alice.")])
    assert await asyncio.to_thread(serve.stop) == 0

    serve = ServeProcess(log, env=env)
    url, _ = await asyncio.to_thread(serve.wait_ready)
    [answer] = await _converse(url, [speak("What is my name?")])
    assert "alice" in answer.lower(), answer
    assert "memory restored: 1 turns" in log.read_text()

    # A third turn is killed while its answer is being spoken.
    device = await _start_turn_and_wait_for_reply(url, speak("Tell me a story about a cat."))
    serve.kill()
    await device.drop()
    turns = _turns(tmp_path / "memory.db")
    # The stored words are what Whisper heard: piper's speech varies from one synthesis to the
    # next, and tiny.en sometimes hears its "Hello!" as "Oh" or "Oh, well"; the rest is stable.
    assert [words(t[0])[-4:] for t in turns[:2]] == [
        ["my", "name", "is", "alice"],
        ["what", "is", "my", "name"],
    ]
    assert all(t[2] == 1 and t[1] for t in turns[:2])  # both earlier turns complete
    assert len(turns) <= 3  # at most the turn in flight is incomplete or missing


async def test_a_summary_is_written_after_the_session(make_server, speak, greedy) -> None:  # type: ignore[no-untyped-def]
    running: Running = make_server(memory={"summaries": True})
    memory = running.server.services.memory
    summarizer = running.server.services.summarizer
    assert memory is not None and summarizer is not None
    device_id = "aa:bb:cc:00:00:43"
    # An earlier turn (seeded: what the small model makes of any one sentence varies), then a
    # spoken one; the session's end asks for the summary.
    seeded = running.harness.call(
        memory.begin_turn(device_id, "earlier", "My name is Bob and I love green tea.")
    )
    running.harness.call(
        memory.finish_turn(seeded, "Nice to meet you, Bob! Green tea is a great choice.", [])
    )
    device = SimDevice(running.ws_url, device_id=device_id)
    await device.connect()
    await auto_turn(device, speak("Thank you."))
    await device.drop()
    for _ in range(300):
        if summarizer.written:
            break
        await asyncio.sleep(0.2)
    assert summarizer.written == 1  # the real model ran once, in the background, after the end
    summary = running.harness.call(memory.summary(device_id))
    # Whatever the 0.5B model wrote, only sentences grounded in the conversation are kept.
    conversation = "My name is Bob and I love green tea. Nice to meet you, Bob! Thank you."
    assert not summary or _grounded(summary, conversation), summary

    # A stored summary goes into the next session's prompt, after the shared prefix.
    running.harness.call(memory.save_summary(device_id, "The user is called Bob.", seeded))
    device = SimDevice(running.ws_url, device_id=device_id)
    await device.connect()
    await asyncio.sleep(0.5)
    session = running.server.devices.sessions[device_id]
    conversation = session.conversation
    assert conversation.summary == "The user is called Bob."
    builder = PromptBuilder(running.server.config, ToolSet([]))
    prompt = builder.messages("What is my name?", conversation.history(), conversation.summary)
    assert prompt[0] == {"role": "system", "content": running.server.config.llm.system_prompt}
    assert prompt[1]["role"] == "system" and "The user is called Bob." in prompt[1]["content"]
    assert prompt[-1] == {"role": "user", "content": "What is my name?"}
    await device.drop()
