"""Typed settings: the schema (`schema`: every section, its fields and their checks) and where the
values come from (`loading`: one TOML file plus `EDGE_<SECTION>_<KEY>` environment overrides).

A wrong value fails at start-up with one line that names the key (`ConfigError`), never at the
first conversation.
"""

from edge.config.loading import env_name, load, with_overrides
from edge.config.schema import (
    DEFAULT_SYSTEM_PROMPT,
    AsrConfig,
    AudioConfig,
    AuthConfig,
    Config,
    LlmConfig,
    McpServerConfig,
    MemoryConfig,
    ModelsConfig,
    ServerConfig,
    SessionConfig,
    ToolsConfig,
    TtsConfig,
    VadConfig,
)
from edge.errors import ConfigError

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "AsrConfig",
    "AudioConfig",
    "AuthConfig",
    "Config",
    "ConfigError",
    "LlmConfig",
    "McpServerConfig",
    "MemoryConfig",
    "ModelsConfig",
    "ServerConfig",
    "SessionConfig",
    "ToolsConfig",
    "TtsConfig",
    "VadConfig",
    "env_name",
    "load",
    "with_overrides",
]
