"""Opus encoding and decoding through pyogg's ctypes bindings to libopus.

pyogg 0.6.14a1 has no encoder/decoder classes, only the C functions (defined when Debian's
libopus0 and libopusfile0 are installed); these two small classes own one libopus state each.
An encoder/decoder is stateful: use one per audio stream. Each holds a lock around its libopus
state, because a sentence may still be encoding in a TTS worker thread when its session ends
and closes the encoder (a cancelled await does not stop the thread): the late frame then fails
with OpusError instead of writing into freed memory.
"""

from __future__ import annotations

import ctypes
import threading

import numpy as np

from edge.errors import OpusError

try:
    from pyogg import opus as _opus

    _opus.opus_encoder_create  # noqa: B018  (raises AttributeError when libopus is missing)
except (ImportError, AttributeError) as exc:  # pragma: no cover - depends on the machine
    raise ImportError(
        "Opus is unavailable: install Debian's libopus0 and libopusfile0 (pyogg needs both)"
    ) from exc

MAX_PACKET_BYTES = 4000  # libopus recommends 4000 bytes as a safe upper bound for one packet
_OPUS_SET_DTX = 4016
_OPUS_SET_COMPLEXITY = 4010
# libopus defaults to 10. At 6 and below it skips the costly analysis: a 60 ms frame of speech
# encodes in ~0.11 ms here instead of ~0.58 ms, for a difference hardly audible in speech on a
# small speaker. That is 5-50 ms less before a sentence's first packet, and less CPU per talker.
COMPLEXITY = 6
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


class OpusEncoder:
    """Mono 16-bit PCM → Opus packets of exactly `frame_ms`."""

    def __init__(
        self, sample_rate: int, frame_ms: int = 60, *, voip: bool = False, dtx: bool = False
    ) -> None:
        if sample_rate not in OPUS_RATES:
            raise ValueError(f"Opus cannot encode at {sample_rate} Hz")
        self._lock = threading.Lock()
        self._state = None
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        error = ctypes.c_int()
        app = _opus.OPUS_APPLICATION_VOIP if voip else _opus.OPUS_APPLICATION_AUDIO
        self._state = _opus.opus_encoder_create(sample_rate, 1, app, ctypes.byref(error))
        if error.value != 0 or not self._state:
            raise OpusError(f"opus_encoder_create failed ({error.value})")
        _opus.opus_encoder_ctl(self._state, _OPUS_SET_COMPLEXITY, COMPLEXITY)
        if dtx:
            _opus.opus_encoder_ctl(self._state, _OPUS_SET_DTX, 1)
        self._out = (ctypes.c_ubyte * MAX_PACKET_BYTES)()

    def encode(self, pcm: bytes | np.ndarray) -> bytes:
        samples = np.frombuffer(pcm, dtype=np.int16) if isinstance(pcm, bytes) else pcm
        if samples.dtype != np.int16 or samples.shape != (self.frame_samples,):
            raise ValueError(f"need {self.frame_samples} int16 samples, got {samples.shape}")
        samples = np.ascontiguousarray(samples)
        with self._lock:
            if not self._state:
                raise OpusError("the encoder is closed")
            n = _opus.opus_encode(
                self._state,
                samples.ctypes.data_as(ctypes.POINTER(_opus.opus_int16)),
                self.frame_samples,
                ctypes.cast(self._out, ctypes.POINTER(ctypes.c_ubyte)),
                MAX_PACKET_BYTES,
            )
            if n < 0:
                raise OpusError(f"opus_encode failed ({n})")
            return bytes(self._out[:n])

    def close(self) -> None:
        with self._lock:
            if self._state:
                _opus.opus_encoder_destroy(self._state)
                self._state = None

    def __del__(self) -> None:
        if hasattr(self, "_lock"):
            self.close()


class OpusDecoder:
    """Opus packets → mono 16-bit PCM. Sized for the largest legal packet (120 ms), so clients
    that send 20, 40 or 60 ms frames all decode."""

    def __init__(self, sample_rate: int = 16000) -> None:
        if sample_rate not in OPUS_RATES:
            raise ValueError(f"Opus cannot decode at {sample_rate} Hz")
        self._lock = threading.Lock()
        self._state = None
        self.sample_rate = sample_rate
        self._max_samples = sample_rate * 120 // 1000
        error = ctypes.c_int()
        self._state = _opus.opus_decoder_create(sample_rate, 1, ctypes.byref(error))
        if error.value != 0 or not self._state:
            raise OpusError(f"opus_decoder_create failed ({error.value})")
        self._pcm = (_opus.opus_int16 * self._max_samples)()

    def decode(self, packet: bytes) -> np.ndarray:
        """Decode one packet; an empty packet means a lost frame (packet-loss concealment).
        Raises OpusError for a corrupt packet."""
        data = (
            ctypes.cast(ctypes.c_char_p(packet), ctypes.POINTER(ctypes.c_ubyte)) if packet else None
        )
        with self._lock:
            if not self._state:
                raise OpusError("the decoder is closed")
            n = _opus.opus_decode(
                self._state,
                data,
                len(packet),
                ctypes.cast(self._pcm, ctypes.POINTER(_opus.opus_int16)),
                self._max_samples,
                0,
            )
            if n < 0:
                raise OpusError(f"opus_decode failed ({n})")
            return np.frombuffer(self._pcm, dtype=np.int16, count=n).copy()

    def close(self) -> None:
        with self._lock:
            if self._state:
                _opus.opus_decoder_destroy(self._state)
                self._state = None

    def __del__(self) -> None:
        if hasattr(self, "_lock"):
            self.close()
