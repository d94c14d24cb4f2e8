"""The model manager against a real HTTP server on loopback serving real model files: a clean
pull, a corrupted file, an interrupted download resumed, a first download pinned, a disk too
small, and the pulled profile loaded by the real ASR engine."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge.config import Config
from edge.engines.asr import load_recognizer
from edge.engines.loader import resolve_models
from edge.errors import ModelError
from edge.models.manager import ModelStore, profile_problems, pull_profile, use
from tests.helpers import BECKETT_TEXT, SHERPA_WHISPER, word_error_rate
from tests.models.loopback import (
    VOICE,
    FileServer,
    file_server,
    serve_profile_files,
    whisper_archive,
    write_catalog,
)


@pytest.fixture(scope="module")
def asr_archive() -> bytes:
    return whisper_archive()


@pytest.fixture
def server(asr_archive: bytes) -> Iterator[FileServer]:
    with file_server() as srv:
        serve_profile_files(srv, asr_archive)
        yield srv


@pytest.fixture
def catalog(tmp_path: Path, server: FileServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = write_catalog(tmp_path, server)
    monkeypatch.setenv("EDGE_CATALOG", str(path))
    return path


def test_pull_verifies_places_and_is_done_once(
    tmp_path: Path, server: FileServer, catalog: Path, beckett: np.ndarray
) -> None:
    store = ModelStore(tmp_path / "cache" / "models")
    lines = pull_profile(store, "loopback", pin=False)
    assert "asr: test-whisper downloaded and verified" in lines
    assert "vad: silero-vad from its PyPI package" in lines
    folder = store.folder("test-whisper")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in SHERPA_WHISPER.iterdir()
    )
    assert not list(store.dir.glob("*.part")) and not list(store.dir.glob("*.tar.gz"))
    assert (store.folder("test-voice") / "voice.onnx").read_bytes() == VOICE.read_bytes()

    asked = len(server.requests)
    assert "asr: test-whisper present" in pull_profile(store, "loopback", pin=False)
    assert len(server.requests) == asked  # nothing downloaded twice
    assert profile_problems(store, "loopback") == []

    # `use` makes edge serve resolve to the pulled files; the real ASR engine loads them.
    state = tmp_path / "state"
    assert use(store, state, "loopback") == []
    config = Config().replace(cache_dir=str(tmp_path / "cache"), state_dir=str(state))
    files = resolve_models(config)
    assert files.profile == "loopback" and files.asr.engine == "sherpa-whisper"
    assert files.voice == store.folder("test-voice") / "voice.onnx"
    recognizer = load_recognizer(files.asr, files.asr_dir)
    text = recognizer.transcribe(beckett.astype(np.float32) / 32768)
    assert word_error_rate(BECKETT_TEXT, text) <= 0.2


def test_a_corrupted_file_is_refused_and_nothing_is_kept(
    tmp_path: Path, server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGE_CATALOG", str(write_catalog(tmp_path, server, voice_sha="ab" * 32)))
    store = ModelStore(tmp_path / "models")
    with pytest.raises(ModelError, match="does not match the catalog"):
        store.pull("test-voice")
    folder = store.folder("test-voice")
    assert not (folder / "voice.onnx").exists() and not (folder / "voice.onnx.part").exists()
    assert store.manifest("test-voice") is None
    assert use(store, tmp_path / "state", "loopback")  # an incomplete profile cannot be used


def test_an_interrupted_download_resumes_where_it_stopped(
    tmp_path: Path, server: FileServer, catalog: Path
) -> None:
    server.cut_after["/voice.onnx"] = 5_000_000
    store = ModelStore(tmp_path / "models")
    with pytest.raises(ModelError, match="run again to resume"):
        store.pull("test-voice")
    part = store.folder("test-voice") / "voice.onnx.part"
    assert part.stat().st_size == 5_000_000
    assert store.pull("test-voice")
    assert server.hits("/voice.onnx") == ["", "bytes=5000000-"]
    assert (store.folder("test-voice") / "voice.onnx").read_bytes() == VOICE.read_bytes()


def test_unpinned_files_need_pin_then_every_copy_is_checked(
    tmp_path: Path, server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGE_CATALOG", str(write_catalog(tmp_path, server, pin=False)))
    store = ModelStore(tmp_path / "models")
    with pytest.raises(ModelError, match="--pin"):
        store.pull("test-voice")
    assert server.requests == []  # refused before any download
    assert store.pull("test-voice", pin=True)
    assert store.manifest("test-voice")["pinned_by"] == "first download"  # type: ignore[index]
    with open(store.folder("test-voice") / "voice.onnx", "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00\x01")
    assert store.problems("test-voice") == [
        "test-voice/voice.onnx: sha256 changed since it was verified"
    ]


def test_a_disk_too_small_is_said_before_downloading(
    tmp_path: Path, server: FileServer, catalog: Path
) -> None:
    server.claimed_length["/voice.onnx"] = 10**15  # a petabyte: no disk here has that
    with pytest.raises(ModelError, match="MB are free"):
        ModelStore(tmp_path / "models").pull("test-voice")


def test_the_commands_as_processes(tmp_path: Path, server: FileServer, catalog: Path) -> None:
    """`python3 -m edge.models` as on an Ansible controller, then `edge models` on the board."""
    env = {**os.environ, "EDGE_CATALOG": str(catalog), "EDGE_STATE_DIR": str(tmp_path / "s")}
    models = str(tmp_path / "models")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edge.models", "--dir", models, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    assert run("use", "loopback").returncode == 1
    pulled = run("pull", "loopback")
    assert pulled.returncode == 0, pulled.stderr
    assert "profile loopback is ready" in pulled.stdout
    assert run("use", "loopback").returncode == 0
    listed = run("list")
    assert "loopback (active): ready" in listed.stdout
    assert run("verify").returncode == 0
    (tmp_path / "models" / "test-voice" / "voice.onnx.json").write_text("{}")
    verified = run("verify")
    assert verified.returncode == 1 and "voice.onnx.json: sha256 changed" in verified.stdout
    missing = run("pull", "no-such-profile")
    assert missing.returncode == 1 and "not in the catalog" in missing.stderr
