"""Ogg/Opus files (RFC 7845) for firmware 2.5's `notify`: the device fetches a file from a URL
and plays it while idle, without opening its audio channel.

The packets are the ones the TTS already makes for a reply (one Opus packet per frame), put in
Ogg pages by libogg and read back by libopusfile, both through pyogg's bindings (the libraries
the firmware's own tools use for its sounds). Only the two header packets, a few bytes defined
by the RFC, are written here.
"""

from __future__ import annotations

import ctypes
import struct

import numpy as np

from edge.errors import OpusError

try:
    from pyogg import ogg as _ogg
    from pyogg import opus as _opusfile

    _ogg.ogg_stream_init  # noqa: B018  (raises AttributeError when libogg is missing)
    _opusfile.op_open_memory  # noqa: B018
except (ImportError, AttributeError) as exc:  # pragma: no cover - depends on the machine
    raise ImportError("Ogg/Opus files need Debian's libogg0 and libopusfile0") from exc

GRANULE_RATE = 48000  # Ogg/Opus positions count 48 kHz samples whatever the encoder's rate
PRE_SKIP = 312  # the encoder's look-ahead at 48 kHz (libopus's default for 20 ms+ frames)
VENDOR = b"edge"
SERIAL = 0x65646765


def _head(sample_rate: int) -> bytes:
    # magic, version 1, one channel, pre-skip, original rate, gain 0, mapping family 0
    return b"OpusHead" + struct.pack("<BBHIhB", 1, 1, PRE_SKIP, sample_rate, 0, 0)


def _tags() -> bytes:
    return b"OpusTags" + struct.pack("<I", len(VENDOR)) + VENDOR + struct.pack("<I", 0)


def ogg_opus(packets: list[bytes], sample_rate: int, frame_ms: int) -> bytes:
    """One mono Ogg/Opus file holding `packets` (each `frame_ms` long, encoded at
    `sample_rate`)."""
    stream = _ogg.ogg_stream_state()
    if _ogg.ogg_stream_init(ctypes.pointer(stream), SERIAL) != 0:
        raise OpusError("libogg could not start a stream")
    out = bytearray()
    page = _ogg.ogg_page()
    keep: list[ctypes.Array[ctypes.c_ubyte]] = []  # buffers alive until their page is written
    per_frame = GRANULE_RATE * frame_ms // 1000

    def put(data: bytes, number: int, granule: int, first: bool, last: bool) -> None:
        buffer = (ctypes.c_ubyte * max(len(data), 1)).from_buffer_copy(data or b"\0")
        keep.append(buffer)
        packet = _ogg.ogg_packet()
        packet.packet = ctypes.cast(buffer, _ogg.c_uchar_p)
        packet.bytes = len(data)
        packet.b_o_s = int(first)
        packet.e_o_s = int(last)
        packet.granulepos = granule
        packet.packetno = number
        if _ogg.ogg_stream_packetin(ctypes.pointer(stream), ctypes.pointer(packet)) != 0:
            raise OpusError("libogg refused a packet")

    def pages(flush: bool) -> None:
        take = _ogg.ogg_stream_flush if flush else _ogg.ogg_stream_pageout
        while take(ctypes.pointer(stream), ctypes.pointer(page)) != 0:
            out.extend(ctypes.string_at(page.header, page.header_len))
            out.extend(ctypes.string_at(page.body, page.body_len))

    try:
        # Each header packet on a page of its own, as the RFC requires.
        put(_head(sample_rate), 0, 0, True, False)
        pages(flush=True)
        put(_tags(), 1, 0, False, False)
        pages(flush=True)
        for n, data in enumerate(packets):
            granule = PRE_SKIP + (n + 1) * per_frame
            put(data, n + 2, granule, False, n == len(packets) - 1)
            pages(flush=False)
        pages(flush=True)
    finally:
        _ogg.ogg_stream_clear(ctypes.pointer(stream))
    return bytes(out)


def read_ogg_opus(data: bytes) -> np.ndarray:
    """The int16 PCM (mono, 48 kHz) of an Ogg/Opus file, decoded by libopusfile as a player
    would; raises OpusError for anything that is not one."""
    buffer = (ctypes.c_ubyte * len(data)).from_buffer_copy(data)
    error = ctypes.c_int(0)
    handle = _opusfile.op_open_memory(
        ctypes.cast(buffer, _opusfile.c_uchar_p), len(data), ctypes.pointer(error)
    )
    if not handle or error.value != 0:
        raise OpusError(f"not an Ogg/Opus file (opusfile error {error.value})")
    chunks: list[np.ndarray] = []
    pcm = (ctypes.c_int16 * 5760)()  # 120 ms at 48 kHz, the longest packet
    try:
        while True:
            n = _opusfile.op_read(handle, pcm, len(pcm), None)
            if n < 0:
                raise OpusError(f"undecodable Ogg/Opus data (opusfile error {n})")
            if n == 0:
                break
            chunks.append(np.frombuffer(bytes(pcm)[: n * 2], dtype=np.int16).copy())
    finally:
        _opusfile.op_free(handle)
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
