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
    sim.add_argument(
        "--fail-tool", action="append", default=[], help="device tool that answers with an error"
    )
    sim.add_argument(
        "--hang-tool", action="append", default=[], help="device tool that never answers"
    )

    devices = sub.add_parser("devices", help="approve devices; what the server remembers")
    devices.add_argument("--config", type=Path, help="TOML config file (for the state folder)")
    devices_sub = devices.add_subparsers(dest="devices", required=True)
    devices_sub.add_parser("list", help="known devices: approval status, last seen, turns")
    for name, text in (
        ("approve", "let a device in (it gets its token at its next config call)"),
        ("revoke", "shut a device out"),
        ("show", "what is remembered about a device's user, and where each fact came from"),
        ("forget", "erase a device's turns, summary, reminders"),
    ):
        devices_sub.add_parser(name, help=text).add_argument("device_id")
    pair = devices_sub.add_parser("pair", help="approve every new device that calls for a while")
    pair.add_argument("--minutes", type=float, default=10.0)

    check = sub.add_parser("check", help="is this board ready? one line per problem")
    check.add_argument("--config", type=Path, help="TOML config file")

    from edge.models.commands import add_parser as add_models_parser

    add_models_parser(sub)

    bench = sub.add_parser("bench", help="print performance figures")
    bench_sub = bench.add_subparsers(dest="bench")
    latency = bench_sub.add_parser(
        "latency", help="end of speech → first audio, per stage, against the floor (the default)"
    )
    for target in (bench, latency):
        _latency_arguments(target)
    vad = bench_sub.add_parser("vad", help="what the VAD hang-over costs in words cut off")
    vad.add_argument("--json", action="store_true", help="print JSON instead of text")
    household = bench_sub.add_parser(
        "household", help="devices that come and go, each conversation a new connection"
    )
    add = household.add_argument
    add("--devices", type=int, default=3, help="devices in the home (default 3)")
    add("--conversations", type=int, default=4, help="conversations per device (default 4)")
    add("--seed", type=int, default=7, help="when they talk and what they say (default 7)")
    add("--cpus", type=int, default=0, help="pin the server to this many cores (a slower board)")
    add("--busy", action="store_true", help="a CPU-bound neighbour on each of its cores")
    add(
        "--nice",
        type=int,
        default=None,
        help="the server's niceness (default: the service's, -2, where allowed; 0: the "
        "neighbours' own priority)",
    )
    add("--profile", default="", help="model profile for the server")
    _server_arguments(household)
    fuzz = bench_sub.add_parser("fuzz", help="malformed input against a live server")
    fuzz.add_argument("--seconds", type=float, default=60.0, help="how long (default 60)")
    fuzz.add_argument("--seed", type=int, default=1)
    fuzz.add_argument("--connections", type=int, default=4, help="fuzzing at once (default 4)")
    fuzz.add_argument("--json", dest="json_out", default="", help="write the figures as JSON")
    soak = bench_sub.add_parser("soak", help="many turns, half cut off: is anything leaking?")
    add = soak.add_argument
    add("--turns", type=int, default=1000, help="turns in all (default 1000)")
    add("--devices", type=int, default=3, help="devices talking (default 3)")
    add("--drop", type=float, default=0.5, help="share of turns cut off (default 0.5)")
    add("--every", type=int, default=50, help="print the figures every N turns (default 50)")
    add("--seed", type=int, default=11)
    _server_arguments(soak)
    answers = bench_sub.add_parser("answers", help="commands, honesty and memory, scored")
    add = answers.add_argument
    add("--conversations", type=int, default=12, help="of the main device (default 12)")
    add("--seed", type=int, default=5)
    _server_arguments(answers)
    tools = bench_sub.add_parser("tools", help="tool-call accuracy on spoken-style requests")
    tools.add_argument("--model", type=Path, help="GGUF file (default: the embedded model)")
    tools.add_argument("--mode", choices=["template", "grammar"], default="template")
    tools.add_argument(
        "--commands",
        action="store_true",
        help="household commands first, as a session answers (default: the model alone)",
    )
    tools.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


def _server_arguments(parser: argparse.ArgumentParser) -> None:
    """What every bench that starts its own server takes: its config, settings, the JSON out."""
    add = parser.add_argument
    add("--config", type=Path, help="config file for the server")
    add("--set", dest="settings", action="append", default=[], help="section.key=value")
    add("--json", dest="json_out", default="", help="write the figures as JSON (- for stdout)")


