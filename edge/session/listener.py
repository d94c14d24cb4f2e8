"""Listening to one device: its decoded microphone audio, in arrival order, through the VAD (auto
and realtime modes) or collected while the button is held (manual mode), until an utterance
ends.

The listener reports what it heard as return values (`Heard`), and the session decides what to
do: read the prompt ahead when speech starts, stop a reply the user talks over, answer an
utterance. It owns the audio queue, the borrowed VAD detector (returned while the device is idle)
and the early turn: at the user's first short pause (`vad.early_asr_ms`) the speech so far is
recognised at once, so that its text is ready when the hang-over confirms the pause ended the
utterance; it is dropped if the user speaks on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.audio.pcm import to_float
from edge.config import VadConfig
from edge.engines.vad import VadDetector, VadPool
from edge.faults import FaultLog
from edge.metrics import Metrics
from edge.session.state import TurnState, TurnStateMachine
from edge.session.timings import TurnTimings

UPLINK_RATE = 16000  # Opus decodes at any rate; ASR and VAD want 16 kHz
AUDIO_BACKLOG = 100  # decoded frames waiting for VAD (6 s of 60 ms frames)
MIN_UTTERANCE_S = 0.3  # shorter push-to-talk audio is a click, not a question
_LISTEN_STOP = object()  # goes through the audio queue, so it follows the frames before it


@dataclass(frozen=True, eq=False)
class _CompleteAtPause:
    """The text at this pause is a complete command: the utterance may end here (queued, so it
    follows the frames before it)."""

    early: EarlyTurn


Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]


@dataclass(eq=False)
class EarlyTurn:
    """A pause of the user's that may end the utterance (`vad.early_asr_ms`)."""

    pauses: int  # the detector's pause count then: the same count at the end means no more speech
    text: asyncio.Task[str | None]  # speech recognition of the speech so far
    held: asyncio.Task[bool] | None = None  # an answer begun meanwhile (the session's)
    confirmed: asyncio.Event = field(default_factory=asyncio.Event)
    timings: TurnTimings = field(default_factory=TurnTimings)
    at: float = field(default_factory=time.monotonic)  # when the pause was seen


@dataclass(eq=False)
class Utterance:
    samples: np.ndarray  # float32, 16 kHz
    timings: TurnTimings
    early: EarlyTurn | None = None  # its early text, when the pause before its end had one
    pushed: bool = False  # push-to-talk (manual mode): the button, not the VAD, ended it


@dataclass
class Heard:
    """What one step of listening found; most steps find nothing worth acting on."""

    voice: bool = False  # the user is speaking, or an utterance just ended
    started: bool = False  # ... and was not speaking a moment ago
    pause: EarlyTurn | None = None  # the user paused: the speech so far is being recognised
    utterance: Utterance | None = None
    click: float | None = None  # push-to-talk released after so few seconds: nothing to answer


