"""The two commands a person runs: `edge serve` and `edge sim`, as real processes."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge.audio.pcm import read_wav, write_wav
from tests.helpers import EDGE_COMMAND, ServeProcess, word_error_rate

EDGE = EDGE_COMMAND


def test_help_needs_no_models() -> None:
    out = subprocess.run([*EDGE, "--help"], capture_output=True, text=True, check=True)
    assert "serve" in out.stdout and "sim" in out.stdout


def test_bad_config_fails_at_start_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    config.write_text("[audio]\ndownlink_sample_rate = 22050\n")
    out = subprocess.run(
        [*EDGE, "serve", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "audio.downlink_sample_rate" in out.stderr


@pytest.fixture(scope="module")
def serve_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("serve")
    serve = ServeProcess(folder / "serve.log", env={"EDGE_STATE_DIR": str(folder)})
    try:
        _ws_url, ota_url = serve.wait_ready()
        yield ota_url, serve.log
    finally:
        assert serve.stop() == 0  # SIGTERM is an orderly shutdown


@pytest.mark.models
def test_sim_talks_to_serve_through_the_config_endpoint(
    serve_process: tuple[str, Path], tmp_path: Path, question: np.ndarray
) -> None:
    ota_url, log = serve_process
    wav, reply = tmp_path / "question.wav", tmp_path / "reply.wav"
    write_wav(wav, question, 16000)
    out = subprocess.run(
        [*EDGE, "sim", "--ota-url", ota_url, "--wav", str(wav), "--save-reply", str(reply)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    stt = re.search(r'"type": "stt", "text": "([^"]*)"', out.stdout)
    assert stt and word_error_rate("What is the capital of France?", stt.group(1)) <= 0.2
    assert '"state": "stop"' in out.stdout
    assert re.search(r"end of speech → first audio frame: \d+ ms", out.stdout)
    pcm, rate = read_wav(reply)
    assert rate == 24000 and pcm.size > rate // 2
    assert "turn: " in log.read_text()  # the per-turn stage line


def test_devices_list_show_and_forget(tmp_path: Path) -> None:
    import asyncio

    from edge.memory.store import MemoryStore

    async def remember() -> None:
        store = MemoryStore(tmp_path / "memory.db")
        for device in ("aa:bb:cc:00:00:01", "aa:bb:cc:00:00:02"):
            turn = await store.begin_turn(device, "s", "My name is Alice.")
            await store.finish_turn(turn, "Hello Alice.", [])
        await store.save_summary(
            "aa:bb:cc:00:00:02", "The user's name is Alice. The user has a cat named Tom.", turn
        )
        store.close()

    asyncio.run(remember())
    env = {**__import__("os").environ, "EDGE_STATE_DIR": str(tmp_path)}
    listed = subprocess.run([*EDGE, "devices", "list"], capture_output=True, text=True, env=env)
    assert listed.returncode == 0 and listed.stdout.count("1 turns") == 2
    forgot = subprocess.run(
        [*EDGE, "devices", "forget", "aa:bb:cc:00:00:01"], capture_output=True, text=True, env=env
    )
    assert forgot.returncode == 0 and "1 turns erased" in forgot.stdout
    listed = subprocess.run([*EDGE, "devices", "list"], capture_output=True, text=True, env=env)
    assert "aa:bb:cc:00:00:01" not in listed.stdout and "aa:bb:cc:00:00:02" in listed.stdout
    shown = subprocess.run(
        [*EDGE, "devices", "show", "aa:bb:cc:00:00:02"], capture_output=True, text=True, env=env
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[1:] == [
        "- The user's name is Alice.",
        "    from: 'My name is Alice.'",
        "- The user has a cat named Tom.",
        "    from: (no stored utterance: forgotten)",
    ]


def test_a_profile_not_downloaded_stops_serve_with_one_line(tmp_path: Path) -> None:
    env = {**__import__("os").environ, "EDGE_MODELS_PROFILE": "zh", "EDGE_STATE_DIR": str(tmp_path)}
    out = subprocess.run(
        [*EDGE, "serve", "--host", "127.0.0.1", "--port", "0", "--http-port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 1
    assert "edge: profile zh: sensevoice-small-int8: not downloaded" in out.stderr
    assert "Traceback" not in out.stderr
