"""`edge check` as a process: a ready board, then a board with one of each problem."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from tests.helpers import EDGE_COMMAND


def edge_check(config: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # The state folder comes from the config file ($EDGE_STATE_DIR would win over it).
    env = {k: v for k, v in os.environ.items() if k != "EDGE_STATE_DIR"}
    return subprocess.run(
        [*EDGE_COMMAND, "check", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_a_ready_board(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    config.write_text(
        f'state_dir = "{tmp_path}/state"\n[server]\nhost = "127.0.0.1"\nport = 0\nhttp_port = 0\n'
    )
    out = edge_check(config, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().startswith("edge check: ready")


def test_every_problem_gets_its_own_line(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the state folder should be")
    config = tmp_path / "edge.toml"
    config.write_text(
        f'state_dir = "{blocker}/state"\n'
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nhttp_port = 0\n'
        '[models]\nprofile = "zh"\n'
        '[[tools.mcp_servers]]\nname = "notes"\ncommand = "no-such-mcp-server"\n'
    )
    try:
        out = edge_check(config, tmp_path)
    finally:
        taken.close()
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 1
    assert any(line.startswith("ports: server.port") and "in use by" in line for line in lines)
    assert any(line.startswith("permissions: state folder") for line in lines), out.stdout
    assert any("sensevoice-small-int8: not downloaded" in line for line in lines)
    assert any("no-such-mcp-server" in line for line in lines)
    assert lines[-1] == f"edge check: {len(lines) - 1} problems"


def test_a_broken_config_exits_2_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    config.write_text("[vad]\nthreshold = 7\n")
    out = edge_check(config, tmp_path)
    assert out.returncode == 2 and out.stdout.strip().count("\n") == 0
    assert "vad.threshold" in out.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_ports_held_by_a_running_edge_are_fine(tmp_path: Path) -> None:
    from tests.helpers import ServeProcess

    ws, http = _free_port(), _free_port()
    config = tmp_path / "edge.toml"
    config.write_text(
        f'state_dir = "{tmp_path}/state"\n[server]\nhost = "127.0.0.1"\nport = {ws}\n'
        f"http_port = {http}\n"
    )
    serve = ServeProcess(tmp_path / "serve.log", "--config", str(config), ephemeral=False)
    try:
        _ws_url, ota_url = serve.wait_ready()
        assert f":{http}/" in ota_url  # edge holds the very ports the check looks at
        out = edge_check(config, tmp_path)
        assert out.returncode == 0, out.stdout
    finally:
        serve.stop()
