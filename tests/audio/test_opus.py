import numpy as np
import pytest

from edge.audio.opus import OpusDecoder, OpusEncoder
from edge.audio.pcm import frames, read_wav, resample
from edge.errors import OpusError
from tests.helpers import BECKETT


@pytest.mark.parametrize("frame_ms", [20, 40, 60])
def test_round_trip_any_frame_duration(frame_ms: int) -> None:
    pcm = read_wav(BECKETT)[0][8000:40000]  # two seconds of speech
    enc = OpusEncoder(16000, frame_ms, voip=True)
    dec = OpusDecoder(16000)
    packets = [enc.encode(f) for f in frames(pcm, 16000 * frame_ms // 1000)]
    out = np.concatenate([dec.decode(p) for p in packets])
    assert out.size == len(packets) * 16 * frame_ms >= pcm.size
    # Opus is lossy but keeps the waveform: high correlation after its 6.5 ms algorithmic delay.
    delay = 104
    corr = np.corrcoef(pcm[:-delay].astype(float), out[delay : pcm.size].astype(float))[0, 1]
    assert corr > 0.8


def test_dtx_silence_packets_are_tiny_and_decode() -> None:
    enc = OpusEncoder(16000, 60, voip=True, dtx=True)
    dec = OpusDecoder(16000)
    sizes = [len(enc.encode(np.zeros(960, np.int16))) for _ in range(30)]
    assert min(sizes) <= 3
    for size in (1, 2, 3):
        tiny = enc.encode(np.zeros(960, np.int16))[:size] if size > 1 else b"\xf8"
        assert dec.decode(tiny).dtype == np.int16


def test_downlink_decodes_at_the_announced_rate() -> None:
    enc = OpusEncoder(24000, 60)
    pcm = resample(read_wav(BECKETT)[0][:16000], 16000, 24000)
    packet = enc.encode(np.asarray(pcm[:1440], dtype=np.int16))
    assert OpusDecoder(24000).decode(packet).size == 1440


def test_corrupt_packet_raises_opus_error() -> None:
    with pytest.raises(OpusError):
        OpusDecoder(16000).decode(b"\xff\xff\xff\xff")


def test_wrong_frame_size_is_refused() -> None:
    with pytest.raises(ValueError):
        OpusEncoder(16000, 60).encode(np.zeros(100, np.int16))


def test_a_closed_encoder_or_decoder_refuses_instead_of_crashing() -> None:
    # A TTS thread may still encode a sentence when its session has ended and closed the
    # encoder: that frame must fail cleanly, not touch freed libopus memory.
    encoder = OpusEncoder(24000, 60)
    frame = np.zeros(encoder.frame_samples, np.int16)
    packet = encoder.encode(frame)
    encoder.close()
    with pytest.raises(OpusError, match="closed"):
        encoder.encode(frame)
    decoder = OpusDecoder(24000)
    decoder.close()
    with pytest.raises(OpusError, match="closed"):
        decoder.decode(packet)
