"""Prompt states kept on disk across restarts: written whole or not at all, checked on load
(a file cut short, corrupted or of another format is refused, logged and deleted), bounded,
and forgotten with the device. No model needed: the state bytes are opaque here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edge.engines.llm.prompt_states import PromptStates
from edge.engines.llm.state_files import DiskStates, SavedState, StateFiles, forget
from edge.workers import Worker


def _state(n: int, fill: int = 7) -> SavedState:
    return SavedState(np.arange(n, dtype=np.int32), bytes([fill]) * (n * 100))


def test_a_state_comes_back_as_it_was_saved(tmp_path: Path) -> None:
    files = StateFiles(tmp_path / "llm-states", "model-a", 1 << 20)
    files.save("aa:01", _state(50))
    back = files.load("aa:01")
    assert back is not None and back.tokens.tolist() == list(range(50))
    assert back.data == bytes([7]) * 5000
    assert files.load("aa:02") is None
    # Another model's folder never holds it.
    assert StateFiles(tmp_path / "llm-states", "model-b", 1 << 20).load("aa:01") is None


def test_a_damaged_file_is_refused_logged_and_deleted(
    tmp_path: Path, log_lines: list[dict[str, Any]]
) -> None:
    files = StateFiles(tmp_path / "llm-states", "model-a", 1 << 20)
    for damage in ("cut", "flip", "garbage"):
        files.save("aa:01", _state(50))
        path = files.path("aa:01")
        raw = bytearray(path.read_bytes())
        if damage == "cut":
            raw = raw[: len(raw) // 2]
        elif damage == "flip":
            raw[-10] ^= 0xFF
        else:
            raw = bytearray(b"not a state file at all")
        path.write_bytes(bytes(raw))
        assert files.load("aa:01") is None, damage
        assert not path.exists(), damage
    assert sum("does not check out" in line["message"] for line in log_lines) == 3


def test_the_folder_stays_in_budget_newest_kept(tmp_path: Path) -> None:
    files = StateFiles(tmp_path / "llm-states", "model-a", 12_000)
    for index in range(4):  # ~5 KB each: two fit
        files.save(f"dev-{index}", _state(50, fill=index))
        os.utime(files.path(f"dev-{index}"), (index, index))  # older first
    kept = [index for index in range(4) if files.path(f"dev-{index}").exists()]
    assert kept == [2, 3]


def test_a_device_leaving_and_coming_back_goes_through_the_disk(tmp_path: Path) -> None:
    files = StateFiles(tmp_path / "llm-states", "model-a", 1 << 20)
    before = PromptStates(ctx=None, budget_bytes=1 << 20)
    before.add(np.arange(30, dtype=np.int32), b"x" * 3000, "aa:01")

    async def leave_and_return() -> tuple[bool, Any]:
        io = Worker("io", threads=1)
        try:
            assert await DiskStates(files, before, io).keep("aa:01")
            after = PromptStates(ctx=None, budget_bytes=1 << 20)  # a restart: memory is empty
            found = await DiskStates(files, after, io).preload("aa:01")
        finally:
            io.shutdown()
        return found, after.snapshot("aa:01")

    import asyncio

    found, snapshot = asyncio.run(leave_and_return())
    assert found and snapshot is not None and snapshot[1] == b"x" * 3000
    assert forget(tmp_path, "aa:01") == 1 and files.load("aa:01") is None


def test_a_tail_keeps_its_base_and_an_older_format_is_refused(
    tmp_path: Path, log_lines: list[dict[str, Any]]
) -> None:
    files = StateFiles(tmp_path / "llm-states", "model-a", 1 << 20)
    files.save("aa:01", SavedState(np.arange(50, dtype=np.int32), b"t" * 900, base=41))
    back = files.load("aa:01")
    assert back is not None and back.base == 41 and back.data == b"t" * 900
    # A file of the first format (no base) is refused and rebuilt by reading, never misread.
    path = files.path("aa:01")
    path.write_bytes(path.read_bytes().replace(b"EDGE-LLM-STATE 2", b"EDGE-LLM-STATE 1", 1))
    assert files.load("aa:01") is None and not path.exists()
    # Nor is a base that does not fit the tokens, or was changed since the file was written.
    for base in (50, 7):
        files.save("aa:01", SavedState(np.arange(50, dtype=np.int32), b"t" * 900, base=41))
        raw = path.read_bytes().replace(b'"base": 41', f'"base": {base}'.encode(), 1)
        path.write_bytes(raw)
        assert files.load("aa:01") is None, base
    assert sum("does not check out" in line["message"] for line in log_lines) == 3


def test_dropping_a_state_spares_one_that_anothers_tail_stands_on() -> None:
    states = PromptStates(ctx=None, budget_bytes=1 << 20)
    states.add(np.arange(100, dtype=np.int32), b"w" * 1000, "aa:01")
    tail = np.concatenate([np.arange(80), np.arange(500, 520)]).astype(np.int32)
    states.add(tail, b"t" * 200, "aa:02", base=80)  # on top of aa:01's first 80 tokens
    assert states.owners() == ["aa:01", "aa:02"]
    assert states.drop("aa:01") == 0  # aa:02's tail stands on it
    assert states.drop("aa:02") == 200
    assert states.drop("aa:01") == 1000 and states.owners() == []
