from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from loguru import logger

from edge import logs
from edge.audio.pcm import read_wav
from tests.helpers import BECKETT, Running, ServerThread, server_config


@pytest.fixture(scope="session", autouse=True)
def _temporary_folders_in_pytests_own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every temporary folder the tests make (servers' state, stores, with their saved model
    states) goes under pytest's own, of which only the last three runs are kept: a run used to
    leave hundreds of folders, ~0.4 GB, in /tmp."""
    old, old_env = tempfile.tempdir, os.environ.get("TMPDIR")
    # Subprocesses (`edge serve`, `edge bench`) through TMPDIR.
    tempfile.tempdir = os.environ["TMPDIR"] = str(tmp_path_factory.mktemp("tmp"))
    yield
    tempfile.tempdir = old
    if old_env is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = old_env


@pytest.fixture(autouse=True)
def _draws_seeded_by_the_tests_name(request: pytest.FixtureRequest) -> None:
    """The model samples at the product's temperature, its seeds drawn from `random`: seeded by
    the test's name, a test's answers come out the same from run to run on one machine, so a
    failure can be run again and seen again. Unseeded, a test that depended on what the model
    happened to write failed once in many runs (a story that ended after one sentence)."""
    random.seed(request.node.nodeid)


@pytest.fixture(scope="session")
def harness() -> Iterator[ServerThread]:
    logs.setup("INFO")
    thread = ServerThread()
    yield thread
    thread.close()


@pytest.fixture
def server(harness: ServerThread) -> Iterator[Running]:
    """The default server: embedded models, default settings. One per test, with its own state
    folder: the simulated devices share a Device-Id, and a memory carried from test to test made
    answers depend on the order the tests ran in (a restored "what time is it" turn had the model
    answer the next question with the time)."""
    srv = harness.start_server(server_config())
    yield Running(srv, harness)
    harness.stop_server(srv)


@pytest.fixture
def make_server(harness: ServerThread) -> Iterator[Any]:
    """A server with some settings changed, sharing the loaded engines."""
    started: list[Any] = []

    def make(**sections: dict[str, Any]) -> Running:
        srv = harness.start_server(server_config(**sections))
        started.append(srv)
        return Running(srv, harness)

    yield make
    for srv in started:
        harness.stop_server(srv)


@pytest.fixture
def greedy(harness: ServerThread) -> Iterator[None]:
    """The shared model picks its likeliest token (temperature 0) for this test: at 0.4 the
    0.5B model now and then answers with the clock sentence or invents a detail, and a test of
    what the server does with a tool call or a summary should not hang on that."""
    llm = harness.engines.llm
    saved = llm.config
    llm.config = saved.replace(temperature=0.0)
    yield
    llm.config = saved


def _speak(harness: ServerThread, text: str) -> np.ndarray:
    tts = harness.engines.tts
    pcm = tts.synthesize_pcm(text, 16000, steady=True)  # the same audio in every run
    return np.concatenate([np.zeros(3200, np.int16), pcm])  # 0.2 s lead-in, like a real mic


@pytest.fixture(scope="session")
def question(harness: ServerThread) -> np.ndarray:
    """A short spoken question (piper, 16 kHz)."""
    return _speak(harness, "What is the capital of France?")


@pytest.fixture(scope="session")
def speak(harness: ServerThread) -> Any:
    cache: dict[str, np.ndarray] = {}

    def make(text: str) -> np.ndarray:
        if text not in cache:
            cache[text] = _speak(harness, text)
        return cache[text]

    return make


@pytest.fixture(scope="session")
def beckett() -> np.ndarray:
    pcm, _ = read_wav(BECKETT)
    return pcm


@pytest.fixture
def log_lines() -> Iterator[list[dict[str, Any]]]:
    """Log records written during the test: {'level', 'device', 'message'}."""
    lines: list[dict[str, Any]] = []

    def sink(message: Any) -> None:
        record = message.record
        lines.append(
            {
                "level": record["level"].name,
                "device": record["extra"].get("device", "-"),
                "message": record["message"],
            }
        )

    handler = logger.add(sink, level="DEBUG")
    yield lines
    logger.remove(handler)
