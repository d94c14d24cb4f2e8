"""Every setting, its type, its default and its check, section by section.

Every default works with the embedded models. The sections are immutable pydantic models: a
value of the wrong type, a choice that is not offered (the `Literal` settings) or a value a check
refuses makes loading fail with one line that names the key (`edge.config.loading`), at start-up,
never at the first conversation. Checks sit beside the fields they check; those that need another
field of the section read it from `info.data` (fields are checked in the order written here).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly voice assistant on a small speaker. Your words are spoken aloud, so "
    "answer in one or two short, natural sentences. No lists, no markdown, no emoji, no code. "
    "Always reply in the language the user speaks."
)


def _split_commas(value: object) -> object:
    """A list given as one string (an environment variable): "a, b" is ["a", "b"]."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _empty_is_none(value: object) -> object:
    return None if value == "" else value


Words = Annotated[list[str], BeforeValidator(_split_commas)]
Port = Annotated[int, Field(ge=0, le=65535)]
Positive = Annotated[float, Field(gt=0)]


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed, checked like a loaded one."""
        return self.model_validate({**dict(self), **changes})


class ServerConfig(Section):
    host: str = "0.0.0.0"
    port: Port = 8000  # WebSocket
    http_port: Port = 8003  # OTA/config endpoint and /health
    websocket_path: str = "/xiaozhi/v1/"
    # The URL given to devices in the OTA answer. Empty: built from the address the device used
    # to reach the HTTP endpoint, which is by definition reachable from the LAN.
    public_websocket_url: str = ""
    protocol_version: Literal[1, 2, 3] = 1  # binary framing advertised in the OTA answer
    max_sessions: int = Field(default=64, ge=1)
    # Connections one address may hold at once (0: no cap): one LAN host that keeps opening
    # idle sessions must not take the whole limit from every other device. A household's
    # devices each have their own address; the benchmark, all on loopback, lifts it.
    max_sessions_per_address: int = Field(default=16, ge=0)
    # HTTP connections one address may hold at once (0: no cap); past it, 503 at once. A device
    # makes one config call per boot; 1,100 half-open requests from one host once used up
    # every file descriptor.
    max_http_per_address: int = Field(default=32, ge=0)
    # An HTTP request's line and headers must come within this, and then its body; a kept-alive
    # connection idle this long is closed.
    http_timeout_s: Positive = 10.0
    timezone_offset_min: Annotated[int | None, BeforeValidator(_empty_is_none)] = None

    @field_validator("http_port")
    @classmethod
    def _ports_differ(cls, port: int, info: ValidationInfo) -> int:
        if port != 0 and port == info.data.get("port"):
            raise ValueError("must differ from server.port")
        return port

    @field_validator("websocket_path")
    @classmethod
    def _absolute_path(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError("must start with /")
        return path

    @field_validator("public_websocket_url")
    @classmethod
    def _websocket_url(cls, url: str) -> str:
        if url and not url.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return url


class AuthConfig(Section):
    # Open on the LAN by default. With `enabled`, a device needs a token of its own, issued in
    # the config answer once the owner approved it (`edge devices approve`, or a pairing window
    # opened with `edge devices pair`), else HTTP 401 before the WebSocket upgrade. `tokens`
    # (shared, set by hand on the device) and `allowed_devices` (admitted by Device-Id alone,
    # which is the MAC address and easy to copy) are for firmware that cannot fetch a token.
    enabled: bool = False
    tokens: Words = Field(default_factory=list)
    allowed_devices: Words = Field(default_factory=list)
    # Per network address, over a sliding minute; 0 turns a limit off.
    attempts_per_minute: int = Field(
        default=120, ge=0
    )  # config calls and WebSocket upgrades together
    failures_per_minute: int = Field(
        default=10, ge=0
    )  # refused attempts; more and the address waits


class AudioConfig(Section):
    downlink_sample_rate: int = 24000
    frame_duration_ms: Literal[20, 40, 60] = 60
    pacing_lead_frames: int = Field(default=3, ge=0, le=5)  # frames sent ahead of real time
    gap_after_tts_start_ms: int = Field(
        default=80, ge=0
    )  # the device drops audio that beats its state
    stop_margin_ms: int = 150  # Wi-Fi jitter allowance before `tts stop`

    @field_validator("downlink_sample_rate")
    @classmethod
    def _opus_rate(cls, rate: int) -> int:
        if rate not in (8000, 12000, 16000, 24000, 48000):
            raise ValueError("must be an Opus rate (8000, 12000, 16000, 24000 or 48000)")
        return rate


class VadConfig(Section):
    threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    # Silence that ends an utterance in auto/realtime mode: shorter answers sooner, longer cuts
    # fewer sentences off at a pause.
    end_silence_ms: int = Field(default=700, ge=100)
    # A pause this long starts speech recognition on the speech so far, so that its text is
    # ready when the pause reaches end_silence_ms (0: recognise only then). A pause that ends
    # in more speech wastes that recognition. The VAD sees a pause only once its speech
    # probability has fallen (~130 ms after the last word), so at 64 (two of its 32 ms windows)
    # the pause is seen ~190 ms after the speech ends, at 100 ~260 ms: commands, which may end
    # the turn at that pause, are answered ~60 ms sooner. On the shipped human recordings and
    # 67 spoken questions, commands and fragments, 64 and 100 see the same pauses inside the
    # speech, but for two more at commas (where a timer's longer pause rule still holds).
    early_asr_ms: int = Field(default=64, ge=0)
    # At that pause, also have the model answer the text while the hang-over runs, held back
    # (nothing sent, stored or run) until the pause is confirmed, dropped if the user speaks on.
    # Only when the model is free: under load it would hold other devices up.
    preemptive_answer: bool = True
    # A household command (edge/commands) recognised at that pause ends the utterance there:
    # "what time is it" is answered ~300 ms sooner. A command cut short ("set the volume to")
    # is not a command, and waits for the hang-over as before.
    command_ends_turn: bool = True
    # ... and a timer or reminder command (or a question about them) ends it once the pause is
    # this long, not end_silence_ms: ~400 ms sooner. Longer than the pause that ends the other
    # commands, as people go on after these more often ("remind me in ten minutes … to call
    # Bob"); a pause inside the reminder's words longer than this cuts its text short.
    timer_end_silence_ms: int = Field(default=300, ge=0)
    min_speech_ms: int = 250
    max_utterance_s: float = Field(default=20.0, gt=1.0)
    # Fallback: a listening turn with speech whose device stopped sending audio ends after this.
    no_audio_timeout_s: Positive = 2.0
    pool_size: int = Field(default=1, ge=0)  # idle VAD instances kept (~20 MB each; not at rest)


AsrEngineName = Literal[
    "faster-whisper", "sherpa-whisper", "sherpa-sense-voice", "sherpa-paraformer"
]


class AsrConfig(Section):
    engine: AsrEngineName = "faster-whisper"
    model_dir: str = ""  # empty: the embedded Whisper tiny.en from PyPI
    language: str = "en"
    threads: int = Field(default=2, ge=1)
    timeout_s: Positive = 30.0

    @field_validator("model_dir")
    @classmethod
    def _model_folder(cls, folder: str, info: ValidationInfo) -> str:
        engine = info.data.get("engine", "faster-whisper")
        if folder and not Path(folder).is_dir():
            raise ValueError(f"{folder} is not a folder")
        if not folder and engine != "faster-whisper":
            raise ValueError(f"engine {engine} needs a model folder")
        return folder


class LlmConfig(Section):
    model_path: str = ""  # empty: the embedded Qwen2.5-Coder-0.5B-Instruct, assembled once
    context_tokens: int = Field(default=2048, ge=512)
    threads: int = Field(default=2, ge=1)
    # Fewer threads while other processes keep the cores busy, `threads` again when they stop
    # (edge/engines/llm/contention.py): llama.cpp's threads spin-wait for each other.
    adapt_threads: bool = True
    # The attention cache's number format. "q8_0-keys": keys in q8_0 (about half the bytes of
    # f16), values in f16: 14 MB less with the default cells, prompts read ~4 % slower, each
    # token as fast. "q8_0": values too, with flash attention, which a quantized value cache
    # needs: 29 MB less, but prompts read 10-25 % slower, which a busy board feels first.
    # Household benchmark, q8_0 against f16: first token p95 1.2 s instead of 1.0 s.
    kv_cache_type: Literal["f16", "q8_0-keys", "q8_0"] = "q8_0-keys"
    max_tokens: int = Field(default=160, ge=8)
    temperature: float = 0.4
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    # Turns of the conversation in the prompt, at most. Past it the older half goes at once,
    # so the prompt only grows between drops and the model does not re-read it every turn.
    history_turns: int = 6
    timeout_s: Positive = 60.0
    # A long answer gives the model up after a sentence when another device waits (fairness).
    yield_between_sentences: bool = True
    max_waiting: int = Field(default=16, ge=1)  # requests queued for the model; more get an apology
    # Generations written at once, one sequence each, advanced together token by token.
    parallel: int = Field(default=4, ge=1, le=16)
    # Saved model states of recent prompts (~9 KB per token with the 0.5B model), so that a
    # device's prompt survives other devices' turns instead of being read again (0: off). The
    # shared prefix's is kept whole (~9 MB with a device's tools); a device's, only from where
    # it parts from the prefix (~2 MB: its summary and history). 32 holds the prefix and about
    # ten devices' (summaries are not kept).
    prompt_cache_mb: int = Field(default=32, ge=0)
    # The same kept on disk in the state folder (the shared prefix, each device's last prompt),
    # so that a restart is ready at once and a returning device reads only its words (0: off).
    saved_states_mb: int = Field(default=256, ge=0)
    # "local" (llama.cpp in this process) or "openai": an OpenAI-compatible server at `url`
    # (llama-server, Ollama, vLLM), e.g. url = "http://192.168.1.20:8080/v1".
    backend: Literal["local", "openai"] = "local"
    url: str = ""
    model: str = ""  # the model name sent to that server (Ollama and vLLM need it)
    api_key: str = ""

    @field_validator("model_path")
    @classmethod
    def _model_file(cls, path: str) -> str:
        if path and not Path(path).is_file():
            raise ValueError(f"{path} not found")
        return path

    @field_validator("url")
    @classmethod
    def _server_url(cls, url: str, info: ValidationInfo) -> str:
        if info.data.get("backend") == "openai" and not url.startswith(("http://", "https://")):
            raise ValueError("the openai backend needs the server's URL, like http://host:8080/v1")
        return url


class TtsConfig(Section):
    voice_model: str = ""  # empty: the embedded piper voice (en_US joe medium)
    length_scale: float = 1.0
    timeout_s: Positive = 30.0
    # onnxruntime's memory arena for the voice: a little faster, but it keeps the peak of the
    # longest sentence ever spoken (+300 MB after 150-character sentences). See engines/tts.py.
    memory_arena: bool = False

    @field_validator("voice_model")
    @classmethod
    def _voice_file(cls, path: str) -> str:
        if path and not Path(path).is_file():
            raise ValueError(f"{path} not found")
        return path


class SessionConfig(Section):
    # Close a connection after this long without user speech (never while we are speaking). The
    # device itself drops a channel that got no data for 120 s, so stay below that.
    idle_timeout_s: Positive = 90.0
    farewell: str = "Goodbye!"  # spoken before an idle close; empty: close silently
    wake_words: Words = Field(
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
    exit_phrases: Words = Field(
        default_factory=lambda: [
            *("goodbye", "bye", "bye bye", "good night", "see you", "stop talking"),
            *("再见", "拜拜", "退出", "晚安"),
        ]
    )
    emotion: str = "neutral"
    hello_timeout_s: Positive = 10.0  # a connection that never says hello is closed


class McpServerConfig(Section):
    """One external MCP server, started over stdio: `[[tools.mcp_servers]]` in the TOML file."""

    name: str = Field(default="", min_length=1)
    command: str = Field(default="", min_length=1)
    args: list[str] = Field(default_factory=list)
    env: list[str] = Field(default_factory=list)  # "KEY=VALUE" items added to its environment
    start_timeout_s: Positive = 20.0
    call_timeout_s: Positive = 10.0


class ToolsConfig(Section):
    enabled: bool = True
    # "template": the GGUF chat template's own tool format, read tolerantly (default).
    # "grammar": output constrained by a JSON-schema grammar (more reliable calls, JSON answers).
    mode: Literal["template", "grammar"] = "template"
    timezone: str = ""  # IANA name for the time and reminders; empty: the machine's zone
    call_timeout_s: Positive = 8.0  # built-in tools; device tools use device_call_timeout_s
    device_call_timeout_s: Positive = 8.0  # the reference server waits 30 s; a listener won't
    # A turn that starts before the device has listed its tools waits this long for the list.
    device_list_wait_s: float = 3.0
    reminders: bool = True
    # Household commands (volume, brightness, theme, timers, the time and date; English and
    # Chinese) carried out at once with the device's tools, before and without the model; what
    # is not recognised with confidence still goes to the model (edge/commands).
    local_commands: bool = True
    mcp_servers: list[McpServerConfig] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        if zone:
            try:
                ZoneInfo(zone)
            except Exception:
                raise ValueError(f"unknown time zone {zone!r}") from None
        return zone

    @field_validator("mcp_servers")
    @classmethod
    def _unique_names(cls, servers: list[McpServerConfig]) -> list[McpServerConfig]:
        names = [server.name for server in servers]
        for index, name in enumerate(names):
            if names.count(name) > 1:
                raise ValueError(f"[{index}].name {name!r} is used twice")
        return servers


class MemoryConfig(Section):
    enabled: bool = True
    path: str = ""  # empty: memory.db in the state folder (state_dir)
    summaries: bool = True  # a short long-term summary per device, written after a session
    summary_max_tokens: int = 96


class ModelsConfig(Section):
    # A profile of models/catalog.toml. Empty: the one chosen with `edge models use`, else
    # "embedded". The explicit paths of [asr], [llm] and [tts] win over the profile.
    profile: str = ""


class Config(Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)
    vad: VadConfig = Field(default_factory=VadConfig)
    asr: AsrConfig = Field(default_factory=AsrConfig)
    llm: LlmConfig = Field(default_factory=LlmConfig)
    tts: TtsConfig = Field(default_factory=TtsConfig)
    session: SessionConfig = Field(default_factory=SessionConfig)
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    cache_dir: str = ""  # empty: $EDGE_CACHE_DIR, else ~/.cache/edge
    # Databases (memory, device registry). Empty: $EDGE_STATE_DIR, else systemd's
    # $STATE_DIRECTORY, else ~/.local/share/edge.
    state_dir: str = ""
    log_level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR"] = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, level: object) -> object:
        return level.upper() if isinstance(level, str) else level

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
        if self.memory.path:
            return Path(self.memory.path).expanduser()
        return self.state_path / "memory.db"

    @property
    def registry_file(self) -> Path:
        return self.state_path / "devices.db"
