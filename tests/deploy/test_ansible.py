"""The Ansible role, run for real against this machine (connection local), as CI does: the first
run sets everything up, the second changes nothing, the installed server runs as its service user
with the installed config, and a downloaded profile is fetched once on the "controller" from a
real HTTP server on loopback, then copied to the "board" and verified there.

It changes the machine (a user, /opt/edge, /etc/edge, /var/lib/edge), so it runs only where CI
asks for it: EDGE_ANSIBLE names the folder holding ansible-playbook (.ci/run sets it up).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.models.loopback import FileServer, file_server, serve_profile_files, whisper_archive
from tests.service.test_systemd import FakeSystemd

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = os.environ.get("EDGE_ANSIBLE", "")
pytestmark = [
    pytest.mark.models,
    pytest.mark.skipif(
        not ANSIBLE or os.geteuid() != 0, reason="runs in CI (EDGE_ANSIBLE, as root)"
    ),
]


def playbook(*extra: str) -> dict[str, int]:
    """Run the playbook; the recap's counters for this host."""
    out = subprocess.run(
        [
            f"{ANSIBLE}/ansible-playbook",
            "-i",
            str(ROOT / "tests/deploy/inventory.ini"),
            "-e",
            f"@{ROOT / 'tests/deploy/ci-vars.yml'}",
            *extra,
            str(ROOT / "ansible/playbook.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    recap = re.search(r"localhost\s+:\s+(.*)", out.stdout.split("PLAY RECAP")[-1])
    assert recap, out.stdout[-3000:]
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", recap.group(1))}


@pytest.fixture(scope="module")
def provisioned() -> None:
    first = playbook()
    assert first["failed"] == 0


def test_a_second_run_changes_nothing(provisioned: None) -> None:
    again = playbook()
    assert again["changed"] == 0 and again["failed"] == 0


def test_the_installed_service_runs_as_its_user(provisioned: None, tmp_path: Path) -> None:
    """What systemd would run, as the service user, told by a stand-in notify socket."""
    assert (
        Path("/etc/systemd/system/edge.service").read_text()
        == (ROOT / "systemd/edge.service").read_text()
    )
    dropin = Path("/etc/systemd/system/edge.service.d/board.conf").read_text()
    assert "ExecStart=/opt/edge/venv/bin/edge serve --config /etc/edge/edge.toml" in dropin
    assert oct(Path("/var/lib/edge").stat().st_mode)[-3:] == "700"

    check = subprocess.run(
        ["runuser", "-u", "edge", "--", "/opt/edge/venv/bin/edge", "check", "--config",
         "/etc/edge/edge.toml"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr

    folder = Path(tempfile.mkdtemp(dir="/tmp"))
    folder.chmod(0o777)  # the service user binds the notify socket's peer here
    fake = FakeSystemd(folder)
    os.chmod(fake.path, 0o777)
    log = open(tmp_path / "serve.log", "w")
    # setpriv execs the server itself (runuser would stay as its parent and take the SIGTERM).
    proc = subprocess.Popen(
        ["setpriv", "--reuid=edge", "--regid=edge", "--init-groups",
         "/opt/edge/venv/bin/edge", "serve", "--config",
         "/etc/edge/edge.toml", "--host", "127.0.0.1", "--port", "0", "--http-port", "0"],
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "NOTIFY_SOCKET": fake.path, "WATCHDOG_USEC": "5000000"},
    )  # fmt: skip
    try:
        fake.wait_for("READY", 300)
        text = (tmp_path / "serve.log").read_text()
        http = re.search(r"config (http://\S+)/xiaozhi/ota/", text)
        assert http, text
        with urllib.request.urlopen(f"{http.group(1)}/health", timeout=5) as response:
            assert response.status == 200
        assert "profile embedded" in text
        assert Path("/var/lib/edge/memory.db").owner() == "edge"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
        fake.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def loopback_catalog() -> Iterator[tuple[FileServer, Path]]:
    """A catalog whose `loopback` profile the test's HTTP server holds, readable by the
    service user (the board side verifies with it)."""
    from tests.models.loopback import write_catalog

    folder = Path(tempfile.mkdtemp(dir="/tmp"))
    folder.chmod(0o755)
    with file_server() as server:
        serve_profile_files(server, whisper_archive())
        catalog = write_catalog(folder, server)
        catalog.chmod(0o644)
        yield server, catalog
    shutil.rmtree(folder, ignore_errors=True)


def test_a_downloaded_profile_is_fetched_once_and_copied(
    provisioned: None, loopback_catalog: tuple[FileServer, Path], tmp_path: Path
) -> None:
    server, catalog = loopback_catalog
    controller = tmp_path / "controller"
    extra = [
        "-e", "edge_model_profile=loopback",
        "-e", f"edge_model_catalog={catalog}",
        "-e", f"edge_controller_cache={controller}",
    ]  # fmt: skip
    try:
        first = playbook(*extra)
        assert first["changed"] > 0
        assert (controller / "models-loopback" / "test-voice.manifest.json").exists()
        copied = Path("/var/lib/edge/cache/models/test-voice/voice.onnx")
        assert copied.owner() == "edge" and copied.stat().st_size > 60_000_000
        assert 'profile = "loopback"' in Path("/etc/edge/edge.toml").read_text()
        downloads = len(server.requests)
        assert playbook(*extra)["changed"] == 0
        assert len(server.requests) == downloads  # downloaded once, on the controller
        verify = subprocess.run(
            ["runuser", "-u", "edge", "--", "/opt/edge/venv/bin/edge", "models", "--config",
             "/etc/edge/edge.toml", "verify"],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "EDGE_CATALOG": str(catalog)},
        )  # fmt: skip
        assert verify.returncode == 0 and "profile loopback: ok" in verify.stdout, verify.stdout
    finally:
        playbook()  # back to the embedded profile, as the other tests expect
