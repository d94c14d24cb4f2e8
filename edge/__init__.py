"""edge: an offline voice-assistant server for stock xiaozhi-esp32 devices."""

__version__ = "0.1.0"
