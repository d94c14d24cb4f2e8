"""One connected device, from its hello to its last frame.

The reader dispatches frames; the listening loop acts on what the listener heard; at most one
reply task runs at a time. All of them live in the session's TaskGroup, so when the device goes
every task is cancelled and awaited, and the borrowed VAD detector is returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from typing import Any

import numpy as np

from edge.assistant.history import Conversation
from edge.audio.opus import OpusDecoder, OpusEncoder
from edge.commands.intents import AskClock, ManageReminders, SetLevel, SetTheme, StartTimer
from edge.commands.runner import ASR_BIAS
from edge.commands.runner import match as match_command
from edge.config import Config
from edge.errors import OpusError
from edge.faults import bounded
from edge.protocol import framing
from edge.protocol import messages as m
from edge.protocol.ota import VISION_PATH
from edge.services import Services
from edge.session.announcer import IdleAnnouncer
from edge.session.device_tools import DeviceTools
from edge.session.link import DeviceLink
from edge.session.listener import UPLINK_RATE, EarlyTurn, Heard, Listener
from edge.session.phrases import PhrasePolicy
from edge.session.reply import ReplySpeaker
from edge.session.state import TurnState, TurnStateMachine
from edge.session.timings import TurnTimings
from edge.session.turn_runner import TurnRunner

MAX_AUDIO_FRAME = 8192  # bytes; Opus packets are far smaller (browser clients send ~2 KB)
# After the hello, the device is "connecting" until it acts on our hello; server-initiated speech
# waits for its first message (or this long) so `tts start` is not rejected.
DEVICE_SETTLE_S = 1.5
PROACTIVE_WAIT_S = 60.0  # a reminder waits at most this long for a reply in progress


class DeviceSession:
    def __init__(
        self,
        link: DeviceLink,
        hello: m.Hello,
        services: Services,
        config: Config,
        device_id: str = "",
        http_base: str = "",
    ) -> None:
        """`device_id`: the device's Device-Id ("" when it sent none: nothing is stored).
        `http_base`: our HTTP port as this device reached it ("" in tests without one)."""
        self.link = link
        self.services = services
        self.engines = engines = services.engines
        self.config = config
        self.device_id = device_id
        self.log = link.log
        self.faults = link.faults
        self.metrics = services.metrics
        self.turn = TurnStateMachine()
        self.phrases = PhrasePolicy(config.session)
        self.tools = DeviceTools(
            link,
            services.registry,
            config.tools,
            mcp=hello.mcp,
            vision_url=http_base + VISION_PATH if http_base else "",
        )
        self.announcer = IdleAnnouncer(link, services, config, device_id, http_base)
        self.conversation = Conversation(
            services.memory if config.memory.enabled else None,
            device_id,
            keep=config.llm.history_turns,
            grammar_mode=config.tools.mode == "grammar" and config.tools.enabled,
            log=self.log,
            on_error=self.metrics.error,
        )
        self.listener = Listener(
            engines.vad,
            config.vad,
            self.turn,
            self._transcribe,
            self._spawn,
            self.metrics,
            self.faults,
            self.log,
            complete=self._completes_turn if config.vad.command_ends_turn else None,
        )
        self._decoder = OpusDecoder(UPLINK_RATE)
        self._encoder = OpusEncoder(
            config.audio.downlink_sample_rate, config.audio.frame_duration_ms
        )
        speaker = ReplySpeaker(
            link,
            engines.tts,
            self._encoder,
            config.audio,
            config.session.emotion,
            self.metrics.error,
        )
        self.runner = TurnRunner(
            link,
            config,
            engines.llm,
            self.conversation,
            self.tools,
            speaker,
            self.turn,
            self.metrics,
            self._spawn,
            owner=device_id or link.device_id,
            phrases=self.phrases,
            transcribe=self._transcribe,
            commands=services.commands,
        )
        self._device_spoke = asyncio.Event()  # any message after the hello
        self._reply_task: asyncio.Task[None] | None = None
        self._group: asyncio.TaskGroup | None = None
        self.last_activity = time.monotonic()

    @property
    def turns_answered(self) -> int:
        return self.runner.answered

    @property
    def talking(self) -> bool:
        """The user speaks, or waits for (or hears) an answer: background work waits."""
        return self.listener.in_speech or self.turn.busy

    # --- lifetime -------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                helpers = [
                    group.create_task(self._listen_loop(), name="listener"),
                    group.create_task(self._idle_watch(), name="idle-watch"),
                    group.create_task(self._after_hello(), name="after-hello"),
                    group.create_task(self._start_tools(), name="device-tools"),
                ]
                try:
                    async for frame in self.link.incoming():
                        if isinstance(frame, bytes):
                            self._on_audio(frame)
                        else:
                            await self._on_text(frame)
                finally:
                    self.tools.close()
                    for task in [*helpers, self._reply_task]:
                        if task is not None:
                            task.cancel()
        finally:
            self.listener.close()
            self._encoder.close()
            self._decoder.close()
            if self.faults.counts:
                self.log.info("bad input this session: {}", self.faults.summary())
            summarizer = self.services.summarizer
            if self.runner.answered and summarizer is not None and self.conversation.memory:
                summarizer.request(self.device_id, self.runner.tool_specs)
            await asyncio.shield(self.runner.keep())

    def _spawn(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        assert self._group is not None
        return self._group.create_task(work, name=name)

    async def _after_hello(self) -> None:
        """Restore memory, then speak reminders that fell due while the device was away."""
        await self.runner.restore()
        if self.services.reminders is not None and self.device_id:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DEVICE_SETTLE_S):
                    await self._device_spoke.wait()
            await self.services.reminders.device_connected(self.device_id)

    async def _start_tools(self) -> None:
        """List the device's tools; their prompt prefix is evaluated while the model is free
        (that cost then stays out of the first question)."""
        if await self.tools.start():
            await self.services.warmer.for_device(await self.tools.toolset(), self.log)

    # --- incoming frames ------------------------------------------------------------------

    def _on_audio(self, frame: bytes) -> None:
        if len(frame) > MAX_AUDIO_FRAME:
            self.faults("oversized audio frame", f"{len(frame)} bytes dropped")
            return
        try:
            packet = framing.decode(self.link.protocol_version, frame)
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
        self.listener.hear(pcm)

    async def _on_text(self, text: str) -> None:
        self._device_spoke.set()
        match m.parse_device_message(text):
            case m.ListenStart(mode=mode):
                if self.turn.listen_start(mode):
                    self.listener.restart()
                    if mode == "manual":  # no VAD to say when speech starts: the button does
                        self.runner.read_ahead()
            case m.ListenStop():
                self.listener.button_released()
            case m.ListenDetect(text=wake_text):
                self._on_detect(wake_text)
            case m.Abort(reason=reason):
                await self._on_abort(reason)
            case m.Hello():
                self.faults("repeated hello", "a second hello on one connection is ignored")
            case m.Mcp(payload=payload):
                self.tools.on_mcp(payload)
            case m.Iot(descriptors=descriptors):
                self.tools.on_iot(descriptors)
            case m.Goodbye():
                self.log.debug("goodbye is an MQTT message; ignored on WebSocket")
            case m.Ping(reply=False):
                await self.link.send(m.Pong())
            case m.Ping(reply=True):
                pass  # a client's answer to a ping; the WebSocket's own pings keep the channel
            case m.Invalid(reason=reason):
                self.faults("bad message", reason)

    def _on_detect(self, text: str) -> None:
        self.last_activity = time.monotonic()
        if self.phrases.is_wake_word(text):
            self.log.info("wake word {!r}", bounded(text, 80))
            greeting = self.config.session.greeting
            if greeting and self.turn.text_query():
                self._start_reply(self.runner.speak_fixed(greeting))
            return
        # Boards inject phrases through `detect` too: answer them like a spoken question.
        if self.turn.text_query():
            self.log.info("text query by detect: {!r}", bounded(text, 160))
            self._start_reply(self.runner.answer_text(text, TurnTimings()))

    async def _on_abort(self, reason: str | None) -> None:
        self.log.info("abort ({})", reason or "button")
        task = self._reply_task
        if task is not None and not task.done():
            task.cancel()  # the reply's finally sends `tts stop`
            await asyncio.wait([task])

    # --- listening ------------------------------------------------------------------------

    async def _listen_loop(self) -> None:
        while True:
            heard = await self.listener.next()
            if heard.voice:
                self.last_activity = time.monotonic()
            if heard.started:
                self.runner.read_ahead()
            if heard.voice and self.turn.state == TurnState.SPEAKING:  # realtime barge-in
                self.log.info("user speech during the reply: barge-in")
                await self._on_abort("barge-in")
            if heard.pause is not None:
                self._maybe_hold_answer(heard.pause)
            self._on_heard_end(heard)

    def _on_heard_end(self, heard: Heard) -> None:
        if heard.click is not None:
            self.log.info("push-to-talk with {:.2f} s of audio; nothing to answer", heard.click)
            self.turn.listen_stop()
            self.turn.reply_done()
        utterance = heard.utterance
        if utterance is None:
            return
        if utterance.pushed:
            if self.turn.listen_stop():
                self._start_reply(self.runner.answer_utterance(utterance))
            return
        if not self.turn.utterance_end():
            self.listener.drop_early(utterance.early)
            return
        if utterance.early is not None:
            self.metrics.early_asr(used=True)
            utterance.early.timings.end_of_speech = utterance.timings.end_of_speech
        self._start_reply(self.runner.answer_utterance(utterance))

    def _completes_turn(self, text: str) -> float | None:
        """Heard at a pause, a short command that nothing could extend ends the utterance at
        once; a timer, a reminder or a question about them when the pause has lasted
        `vad.timer_end_silence_ms`, as people go on after them more often ("remind me in ten
        minutes … to call Bob"); an introduction never does ("my name is Alice … and I …")."""
        command = match_command(text) if self.services.commands is not None else None
        if isinstance(command, SetLevel | SetTheme | AskClock):
            return 0.0
        if isinstance(command, StartTimer | ManageReminders):
            return self.config.vad.timer_end_silence_ms / 1000
        return None

    def _maybe_hold_answer(self, early: EarlyTurn) -> None:
        """The user paused: when the model is free, answer the speech so far at once, holding
        everything the device or the memory would see until the hang-over confirms that the
        pause ended the utterance."""
        if self.config.vad.preemptive_answer and self.turn.state == TurnState.LISTENING:
            early.held = self._spawn(self.runner.answer_held(early), "held answer")

    async def _transcribe(self, samples: np.ndarray) -> str | None:
        """The text of `samples`, or None (logged) when recognition fails."""
        bias = ASR_BIAS if self.services.commands is not None else None
        try:
            return await self.engines.asr.transcribe(
                samples, timeout_s=self.config.asr.timeout_s, bias=bias
            )
        except Exception as exc:
            self.log.error("speech recognition failed: {!r}", exc)
            self.metrics.error("asr")
            return None

    # --- replies --------------------------------------------------------------------------

    def _start_reply(self, work: Coroutine[Any, Any, object]) -> None:
        self._reply_task = self._spawn(self._run_reply(work), "reply")

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

    async def speak_proactive(self, text: str) -> bool:
        """Server-initiated speech (a reminder): waits for a reply in progress, then speaks from
        idle or listening. True once the whole text was spoken and `tts stop` sent."""
        deadline = time.monotonic() + PROACTIVE_WAIT_S
        while self.turn.busy or self.listener.in_speech:
            if time.monotonic() > deadline or self.link.closed:
                return False
            await asyncio.sleep(0.2)
        if self.link.closed or self._group is None:
            return False
        idle = self.turn.state == TurnState.IDLE and not self.listener.in_speech
        if self.announcer.can_announce(idle) and await self.announcer.announce(text):
            return True
        if self.link.closed or not self.turn.text_query():
            return False
        self.log.info("speaking on our own: {!r}", text[:80])
        done = asyncio.get_running_loop().create_future()

        async def speak() -> None:
            spoken = await self.runner.speak_fixed(text, keep=False)  # one-off: not kept
            if not done.done():
                done.set_result(bool(spoken) and not self.link.closed)

        self._start_reply(speak())
        task = self._reply_task
        if task is not None:
            await asyncio.wait([task])
        return bool(done.done() and done.result())

    # --- idle policy ----------------------------------------------------------------------

    async def _idle_watch(self) -> None:
        limit = self.config.session.idle_timeout_s
        while True:
            await asyncio.sleep(min(1.0, limit / 4))
            if self.turn.busy or self.listener.in_speech:
                self.last_activity = time.monotonic()  # never close while audio is flowing
                continue
            if time.monotonic() - self.last_activity < limit:
                continue
            self.log.info("no speech for {:.0f} s; closing", limit)
            farewell = self.config.session.farewell
            if farewell and self.turn.text_query():
                self._start_reply(self.runner.speak_fixed(farewell))
                task = self._reply_task
                if task is not None:
                    await asyncio.wait([task])
            await self.link.close("idle")
            return
