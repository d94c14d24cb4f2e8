"""Start-up on a slow or busy board: nothing times out. `edge serve` pinned to one core with a
CPU-bound neighbour on it, and a language-model time limit far shorter than reading the prompt
prefix takes there, still becomes ready (a turn's time limit does not apply to the warm-up);
meanwhile /health answers 503 with what start-up is doing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from edge.bench.server import BusyNeighbour, free_port, pinned
from tests.helpers import EDGE_COMMAND

pytestmark = pytest.mark.models


def test_edge_serve_starts_beside_a_cpu_hog_with_a_short_llm_time_limit(tmp_path: Path) -> None:
    http_port = free_port()
    hog = BusyNeighbour(cpus=1)
    hog.start()
    seen: list[dict[str, object]] = []
    command = [*EDGE_COMMAND, "serve", "--host", "127.0.0.1", "--port", str(free_port())]
    log_file = tmp_path / "serve.log"
    with open(log_file, "w") as out:
        proc = subprocess.Popen(
            pinned([*command, "--http-port", str(http_port)], hog.cores),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "EDGE_STATE_DIR": str(tmp_path / "state"),
                "EDGE_LLM_TIMEOUT_S": "0.2",
            },
        )
    try:
        deadline = time.monotonic() + 600  # a hang guard, not a time limit
        while "edge ready" not in log_file.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log_file.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=2):
                    pass
            except urllib.error.HTTPError as err:  # 503 while starting
                seen.append(json.loads(err.read()))
            except (urllib.error.URLError, OSError):
                pass  # the port opens a moment after the process starts
            time.sleep(0.2)
        log = log_file.read_text()
        assert "edge ready" in log, log[-3000:]
        assert re.search(r"prompt prefix \(\d+ tools\) evaluated", log)
        assert seen and all(s["status"] == "starting" for s in seen)
        assert {s["phase"] for s in seen} <= {"loading models", "evaluating the prompt prefix"}
    finally:
        hog.stop()
        proc.terminate()
        proc.wait(30)
