"""One connected device, from its hello to its last frame.

The reader dispatches frames; a listener task runs VAD over the microphone audio in arrival order;
at most one reply task runs at a time. All of them live in the session's TaskGroup, so when the
socket goes every task is cancelled and awaited, and the borrowed VAD detector is returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterable, AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.exceptions import ConnectionClosed

from edge.audio.opus import OpusDecoder, OpusEncoder
from edge.audio.pcm import to_float
from edge.config import Config
from edge.engines.vad import VadDetector
from edge.errors import OpusError
from edge.metrics import TurnRecord
from edge.protocol import framing, messages
from edge.protocol.messages import (
    Abort,
    Goodbye,
    Hello,
    Invalid,
    Iot,
    ListenDetect,
    ListenStart,
    ListenStop,
    Mcp,
)
from edge.services import Services
from edge.session.answer import AnswerWriter, turn_messages
from edge.session.connection import DeviceConnection
from edge.session.faults import FaultLog
from edge.session.reply import ReplySpeaker, TurnTimings, fixed_text, phrase_sentences
from edge.session.state import TurnState, TurnStateMachine
from edge.tools.device_mcp import DeviceMcpClient
from edge.tools.iot import iot_tools
from edge.tools.registry import Tool, ToolContext, ToolSet

UPLINK_RATE = 16000  # Opus decodes at any rate; ASR and VAD want 16 kHz
MAX_AUDIO_FRAME = 8192  # bytes; Opus packets are far smaller (browser clients send ~2 KB)
AUDIO_BACKLOG = 100  # decoded frames waiting for VAD (6 s of 60 ms frames)
MIN_UTTERANCE_S = 0.3  # shorter push-to-talk audio is a click, not a question
_LISTEN_STOP = object()  # goes through the audio queue, so it follows the frames before it
# After the hello, the device is "connecting" until it acts on our hello; server-initiated speech
# waits for its first message (or this long) so `tts start` is not rejected.
DEVICE_SETTLE_S = 1.5
PROACTIVE_WAIT_S = 60.0  # a reminder waits at most this long for a reply in progress


def _normalise(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.lower()).strip()


_FILLERS = {"ok", "okay", "thanks", "thank", "you", "alright", "well", "so", "and", "好的", "好"}


def _phrase_key(words: list[str]) -> str:
    """Words as compared with the exit phrases; Chinese is written without spaces."""
    joined = " ".join(words)
    return joined.replace(" ", "") if re.search(r"[\u3400-\u9fff]", joined) else joined


def _meaningful(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


class DeviceSession:
    def __init__(
        self,
        conn: DeviceConnection,
        hello: Hello,
        services: Services,
        config: Config,
        session_id: str,
        device_id: str = "",
        vision_url: str = "",
    ) -> None:
        self.conn = conn
        self.hello = hello
        self.services = services
        self.engines = services.engines
        engines = services.engines
        self.config = config
        self.session_id = session_id
        self.device_id = device_id  # "" for a device that sent no Device-Id: nothing is stored
        self.memory = services.memory if device_id else None
        self.log = conn.log
        self.faults = FaultLog(self.log, services.metrics.error)
        self.turn = TurnStateMachine()
        self.turns: list[list[dict[str, Any]]] = []  # past turns as prompt messages
        self.summary = ""
        self.turns_answered = 0
        self.mcp: DeviceMcpClient | None = None
        if hello.mcp and config.tools.enabled:
            self.mcp = DeviceMcpClient(
                self._send_mcp,
                self.log,
                call_timeout_s=config.tools.device_call_timeout_s,
                vision_url=vision_url,
            )
        self.iot_tools: list[Tool] = []
        self._device_spoke = asyncio.Event()  # any message after the hello
        self._tool_specs: list[dict[str, Any]] = []  # what the last turn offered the model
        self._decoder = OpusDecoder(UPLINK_RATE)
        self._encoder = OpusEncoder(
            config.audio.downlink_sample_rate, config.audio.frame_duration_ms
        )
        self.metrics = services.metrics
        self._speaker = ReplySpeaker(
            conn,
            session_id,
            engines.tts,
            self._encoder,
            config.audio,
            config.session.emotion,
            self.metrics.error,
        )
        self._audio: asyncio.Queue[object] = asyncio.Queue(maxsize=AUDIO_BACKLOG)
        self._detector: VadDetector | None = None
        self._manual_audio: list[np.ndarray] = []
        self._in_speech = False
        self._generation = 0  # bumped by every `listen start`: older VAD results are stale
        # The user's latest pause, while it may still become the end of the utterance.
        self._early: _EarlyTurn | None = None
        self._prefetch: asyncio.Task[None] | None = None
        self._reply_task: asyncio.Task[None] | None = None
        self._group: asyncio.TaskGroup | None = None
        self.last_activity = time.monotonic()
        self._wake_words = {_normalise(w) for w in config.session.wake_words}
        self._exit_phrases = {
            _phrase_key(_normalise(p).split()) for p in config.session.exit_phrases
        }

    # --- lifetime -------------------------------------------------------------------------

    async def run(self, incoming: AsyncIterable[str | bytes]) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                helpers = [
                    group.create_task(self._listen_loop(), name="listener"),
                    group.create_task(self._idle_watch(), name="idle-watch"),
                    group.create_task(self._after_hello(), name="after-hello"),
                ]
                if self.mcp is not None:
                    helpers.append(group.create_task(self._start_mcp(), name="device-mcp"))
                try:
                    await self._read_loop(incoming)
                finally:
                    if self.mcp is not None:
                        self.mcp.close()  # pending tool calls fail now, not at their timeout
                    for task in [*helpers, self._reply_task]:
                        if task is not None:
                            task.cancel()
        finally:
            self._release_detector()
            self._encoder.close()
            self._decoder.close()
            if self.faults.counts:
                self.log.info("bad input this session: {}", self.faults.summary())
            if self.turns_answered and self.services.summarizer is not None and self.memory:
                self.services.summarizer.request(self.device_id, self._tool_specs)

    async def _after_hello(self) -> None:
        """Restore memory, then speak reminders that fell due while the device was away."""
        if self.memory is not None:
            try:
                count = self.config.llm.history_turns
                turns = await self.memory.recent_turns(self.device_id, count)
                self.summary = await self.memory.summary(self.device_id)
            except Exception as exc:
                self.log.error("memory could not be read: {!r}", exc)
                self.metrics.error("memory")
                turns = []
            grammar_mode = self.config.tools.mode == "grammar"
            restored = [
                turn_messages(t.user_text, t.assistant_text, t.tool_calls, grammar_mode)
                for t in turns
            ]
            self.turns = restored + self.turns
            if turns or self.summary:
                self.log.info(
                    "memory restored: {} turns{}", len(turns), ", summary" if self.summary else ""
                )
        if self.services.reminders is not None and self.device_id:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DEVICE_SETTLE_S):
                    await self._device_spoke.wait()
            await self.services.reminders.device_connected(self.device_id)

    async def _start_mcp(self) -> None:
        assert self.mcp is not None
        await self.mcp.start()
        if not self.mcp.tools or self.config.tools.mode != "template":
            return
        # The device's tools extend the shared prompt prefix. Evaluating it now, while the
        # model is free, takes that cost off the first question (devices of one kind share it).
        specs = (await self._toolset()).specs()
        if specs != self.services.warmed_tools and not self.engines.llm.busy:
            self.services.warmed_tools = specs
            seconds = await self.engines.llm.warm_up(tools=specs)
            self.log.info("prompt prefix with the device's tools evaluated in {:.2f} s", seconds)
            self.services.remember_prefix_tools(specs)

    async def _send_mcp(self, payload: dict[str, Any]) -> bool:
        return await self.conn.send_json(messages.mcp(self.session_id, payload))

    async def _send_iot(self, thing: str, method: str, parameters: dict[str, Any]) -> bool:
        return await self.conn.send_json(
            messages.iot_command(self.session_id, thing, method, parameters)
        )

    async def _read_loop(self, incoming: AsyncIterable[str | bytes]) -> None:
        try:
            async for frame in incoming:
                if isinstance(frame, bytes):
                    self._on_audio(frame)
                else:
                    await self._on_text(frame)
        except ConnectionClosed as exc:
            # An abrupt TCP drop (1006) is how devices always leave: not a fault.
            if exc.sent is not None and exc.sent.code == 1009:
                self.faults("oversized frame", f"closed with 1009: {exc.sent.reason}")

    # --- incoming frames ------------------------------------------------------------------

    def _on_audio(self, frame: bytes) -> None:
        if len(frame) > MAX_AUDIO_FRAME:
            self.faults("oversized audio frame", f"{len(frame)} bytes dropped")
            return
        try:
            packet = framing.decode(self.conn.protocol_version, frame)
        except framing.FramingError as exc:
            self.faults("bad binary frame", str(exc))
            return
        if not packet.payload:
            return  # a zero-length frame: browser clients mark the end of an utterance so
        if not self.turn.hears_user:
            return  # wake-word audio before `listen detect`, or the mic during our reply
        try:
            pcm = self._decoder.decode(packet.payload)
        except OpusError as exc:
            self.faults("undecodable Opus packet", f"{len(packet.payload)} bytes: {exc}")
            return
        self._enqueue(pcm)

    def _enqueue(self, item: object) -> None:
        if self._audio.full():
            self._audio.get_nowait()
            self.faults("audio backlog", "VAD fell behind; dropped the oldest frame")
        self._audio.put_nowait(item)

    async def _on_text(self, text: str) -> None:
        self._device_spoke.set()
        message = messages.parse_device_message(text)
        match message:
            case ListenStart(mode=mode):
                if self.turn.listen_start(mode):
                    self._reset_listening()
                    if mode == "manual":  # no VAD to say when speech starts: the button does
                        self._read_ahead()
            case ListenStop():
                self._enqueue(_LISTEN_STOP)
            case ListenDetect(text=wake_text):
                await self._on_detect(wake_text)
            case Abort(reason=reason):
                await self._on_abort(reason)
            case Hello():
                self.faults("repeated hello", "a second hello on one connection is ignored")
            case Mcp(payload=payload):
                if self.mcp is not None:
                    self.mcp.on_message(payload)
                else:
                    self.log.debug("MCP message from a device without MCP in its hello ignored")
            case Iot(descriptors=descriptors):
                self._on_iot(descriptors)
            case Goodbye():
                self.log.debug("goodbye is an MQTT message; ignored on WebSocket")
            case Invalid(reason=reason):
                self.faults("bad message", reason)

    def _on_iot(self, descriptors: list[Any]) -> None:
        if not descriptors or not self.config.tools.enabled:
            return  # states only: nothing to do
        tools = iot_tools(descriptors, self._send_iot, self.config.tools.device_call_timeout_s)
        known = {t.name for t in tools}
        self.iot_tools = [t for t in self.iot_tools if t.name not in known] + tools
        self.log.info("legacy IoT: {} methods offered as tools", len(tools))

    async def _on_detect(self, text: str) -> None:
        self.last_activity = time.monotonic()
        if _normalise(text) in self._wake_words or not _meaningful(text):
            self.log.info("wake word {!r}", text)
            greeting = self.config.session.greeting
            if greeting and self.turn.text_query():
                self._start_reply(self._speak_fixed(greeting))
            return
        # Boards inject phrases through `detect` too: answer them like a spoken question.
        if self.turn.text_query():
            self.log.info("text query by detect: {!r}", text)
            self._start_reply(self._answer_text(text, TurnTimings()))

    async def _on_abort(self, reason: str | None) -> None:
        self.log.info("abort ({})", reason or "button")
        task = self._reply_task
        if task is not None and not task.done():
            task.cancel()  # the reply's finally sends `tts stop`
            await asyncio.wait([task])

    # --- listening ------------------------------------------------------------------------

    def _reset_listening(self) -> None:
        self._generation += 1
        while not self._audio.empty():
            self._audio.get_nowait()
        self._manual_audio.clear()
        self._in_speech = False
        self._drop_early()
        if self._detector is not None:
            self._detector.reset()

    def _release_detector(self) -> None:
        if self._detector is not None:
            self.engines.vad.release(self._detector)
            self._detector = None

    async def _listen_loop(self) -> None:
        timeout = self.config.vad.no_audio_timeout_s
        while True:
            try:
                # Not wait_for: on Python 3.11 it can swallow the session's cancellation when a
                # frame arrives at the same moment, and this loop would outlive its session.
                async with asyncio.timeout(timeout):
                    item = await self._audio.get()
            except TimeoutError:
                if self._in_speech and self.turn.hears_user and self._detector is not None:
                    # Fallback: the device stopped sending audio in the middle of speech.
                    self.log.info("no audio for {:.1f} s during speech; ending the turn", timeout)
                    await self._end_utterance(await self.engines.vad.flush(self._detector))
                elif not self.turn.busy and self.turn.state != TurnState.LISTENING:
                    self._release_detector()  # idle devices hold no VAD
                continue
            if item is _LISTEN_STOP:
                await self._on_listen_stop()
            elif self.turn.mode == "manual":
                self._collect_manual(item)  # type: ignore[arg-type]
            else:
                await self._detect_speech(item)  # type: ignore[arg-type]

    def _collect_manual(self, pcm: np.ndarray) -> None:
        if self.turn.state != TurnState.LISTENING:
            return
        self._manual_audio.append(pcm)
        if sum(a.size for a in self._manual_audio) > self.config.vad.max_utterance_s * UPLINK_RATE:
            self.log.info("push-to-talk reached {} s; answering", self.config.vad.max_utterance_s)
            self._enqueue(_LISTEN_STOP)

    async def _on_listen_stop(self) -> None:
        if self.turn.mode == "manual":
            audio = self._manual_audio
            self._manual_audio = []
            if self.turn.state != TurnState.LISTENING:
                return
            samples = to_float(np.concatenate(audio)) if audio else np.zeros(0, np.float32)
            if samples.size < MIN_UTTERANCE_S * UPLINK_RATE:
                self.log.info(
                    "push-to-talk with {:.2f} s of audio; nothing to answer",
                    samples.size / UPLINK_RATE,
                )
                self.turn.listen_stop()
                self.turn.reply_done()
                return
            if self.turn.listen_stop():
                self._start_reply(self._answer_speech(samples, TurnTimings()))
        elif self._detector is not None and self.turn.hears_user:
            await self._end_utterance(await self.engines.vad.flush(self._detector))

    async def _detect_speech(self, pcm: np.ndarray) -> None:
        if not self.turn.hears_user:
            return
        if self._detector is None:
            self._detector = self.engines.vad.acquire()
        generation = self._generation
        result = await self.engines.vad.feed(self._detector, to_float(pcm))
        if not self.turn.hears_user or generation != self._generation:
            return  # the state moved on, or listening restarted, while VAD ran
        if result.speaking and not self._in_speech:
            self._read_ahead()
        if result.speaking or result.utterances:
            self.last_activity = time.monotonic()
            self._in_speech = result.speaking
            if self.turn.state == TurnState.SPEAKING:  # realtime barge-in
                self.log.info("user speech during the reply: barge-in")
                await self._on_abort("barge-in")
        if result.early is not None and not result.utterances:
            self._drop_early()
            self._early = self._start_early_turn(result.early, result.early_pauses)
        elif result.early_pauses < 0 and self._early is not None:
            self._drop_early()  # the user speaks on: the pause did not end the question
        if result.utterances:
            await self._end_utterance(result.utterances, result.early_pauses)

    def _start_early_turn(self, speech: np.ndarray, pauses: int) -> _EarlyTurn:
        """The user paused: recognise the speech so far at once and, when the model is free,
        answer it too, holding everything the device or the memory would see until the
        hang-over confirms that the pause ended the utterance."""
        assert self._group is not None
        early = _EarlyTurn(
            pauses, self._group.create_task(self._transcribe(speech), name="early asr")
        )
        if self.config.vad.preemptive_answer and self.turn.state == TurnState.LISTENING:
            early.held = self._group.create_task(self._answer_held(early), name="held answer")
        return early

    async def _end_utterance(self, segments: list[np.ndarray], early_pauses: int = 0) -> None:
        self._in_speech = False
        if self._early is not None and (self._early.pauses != early_pauses or early_pauses <= 0):
            self._drop_early()  # the user spoke again after that pause: its text is partial
        if not segments:
            return
        timings = TurnTimings()
        if not self.turn.utterance_end():
            self._drop_early()
            return
        early, self._early = self._early, None
        samples = np.concatenate(segments)
        if early is None:
            self._start_reply(self._answer_speech(samples, timings))
            return
        self.metrics.early_asr(used=True)
        early.timings.end_of_speech = timings.end_of_speech
        self._start_reply(self._answer_early(early, samples))

    async def _answer_early(self, early: _EarlyTurn, samples: np.ndarray) -> None:
        """The pause ended the utterance: let its held answer go on, or answer now."""
        early.confirmed.set()
        if early.held is not None and await early.held:
            self.metrics.held_answer("used")
            return
        await self._answer_speech(samples, early.timings, early.text)

    async def _answer_held(self, early: _EarlyTurn) -> bool:
        """Answer the early text before the pause is confirmed (nothing reaches the device, the
        memory or a tool until then). False, having done nothing, when it is not worth it: no
        words, an exit phrase, or no place free at the model (a held answer would only hold
        other devices up)."""
        text = await early.text
        if not text or not _meaningful(text) or self._is_exit(text) or self.engines.llm.full:
            self.metrics.held_answer("declined")
            return False
        early.timings.asr_done = time.monotonic()
        try:
            await self._answer_text(text, early.timings, confirmed=early.confirmed)
        except Exception:  # never out of this task: a failed task would end the whole session
            self.log.exception("held answer failed")
            self.metrics.error("reply crashed")
        return True

    def _drop_early(self) -> None:
        """Forget the early text and its held answer: the user spoke on after its pause, or
        listening restarted."""
        early, self._early = self._early, None
        if early is not None:
            early.text.cancel()
            if early.held is not None and not early.held.done():
                early.held.cancel()
                self.metrics.held_answer("dropped")
            self.metrics.early_asr(used=False)

    async def _transcribe(self, samples: np.ndarray) -> str | None:
        """The text of `samples`, or None (logged) when recognition fails."""
        try:
            return await self.engines.asr.transcribe(samples, timeout_s=self.config.asr.timeout_s)
        except Exception as exc:
            self.log.error("speech recognition failed: {!r}", exc)
            self.metrics.error("asr")
            return None

    # --- replies --------------------------------------------------------------------------

    def _start_reply(self, work: Coroutine[Any, Any, object]) -> None:
        assert self._group is not None
        self._reply_task = self._group.create_task(self._run_reply(work), name="reply")

    async def _run_reply(self, work: Coroutine[Any, Any, object]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("reply failed")
            self.metrics.error("reply crashed")
        finally:
            # The VAD is not reset here: in auto mode the device's next `listen start` does it,
            # and in realtime mode it holds the barge-in utterance that interrupted this reply.
            self.turn.reply_done()
            self.last_activity = time.monotonic()
            self._reply_task = None

    async def _answer_speech(
        self,
        samples: np.ndarray,
        timings: TurnTimings,
        early: asyncio.Task[str | None] | None = None,
    ) -> None:
        text = await early if early is not None else None
        if text is None:  # no early text, or its recognition failed: try the whole utterance
            text = await self._transcribe(samples) or ""
        timings.asr_done = time.monotonic()
        if not _meaningful(text):
            self.log.info("no words recognised in {:.1f} s of audio", samples.size / UPLINK_RATE)
            return
        await self._answer_text(text, timings)

    async def _toolset(self) -> ToolSet:
        if not self.config.tools.enabled:
            return ToolSet([])
        if self.mcp is not None and not self.mcp.ready.is_set():
            self.log.info("waiting for the device's tool list")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.tools.device_list_wait_s):
                    await self.mcp.ready.wait()
            if not self.mcp.ready.is_set():
                self.log.warning("device tools not listed yet; answering without them")
        return self._tools_now()

    def _tools_now(self) -> ToolSet:
        device = self.mcp.tools if self.mcp is not None else []
        return ToolSet([*self.services.registry.tools(), *device, *self.iot_tools])

    def _writer(self, tools: ToolSet, context: ToolContext) -> AnswerWriter:
        farewell = self.config.session.farewell or "Goodbye!"
        return AnswerWriter(self.engines.llm, self.config, tools, context, self.log, farewell)

    @staticmethod
    def _turn_entry(text: str, reply: str, writer: AnswerWriter) -> list[dict[str, Any]]:
        """A turn as later prompts hold it: its clock, the question, the reply (and calls)."""
        calls = writer.answer.tool_calls_json()
        clock = [writer.clock] if writer.clock else []
        return [*clock, *turn_messages(text, reply, calls, writer.grammar_mode)]

    def _history_after(self, text: str, reply: str, writer: AnswerWriter) -> list[dict[str, Any]]:
        """The history once this turn is remembered with `reply` (trimmed as it will be)."""
        turns = [*self.turns, self._turn_entry(text, reply, writer)]
        trim_history(turns, self.config.llm.history_turns)
        return self._history_of(turns)

    def _read_ahead(self, history: list[dict[str, Any]] | None = None) -> None:
        """Have the model read this device's next prompt up to the user's coming words
        (summary, history), so that only the words are left when recognition is done: while
        the user speaks, and before that, as soon as an answer is written (`history`: the
        history that answer makes), while it is still being played."""
        if self._prefetch is not None and not self._prefetch.done():
            return
        if self.mcp is not None and not self.mcp.ready.is_set() and self.config.tools.enabled:
            return  # the tool list will still change: nothing to read ahead yet
        assert self._group is not None
        self._prefetch = self._group.create_task(
            self._prefetch_prompt(self.history if history is None else history),
            name="read ahead",
        )

    async def _prefetch_prompt(self, history: list[dict[str, Any]]) -> None:
        owner = self.device_id or self.conn.device_id
        writer = self._writer(self._tools_now(), ToolContext(owner))
        try:
            read = await self.engines.llm.prefetch(
                *writer.prompt_ahead(history, self.summary), owner=owner
            )
        except Exception as exc:  # only a lost head start: the answer reads it all anyway
            self.log.warning("reading the prompt ahead failed: {!r}", exc)
            return
        if read:
            self.log.debug("read {} prompt tokens ahead", read)

    async def _begin_turn(self, text: str) -> int | None:
        if self.memory is None:
            return None
        try:
            return await self.memory.begin_turn(self.device_id, self.session_id, text)
        except Exception as exc:
            self.log.error("memory could not store the turn: {!r}", exc)
            self.metrics.error("memory")
            return None

    async def _finish_turn(self, turn_id: int | None, text: str, tools: list[Any]) -> None:
        if self.memory is None or turn_id is None:
            return
        try:
            await self.memory.finish_turn(turn_id, text, tools)
        except Exception as exc:
            self.log.error("memory could not store the answer: {!r}", exc)
            self.metrics.error("memory")

    @property
    def history(self) -> list[dict[str, Any]]:
        """The kept turns (at most `llm.history_turns`), as prompt messages."""
        return self._history_of(self.turns)

    def _history_of(self, turns: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        keep = self.config.llm.history_turns
        return [m for turn in (turns[-keep:] if keep else []) for m in turn]

    def _is_exit(self, text: str) -> bool:
        words = _normalise(text).split()
        while words and words[0] in _FILLERS:
            words = words[1:]
        spoken = _phrase_key(words)
        return bool(spoken) and spoken in self._exit_phrases

    async def _answer_text(
        self, text: str, timings: TurnTimings, confirmed: asyncio.Event | None = None
    ) -> None:
        """Answer `text`. With `confirmed` (a held answer), the model writes and the first
        sentences are synthesized at once, but the device hears of the turn (`stt`, then the
        audio), the memory stores it and a tool runs only once `confirmed` is set."""
        if confirmed is None and self._is_exit(text):
            await self._end_by_request(text)
            return
        turn_id: int | None = None
        opened = asyncio.Lock()
        started = False

        async def go_ahead() -> None:
            nonlocal turn_id, started
            async with opened:
                if started:
                    return
                if confirmed is not None:
                    await confirmed.wait()
                await self.conn.send_json(messages.stt(self.session_id, text))
                turn_id = await self._begin_turn(text)
                started = True

        if confirmed is None:
            await go_ahead()
        context = ToolContext(self.device_id or self.conn.device_id)
        tools = await self._toolset()
        self._tool_specs = tools.specs() if self.config.tools.mode == "template" else []
        writer = self._writer(tools, context)
        writer.before_tool = go_ahead
        prompt = writer.messages(text, self.history, self.summary)
        answer = writer.answer
        stored = False

        async def pieces() -> AsyncIterator[str]:
            nonlocal stored
            async for piece in writer.pieces(prompt):
                yield piece
            await go_ahead()
            # Stored as soon as it is written, while it is still being spoken.
            await self._finish_turn(turn_id, answer.text, answer.tool_calls_json())
            stored = True
            # The next prompt is known now: reading it while this answer plays keeps that
            # work (after a history trim, a few hundred tokens) out of the user's next turn.
            # The history will hold the reply as spoken: the written text, cleaned for speech.
            spoken = " ".join(phrase_sentences(answer.text)) or answer.text
            self._read_ahead(self._history_after(text, spoken, writer))

        reply = ""
        try:
            reply = await self._speaker.speak(
                pieces(), timings, self.turn.speaking_started, ready=go_ahead
            )
        finally:
            if not stored or (reply and reply != answer.text):
                # Cut short (abort, failure): keep what was said, or at least what was written.
                await asyncio.shield(
                    self._finish_turn(turn_id, reply or answer.text, answer.tool_calls_json())
                )
        if reply:
            self.turns.append(self._turn_entry(text, reply, writer))
            trim_history(self.turns, self.config.llm.history_turns)
        self.turns_answered += 1
        self.metrics.turn(
            TurnRecord(
                self.device_id or self.conn.device_id,
                timings.end_of_speech,
                timings.asr_done,
                timings.llm_first_token,
                timings.tts_first_audio,
                timings.first_frame_sent,
                len(answer.tool_calls),
            )
        )
        for call in answer.tool_calls:
            if call.error is not None:
                self.metrics.error("tool timeout" if call.timed_out else "tool failed")
        called = ", ".join(
            f"{c.name}{'!' if c.error else ''} {c.seconds * 1000:.0f}ms" for c in answer.tool_calls
        )
        self.log.info(
            "turn: {!r} → {!r} | {}{}",
            text[:80],
            reply[:80],
            timings.summary(),
            f" | tools: {called}" if called else "",
        )
        if answer.end_conversation:
            self.log.info("the user ended the conversation")
            await self.conn.close("conversation ended")

    async def _end_by_request(self, text: str) -> None:
        await self.conn.send_json(messages.stt(self.session_id, text))
        farewell = self.config.session.farewell
        turn_id = await self._begin_turn(text)
        if farewell:
            await self._speak_fixed(farewell)
        await self._finish_turn(turn_id, farewell, [])
        self.turns_answered += 1
        self.log.info("the user said {!r}: conversation ended", text[:40])
        await self.conn.close("conversation ended")

    async def speak_proactive(self, text: str) -> bool:
        """Server-initiated speech (a reminder): waits for a reply in progress, then speaks from
        idle or listening. True once the whole text was spoken and `tts stop` sent."""
        deadline = time.monotonic() + PROACTIVE_WAIT_S
        while self.turn.busy or self._in_speech:
            if time.monotonic() > deadline or self.conn.closed:
                return False
            await asyncio.sleep(0.2)
        if self.conn.closed or self._group is None or not self.turn.text_query():
            return False
        self.log.info("speaking on our own: {!r}", text[:80])
        done = asyncio.get_running_loop().create_future()

        async def speak() -> None:
            spoken = await self._speak_fixed(text, keep=False)  # one-off: not worth keeping
            if not done.done():
                done.set_result(bool(spoken) and not self.conn.closed)

        self._start_reply(speak())
        task = self._reply_task
        if task is not None:
            await asyncio.wait([task])
        return bool(done.done() and done.result())

    async def _speak_fixed(self, text: str, keep: bool = True) -> str:
        """Speak text that is not the model's (greeting, farewell, reminder); what was said.
        `keep`: from pre-rendered audio, rendered now if it is not yet."""
        return await self._speaker.speak(
            fixed_text(text), TurnTimings(), self.turn.speaking_started, fixed=keep
        )

    # --- idle policy ----------------------------------------------------------------------

    async def _idle_watch(self) -> None:
        limit = self.config.session.idle_timeout_s
        while True:
            await asyncio.sleep(min(1.0, limit / 4))
            if self.turn.busy or self._in_speech:
                self.last_activity = time.monotonic()  # never close while audio is flowing
                continue
            if time.monotonic() - self.last_activity < limit:
                continue
            self.log.info("no speech for {:.0f} s; closing", limit)
            farewell = self.config.session.farewell
            if farewell and self.turn.text_query():
                self._start_reply(self._speak_fixed(farewell))
                task = self._reply_task
                if task is not None:
                    await asyncio.wait([task])
            await self.conn.close("idle")
            return


@dataclass(eq=False)
class _EarlyTurn:
    """A pause of the user's that may end the utterance (`vad.early_asr_ms`)."""

    pauses: int  # the detector's pause count then: the same count at the end means no more speech
    text: asyncio.Task[str | None]  # speech recognition of the speech so far
    held: asyncio.Task[bool] | None = None  # the answer written meanwhile (see _answer_held)
    confirmed: asyncio.Event = field(default_factory=asyncio.Event)
    timings: TurnTimings = field(default_factory=TurnTimings)


def trim_history(turns: list[Any], keep: int) -> None:
    """Past `keep` turns, drop the older half at once rather than one turn per turn: a window
    sliding by one turn changes the prompt right after the system prompt every turn, and the
    model re-reads the whole history each time; dropped in halves, the prompt only grows
    between drops and the model's cache of it is reused."""
    if len(turns) > keep:
        del turns[: len(turns) - (max(1, keep // 2) if keep else 0)]
