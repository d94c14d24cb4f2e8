"""`edge check`: is this board ready to serve? One line per problem, exit status for scripts.

It looks at what makes `edge serve` fail or misbehave later, without loading any model: the
config, the model files and their digests, the native audio libraries, the ports, and whether
the state and cache folders are writable. Exit 0 when all is well, 1 with problems, 2 when the
config itself cannot be read.
"""

from __future__ import annotations

import errno
import importlib
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

from edge import config as config_module
from edge.config import Config

Check = Callable[[Config], list[str]]


def check_models(config: Config) -> list[str]:
    # Explicit model paths in the config were checked when it loaded (edge.config.schema).
    from edge.errors import ModelError
    from edge.models.manager import ModelStore, active_profile, profile_problems

    try:
        problems = profile_problems(
            ModelStore(config.cache_path / "models"), active_profile(config)
        )
    except ModelError as exc:
        return [f"models: {exc}"]
    return [f"models: {problem}" for problem in problems]


def check_native_libraries(config: Config) -> list[str]:
    problems = []
    try:
        import pyogg

        if not (pyogg.PYOGG_OPUS_AVAIL and pyogg.PYOGG_OPUS_FILE_AVAIL):
            problems.append(
                "audio: libopus0 and libopusfile0 must both be installed (apt install libopus0 "
                "libopusfile0); pyogg defines its Opus functions only when both load"
            )
    except Exception as exc:
        problems.append(f"audio: pyogg cannot load: {exc}")
    for module, what in (
        ("sherpa_onnx", "VAD/ASR (sherpa-onnx)"),
        ("llama_cpp", "LLM (llama-cpp-python)"),
        ("piper", "TTS (piper-tts)"),
        ("soxr", "resampling (soxr)"),
    ):
        try:
            importlib.import_module(module)
        except Exception as exc:
            problems.append(f"engines: {what} cannot be imported: {exc}")
    return problems


def _edge_is_serving(config: Config) -> bool:
    """True when the ports are taken by a running edge (its /health answers): not a problem."""
    import json
    import urllib.request

    host = "127.0.0.1" if config.server.host in ("0.0.0.0", "::", "") else config.server.host
    try:
        url = f"http://{host}:{config.server.http_port}/health"
        with urllib.request.urlopen(url, timeout=2) as response:
            return "models_loaded" in json.loads(response.read())
    except (OSError, ValueError):
        return False


def check_ports(config: Config) -> list[str]:
    problems: list[str] = []
    for key, port in (
        ("server.port", config.server.port),
        ("server.http_port", config.server.http_port),
    ):
        if port == 0:
            continue
        family = socket.AF_INET6 if ":" in config.server.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((config.server.host, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    if _edge_is_serving(config):
                        return []  # edge itself holds them
                    why = "in use by another program"
                elif exc.errno == errno.EACCES:
                    why = "needs privileges (use a port above 1023)"
                else:
                    why = exc.strerror or str(exc)
                problems.append(f"ports: {key} {config.server.host}:{port} {why}")
    return problems


def check_folders(config: Config) -> list[str]:
    problems = []
    folders = {
        config.state_path: "state folder",
        config.cache_path: "cache folder",
    }
    folders.setdefault(config.memory_file.parent, "memory database folder")  # once per folder
    for folder, what in folders.items():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".edge-check-"):
                pass
        except OSError as exc:
            problems.append(f"permissions: {what} {folder} is not writable by this user: {exc}")
    free = shutil.disk_usage(config.state_path).free if config.state_path.exists() else None
    if free is not None and free < 50_000_000:
        problems.append(f"disk: only {free / 1e6:.0f} MB free at {config.state_path}")
    return problems


def check_tools(config: Config) -> list[str]:
    problems = []
    for server in config.tools.mcp_servers:
        command = server.command
        found = Path(command).is_file() if os.sep in command else shutil.which(command)
        if not found:
            problems.append(f"tools: MCP server {server.name}: command {command!r} not found")
    return problems


CHECKS: list[Check] = [
    check_folders,
    check_ports,
    check_native_libraries,
    check_models,
    check_tools,
]


def run(path: Path | None) -> int:
    try:
        config = config_module.load(path)
    except config_module.ConfigError as exc:
        print(f"config: {exc}")
        return 2
    problems = [problem for check in CHECKS for problem in check(config)]
    for problem in problems:
        print(problem)
    if problems:
        print(f"edge check: {len(problems)} problem{'s' if len(problems) > 1 else ''}")
        return 1
    print(
        f"edge check: ready (ports {config.server.port}/{config.server.http_port}, "
        f"state {config.state_path}, models verified)"
    )
    return 0
