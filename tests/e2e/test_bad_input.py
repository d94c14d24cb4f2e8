"""Bad input: each fault gets a clear log line with the device id and the answer the protocol
allows, and a second device talking at the same time is served as if nothing happened."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest

from edge.sim.device import SimDevice
from tests.e2e.scenario import assert_reply_bracket, auto_turn, texts, wait_log
from tests.helpers import Running, silence

pytestmark = pytest.mark.models
VANDAL = "de:ad:be:ef:00:01"


def lines_for(log_lines: list[dict[str, Any]], device: str) -> str:
    return "\n".join(line["message"] for line in log_lines if line["device"] == device)


async def vandalise(url: str, speech: np.ndarray) -> SimDevice:
    """A v3 device that sends every kind of bad input, then drops TCP in the middle of speech."""
    dev = SimDevice(url, device_id=VANDAL, protocol_version=3)
    await dev.open()
    await dev.send_raw(b"\x00\x00\x00\x02ab")  # audio before hello
    await dev.send_raw('{"type":"listen","state":"start"}')  # message before hello
    # A hello with wrong field types is answered with our defaults, not left to time out.
    hello = await dev.handshake(
        {"type": "hello", "version": "3", "audio_params": {"sample_rate": "16000"}}
    )
    assert hello["transport"] == "websocket"
    await dev.send_json(dev.hello())  # a second hello
    for text in ["not json", "{}", '{"type":42}', '{"type":"bogus"}', '{"type":"listen"']:
        await dev.send_raw(text)
    await dev.send_raw(json.dumps({"type": "listen", "pad": "x" * 70_000}))
    await dev.send_json({"type": "listen", "state": "start", "mode": "shouting"})
    await dev.listen_start("auto")
    await dev.send_raw(dev.encode(speech[:960])[0])  # a v1 frame on a v3 connection
    await dev.send_raw(b"\x00\x00\x00\x09" + b"abc")  # v3 header lying about its length
    await dev.send_raw(b"\x00\x00" + (9000).to_bytes(2, "big") + bytes(9000))  # oversized
    await dev.send_packet(b"\xff\xff\xff\xff\xff")  # not Opus
    # Then real speech, cut off by a TCP drop halfway through.
    half = speech[: len(speech) // 2]
    await dev.stream(half)
    return dev


async def test_faults_are_logged_and_do_not_disturb_another_device(
    server: Running, question: np.ndarray, log_lines: list[dict[str, Any]]
) -> None:
    talker = SimDevice(server.ws_url, device_id="aa:00:00:00:00:99")
    await talker.connect()
    turn = asyncio.create_task(auto_turn(talker, question))
    vandal = await vandalise(server.ws_url, question)
    await vandal.drop()
    mark = await turn
    assert_reply_bracket(talker, mark)
    assert vandal.audio_events() == []  # nothing was ever answered to the vandal

    log = await wait_log(log_lines, VANDAL, "disconnected")
    for expected in [
        "binary before hello",
        "message before hello",
        "bad hello: hello.version must be a number",
        "repeated hello",
        "malformed JSON",
        "message without a string type",
        "unknown message type 'bogus'",
        "exceeds 65536",
        "unknown mode 'shouting'",
        "bad binary frame: v3 header says",
        "oversized audio frame: 9004 bytes",
        "undecodable Opus packet",
        "disconnected",
    ]:
        assert expected in log, f"no log line for {expected!r}:\n{log}"
    assert "Traceback" not in log and "crashed" not in log
    assert VANDAL not in server.server.devices.sessions
    assert lines_for(log_lines, "aa:00:00:00:00:99").count("bad") == 0


async def test_frame_over_the_size_limit_closes_with_1009(
    server: Running, log_lines: list[dict[str, Any]]
) -> None:
    dev = SimDevice(server.ws_url, device_id="de:ad:be:ef:00:02")
    await dev.connect()
    await dev.send_raw(bytes(2 << 20))
    assert await dev.wait_closed(5)
    assert dev._ws is not None and dev._ws.close_code == 1009
    await dev.drop()
    assert "closed with 1009" in await wait_log(log_lines, "de:ad:be:ef:00:02", "closed with 1009")


async def test_silence_only_gives_no_reply(server: Running) -> None:
    dev = SimDevice(server.ws_url)
    await dev.connect()
    await dev.listen_start("auto")
    await dev.stream(silence(2.5))
    # The device stays listening: nothing but its MCP handshake.
    assert [m for m in dev.json_messages(1) if m.get("type") != "mcp"] == []
    await dev.drop()


async def test_failing_models_still_close_the_bracket(
    make_server, question: np.ndarray, log_lines: list[dict[str, Any]]
) -> None:  # type: ignore[no-untyped-def]
    """The real LLM given no time: it fails, the device hears an apology and leaves speaking."""
    srv = make_server(llm={"timeout_s": 0.0001})
    dev = SimDevice(srv.ws_url, device_id="de:ad:be:ef:00:03")
    await dev.connect()
    mark = await auto_turn(dev, question)
    assert_reply_bracket(dev, mark)
    sentences = texts(dev, "sentence", mark)
    assert sentences and "sorry" in sentences[0].lower()
    assert "language model failed" in lines_for(log_lines, "de:ad:be:ef:00:03")
    await dev.drop()


async def test_failing_asr_leaves_the_device_listening(
    make_server, question: np.ndarray, log_lines: list[dict[str, Any]]
) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(asr={"timeout_s": 0.0001})
    dev = SimDevice(srv.ws_url, device_id="de:ad:be:ef:00:04")
    await dev.connect()
    await dev.listen_start("auto")
    await dev.stream(question)
    await dev.stream(silence(1.5))
    assert not any(m.get("type") == "tts" for m in dev.json_messages())
    assert "speech recognition failed" in lines_for(log_lines, "de:ad:be:ef:00:04")
    await dev.drop()
