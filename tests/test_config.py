from pathlib import Path

import pytest

from edge import config


def test_defaults_are_valid() -> None:
    cfg = config.load(env={})
    assert cfg.server.port == 8000 and cfg.server.http_port == 8003
    assert cfg.audio.downlink_sample_rate == 24000 and cfg.audio.frame_duration_ms == 60


def test_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text('[server]\nport = 9000\n[vad]\nend_silence_ms = 500\n[auth]\ntokens = ["a"]\n')
    cfg = config.load(path, env={"EDGE_SERVER_PORT": "9100", "EDGE_AUTH_ENABLED": "true"})
    assert cfg.server.port == 9100  # the environment wins over the file
    assert cfg.vad.end_silence_ms == 500 and cfg.auth.enabled and cfg.auth.tokens == ["a"]


@pytest.mark.parametrize(
    ("toml", "env", "key"),
    [
        ("[server]\nport = 'x'\n", {}, "server.port"),
        ("[server]\nprot = 1\n", {}, "server.prot"),
        ("", {"EDGE_SERVER_PORT": "eighty"}, "server.port"),
        ("", {"EDGE_AUDIO_DOWNLINK_SAMPLE_RATE": "22050"}, "audio.downlink_sample_rate"),
        ("", {"EDGE_AUDIO_FRAME_DURATION_MS": "50"}, "audio.frame_duration_ms"),
        ("", {"EDGE_SERVER_PROTOCOL_VERSION": "4"}, "server.protocol_version"),
        ("", {"EDGE_VAD_THRESHOLD": "1.5"}, "vad.threshold"),
        ("", {"EDGE_ASR_ENGINE": "sherpa-whisper"}, "asr.model_dir"),
        ("", {"EDGE_LLM_MODEL_PATH": "/nonexistent.gguf"}, "llm.model_path"),
        ("", {"EDGE_LLM_PROMPT_CACHE_MB": "-1"}, "llm.prompt_cache_mb"),
        ("", {"EDGE_LLM_PARALLEL": "0"}, "llm.parallel"),
        ("", {"EDGE_AUTH_ENABLED": "maybe"}, "auth.enabled"),
        ("[server]\nhttp_port = 8000\n", {}, "server.http_port"),
        ("server = 1\n", {}, "server"),
        ("[server\n", {}, "invalid TOML"),
    ],
)
def test_wrong_values_fail_with_one_line_naming_the_key(
    tmp_path: Path, toml: str, env: dict[str, str], key: str
) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(toml)
    with pytest.raises(config.ConfigError) as err:
        config.load(path, env=env)
    assert key in str(err.value) and "\n" not in str(err.value)


def test_missing_file() -> None:
    with pytest.raises(config.ConfigError, match="not found"):
        config.load("/nonexistent/edge.toml", env={})
