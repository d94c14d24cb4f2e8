"""Saved model states on disk, so that a restart keeps what the model had read: the shared prompt
prefix (the start-up warm-up then takes a moment instead of a long read), and each device's last
prompt (its summary and history: its first question after the restart reads only its words).

One file per state in the state folder, under a folder named by the model's fingerprint (its
size and its first and last bytes, and the llama.cpp version), so another model never loads a
state it cannot use. A file holds the tokens the state covers and llama.cpp's sequence data
(of them all, or of those past its `base`: a tail, `edge.engines.llm.prompt_states`), behind a
header with their sizes, the base and a sha256 of all three: a file that is cut short, corrupted or
written by another version is refused on load (logged, deleted) and rebuilt by reading. Writes
go to a temporary file renamed into place, so a crash never leaves half a file; the folder is
bounded, the least recently used files going first.

`StateFiles` is called from worker threads only (never the event loop, never the decode
thread); `DiskStates` is the event loop's side.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from loguru import logger

from edge.engines.llm.prompt_states import PromptStates
from edge.workers import Worker

MAGIC = b"EDGE-LLM-STATE 2\n"  # 2: with a base (files of 1 are refused, and rebuilt)
STATES_FOLDER = "llm-states"  # in the state folder
FINGERPRINT_BYTES = 4 << 20  # read from each end of the model file


def file_name(key: str) -> str:
    return f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.state"


def forget(state_dir: Path, key: str) -> int:
    """Delete `key`'s (a device's) saved states, for every model: `edge devices forget`. The
    number of files deleted."""
    gone = 0
    for path in (state_dir / STATES_FOLDER).glob(f"*/{file_name(key)}"):
        path.unlink(missing_ok=True)
        gone += 1
    return gone


@dataclass(frozen=True)
class SavedState:
    tokens: np.ndarray  # int32
    data: bytes  # llama_state_seq_get_data of a sequence holding exactly `tokens[base:]`
    base: int = 0  # > 0: a tail, to go on top of cells holding `tokens[:base]`


def model_fingerprint(model: Path, engine_version: str) -> str:
    """Cheap and stable: the size, the first and last 4 MB, and the engine's version."""
    digest = hashlib.sha256(engine_version.encode())
    size = model.stat().st_size
    digest.update(str(size).encode())
    with open(model, "rb") as fh:
        digest.update(fh.read(FINGERPRINT_BYTES))
        fh.seek(max(0, size - FINGERPRINT_BYTES))
        digest.update(fh.read(FINGERPRINT_BYTES))
    return digest.hexdigest()[:16]


class StateFiles:
    def __init__(self, folder: Path, fingerprint: str, budget_bytes: int) -> None:
        self.folder = folder / fingerprint
        self.budget_bytes = budget_bytes
        self._lock = threading.Lock()

    def path(self, key: str) -> Path:
        return self.folder / file_name(key)

    def save(self, key: str, state: SavedState) -> None:
        """Write `state` as `key`'s, replacing its last one; then keep the folder in budget."""
        size = len(MAGIC) + state.tokens.nbytes + len(state.data)
        if size > self.budget_bytes:
            return
        tokens = np.ascontiguousarray(state.tokens, dtype="<i4").tobytes()
        header = {
            "tokens": int(state.tokens.size),
            "data": len(state.data),
            "base": state.base,
            "sha256": _digest(state.base, tokens, state.data),
        }
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            target = self.path(key)
            temporary = target.with_suffix(".tmp")
            with open(temporary, "wb") as fh:
                fh.write(MAGIC)
                fh.write(json.dumps(header).encode() + b"\n")
                fh.write(tokens)
                fh.write(state.data)
            os.replace(temporary, target)
            self._keep_in_budget()

    def load(self, key: str) -> SavedState | None:
        """`key`'s state, or None: there is none, or it does not check out (then it is gone)."""
        path = self.path(key)
        with self._lock:
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                return None
            except OSError as exc:
                logger.warning("llm: saved state {} unreadable: {}", path.name, exc)
                return None
            state = _parse(raw)
            if state is None:
                logger.warning("llm: saved state {} does not check out; deleted", path.name)
                path.unlink(missing_ok=True)
                return None
            os.utime(path)  # recently used: kept longest
            return state

    def _keep_in_budget(self) -> None:
        files = sorted(self.folder.glob("*.state"), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        while files and total > self.budget_bytes:
            oldest = files.pop(0)
            total -= oldest.stat().st_size
            oldest.unlink(missing_ok=True)


def _parse(raw: bytes) -> SavedState | None:
    if not raw.startswith(MAGIC):
        return None
    end = raw.find(b"\n", len(MAGIC))
    try:
        header = json.loads(raw[len(MAGIC) : end])
        count, size, digest = int(header["tokens"]), int(header["data"]), str(header["sha256"])
        base = int(header["base"])
    except (ValueError, KeyError, TypeError):
        return None
    body = raw[end + 1 :]
    if end < 0 or len(body) != count * 4 + size or count <= 0 or not 0 <= base < count:
        return None
    if _digest(base, body[: count * 4], body[count * 4 :]) != digest:
        return None
    tokens = np.frombuffer(body[: count * 4], dtype="<i4").astype(np.int32)
    return SavedState(tokens, body[count * 4 :], base)


def _digest(base: int, tokens: bytes, data: bytes) -> str:
    digest = hashlib.sha256(f"{base}\n".encode())
    digest.update(tokens)
    digest.update(data)
    return digest.hexdigest()


class DiskStates:
    """Between the host-memory states (`PromptStates`) and the files: `keep` writes an owner's
    newest state out, `preload` reads it back in; both off the event loop."""

    def __init__(self, files: StateFiles, states: PromptStates, io: Worker) -> None:
        self.files = files
        self.states = states
        self.io = io  # the thread the files are read and written in

    async def preload(self, owner: str) -> bool:
        """Bring `owner`'s saved state into host memory, if it has one that checks out."""
        saved = await self.io.run(self.files.load, owner)
        if saved is None:
            return False
        self.states.add(saved.tokens, saved.data, owner, saved.base)
        logger.bind(device=owner or "-").debug(
            "llm: saved state of {} tokens read back", saved.tokens.size
        )
        return True

    async def keep(self, owner: str) -> bool:
        """Write `owner`'s newest state in host memory to disk (replacing its last one)."""
        snapshot = self.states.snapshot(owner)
        if snapshot is None:
            return False
        tokens, data, base = snapshot
        try:
            await self.io.run(self.files.save, owner, SavedState(tokens, data, base))
        except OSError as exc:
            logger.warning("llm: could not save a prompt state: {}", exc)
            return False
        return True
