"""Where settings come from: one TOML file, then `EDGE_<SECTION>_<KEY>` environment variables
(which win), checked against the schema (`edge.config.schema`) by pydantic. Whatever is wrong
comes back as one `ConfigError` line that names the key (and the variable, when it came from the
environment)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from edge.config.schema import Config
from edge.errors import ConfigError

_TOP_LEVEL = ("cache_dir", "state_dir", "log_level")


def env_name(section: str, key: str) -> str:
    """The environment variable that overrides `section.key`."""
    return f"EDGE_{section.upper()}_{key.upper()}"


def _sections() -> dict[str, type[BaseModel]]:
    return {
        name: field.annotation
        for name, field in Config.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    }


def load(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Read the TOML file (if any), apply EDGE_* overrides, check. Raises ConfigError."""
    env = dict(os.environ) if env is None else env
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path}: not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: invalid TOML ({exc})") from None
    variables: dict[tuple[str, ...], str] = {}  # key → the variable that set it
    for name, section in _sections().items():
        for key in section.model_fields:
            variable = env_name(name, key)
            if variable in env:
                table = raw.setdefault(name, {})
                if not isinstance(table, dict):
                    raise ConfigError(f"config key {name}: expected a [{name}] table")
                table[key] = env[variable]
                variables[(name, key)] = variable
    for key in _TOP_LEVEL:
        variable = f"EDGE_{key.upper()}"
        if variable in env:
            raw[key] = env[variable]
            variables[(key,)] = variable
    return validated(raw, variables)


def with_overrides(config: Config, **sections: dict[str, Any]) -> Config:
    """A copy with some section fields replaced (the CLI flags, tests), checked again."""
    data = config.model_dump()
    for name, values in sections.items():
        data[name] = {**data[name], **values}
    return validated(data)


def validated(data: dict[str, Any], variables: dict[tuple[str, ...], str] | None = None) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, variables or {})) from None


def _one_line(error: ValidationError, variables: dict[tuple[str, ...], str]) -> str:
    """The first problem as `config key section.key: what is wrong`."""
    first = error.errors()[0]
    loc = tuple(str(part) for part in first["loc"])
    key = "".join(f"[{part}]" if part.isdigit() else f".{part}" for part in loc).lstrip(".")
    kind = first["type"]
    if kind == "extra_forbidden":
        message = "unknown setting"
    elif kind == "model_type" and len(loc) == 1:
        message = f"expected a [{loc[0]}] table"
    else:
        message = str(first["msg"]).removeprefix("Value error, ")
        if kind != "value_error" and "input" in first:
            shown = repr(first["input"])
            message += f", got {shown if len(shown) <= 60 else shown[:57] + '...'}"
    variable = variables.get(loc[:2]) or variables.get(loc[:1])
    where = f"{key} ({variable})" if variable else key
    return f"config key {where}: {message}".replace("\n", " ")
