"""Typed settings: one TOML file plus `EDGE_<SECTION>_<KEY>` environment overrides.

Every default works with the embedded models. A wrong value fails at start-up with one line that
names the key (`ConfigError`), never at the first conversation.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import ConfigError

DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly voice assistant on a small speaker. Your words are spoken aloud, so "
    "answer in one or two short, natural sentences. No lists, no markdown, no emoji, no code. "
    "Always reply in the language the user speaks."
)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = 8000  # WebSocket
    http_port: int = 8003  # OTA/config endpoint and /health
    websocket_path: str = "/xiaozhi/v1/"
    # The URL given to devices in the OTA answer. Empty: built from the address the device used
    # to reach the HTTP endpoint, which is by definition reachable from the LAN.
    public_websocket_url: str = ""
    protocol_version: int = 1  # binary framing advertised in the OTA answer (1, 2 or 3)
    max_sessions: int = 64
    timezone_offset_min: int | None = None  # None: the machine's local offset


@dataclass(frozen=True)
class AuthConfig:
    # Open on the LAN by default. With `enabled`, a device needs a token of its own, issued in
    # the config answer once the owner approved it (`edge devices approve`, or a pairing window
    # opened with `edge devices pair`), else HTTP 401 before the WebSocket upgrade. `tokens`
    # (shared, set by hand on the device) and `allowed_devices` (admitted by Device-Id alone,
    # which is the MAC address and easy to copy) are for firmware that cannot fetch a token.
    enabled: bool = False
    tokens: list[str] = field(default_factory=list)
    allowed_devices: list[str] = field(default_factory=list)
    # Per network address, over a sliding minute; 0 turns a limit off.
    attempts_per_minute: int = 120  # config calls and WebSocket upgrades together
    failures_per_minute: int = 10  # refused attempts; more and the address waits (HTTP 429)


@dataclass(frozen=True)
class AudioConfig:
    downlink_sample_rate: int = 24000
    frame_duration_ms: int = 60
    pacing_lead_frames: int = 3  # frames sent ahead of real time (device queue holds 40)
    gap_after_tts_start_ms: int = 80  # the device drops audio that beats its own state change
    stop_margin_ms: int = 150  # Wi-Fi jitter allowance before `tts stop`


@dataclass(frozen=True)
class VadConfig:
    threshold: float = 0.5
    # Silence that ends an utterance in auto/realtime mode: shorter answers sooner, longer cuts
    # fewer sentences off at a pause.
    end_silence_ms: int = 700
    # A pause this long starts speech recognition on the speech so far, so that its text is
    # ready when the pause reaches end_silence_ms (0: recognise only then). A pause that ends
    # in more speech wastes that recognition. At 100 the text is ready 60-100 ms sooner than at
    # 200; on the shipped human recordings both see the same pauses and give the same text.
    early_asr_ms: int = 100
    # At that pause, also have the model answer the text while the hang-over runs, held back
    # (nothing sent, stored or run) until the pause is confirmed, dropped if the user speaks on.
    # Only when the model is free: under load it would hold other devices up.
    preemptive_answer: bool = True
    min_speech_ms: int = 250
    max_utterance_s: float = 20.0
    # Fallback: a listening turn with speech whose device stopped sending audio ends after this.
    no_audio_timeout_s: float = 2.0
    pool_size: int = 4  # VAD instances kept ready (~24 MB each); more are made when needed


@dataclass(frozen=True)
class AsrConfig:
    engine: str = "faster-whisper"  # or "sherpa-whisper", "sherpa-sense-voice", "sherpa-paraformer"
    model_dir: str = ""  # empty: the embedded Whisper tiny.en from PyPI
    language: str = "en"
    threads: int = 2
    timeout_s: float = 30.0


@dataclass(frozen=True)
class LlmConfig:
    model_path: str = ""  # empty: the embedded Qwen2.5-Coder-0.5B-Instruct, assembled once
    context_tokens: int = 2048
    threads: int = 2
    max_tokens: int = 160
    temperature: float = 0.4
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    # Turns of the conversation in the prompt, at most. Past it the older half goes at once,
    # so the prompt only grows between drops and the model does not re-read it every turn.
    history_turns: int = 6
    timeout_s: float = 60.0
    # A long answer gives the model up after a sentence when another device waits (fairness).
    yield_between_sentences: bool = True
    max_waiting: int = 16  # requests queued for the model; more are refused with an apology
    # Generations written at once, one sequence each, advanced together token by token.
    parallel: int = 4
    # Saved model states of recent prompts (~12 KB per token with the 0.5B model), so that a
    # device's prompt survives other devices' turns instead of being read again (0: off).
    prompt_cache_mb: int = 64
    # "local" (llama.cpp in this process) or "openai": an OpenAI-compatible server at `url`
    # (llama-server, Ollama, vLLM), e.g. url = "http://192.168.1.20:8080/v1".
    backend: str = "local"
    url: str = ""
    model: str = ""  # the model name sent to that server (Ollama and vLLM need it)
    api_key: str = ""


@dataclass(frozen=True)
class TtsConfig:
    voice_model: str = ""  # empty: the embedded piper voice (en_US joe medium)
    length_scale: float = 1.0
    timeout_s: float = 30.0


@dataclass(frozen=True)
class SessionConfig:
    # Close a connection after this long without user speech (never while we are speaking). The
    # device itself drops a channel that got no data for 120 s, so stay below that.
    idle_timeout_s: float = 90.0
    farewell: str = "Goodbye!"  # spoken before an idle close; empty: close silently
    wake_words: list[str] = field(
        default_factory=lambda: [
            "你好小智",
            "你好小志",
            "小爱同学",
            "hi esp",
            "hey jarvis",
            "alexa",
        ]
    )
    greeting: str = ""  # spoken after a known wake word; empty: listen silently
    # Said on their own (or after "okay", "thanks"…), these end the conversation at once: the
    # farewell, then close, without asking the model. Paraphrases reach the model's own
    # end_conversation tool.
    exit_phrases: list[str] = field(
        default_factory=lambda: [
            "goodbye",
            "bye",
            "bye bye",
            "good night",
            "see you",
            "stop talking",
            "再见",
            "拜拜",
            "退出",
            "晚安",
        ]
    )
    emotion: str = "neutral"
    hello_timeout_s: float = 10.0  # a connection that never says hello is closed


@dataclass(frozen=True)
class McpServerConfig:
    """One external MCP server, started over stdio: `[[tools.mcp_servers]]` in the TOML file."""

    name: str = ""
    command: str = ""
    args: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)  # "KEY=VALUE" items added to its environment
    start_timeout_s: float = 20.0
    call_timeout_s: float = 10.0


@dataclass(frozen=True)
class ToolsConfig:
    enabled: bool = True
    # "template": the GGUF chat template's own tool format, read tolerantly (default).
    # "grammar": output constrained by a JSON-schema grammar (more reliable calls, JSON answers).
    mode: str = "template"
    timezone: str = ""  # IANA name for the time and reminders; empty: the machine's zone
    call_timeout_s: float = 8.0  # built-in tools; device tools use device_call_timeout_s
    device_call_timeout_s: float = 8.0  # the reference server waits 30 s; a listener will not
    # A turn that starts before the device has listed its tools waits this long for the list.
    device_list_wait_s: float = 3.0
    reminders: bool = True
    mcp_servers: list[McpServerConfig] = field(default_factory=list)


@dataclass(frozen=True)
class MemoryConfig:
    enabled: bool = True
    path: str = ""  # empty: memory.db in the state folder (state_dir)
    summaries: bool = True  # a short long-term summary per device, written after a session
    summary_max_tokens: int = 96


@dataclass(frozen=True)
class ModelsConfig:
    # A profile of models/catalog.toml. Empty: the one chosen with `edge models use`, else
    # "embedded". The explicit paths of [asr], [llm] and [tts] win over the profile.
    profile: str = ""


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    tools: ToolsConfig = field(default_factory=ToolsConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    cache_dir: str = ""  # empty: $EDGE_CACHE_DIR, else ~/.cache/edge
    # Databases (memory, device registry). Empty: $EDGE_STATE_DIR, else systemd's
    # $STATE_DIRECTORY, else ~/.local/share/edge.
    state_dir: str = ""
    log_level: str = "INFO"

    @property
    def cache_path(self) -> Path:
        raw = self.cache_dir or os.environ.get("EDGE_CACHE_DIR") or "~/.cache/edge"
        return Path(raw).expanduser()

    @property
    def state_path(self) -> Path:
        raw = (
            self.state_dir
            or os.environ.get("EDGE_STATE_DIR")
            or os.environ.get("STATE_DIRECTORY")
            or "~/.local/share/edge"
        )
        return Path(raw).expanduser()

    @property
    def memory_file(self) -> Path:
        return (
            Path(self.memory.path).expanduser()
            if self.memory.path
            else self.state_path / "memory.db"
        )

    @property
    def registry_file(self) -> Path:
        return self.state_path / "devices.db"


def _resolve(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


# Section name → its dataclass (annotations are strings here, so resolve them).
_SECTIONS: dict[str, type] = {
    name: hint
    for name, hint in _resolve(Config).items()
    if isinstance(hint, type) and dataclasses.is_dataclass(hint)
}


_TOP_LEVEL = ("cache_dir", "state_dir", "log_level")


def _coerce(key: str, value: Any, hint: Any, from_env: bool) -> Any:
    """Convert/check one value against its annotation; raise ConfigError naming the key."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (from_env and value == ""):
            return None
        return _coerce(key, value, args[0], from_env)
    if hint is bool:
        if from_env and isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key}: expected true or false, got {value!r}")
    if hint in (int, float):
        if from_env and isinstance(value, str):
            try:
                return hint(value)
            except ValueError:
                pass
        # TOML has both kinds: an int is a fine float, a float is no int; a bool is neither.
        accepted = int if hint is int else int | float
        if isinstance(value, accepted) and not isinstance(value, bool):
            return hint(value)
        wanted = "an integer" if hint is int else "a number"
        raise ConfigError(f"config key {key}: expected {wanted}, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"config key {key}: expected a string, got {value!r}")
    if origin is list and dataclasses.is_dataclass(typing.get_args(hint)[0]):
        item_cls = typing.get_args(hint)[0]
        if from_env or not isinstance(value, list):
            raise ConfigError(f"config key {key}: expected a list of tables ([[{key}]])")
        items = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise ConfigError(f"config key {key}[{index}]: expected a table")
            items.append(_build_section(f"{key}[{index}]", item_cls, item, {}))
        return items
    if origin is list:
        if from_env and isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return list(value)
        raise ConfigError(f"config key {key}: expected a list of strings, got {value!r}")
    raise ConfigError(f"config key {key}: unsupported type {hint!r}")


def env_name(section: str, key: str) -> str:
    """The environment variable that overrides `section.key`."""
    return f"EDGE_{section.upper()}_{key.upper()}"


def _build_section(name: str, cls: type, raw: dict[str, Any], env: dict[str, str]) -> Any:
    hints = _resolve(cls)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in hints:
            raise ConfigError(f"config key {name}.{key}: unknown setting")
        values[key] = _coerce(f"{name}.{key}", value, hints[key], from_env=False)
    for key, hint in hints.items():
        variable = env_name(name, key)
        if variable in env:
            values[key] = _coerce(f"{name}.{key} ({variable})", env[variable], hint, from_env=True)
    return cls(**values)


def load(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Read the TOML file (if any), apply EDGE_* overrides, validate. Raises ConfigError."""
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
    sections: dict[str, Any] = {}
    top: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"config key {key}: expected a [{key}] table")
            continue
        if key not in _TOP_LEVEL:
            raise ConfigError(f"config key {key}: unknown setting")
        top[key] = _coerce(key, value, str, from_env=False)
    for name, cls in _SECTIONS.items():
        sections[name] = _build_section(name, cls, raw.get(name, {}), env)
    for key in _TOP_LEVEL:
        if f"EDGE_{key.upper()}" in env:
            top[key] = env[f"EDGE_{key.upper()}"]
    config = Config(**sections, **top)
    validate(config)
    return config


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"config key {key}: {message}")


def validate(c: Config) -> None:
    for key, port in (("server.port", c.server.port), ("server.http_port", c.server.http_port)):
        _check(0 <= port <= 65535, key, f"{port} is not a TCP port")
    _check(
        c.server.port != c.server.http_port or c.server.port == 0,
        "server.http_port",
        "must differ from server.port",
    )
    _check(c.server.protocol_version in (1, 2, 3), "server.protocol_version", "must be 1, 2 or 3")
    _check(c.server.websocket_path.startswith("/"), "server.websocket_path", "must start with /")
    _check(c.llm.backend in ("local", "openai"), "llm.backend", "must be 'local' or 'openai'")
    _check(
        c.llm.backend != "openai" or c.llm.url.startswith(("http://", "https://")),
        "llm.url",
        "the openai backend needs the server's URL, like http://host:8080/v1",
    )
    _check(c.llm.max_waiting >= 1, "llm.max_waiting", "must be at least 1")
    _check(1 <= c.llm.parallel <= 16, "llm.parallel", "must be between 1 and 16")
    _check(c.llm.prompt_cache_mb >= 0, "llm.prompt_cache_mb", "must be 0 (off) or more")
    url = c.server.public_websocket_url
    _check(
        not url or url.startswith(("ws://", "wss://")),
        "server.public_websocket_url",
        "must start with ws:// or wss://",
    )
    _check(c.server.max_sessions >= 1, "server.max_sessions", "must be at least 1")
    _check(
        c.audio.downlink_sample_rate in (8000, 12000, 16000, 24000, 48000),
        "audio.downlink_sample_rate",
        "must be an Opus rate (8000, 12000, 16000, 24000 or 48000)",
    )
    _check(
        c.audio.frame_duration_ms in (20, 40, 60),
        "audio.frame_duration_ms",
        "must be 20, 40 or 60",
    )
    _check(0 <= c.audio.pacing_lead_frames <= 5, "audio.pacing_lead_frames", "must be 0..5")
    _check(c.audio.gap_after_tts_start_ms >= 0, "audio.gap_after_tts_start_ms", "must be >= 0")
    _check(0.0 < c.vad.threshold < 1.0, "vad.threshold", "must be between 0 and 1")
    _check(c.vad.end_silence_ms >= 100, "vad.end_silence_ms", "must be at least 100")
    _check(c.vad.early_asr_ms >= 0, "vad.early_asr_ms", "must be 0 (off) or more")
    _check(c.vad.max_utterance_s > 1.0, "vad.max_utterance_s", "must be more than 1 s")
    _check(c.vad.pool_size >= 0, "vad.pool_size", "must be >= 0")
    _check(
        c.asr.engine
        in ("faster-whisper", "sherpa-whisper", "sherpa-sense-voice", "sherpa-paraformer"),
        "asr.engine",
        f"unknown engine {c.asr.engine!r}",
    )
    if c.asr.model_dir:
        _check(
            Path(c.asr.model_dir).is_dir(), "asr.model_dir", f"{c.asr.model_dir} is not a folder"
        )
    elif c.asr.engine != "faster-whisper":
        _check(False, "asr.model_dir", f"engine {c.asr.engine} needs a model folder")
    if c.llm.model_path:
        _check(Path(c.llm.model_path).is_file(), "llm.model_path", f"{c.llm.model_path} not found")
    if c.tts.voice_model:
        _check(
            Path(c.tts.voice_model).is_file(), "tts.voice_model", f"{c.tts.voice_model} not found"
        )
    _check(c.llm.max_tokens >= 8, "llm.max_tokens", "must be at least 8")
    _check(c.llm.context_tokens >= 512, "llm.context_tokens", "must be at least 512")
    for key, value in (
        ("asr.threads", c.asr.threads),
        ("llm.threads", c.llm.threads),
    ):
        _check(value >= 1, key, "must be at least 1")
    _check(c.tools.mode in ("template", "grammar"), "tools.mode", "must be template or grammar")
    if c.tools.timezone:
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(c.tools.timezone)
        except Exception:
            _check(False, "tools.timezone", f"unknown time zone {c.tools.timezone!r}")
    for key, seconds in (
        ("tools.call_timeout_s", c.tools.call_timeout_s),
        ("tools.device_call_timeout_s", c.tools.device_call_timeout_s),
    ):
        _check(seconds > 0, key, "must be positive")
    names = [s.name for s in c.tools.mcp_servers]
    for index, server in enumerate(c.tools.mcp_servers):
        where = f"tools.mcp_servers[{index}]"
        _check(bool(server.name), f"{where}.name", "is required")
        _check(bool(server.command), f"{where}.command", "is required")
        _check(names.count(server.name) == 1, f"{where}.name", f"{server.name!r} is used twice")
    for key, limit in (
        ("auth.attempts_per_minute", c.auth.attempts_per_minute),
        ("auth.failures_per_minute", c.auth.failures_per_minute),
    ):
        _check(limit >= 0, key, "must be 0 (no limit) or more")
    _check(c.session.idle_timeout_s > 0, "session.idle_timeout_s", "must be positive")
    _check(
        c.log_level.upper() in ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR"),
        "log_level",
        f"unknown level {c.log_level!r}",
    )


def with_overrides(config: Config, **sections: dict[str, Any]) -> Config:
    """A copy with some section fields replaced (used by the CLI flags and tests)."""
    changes = {
        name: dataclasses.replace(getattr(config, name), **values)
        for name, values in sections.items()
    }
    result = dataclasses.replace(config, **changes)
    validate(result)
    return result
