"""`edge devices`: the owner's view of devices, from the device registry (approval) and the memory
database (conversations). Both are SQLite files the running server shares, so changes count at
once without a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from edge.assistant.facts import source_of
from edge.assistant.summarizer import sentences as _sentences
from edge.config import Config
from edge.engines.llm.state_files import forget as forget_states
from edge.memory.store import MemoryStore
from edge.security.registry import DeviceRegistry


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def run(config: Config, command: str, device_id: str, minutes: float) -> int:
    device_id = device_id.strip().lower()
    if command == "forget":
        return _forget(config, device_id)
    if command == "list":
        return _list(config)
    if command == "show":
        return _show(config, device_id)
    registry = DeviceRegistry(config.registry_file)
    try:
        if not config.auth.enabled:
            print("note: auth.enabled is false, so every device on the LAN is admitted anyway")
        if command == "approve":
            if not registry.approve(device_id):
                print(f"{device_id} has not called this server; approving it ahead of time")
                registry.add(device_id)
            print(f"approved {device_id}: it gets its token at its next config call (restart it)")
            return 0
        if command == "revoke":
            if not registry.revoke(device_id):
                print(f"{device_id} is not known")
                return 1
            print(f"revoked {device_id}")
            return 0
        until = registry.open_pairing(minutes * 60)
        print(f"pairing open until {_when(until)}: devices that start up now are approved")
        return 0
    finally:
        registry.close()


def _list(config: Config) -> int:
    rows: dict[str, list[str]] = {}
    path = config.registry_file
    if path.exists():
        registry = DeviceRegistry(path)
        try:
            for record in registry.devices():
                rows[record.device_id] = [
                    record.status,
                    f"last seen {_when(record.last_seen)} from {record.address or '?'}",
                ]
            if registry.pairing_until() > time.time():
                print(f"pairing open until {_when(registry.pairing_until())}")
        finally:
            registry.close()
    memory = config.memory_file
    if memory.exists():
        store = MemoryStore(memory)
        try:
            for device, last_seen, turns in store.devices_now():
                row = rows.setdefault(device, ["-", f"last seen {_when(last_seen)}"])
                row.append(f"{turns} turns")
        finally:
            store.close()
    if not rows:
        print(f"no devices known (state folder {config.state_path})")
    for device, row in rows.items():
        print(f"{device}  {'  '.join(row)}")
    return 0


def _show(config: Config, device_id: str) -> int:
    """What the server remembers about a device's user, each fact with the words it came from."""
    with _memory(config) as store:
        if store is None:
            return 1
        summary = store.summary_now(device_id)
        said = store.user_texts_now(device_id)
    print(f"{device_id}: {len(said)} turns stored")
    if not summary:
        print("nothing remembered about the user")
    for sentence in _sentences(summary):
        source = source_of(sentence, said)
        print(f"- {sentence}")
        print(f"    from: {source!r}" if source else "    from: (no stored utterance: forgotten)")
    return 0


def _forget(config: Config, device_id: str) -> int:
    with _memory(config) as store:
        if store is None:
            return 1
        erased = store.forget_now(device_id)
    # The model's saved state of its last prompt holds its history too.
    states = forget_states(config.state_path, device_id)
    print(f"forgot {device_id}: {erased} turns erased, {states} saved model states")
    return 0


@contextmanager
def _memory(config: Config) -> Iterator[MemoryStore | None]:
    """The memory database, closed after use; None (said) when there is none yet."""
    path = config.memory_file
    if not path.exists():
        print(f"no memory database at {path}")
        yield None
        return
    store = MemoryStore(path)
    try:
        yield store
    finally:
        store.close()