def _latency_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--turns", type=int, default=10, help="turns of the one talking device (default 10)")
    add("--idle", type=int, default=50, help="idle devices connected (default 50)")
    add("--max-talkers", type=int, default=6, help="most devices talking at once (default 6)")
    add("--rounds", type=int, default=2, help="turns per device at each level (default 2)")
    add("--idle-window", type=float, default=10.0, help="CPU measuring window, seconds")
    add("--profile", default="", help="model profile for the server and the floor")
    add("--config", type=Path, help="config file for the server and the floor")
    add("--url", default="", help="use a running server (its HTTP base, http://host:8003)")
    add("--wav", type=Path, action="append", default=[], help="16-bit WAV to speak (repeatable)")
    add("--set", dest="settings", action="append", default=[], help="section.key=value")
    add("--json", dest="json_out", default="", help="write the figures as JSON (- for stdout)")
    add("--skip-floor", action="store_true", help="do not measure the engines alone")
    add("--real-speech", action="store_true", help="speak the shipped human recordings")
    add("--household", type=int, default=3, help="devices of the household phase (0: skip)")
    add("--household-conversations", type=int, default=4, help="conversations per device")
    add("--cpus", type=int, default=0, help="pin the server to this many cores (a slower board)")
    add("--busy", action="store_true", help="a CPU-bound neighbour on each of its cores")


def _bench_latency(args: argparse.Namespace) -> int:
    from edge.bench.latency import Options, main

    return main(
        Options(
            turns=args.turns,
            idle=args.idle,
            max_talkers=args.max_talkers,
            rounds=args.rounds,
            idle_window_s=args.idle_window,
            profile=args.profile,
            config=args.config,
            url=args.url,
            wavs=args.wav,
            settings=args.settings,
            json_out=args.json_out,
            skip_floor=args.skip_floor,
            real_speech=args.real_speech,
            household=args.household,
            household_conversations=args.household_conversations,
            cpus=args.cpus,
            busy=args.busy,
        )
    )


def _bench_fuzz(args: argparse.Namespace) -> int:
    from edge.bench.fuzz import FuzzOptions, main

    return main(FuzzOptions(args.seconds, args.seed, args.connections, args.json_out))


def _bench_household(args: argparse.Namespace) -> int:
    from edge.bench.household import HouseholdOptions, main

    return main(
        HouseholdOptions(
            devices=args.devices,
            conversations=args.conversations,
            seed=args.seed,
            cpus=args.cpus,
            busy=args.busy,
            nice=args.nice,
            profile=args.profile,
            config=args.config,
            settings=args.settings,
            json_out=args.json_out,
        )
    )


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
    from edge.errors import ModelError

    try:
        run(app.serve(cfg))
    except KeyboardInterrupt:
        pass
    except ModelError as exc:  # a missing or unverified model: one line, not a traceback
        print(f"edge: {exc}", file=sys.stderr)
        return 1
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
            fail_tools=tuple(args.fail_tool),
            hang_tools=tuple(args.hang_tool),
        )
    )


def _devices(args: argparse.Namespace) -> int:
    from edge import config
    from edge.devices_cli import run

    try:
        cfg = config.load(args.config)
    except config.ConfigError as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return 2
    return run(cfg, args.devices, getattr(args, "device_id", ""), getattr(args, "minutes", 0.0))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "sim":
        return _sim(args)
    if args.command == "devices":
        return _devices(args)
    if args.command == "check":
        from edge.check import run as run_check

        return run_check(args.config)
    if args.command == "models":
        from edge.models.commands import run as run_models

        return run_models(args)
    if args.command == "bench" and args.bench == "tools":
        from edge.bench import tool_calls

        return tool_calls.main(args.model, args.mode, args.json, args.commands)
    if args.command == "bench" and args.bench == "household":
        return _bench_household(args)
    if args.command == "bench" and args.bench == "fuzz":
        return _bench_fuzz(args)
    if args.command == "bench" and args.bench == "answers":
        from edge.bench import answers

        names = ("conversations", "seed", "config", "settings", "json_out")
        return answers.main(answers.AnswersOptions(**{n: getattr(args, n) for n in names}))
    if args.command == "bench" and args.bench == "soak":
        from edge.bench import soak

        fields = ("turns", "devices", "drop", "every", "seed", "config", "settings", "json_out")
        return soak.main(soak.SoakOptions(**{name: getattr(args, name) for name in fields}))
    if args.command == "bench" and args.bench == "vad":
        from edge.bench import hangover

        return hangover.main(args.json)
    if args.command == "bench":
        return _bench_latency(args)
    return 2
