"""The OpenAI-compatible back-end against llama-cpp-python's own server, started on loopback
with the same GGUF: streaming, tool calls through a whole device turn, and a server that is down.
Servers that parse tool calls themselves (Ollama, vLLM) cannot run here; their streamed
`tool_calls` format is served by a small loopback stand-in."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from edge.app import EdgeServer
from edge.assistant.answer import AnswerWriter
from edge.assistant.prompt import PromptBuilder
from edge.config import with_overrides
from edge.engines.llm.openai import OpenAiLlm
from edge.engines.loader import resolve_models
from edge.errors import LlmUnavailable
from edge.sim.device import SimDevice
from edge.tools.registry import ToolContext, ToolSet
from tests.e2e.scenario import assert_reply_bracket, texts, wait_log
from tests.helpers import ServerThread, server_config, wait_until


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = resolve_models(server_config()).llm
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "llama_cpp.server", "--model", str(model)),
                *("--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"),
                *("--n_threads", "2"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2):
                break
        except OSError:
            assert proc.poll() is None, Path(log).read_text()[-2000:]
            assert time.monotonic() < deadline, "llama_cpp.server did not start"
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(30)


async def _close(llm: Any) -> None:
    llm.close()
    await asyncio.sleep(0.05)  # let the HTTP session close on this loop


def _remote(url: str, **llm: Any) -> OpenAiLlm:
    config = with_overrides(server_config(), llm={"backend": "openai", "url": url, **llm})
    return OpenAiLlm(config.llm)


def _started_with_remote(harness: ServerThread, **sections: dict[str, Any]) -> EdgeServer:
    """A real server on the shared engines, its language model an OpenAI-compatible server."""
    config = server_config(**sections)
    engines = dataclasses.replace(harness.engines, llm=OpenAiLlm(config.llm))
    server = EdgeServer(config, engines)
    harness.call(server.start())
    return server


async def _answer(llm: OpenAiLlm, text: str) -> list[str]:
    messages = [{"role": "user", "content": text}]
    try:
        return [piece async for piece in llm.stream(messages, max_tokens=40)]
    finally:
        llm.close()


def test_answers_stream_from_the_remote_server(llama_server: str, harness: ServerThread) -> None:
    pieces = harness.call(_answer(_remote(llama_server), "What is the capital of France?"))
    assert len(pieces) > 3  # streamed token by token, not in one piece
    assert "Paris" in "".join(pieces)


def test_a_device_turn_with_a_tool_call_goes_through_the_remote_model(
    llama_server: str, harness: ServerThread, log_lines: list[dict[str, Any]]
) -> None:
    server = _started_with_remote(
        harness, llm={"backend": "openai", "url": llama_server, "temperature": 0.0}
    )

    async def scenario() -> tuple[SimDevice, int, int]:
        dev = SimDevice(
            f"ws://127.0.0.1:{server.ws_port}/xiaozhi/v1/", device_id="aa:0a:00:00:00:01"
        )
        await dev.connect()
        await wait_until(lambda: bool(server.devices.sessions), 10)
        session = next(iter(server.devices.sessions.values()))
        assert session.tools.mcp is not None
        await asyncio.wait_for(session.tools.mcp.ready.wait(), 10)
        marks = []
        for text in ("Turn the volume down to 30.", "What is the capital of France?"):
            mark = len(dev.events)
            marks.append(mark)
            await dev.send_json({"type": "listen", "state": "detect", "text": text})
            await dev.wait_tts_stop(90, after=mark)
        await dev.wait_played()
        await dev.drop()
        return dev, marks[0], marks[1]

    try:
        dev, tool_mark, plain_mark = harness.call(scenario())
    finally:
        harness.call(server.stop())
        harness.call(_close(server.engines.llm))
    assert dev.mcp.volume == 30  # the call the remote model wrote reached the device
    assert ("self.audio_speaker.set_volume", {"volume": 30}) in dev.mcp.calls
    for mark in (tool_mark, plain_mark):
        assert_reply_bracket(dev, mark, with_stt=True)
    assert "Paris" in " ".join(texts(dev, "sentence", plain_mark))


def test_structured_tool_calls_are_read_like_written_ones(harness: ServerThread) -> None:
    """Ollama and vLLM parse the call themselves and stream it as `tool_calls` fragments."""
    chunks = [
        {"choices": [{"delta": {"role": "assistant"}}]},
        {
            "choices": [
                {"delta": {"tool_calls": [{"index": 0, "function": {"name": "self.audio"}}]}}
            ]
        },
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "function": {"name": "_speaker.set_volume", "arguments": '{"volu'},
                            }
                        ]
                    }
                }
            ]
        },
        {
            "choices": [
                {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'me": 30}'}}]}}
            ]
        },
    ]
    requests: list[dict[str, Any]] = []

    async def completions(request: web.Request) -> web.StreamResponse:
        requests.append(await request.json())
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for chunk in chunks:
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response

    async def scenario() -> tuple[str, dict[str, Any]]:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", completions)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        llm = _remote(f"http://127.0.0.1:{port}/v1", model="qwen2.5:0.5b")
        config = with_overrides(server_config(), llm={"backend": "openai", "url": "http://x/v1"})
        from loguru import logger

        from edge.sim.mcp_tools import McpLoopback, SimMcpServer

        device = SimMcpServer()
        client = McpLoopback(device, log=logger).client
        await client.start()
        tools = ToolSet(client.tools)
        writer = AnswerWriter(llm, config, tools, ToolContext("x"), logger)
        messages = PromptBuilder(config, tools).messages("Volume 30", [], "")
        try:
            spoken = "".join([p async for p in writer.pieces(messages)])
        finally:
            client.close()
            llm.close()
            await runner.cleanup()
        return spoken, {"volume": device.volume, "calls": writer.answer.tool_calls_json()}

    spoken, outcome = harness.call(scenario())
    assert outcome["volume"] == 30
    assert outcome["calls"][0]["arguments"] == {"volume": 30}
    assert requests[0]["model"] == "qwen2.5:0.5b" and requests[0]["stream"] is True
    assert requests[0]["tools"]  # the device's tools were offered
    assert spoken  # and something was said afterwards


def test_a_server_that_is_down_gives_an_apology_and_a_clear_line(
    make_server: Any, harness: ServerThread, log_lines: list[dict[str, Any]]
) -> None:
    down = f"http://127.0.0.1:{_free_port()}/v1"
    with pytest.raises(LlmUnavailable, match=r"127\.0\.0\.1"):
        harness.call(_answer(_remote(down), "Hello?"))

    server = _started_with_remote(
        harness, llm={"backend": "openai", "url": down}, tools={"enabled": False}
    )

    async def scenario() -> tuple[SimDevice, int, str]:
        dev = SimDevice(
            f"ws://127.0.0.1:{server.ws_port}/xiaozhi/v1/", device_id="aa:0a:00:00:00:02"
        )
        await dev.connect()
        mark = len(dev.events)
        await dev.send_json({"type": "listen", "state": "detect", "text": "What is two plus two?"})
        await dev.wait_tts_stop(30, after=mark)
        log = await wait_log(log_lines, "aa:0a:00:00:00:02", "LlmUnavailable")
        await dev.drop()
        return dev, mark, log

    try:
        dev, mark, log = harness.call(scenario())
    finally:
        harness.call(server.stop())
        harness.call(_close(server.engines.llm))
    assert_reply_bracket(dev, mark, with_stt=True)
    assert texts(dev, "sentence", mark) == ["Sorry, I could not come up with an answer just now."]
    assert "language model failed mid-reply" in log and down.split("/v1")[0] in log