class Listener:
    def __init__(
        self,
        vad: VadPool,
        config: VadConfig,
        turn: TurnStateMachine,
        transcribe: Callable[[np.ndarray], Coroutine[Any, Any, str | None]],
        spawn: Spawn,
        metrics: Metrics,
        faults: FaultLog,
        log: Any,
        complete: Callable[[str], float | None] | None = None,
    ) -> None:
        """`complete(text)`: the seconds of silence after which the text, heard at the user's
        first pause, ends the utterance as a whole request on its own (a household command)
        instead of after the hang-over; None when it is not one."""
        self.vad = vad
        self.config = config
        self.turn = turn  # read only: the session makes the transitions
        self._transcribe = transcribe
        self._spawn = spawn
        self.metrics = metrics
        self.faults = faults
        self.log = log
        self._audio: asyncio.Queue[object] = asyncio.Queue(maxsize=AUDIO_BACKLOG)
        self._detector: VadDetector | None = None
        self._manual: list[np.ndarray] = []
        self._generation = 0  # bumped by every restart: older VAD results are stale
        self.in_speech = False
        self.last_heard = time.monotonic()
        # The user's latest pause, while it may still become the end of the utterance.
        self.early: EarlyTurn | None = None
        self._complete = complete

    # --- fed by the session ------------------------------------------------------------------

    def hear(self, pcm: np.ndarray) -> None:
        """A decoded frame of microphone audio (int16, 16 kHz)."""
        self._enqueue(pcm)

    def button_released(self) -> None:
        """`listen stop`: in manual mode the end of the utterance, else a hint that it ended."""
        self._enqueue(_LISTEN_STOP)

    def restart(self) -> None:
        """`listen start`: a new utterance; whatever was heard before is dropped."""
        self._generation += 1
        while not self._audio.empty():
            self._audio.get_nowait()
        self._manual.clear()
        self.in_speech = False
        self.drop_early()
        if self._detector is not None:
            self._detector.reset()

    def close(self) -> None:
        """Give the VAD detector back to the pool."""
        if self._detector is not None:
            self.vad.release(self._detector)
            self._detector = None

    def _enqueue(self, item: object) -> None:
        if self._audio.full():
            self._audio.get_nowait()
            self.faults("audio backlog", "VAD fell behind; dropped the oldest frame")
        self._audio.put_nowait(item)

    # --- the session's listening loop --------------------------------------------------------

    async def next(self) -> Heard:
        """Wait for the next frame (or the button) and report what it made of it."""
        timeout = self.config.no_audio_timeout_s
        try:
            # Not wait_for: on Python 3.11 it can swallow the session's cancellation when a
            # frame arrives at the same moment, and the loop would outlive its session.
            async with asyncio.timeout(timeout):
                item = await self._audio.get()
        except TimeoutError:
            if self.in_speech and self.turn.hears_user and self._detector is not None:
                # Fallback: the device stopped sending audio in the middle of speech.
                self.log.info("no audio for {:.1f} s during speech; ending the turn", timeout)
                return self._utterance_end(await self.vad.flush(self._detector))
            if not self.turn.busy and self.turn.state != TurnState.LISTENING:
                self.close()  # idle devices hold no VAD
            return Heard()
        if item is _LISTEN_STOP:
            return await self._on_button_released()
        if isinstance(item, _CompleteAtPause):
            return await self._end_at_pause(item.early)
        assert isinstance(item, np.ndarray)
        if self.turn.mode == "manual":
            self._collect(item)
            return Heard()
        return await self._detect(item)

    def _collect(self, pcm: np.ndarray) -> None:
        if self.turn.state != TurnState.LISTENING:
            return
        self._manual.append(pcm)
        if sum(a.size for a in self._manual) > self.config.max_utterance_s * UPLINK_RATE:
            self.log.info("push-to-talk reached {} s; answering", self.config.max_utterance_s)
            self._enqueue(_LISTEN_STOP)

    async def _on_button_released(self) -> Heard:
        if self.turn.mode != "manual":
            if self._detector is not None and self.turn.hears_user:
                return self._utterance_end(await self.vad.flush(self._detector))
            return Heard()
        audio, self._manual = self._manual, []
        if self.turn.state != TurnState.LISTENING:
            return Heard()
        samples = to_float(np.concatenate(audio)) if audio else np.zeros(0, np.float32)
        if samples.size < MIN_UTTERANCE_S * UPLINK_RATE:
            return Heard(click=samples.size / UPLINK_RATE)
        return Heard(utterance=Utterance(samples, TurnTimings(), pushed=True))

    async def _detect(self, pcm: np.ndarray) -> Heard:
        if not self.turn.hears_user:
            return Heard()
        if self._detector is None:
            self._detector = await self.vad.acquire()
        generation = self._generation
        result = await self.vad.feed(self._detector, to_float(pcm))
        if not self.turn.hears_user or generation != self._generation:
            return Heard()  # the state moved on, or listening restarted, while VAD ran
        heard = Heard()
        if result.speaking or result.utterances:
            heard.voice = True
            heard.started = result.speaking and not self.in_speech
            self.last_heard = time.monotonic()
            self.in_speech = result.speaking
        if result.early is not None and not result.utterances:
            self.drop_early()
            self.early = heard.pause = self._early_turn(result.early, result.early_pauses)
            if self._complete is not None:
                self._spawn(self._watch_pause(self.early), "end at a pause")
        elif result.early_pauses < 0 and self.early is not None:
            self.drop_early()  # the user speaks on: the pause did not end the question
        if result.utterances:
            ended = self._utterance_end(result.utterances, result.early_pauses)
            heard.utterance = ended.utterance
        return heard

    async def _watch_pause(self, early: EarlyTurn) -> None:
        """Once the pause's text is known: a complete command ends the utterance (a semantic
        end of turn), at once or once the pause is as long as its kind needs; anything else
        waits for the hang-over as before."""
        await asyncio.wait([early.text])  # never raises: the text may be dropped meanwhile
        if early.text.cancelled() or self.early is not early:
            return  # the user spoke on (that drops the pause), or the turn ended meanwhile
        text = early.text.result()
        silence = self._complete(text) if text and self._complete is not None else None
        if silence is None:
            return
        # The pause was `early_asr_ms` long when it was seen.
        wait = silence - self.config.early_asr_ms / 1000 - (time.monotonic() - early.at)
        if wait > 0:
            await asyncio.sleep(wait)
            if self.early is not early:
                return  # the user spoke on, or the turn ended meanwhile
        self._enqueue(_CompleteAtPause(early))

    async def _end_at_pause(self, early: EarlyTurn) -> Heard:
        if self.early is not early or self._detector is None or not self.turn.hears_user:
            return Heard()  # the user spoke on, or the turn moved on, meanwhile
        segments = await self.vad.flush(self._detector)
        self.log.info("a complete command at the user's pause: the utterance ends there")
        self.metrics.semantic_end()
        return self._utterance_end(segments, early.pauses)

    def _early_turn(self, speech: np.ndarray, pauses: int) -> EarlyTurn:
        return EarlyTurn(pauses, self._spawn(self._transcribe(speech), "early asr"))

    def _utterance_end(self, segments: list[np.ndarray], early_pauses: int = 0) -> Heard:
        self.in_speech = False
        if self.early is not None and (self.early.pauses != early_pauses or early_pauses <= 0):
            self.drop_early()  # the user spoke again after that pause: its text is partial
        if not segments:
            return Heard()
        early, self.early = self.early, None
        return Heard(
            voice=True, utterance=Utterance(np.concatenate(segments), TurnTimings(), early)
        )

    def drop_early(self, early: EarlyTurn | None = None) -> None:
        """Forget an early turn (by default the current one) and its held answer: the user
        spoke on after its pause, listening restarted, or the device was not listening."""
        if early is None:
            early, self.early = self.early, None
        if early is not None:
            early.text.cancel()
            if early.held is not None and not early.held.done():
                early.held.cancel()
                self.metrics.held_answer("dropped")
            self.metrics.early_asr(used=False)
