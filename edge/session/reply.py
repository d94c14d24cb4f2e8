"""Speaks one reply: `tts start` → gap → `llm` emotion → per sentence `sentence_start` and paced
Opus frames → `tts stop` once the last frame has played.

Three stages overlap so the first clause is heard while the model is still writing: text pieces →
sentences → Opus packets → pacer. `tts stop` is sent in a `finally`, on success, error and abort
alike: a device that got `tts start` and no `tts stop` stays stuck in speaking.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from edge.assistant.fixed_texts import APOLOGY
from edge.audio.opus import OpusEncoder
from edge.config import AudioConfig
from edge.engines.tts import TtsEngine
from edge.protocol.messages import LlmEmotion, TtsSentence, TtsStart, TtsStop
from edge.sentences import SentenceSplitter
from edge.session.link import DeviceLink
from edge.session.pacer import Pacer
from edge.session.timings import TurnTimings

_END = object()


class ReplySpeaker:
    """Speaks the replies of one device (see the module docstring)."""

    def __init__(
        self,
        link: DeviceLink,
        tts: TtsEngine,
        encoder: OpusEncoder,
        audio: AudioConfig,
        emotion: str,
        on_error: Callable[[str], None] = lambda _kind: None,
    ) -> None:
        self.link = link
        self.tts = tts
        self.encoder = encoder
        self.audio = audio
        self.emotion = emotion
        self.on_error = on_error  # counts failures by kind (the server's error metrics)
        self.log = link.log

    async def speak(
        self,
        pieces: AsyncIterator[str],
        timings: TurnTimings,
        on_started: Callable[[], object] = lambda: None,
        ready: Callable[[], Awaitable[None]] | None = None,
        fixed: bool = False,
        spoken: list[str] | None = None,
        apology: str = APOLOGY,
    ) -> str:
        """Speak streamed text; return what was actually spoken (sentence texts, joined).

        Writing and synthesis start at once; the device hears nothing (not even `tts start`)
        until `ready` returns: a held answer waits there for its confirmation, with at most a
        few sentences written ahead. Cancelled before that, nothing was sent. `tts start` then
        waits for the first sentence to be written: the device shows "speaking" only once there
        is something to say, and the gap after it passes while that sentence is synthesized
        (a model held up by other devices no longer leaves a device speaking nothing). `fixed`
        text (not the model's: greeting, farewell) is spoken from pre-rendered packets.
        `spoken` collects each sentence once it has been sent, so a caller whose reply is cut
        short (abort, barge-in) still knows what the device played. `apology` is said when the
        model fails or says nothing (in the user's language)."""
        spoken = [] if spoken is None else spoken
        sentences: asyncio.Queue[object] = asyncio.Queue(maxsize=8)
        audio: asyncio.Queue[object] = asyncio.Queue(maxsize=2)  # backpressure on synthesis
        written = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            stages = [
                group.create_task(self._write(pieces, sentences, timings, written, apology)),
                group.create_task(self._synthesize(sentences, audio, timings, fixed, apology)),
            ]
            if ready is not None:
                await ready()
            await written.wait()
            await self._say(audio, timings, on_started, spoken)
            for stage in stages:  # done, or the device is gone: stop writing and synthesizing
                stage.cancel()
        return " ".join(spoken)

    async def _say(
        self,
        audio: asyncio.Queue[object],
        timings: TurnTimings,
        on_started: Callable[[], object],
        spoken: list[str],
    ) -> None:
        if not await self.link.send(TtsStart()):
            return
        on_started()
        started = time.monotonic()
        pacer = Pacer(self.audio.frame_duration_ms, self.audio.pacing_lead_frames)
        finished = False
        try:
            await self.link.send(LlmEmotion(self.emotion))
            finished = await self._play(audio, pacer, started, timings, spoken)
        finally:
            if finished:
                await pacer.wait_played(self.audio.stop_margin_ms / 1000.0)
            # Also on abort/cancel: awaiting a send here is safe, it cannot raise.
            await self.link.send(TtsStop())

    async def _write(
        self,
        pieces: AsyncIterator[str],
        out: asyncio.Queue[object],
        timings: TurnTimings,
        written: asyncio.Event,
        apology: str,
    ) -> None:
        """Cut the text into sentences for synthesis; `written` is set once the first is
        there (or there will be none)."""
        produced = False

        async def put(sentence: str) -> None:
            nonlocal produced
            produced = True
            await out.put(sentence)
            written.set()

        splitter = SentenceSplitter()
        try:
            async for piece in pieces:
                if not piece:  # the model paused after a sentence: speak it now
                    for sentence in splitter.complete():
                        await put(sentence)
                    continue
                if timings.llm_first_token is None:
                    timings.llm_first_token = time.monotonic()
                for sentence in splitter.push(piece):
                    await put(sentence)
            for sentence in splitter.finish():
                await put(sentence)
        except Exception as exc:
            self.log.error("language model failed mid-reply: {!r}", exc)
            self.on_error("llm")
            if not produced:
                await put(apology)
        else:
            if not produced:
                self.log.warning("language model produced no speakable text")
                await put(apology)
        finally:
            await out.put(_END)
            written.set()

    async def _synthesize(
        self,
        sentences: asyncio.Queue[object],
        out: asyncio.Queue[object],
        timings: TurnTimings,
        fixed: bool,
        apology: str,
    ) -> None:
        while (sentence := await sentences.get()) is not _END:
            assert isinstance(sentence, str)
            try:
                if fixed or sentence == apology:
                    packets = await self.tts.phrase_packets(
                        sentence, self.encoder.sample_rate, self.audio.frame_duration_ms
                    )
                else:
                    rate, frame_ms = self.encoder.sample_rate, self.audio.frame_duration_ms
                    packets = self.tts.rendered(sentence, rate, frame_ms) or (
                        await self.tts.packets(sentence, self.encoder)
                    )
            except Exception as exc:
                self.log.error("speech synthesis failed for {!r}: {!r}", sentence[:60], exc)
                self.on_error("tts")
                continue
            if timings.tts_first_audio is None:
                timings.tts_first_audio = time.monotonic()
            await out.put((sentence, packets))
        await out.put(_END)

    def _stamp_first_frame(self, timings: TurnTimings) -> Callable[[bytes], Awaitable[bool]]:
        """The audio sender, stamping the first frame as it is handed to the socket.

        Stamped before the send, not after: the device may already hold the frame when the
        send returns, and "sent" must never come after "received".
        """
        if timings.first_frame_sent is not None:
            return self.link.send_audio

        async def send_first(packet: bytes) -> bool:
            timings.first_frame_sent = time.monotonic()
            return await self.link.send_audio(packet)

        return send_first

    async def _play(
        self,
        audio: asyncio.Queue[object],
        pacer: Pacer,
        started: float,
        timings: TurnTimings,
        spoken: list[str],
    ) -> bool:
        """Send every sentence; False when the connection went away first."""
        gap = self.audio.gap_after_tts_start_ms / 1000.0
        while (item := await audio.get()) is not _END:
            assert isinstance(item, tuple)
            sentence: str = item[0]
            packets: list[bytes] = item[1]
            if not await self.link.send(TtsSentence(sentence)):
                return False
            # The device drops audio that arrives before it has processed `tts start`.
            wait = started + gap - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            for packet in packets:
                if not await pacer.send(self._stamp_first_frame(timings), packet):
                    return False
            spoken.append(sentence)
        return True


async def fixed_text(text: str) -> AsyncIterator[str]:
    """A text source that is not a model (greetings, farewells)."""
    yield text
