"""Conformance scenarios of the xiaozhi protocol notes (§12), real server, real models, driven by
the simulated device. Numbers in test names are the scenario numbers."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedOK, InvalidStatus

from edge.errors import SimError
from edge.sim.device import SimDevice
from tests.e2e.scenario import (
    assert_reply_bracket,
    auto_turn,
    first,
    kinds,
    max_device_queue,
    texts,
    turn_events,
    wait_log,
)
from tests.helpers import Running, silence, word_error_rate

pytestmark = pytest.mark.models
QUESTION = "What is the capital of France?"
OTA_BODY = {
    "version": 2,
    "language": "zh-CN",
    "flash_size": 16777216,
    "minimum_free_heap_size": "8318916",
    "mac_address": "a0:85:e3:f4:49:34",
    "uuid": "3c5a1f3e-1111-4000-8000-000000000001",
    "chip_model_name": "esp32s3",
    "chip_info": {"model": 9, "cores": 2, "revision": 2, "features": 18},
    "application": {"name": "xiaozhi", "version": "1.6.6", "compile_time": "x", "idf_version": "5"},
    "partition_table": [{"label": "nvs", "type": 1, "subtype": 2, "address": 36864, "size": 1}],
    "ota": {"label": "ota_0"},
    "display": {},
    "board": {"type": "bread-compact-wifi", "ssid": "lan", "rssi": -50, "ip": "10.0.0.9"},
}
OTA_HEADERS = {
    "Device-Id": "a0:85:e3:f4:49:34",
    "Client-Id": "3c5a1f3e-1111-4000-8000-000000000001",
    "User-Agent": "bread-compact-wifi/1.6.6",
    "Accept-Language": "zh-CN",
    "Activation-Version": "1",
}


async def _post(url: str, **kwargs: object) -> tuple[int, dict[str, object], dict[str, str]]:
    async with aiohttp.ClientSession() as http, http.request(url=url, **kwargs) as resp:  # type: ignore[arg-type]
        body = await resp.read()
        return resp.status, (json.loads(body) if body else {}), dict(resp.headers)


# --- 1, 2: the config endpoint -----------------------------------------------------------------


async def test_01_ota_happy_path(server: Running) -> None:
    before = time.time() * 1000
    status, answer, headers = await _post(
        f"{server.http_url}/xiaozhi/ota/", method="POST", json=OTA_BODY, headers=OTA_HEADERS
    )
    assert status == 200
    ws = answer["websocket"]
    assert isinstance(ws, dict) and ws["url"] == server.ws_url and ws["token"] == ""
    assert type(ws["version"]) is int and ws["version"] == 1
    assert "mqtt" not in answer and "activation" not in answer
    assert answer["firmware"] == {"version": "1.6.6", "url": ""}
    st = answer["server_time"]
    assert isinstance(st, dict) and before - 5000 < st["timestamp"] < time.time() * 1000 + 5000
    assert isinstance(st["timezone_offset"], int)
    assert headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("path", ["/xiaozhi/ota", "/xiaozhi/ota/"])
@pytest.mark.parametrize(
    ("method", "body"),
    [("GET", None), ("POST", b""), ("POST", b"{not json"), ("POST", b"[1]"), ("OPTIONS", None)],
)
async def test_02_ota_path_variants(
    server: Running, path: str, method: str, body: bytes | None
) -> None:
    status, answer, headers = await _post(f"{server.http_url}{path}", method=method, data=body)
    assert status < 500
    assert headers.get("Access-Control-Allow-Origin") == "*"
    if method != "OPTIONS":
        assert status == 200 and isinstance(answer["websocket"], dict)
        assert answer["websocket"]["url"].startswith("ws://")  # type: ignore[index]


async def test_health(server: Running) -> None:
    status, answer, _ = await _post(f"{server.http_url}/health", method="GET")
    assert status == 200 and answer["models_loaded"] is True


# --- 3–6: connecting -----------------------------------------------------------------------------


async def test_03_32_hello_v1(server: Running) -> None:
    dev = SimDevice(server.ws_url)
    started = time.monotonic()
    hello = await dev.connect(timeout=10)
    assert time.monotonic() - started < 10  # the firmware's hard limit
    assert hello["transport"] == "websocket" and isinstance(hello["session_id"], str)
    params = hello["audio_params"]
    assert params["sample_rate"] == 24000 and params["frame_duration"] == 60
    await dev.drop()


async def test_04_old_firmware_hello_gets_no_mcp(server: Running, question: np.ndarray) -> None:
    dev = SimDevice(server.ws_url, features=None)
    hello = await dev.connect(hello={"type": "hello", "version": 1})
    assert hello["transport"] == "websocket"
    mark = await auto_turn(dev, question)
    assert_reply_bracket(dev, mark)
    assert not any(m.get("type") == "mcp" for m in dev.json_messages())
    await dev.drop()


async def test_05_empty_token_accepted_when_auth_is_off(server: Running) -> None:
    dev = SimDevice(server.ws_url, token="")
    assert "Authorization" not in dev.headers()
    await dev.connect()
    await dev.drop()


async def test_05_auth_on_refuses_before_upgrade(make_server, log_lines) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(auth={"enabled": True, "tokens": ["s3cret"]})
    for token in ("", "wrong"):
        with pytest.raises(InvalidStatus) as err:
            await SimDevice(srv.ws_url, device_id="aa:00:00:00:00:05", token=token).connect()
        assert err.value.response.status_code == 401
        assert b"not authorised" in err.value.response.body
    assert any(
        line["device"] == "aa:00:00:00:00:05" and "refused" in line["message"] for line in log_lines
    )
    assert not any("s3cret" in line["message"] or "wrong" in line["message"] for line in log_lines)
    dev = SimDevice(srv.ws_url, token="s3cret")
    await dev.connect()
    await dev.drop()


async def test_refused_at_capacity_gets_a_message_not_a_hang(make_server) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(server={"max_sessions": 1})
    first_dev = SimDevice(srv.ws_url, device_id="aa:00:00:00:00:01")
    await first_dev.connect()
    with pytest.raises(InvalidStatus) as err:
        await SimDevice(srv.ws_url, device_id="aa:00:00:00:00:02").connect()
    assert err.value.response.status_code == 503 and b"limit" in err.value.response.body
    await first_dev.drop()


async def test_06_binary_before_hello(server: Running, log_lines) -> None:  # type: ignore[no-untyped-def]
    dev = SimDevice(server.ws_url, device_id="aa:00:00:00:00:06")
    await dev.open()
    for packet in dev.encode(silence(0.3)):
        await dev.send_packet(packet)
    hello = await dev.handshake()
    assert hello["transport"] == "websocket"
    await dev.drop()
    assert any(
        "binary before hello" in line["message"] and line["device"] == "aa:00:00:00:00:06"
        for line in log_lines
    )


async def test_no_hello_is_closed_after_the_timeout(make_server) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(session={"hello_timeout_s": 0.5})
    async with connect(srv.ws_url) as ws:
        with pytest.raises(ConnectionClosedOK):
            async with asyncio.timeout(5):
                await ws.recv()
        assert ws.close_code == 1000


# --- 7: malformed input ------------------------------------------------------------------------


async def test_07_malformed_input_is_ignored_never_echoed(
    server: Running, question: np.ndarray, log_lines
) -> None:  # type: ignore[no-untyped-def]
    dev = SimDevice(server.ws_url, device_id="aa:00:00:00:00:07")
    await dev.connect()
    mark = len(dev.events)
    bad = ["not json", "{}", '{"type":42}', '{"type":"bogus"}', '{"type":"listen","state":"st']
    for text in [*bad, json.dumps({"type": "listen", "pad": "x" * 70_000})]:
        await dev.send_raw(text)
    await asyncio.sleep(0.3)
    assert turn_events(dev, mark) == []  # nothing echoed or answered
    turn = await auto_turn(dev, question)
    assert_reply_bracket(dev, turn)
    await dev.drop()
    faults = [line for line in log_lines if line["device"] == "aa:00:00:00:00:07"]
    assert any("malformed JSON" in line["message"] for line in faults)
    assert any("unknown message type 'bogus'" in line["message"] for line in faults)
    assert any("exceeds" in line["message"] for line in faults)


# --- 8–12: turns -------------------------------------------------------------------------------


async def test_08_09_10_auto_turn_order_pacing_and_gap(
    make_server,
    speak,  # type: ignore[no-untyped-def]
) -> None:
    # A few seconds of speech are enough to judge; no tools, so the story is never a tool call.
    server = make_server(llm={"max_tokens": 60}, tools={"enabled": False})
    dev = SimDevice(server.ws_url)
    await dev.connect()
    mark = await auto_turn(dev, speak("Tell me a short story about a cat."))
    await dev.wait_played()
    assert_reply_bracket(dev, mark)
    seq = kinds(dev, mark)
    assert seq[:3] == ["stt", "tts:start", "llm"], seq
    assert seq[3] == "tts:sentence_start", seq

    audio = dev.audio_events(mark)
    lead = server.server.config.audio.pacing_lead_frames
    frame_s = 0.06
    # 9: the device's queue never holds more than lead + 1 frames ...
    assert max_device_queue(audio, frame_s) <= lead + 1
    # ... frames flow at one per 60 ms (over the longest stretch without a stall) ...
    runs: list[list[float]] = [[audio[0].t]]
    for event in audio[1:]:
        if event.t - runs[-1][-1] > 3 * frame_s:
            runs.append([])
        runs[-1].append(event.t)
    longest = max(runs, key=len)[lead:]
    assert len(longest) >= 20, "reply too short to judge the pacing"
    rate = (longest[-1] - longest[0]) / (len(longest) - 1)
    assert abs(rate - frame_s) / frame_s <= 0.05, rate
    # ... and tts stop waits until the last frame has played.
    stop = first([e.message or {} for e in dev.events[mark:]], type="tts", state="stop")
    stop_t = next(e.t for e in dev.events[mark:] if e.message is stop)
    assert stop_t - audio[-1].t >= (lead + 1) * frame_s
    # 10: a gap between tts start and the first frame.
    start_t = next(
        e.t for e in dev.events[mark:] if e.message and e.message.get("state") == "start"
    )
    gap = server.server.config.audio.gap_after_tts_start_ms / 1000
    # Measured where the device receives them: a busy machine may deliver `tts start` a few
    # ms late (what matters, audio never beating the device's state change, is checked by
    # the bracket's dropped_not_speaking == 0).
    assert audio[0].t - start_t >= gap - 0.02
    await dev.drop()


async def test_11_multi_turn_resets_vad(server: Running, speak) -> None:  # type: ignore[no-untyped-def]
    dev = SimDevice(server.ws_url)
    await dev.connect()
    # Steady speech is the same in every run; tiny.en hears its "Hello." in this third turn
    # as "below.", so the short one is a greeting it hears right.
    questions = [
        "What is the capital of France?",
        "How many legs does a spider have?",
        "Good morning.",
    ]
    for question in questions:
        mark = await auto_turn(dev, speak(question))
        assert_reply_bracket(dev, mark)
        heard = texts(dev, "stt", mark)
        assert len(heard) == 1 and word_error_rate(question, heard[0]) <= 0.2, heard
        await dev.wait_played()
    await dev.drop()


async def test_12_manual_turn(server: Running, question: np.ndarray) -> None:
    dev = SimDevice(server.ws_url)
    await dev.connect()
    mark = len(dev.events)
    await dev.listen_start("manual")
    await dev.stream(question)
    await dev.stream(silence(1.5))  # silence while the button is held: no VAD decision
    assert turn_events(dev, mark) == []  # nothing before listen stop
    await dev.listen_stop()
    await dev.wait_tts_stop(60, after=mark)
    assert_reply_bracket(dev, mark)
    assert word_error_rate(QUESTION, texts(dev, "stt", mark)[0]) <= 0.2
    assert dev.state == "idle"  # manual: tts stop leaves the device idle
    await dev.drop()


async def test_fallback_ends_a_turn_whose_audio_stopped(
    server: Running, question: np.ndarray
) -> None:
    dev = SimDevice(server.ws_url)
    await dev.connect()
    await dev.listen_start("auto")
    mark = len(dev.events)
    await dev.stream(question[: int(len(question) * 0.9)])  # speech, then the mic goes quiet
    await dev.wait_tts_stop(30, after=mark)
    assert_reply_bracket(dev, mark)
    await dev.drop()


# --- 13–17: interruptions and wake words -------------------------------------------------------


async def test_13_realtime_barge_in(server: Running, speak) -> None:  # type: ignore[no-untyped-def]
    dev = SimDevice(server.ws_url)
    await dev.connect()
    await dev.listen_start("realtime")
    mark = len(dev.events)
    await dev.say(speak("Tell me a long story about a dragon and a knight."), silence_s=8)
    await dev.wait_json(lambda m: m.get("state") == "sentence_start", 30, after=mark)
    await dev.wait_audio(10, 30, after=mark)
    # Speak over the reply with the microphone still open; no new listen start.
    barge = len(dev.events)
    await dev.say(speak("Stop. What is two plus two?"), silence_s=8)
    await dev.wait_tts_stop(30, after=barge)
    second = await dev.wait_json(lambda m: m.get("type") == "stt", 30, after=barge)
    assert "plus" in second["text"].lower(), second
    await dev.wait_json(lambda m: m.get("state") == "start", 30, after=barge)
    await dev.wait_tts_stop(60, after=len(dev.events) - 1)
    seq = kinds(dev, mark)
    assert seq.count("tts:start") == seq.count("tts:stop") == 2, seq
    await dev.drop()


async def _abort_after_frames(dev: SimDevice, mark: int, frames: int, reason: str | None) -> int:
    await dev.wait_audio(frames, 30, after=mark)
    message = {"type": "abort"} | ({"reason": reason} if reason else {})
    await dev.send_json(message)
    aborted_at = len(dev.audio_events(mark))
    await dev.wait_tts_stop(5, after=mark)
    return aborted_at


@pytest.mark.parametrize("reason", [None, "wake_word_detected"], ids=["14-button", "15-wake"])
async def test_14_15_abort(server: Running, speak, reason: str | None) -> None:  # type: ignore[no-untyped-def]
    """Abort mid-reply (by button, or by wake word followed by listen start): at most two more
    frames, then tts stop, nothing after it, and the next turn works."""
    dev = SimDevice(server.ws_url)
    await dev.connect()
    await dev.listen_start("auto")
    mark = len(dev.events)
    await dev.say(speak("Tell me a long story about a dragon."), silence_s=8)
    aborted_at = await _abort_after_frames(dev, mark, 10, reason)
    stop_index = next(
        i
        for i, e in enumerate(dev.events)
        if i >= mark and e.message and e.message.get("state") == "stop"
    )
    assert len(dev.audio_events(mark)) - aborted_at <= 2
    assert not dev.audio_events(stop_index)  # nothing after tts stop
    turn = await auto_turn(dev, speak("What is the capital of France?"))
    assert_reply_bracket(dev, turn)
    await dev.drop()


async def _wake(dev: SimDevice, wake_text: str) -> int:
    mark = len(dev.events)
    for packet in dev.encode(silence(2.0)):  # ~33 frames of wake-word audio, sent at once
        await dev.send_packet(packet)
    await dev.send_json({"type": "listen", "state": "detect", "text": wake_text})
    await dev.listen_start("auto")
    return mark


async def test_16_wake_word_is_not_a_question(server: Running, question: np.ndarray) -> None:
    dev = SimDevice(server.ws_url)
    await dev.connect()
    mark = await _wake(dev, "你好小智")
    await asyncio.sleep(0.5)
    # Silence by default: no greeting, no answer (the MCP handshake may still be running).
    assert [m for m in dev.json_messages(mark) if m.get("type") != "mcp"] == []
    turn = await auto_turn(dev, question, listen=False)
    assert_reply_bracket(dev, turn)
    assert len(texts(dev, "stt", mark)) == 1
    await dev.drop()


async def test_16_wake_word_greeting(make_server, question: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(session={"greeting": "Hi, I am listening."})
    tts = srv.harness.engines.tts
    synthesized = tts.syntheses  # the greeting was rendered when the server started
    dev = SimDevice(srv.ws_url)
    await dev.connect()
    mark = await _wake(dev, "你好小智")
    await dev.wait_tts_stop(20, after=mark)
    assert_reply_bracket(dev, mark, with_stt=False)
    assert texts(dev, "sentence", mark) == ["Hi, I am listening."]
    assert tts.syntheses == synthesized  # heard from the pre-rendered audio
    await dev.wait_played()
    turn = await auto_turn(dev, question)
    assert_reply_bracket(dev, turn)
    await dev.drop()


async def test_17_detect_with_free_text_is_a_query(server: Running) -> None:
    dev = SimDevice(server.ws_url)
    await dev.connect()
    mark = await _wake(dev, "现在几点")
    await dev.wait_tts_stop(30, after=mark)
    assert texts(dev, "stt", mark) == ["现在几点"]
    assert_reply_bracket(dev, mark)
    await dev.drop()


# --- 18–21: framing and audio variety ----------------------------------------------------------


@pytest.mark.parametrize("version", [2, 3])
async def test_18_19_binary_protocol_versions(
    make_server, question: np.ndarray, version: int
) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(server={"protocol_version": version})
    _, answer, _ = await _post(f"{srv.http_url}/xiaozhi/ota/", method="POST", json=OTA_BODY)
    assert answer["websocket"]["version"] == version  # type: ignore[index]
    dev = SimDevice(srv.ws_url, protocol_version=version)
    await dev.connect()
    mark = await auto_turn(dev, question)
    assert_reply_bracket(dev, mark)  # the sim checks every downlink header's length exactly
    assert word_error_rate(QUESTION, texts(dev, "stt", mark)[0]) <= 0.2
    await dev.drop()


async def test_20_twenty_ms_frames(server: Running, question: np.ndarray) -> None:
    dev = SimDevice(server.ws_url, frame_ms=20)
    await dev.connect()
    mark = await auto_turn(dev, question)
    assert_reply_bracket(dev, mark)
    assert word_error_rate(QUESTION, texts(dev, "stt", mark)[0]) <= 0.2
    await dev.drop()


async def test_21_dtx_and_empty_frames(server: Running, question: np.ndarray) -> None:
    dev = SimDevice(server.ws_url)
    await dev.connect()
    await dev.listen_start("auto")
    for packet in (b"\xf8", b"\xf8\xff", b"\xf8\xff\xfe", b""):
        await dev.send_packet(packet)
    await dev.send_raw(b"")
    mark = await auto_turn(dev, question, listen=False)
    assert_reply_bracket(dev, mark)
    await dev.drop()


# --- 25–27: disconnects and idling -------------------------------------------------------------


async def test_25_abrupt_disconnect_mid_reply(server: Running, speak, log_lines) -> None:  # type: ignore[no-untyped-def]
    dev = SimDevice(server.ws_url, device_id="aa:00:00:00:00:25")
    await dev.connect()
    await dev.listen_start("auto")
    mark = len(dev.events)
    await dev.say(speak("Tell me a long story about a dragon."), silence_s=8)
    await dev.wait_audio(5, 30, after=mark)
    await dev.drop()
    assert "disconnected" in await wait_log(log_lines, "aa:00:00:00:00:25", "disconnected")
    assert "aa:00:00:00:00:25" not in server.server.devices.sessions
    mine = [line for line in log_lines if line["device"] == "aa:00:00:00:00:25"]
    assert not any(line["level"] in ("ERROR", "CRITICAL") for line in mine), mine


async def test_26_reconnect_same_device(server: Running, question: np.ndarray) -> None:
    old = SimDevice(server.ws_url, device_id="aa:00:00:00:00:26")
    await old.connect()
    new = SimDevice(server.ws_url, device_id="aa:00:00:00:00:26")
    await new.connect()
    mark = await auto_turn(new, question)
    assert_reply_bracket(new, mark)
    assert await old.wait_closed(5)
    await old.drop()
    await new.drop()


async def test_27_28_idle_farewell_and_close_but_never_mid_answer(
    make_server,
    speak,  # type: ignore[no-untyped-def]
) -> None:
    srv = make_server(
        session={"idle_timeout_s": 2.0, "farewell": "Goodbye!"},
        llm={"max_tokens": 60},
        tools={"enabled": False},  # the story must be a story, never a short tool answer
    )
    dev = SimDevice(srv.ws_url)
    await dev.connect()
    # 28: a reply longer than the idle timeout is not cut off
    mark = await auto_turn(dev, speak("Tell me a long story about a dragon."))
    assert_reply_bracket(dev, mark)
    audio = dev.audio_events(mark)
    assert audio[-1].t - audio[0].t > 2.0, "reply shorter than the idle timeout"
    # 27: then only silence: farewell bracket, then the server closes
    after = len(dev.events)
    started = time.monotonic()
    await dev.listen_start("auto")
    microphone = asyncio.create_task(dev.stream(silence(8.0)))
    await dev.wait_tts_stop(15, after=after)
    microphone.cancel()
    await asyncio.gather(microphone, return_exceptions=True)
    assert texts(dev, "sentence", after) == ["Goodbye!"]
    assert await dev.wait_closed(5) and time.monotonic() - started < 15
    await dev.drop()


# --- 30–32 -------------------------------------------------------------------------------------


async def test_30_legacy_iot_is_accepted(server: Running, question: np.ndarray) -> None:
    dev = SimDevice(server.ws_url, features=None)
    await dev.connect()
    descriptors = [{"name": "Speaker", "methods": {"set_volume": {"parameters": {}}}}]
    await dev.send_json({"type": "iot", "update": True, "descriptors": descriptors})
    await dev.send_json({"type": "iot", "update": True, "states": [{"name": "Speaker"}]})
    mark = await auto_turn(dev, question)
    assert_reply_bracket(dev, mark)
    await dev.drop()


async def test_31_unicode_text_round_trips(server: Running) -> None:
    dev = SimDevice(server.ws_url)
    await dev.connect()
    phrase = 'Say "hello" 🙂 and 你好 <b>&amp;</b>'
    mark = await _wake(dev, phrase)
    await dev.wait_tts_stop(30, after=mark)
    assert texts(dev, "stt", mark) == [phrase]
    assert dev.stats.bad_json == 0
    await dev.drop()


async def test_32_sim_rejects_a_hello_without_transport() -> None:
    """Negative control: the simulated device really checks what every server hello must carry
    (all other tests connect through it, so each of their hellos had `transport`)."""
    from websockets.asyncio.server import serve

    async def bad_server(ws) -> None:  # type: ignore[no-untyped-def]
        await ws.recv()
        await ws.send(json.dumps({"type": "hello", "session_id": "x"}))
        await asyncio.sleep(1)

    async with serve(bad_server, "127.0.0.1", 0) as srv:
        port = next(iter(srv.sockets)).getsockname()[1]
        dev = SimDevice(f"ws://127.0.0.1:{port}/")
        with pytest.raises(SimError, match="transport"):
            await dev.connect()
        await dev.drop()


# --- limits and options of the issue -----------------------------------------------------------


async def test_push_to_talk_is_answered_at_the_maximum_utterance_length(
    make_server, beckett: np.ndarray
) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(vad={"max_utterance_s": 3.0})
    dev = SimDevice(srv.ws_url)
    await dev.connect()
    await dev.listen_start("manual")
    mark = len(dev.events)
    streaming = asyncio.create_task(dev.stream(beckett))  # 10 s, button never released
    stt = await dev.wait_json(lambda m: m.get("type") == "stt", 30, after=mark)
    assert not streaming.done()  # answered before the speech (and any listen stop) ended
    assert stt["text"].lower().startswith("ever tried")
    streaming.cancel()
    await asyncio.gather(streaming, return_exceptions=True)
    await dev.drop()


async def test_16_khz_downlink(make_server, harness, question: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(audio={"downlink_sample_rate": 16000})
    dev = SimDevice(srv.ws_url)
    hello = await dev.connect()
    assert hello["audio_params"]["sample_rate"] == 16000
    mark = await auto_turn(dev, question)
    await dev.wait_played()
    assert_reply_bracket(dev, mark)
    heard = harness.engines.asr.recognizer.transcribe(dev.reply_pcm().astype(np.float32) / 32768)
    # Speech at the right rate, not noise (a wrong rate is heard as nothing). The reply's voice
    # has piper's random noise: tiny.en once heard "France is Paris" as "Francis Peritz".
    assert word_error_rate(" ".join(texts(dev, "sentence", mark)), heard) <= 0.5, heard
    await dev.drop()
