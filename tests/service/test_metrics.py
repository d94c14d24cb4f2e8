"""/metrics (Prometheus text format), /debug/turns, and /health while the models load."""

from __future__ import annotations

from typing import Any

import aiohttp

from edge.sim.device import SimDevice
from edge.transport.http_server import HttpServer, loading_app
from tests.e2e.scenario import assert_reply_bracket
from tests.helpers import http_get, metric_value


async def test_metrics_count_turns_stages_sessions_and_errors(make_server: Any) -> None:
    server = make_server(tools={"enabled": False})
    _, content_type, before = await http_get(f"{server.http_url}/metrics")
    assert content_type.startswith("text/plain") and "version=" in content_type
    assert metric_value(before, "edge_models_loaded") == 1.0
    for engine in ("vad", "asr", "llm", "tts"):
        assert f'edge_engine_queue_depth{{engine="{engine}"}}' in before

    dev = SimDevice(server.ws_url, device_id="aa:00:00:00:0e:01")
    await dev.connect()
    try:
        await dev.send_raw("{not json")  # a bad message: counted by kind
        mark = len(dev.events)
        await dev.send_json({"type": "listen", "state": "detect", "text": "Say hello."})
        await dev.wait_tts_stop(60, after=mark)
        assert_reply_bracket(dev, mark)
        _, _, during = await http_get(f"{server.http_url}/metrics")
        status, _, turns = await http_get(f"{server.http_url}/debug/turns")
    finally:
        await dev.drop()

    assert metric_value(during, "edge_sessions", state="in_session") == 1.0
    assert metric_value(during, "edge_turns_total", kind="plain") == 1.0
    assert metric_value(during, "edge_errors_total", kind="bad message") == 1.0
    for stage in ("llm_first_token", "first_sentence_synthesized", "first_frame_sent"):
        assert metric_value(during, "edge_turn_stage_seconds_count", stage=stage) == 1.0
        assert metric_value(during, "edge_turn_stage_seconds_sum", stage=stage) > 0
    # A text query has no ASR stage.
    assert metric_value(during, "edge_turn_stage_seconds_count", stage="asr") == 0.0
    assert status == 200
    assert '"device": "aa:00:00:00:0e:01"' in turns and '"first_frame_sent"' in turns


async def test_health_says_loading_and_the_config_call_waits_until_models_are_loaded() -> None:
    http = HttpServer(loading_app(lambda: {"status": "loading", "models_loaded": False}), 10.0)
    port = await http.start("127.0.0.1", 0)
    try:
        status, _, body = await http_get(f"http://127.0.0.1:{port}/health")
        assert status == 503 and '"models_loaded": false' in body
        async with (
            aiohttp.ClientSession() as client,
            client.post(f"http://127.0.0.1:{port}/xiaozhi/ota/", json={}) as resp,
        ):
            assert resp.status == 503  # the firmware retries later, rather than connecting now
            assert "loading" in (await resp.json())["error"]
    finally:
        await http.stop()


async def test_health_of_a_ready_server_says_models_loaded(server: Any) -> None:
    status, _, body = await http_get(f"{server.http_url}/health")
    assert status == 200 and '"models_loaded": true' in body and '"pid"' in body
