"""The `edge models` subcommands; also `python3 -m edge.models` on a machine without edge's
dependencies (an Ansible controller), since nothing here needs more than the standard library."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.errors import ModelError
from edge.models.catalog import entry, load_catalog
from edge.models.manager import (
    ModelStore,
    active_profile,
    is_downloaded_model,
    profile_models,
    profile_problems,
    pull_profile,
    use,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="list, download, verify and choose model profiles")
    models.add_argument("--config", type=Path, help="TOML config file (cache and state folders)")
    models.add_argument("--dir", type=Path, help="models folder (default: <cache>/models)")
    verbs = models.add_subparsers(dest="models", required=True)
    verbs.add_parser("list", help="profiles, their models, and what is here")
    pull = verbs.add_parser("pull", help="download and verify a profile's models")
    pull.add_argument("profile")
    pull.add_argument(
        "--pin", action="store_true", help="trust first downloads the catalog pins no digest for"
    )
    pull.add_argument(
        "--downloads-only",
        action="store_true",
        help="skip models that come from PyPI packages (on a controller that only downloads)",
    )
    verify = verbs.add_parser("verify", help="re-hash a profile's files (default: the active one)")
    verify.add_argument("profile", nargs="?")
    verbs.add_parser("use", help="make edge serve load this profile").add_argument("profile")


def run(args: argparse.Namespace) -> int:
    from edge import config

    try:
        cfg = config.load(args.config)
        models_dir = args.dir or cfg.cache_path / "models"
        store = ModelStore(models_dir)
        active = active_profile(cfg)
        if args.models == "list":
            return _list(store, active)
        if args.models == "pull":
            for line in pull_profile(
                store, args.profile, pin=args.pin, downloads_only=args.downloads_only
            ):
                print(line)
            print(f"profile {args.profile} is ready in {models_dir}")
            return 0
        if args.models == "verify":
            profile = args.profile or active
            problems = profile_problems(store, profile)
            for problem in problems:
                print(problem)
            print(f"profile {profile}: " + ("not ok" if problems else "ok, every file verified"))
            return 1 if problems else 0
        problems = use(store, cfg.state_path, args.profile)
        for problem in problems:
            print(problem)
        if problems:
            print(f"profile {args.profile} is not complete: edge models pull {args.profile}")
            return 1
        configured = cfg.models.profile
        if configured and configured != args.profile:
            print(f"note: the config's models.profile = {configured!r} wins over this choice")
            return 1
        print(f"edge serve now loads profile {args.profile} (restart the service)")
        return 0
    except ModelError as exc:
        print(f"edge models: {exc}", file=sys.stderr)
        return 1
    except config.ConfigError as exc:  # one line, like edge serve
        print(f"edge: {exc}", file=sys.stderr)
        return 2


def _list(store: ModelStore, active: str) -> int:
    catalog = load_catalog()
    for profile in catalog["profiles"]:
        problems = profile_problems(store, profile, rehash=False)
        state = "ready" if not problems else "not downloaded"
        print(f"{profile}{' (active)' if profile == active else ''}: {state}")
        for role, name in profile_models(profile).items():
            model = entry(name)
            size = model.get("size") or model.get("approx_size")
            where = "download" if is_downloaded_model(model) else "PyPI package"
            mb = f", {size / 1e6:.0f} MB" if size else ""
            print(f"  {role:4} {name} ({model['engine']}, {where}{mb}; {model['license']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m edge.models")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["models", *(argv if argv is not None else sys.argv[1:])]))
