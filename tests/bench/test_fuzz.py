"""`edge bench fuzz` for a bounded time: a live `edge serve` takes malformed JSON, lying binary
headers, out-of-order messages and odd HTTP requests without a crash, a 5xx, an illegal frame,
a log line past its bound, or a leak, while a canary device keeps getting its hello."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import EDGE_COMMAND

pytestmark = pytest.mark.models


def test_fuzzing_a_live_server_finds_nothing(tmp_path: Path) -> None:
    out = tmp_path / "fuzz.json"
    run = subprocess.run(
        [*EDGE_COMMAND, "bench", "fuzz", "--seconds", "40", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["inputs"] > 1000 and set(figures["by_kind"]) == {"json", "binary", "http"}
    assert figures["http_5xx"] == 0 and figures["crash_lines"] == []
    assert figures["illegal_frames"] == []
    assert figures["canary_tries"] >= 3 and figures["canary_ok"] == figures["canary_tries"]
    assert figures["longest_log_line"] <= 600
    # Sessions, sockets and tasks all went; engine pools may start a thread or two on demand.
    assert figures["fds_after"] <= figures["fds_before"] + 4
    assert figures["threads_after"] <= figures["threads_before"] + 6
