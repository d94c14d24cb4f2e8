"""The piper voice as the server loads it."""

from __future__ import annotations

from tests.helpers import ServerThread


def test_voice_runs_without_onnxruntime_memory_arena(harness: ServerThread) -> None:
    """The arena would keep the longest sentence's peak for the life of the process; the
    default voice is loaded without it, and still speaks."""
    tts = harness.engines.tts
    options = tts._voice.session.get_session_options()
    assert options.enable_cpu_mem_arena is False
    pcm = tts.synthesize_pcm("The capital of France is Paris, on the river Seine.", 16000)
    assert len(pcm) > 16000  # over a second of speech
    assert abs(pcm.astype(int)).max() > 1000  # not silence
