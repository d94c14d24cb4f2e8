"""The `edge` command. Heavy modules are imported by the subcommand that needs them, so
`edge --help` works on a machine without models."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description=__doc__ or "edge voice server")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the voice server")
    serve.add_argument("--config", type=Path, help="TOML config file")
    serve.add_argument("--host", help="listen address (default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="WebSocket port (default 8000)")
    serve.add_argument("--http-port", type=int, help="config/health HTTP port (default 8003)")

    sim = sub.add_parser("sim", help="talk to a server as a simulated xiaozhi device")
    sim.add_argument("url", nargs="?", help="WebSocket URL, e.g. ws://127.0.0.1:8000/xiaozhi/v1/")
    sim.add_argument("--wav", type=Path, required=True, help="what the device hears (WAV)")
    sim.add_argument("--mode", choices=["auto", "manual", "realtime"], default="auto")
    sim.add_argument("--protocol-version", type=int, choices=[1, 2, 3], default=1)
    sim.add_argument("--save-reply", type=Path, help="write the reply audio to this WAV")
    sim.add_argument("--ota-url", help="call this config endpoint first, as the firmware does")
    sim.add_argument("--device-id", default="aa:bb:cc:dd:ee:01")
    sim.add_argument("--timeout", type=float, default=60.0)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from edge import app, config, logs

    try:
        cfg = config.load(args.config)
        server: dict[str, object] = {}
        for flag, key in (("host", "host"), ("port", "port"), ("http_port", "http_port")):
            if getattr(args, flag) is not None:
                server[key] = getattr(args, flag)
        if server:
            cfg = config.with_overrides(cfg, server=server)
    except config.ConfigError as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return 2
    logs.setup(cfg.log_level)
    try:
        import uvloop

        run = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is installed on Linux
        run = asyncio.run  # type: ignore[assignment]
    try:
        run(app.serve(cfg))
    except KeyboardInterrupt:
        pass
    return 0


def _sim(args: argparse.Namespace) -> int:
    from edge.sim.run import run

    return asyncio.run(
        run(
            args.url,
            args.wav,
            mode=args.mode,
            protocol_version=args.protocol_version,
            save_reply=args.save_reply,
            ota_url=args.ota_url,
            device_id=args.device_id,
            timeout=args.timeout,
        )
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "sim":
        return _sim(args)
    return 2
