"""Audio helpers: Opus (pyogg), resampling, WAV files."""
