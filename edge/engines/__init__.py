"""Shared inference engines (VAD, ASR, LLM, TTS): loaded once, run off the event loop."""
