"""`edge bench` as a process, cut short: it measures the floor, starts a server, drives it with
simulated devices and reports every figure. The figures are not judged here (no timing
assertions), only that each one was measured and every answer was delivered and paced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from edge.bench.server import UNIT_NICE
from edge.bench.utterances import SPEECH_DIR


def test_bench_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "edge", "bench", "--turns", "2", "--idle", "3"),
            *("--max-talkers", "2", "--rounds", "1", "--idle-window", "2"),
            *("--wav", str(SPEECH_DIR / "age_of_wisdom.wav"), "--json", str(out)),
            *("--set", "vad.end_silence_ms=500"),
            *("--household", "2", "--household-conversations", "1"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "end of speech → VAD decision" in result.stdout
    report = json.loads(out.read_text())
    one = report["one_talker"]
    assert one["turns"] == 2 and one["delivered"] == 2 and one["overflowed_packets"] == 0
    for stage in ("vad_decision", "asr_done", "llm_first_token", "first_frame_sent"):
        assert one["stages"][stage]["n"] == 2, stage
        assert one["stages"][stage]["p50"] > 0
    # Stages follow each other as the pipeline runs them. A held answer (vad.preemptive_answer)
    # may have its text, and its first token, before the VAD decision; never its first frame.
    first = one["turns_detail"][0]["stages"]
    assert first["asr_done"] <= first["llm_first_token"] <= first["first_frame_sent"]
    assert first["vad_decision"] <= first["first_frame_sent"]
    assert one["turns_detail"][0]["first_audio"] >= first["first_frame_sent"]
    floor = report["floor"]
    assert floor["first_audio"]["n"] == 1 and report["ratio_to_floor"] > 0
    assert report["memory"]["rss_mb_end"] > 100
    idle = report["idle"]
    assert idle["devices"] == 3 and "cpu_percent_of_core_per_device" in idle
    levels = report["concurrency"]
    assert levels and levels[0]["talkers"] == 1
    for level in levels:
        assert level["delivered"] == level["turns"] and level["overflowed_packets"] == 0
    assert report["machine"]["cpus"] >= 1
    # The household phase: devices with a new connection per conversation, memory on.
    home = report["household"]
    assert home["devices"] == 2 and home["conversations"] == 2
    assert home["turns"] >= 2 and home["delivered"] == home["turns"]
    assert home["first_audio"]["n"] >= 1 and home["speaking_before_first_frame"]["n"] >= 1
    assert "llm" in home["cpu_wait_worst_per_turn"]
    # At the service's niceness where the bench may set it (root), else at its own.
    assert home["server_niceness"] in (UNIT_NICE, os.nice(0))
    # Its memory as the last device left, once at rest (summaries written, memory given back),
    # and at its peak.
    assert home["rss_mb_end"] > 100 and home["rss_mb_rest"] > 100
    assert home["rss_mb_peak"] >= max(home["rss_mb_end"], home["rss_mb_rest"]) - 5
    # A device coming back to the server at rest, then a restart with the saved states, and
    # a device coming back.
    assert home["first_turn_after_rest_s"] > 0
    assert home["restart_ready_s"] > 0 and home["first_turn_after_restart_s"] > 0


def test_a_benchmarked_server_starts_at_the_niceness_asked() -> None:
    """The launch step sets the niceness before exec, so every thread inherits it (a higher
    niceness needs no privilege, so this runs anywhere)."""
    from edge.bench.server import pinned

    probe = [sys.executable, "-c", "import os; print(os.nice(0))"]
    out = subprocess.run(pinned(probe, None, 3), capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == str(os.nice(0) + 3)


def test_a_slower_or_shared_board_is_asked_for_on_every_phase(monkeypatch: Any) -> None:
    """`edge bench --cpus N --busy` reaches the bench's options (the household phase takes them
    from there), and the floor runs pinned to the server's cores, the bench's own given back."""
    import edge.bench.latency as latency
    from edge import cli
    from edge.bench.server import cpu_set

    seen: list[Any] = []
    monkeypatch.setattr(latency, "main", lambda options: seen.append(options) or 0)
    args = cli._parser().parse_args(["bench", "--cpus", "1", "--busy", "--household", "0"])
    assert cli._bench_latency(args) == 0
    assert seen[0].cpus == 1 and seen[0].busy and seen[0].household == 0

    before = os.sched_getaffinity(0)
    with latency._pinned(1):
        assert os.sched_getaffinity(0) == cpu_set(1)
    assert os.sched_getaffinity(0) == before
