"""`edge bench soak`, short: turns cut off while the user speaks, while the server thinks and
while the answer plays leave no crash line, and the figures it prints are the server's own."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import EDGE_COMMAND

pytestmark = pytest.mark.models


def test_a_short_soak_with_dropped_turns_finds_nothing(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    options = ["--turns", "24", "--every", "8", "--drop", "0.5", "--json", str(out)]
    run = subprocess.run(
        [*EDGE_COMMAND, "bench", "soak", *options],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["turns"] == 24 and figures["crash_lines"] == []
    assert sum(figures["dropped"].values()) >= 4 and figures["answered"] >= 4
    assert figures["unanswered"] == 0
    samples = figures["samples"]
    assert len(samples) >= 4 and all(s["rss_mb"] > 100 for s in samples)
    # Every dropped session went with its socket: the files at the end are those at the start
    # (give or take an engine pool's thread or a log file).
    assert samples[-1]["fds"] <= samples[0]["fds"] + 4
