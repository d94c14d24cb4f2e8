"""One device's answered turns, from the user's words to the last frame of the reply.

For each turn: the gate (`stt` to the device, the turn opened in the memory; for a held answer
only once the pause is confirmed), the tool set, the prompt, the model and its tools
(`AnswerWriter`), the speaker, and the conversation kept for the next prompt. The answer is
stored as soon as it is written, while it is still being spoken, and the next prompt is read
ahead from then on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import numpy as np

from edge.assistant.answer import AnswerWriter
from edge.assistant.fixed_texts import APOLOGY, in_language
from edge.assistant.history import Conversation, SpokenTurn
from edge.assistant.prompt import PromptBuilder
from edge.commands.replies import unchanging
from edge.commands.runner import CommandRunner
from edge.commands.runner import match as match_command
from edge.config import Config
from edge.engines.llm import LanguageModel, Message
from edge.metrics import Metrics, TurnRecord
from edge.protocol.messages import Stt
from edge.sentences import phrase_sentences
from edge.session.device_tools import DeviceTools
from edge.session.gate import TurnGate
from edge.session.link import DeviceLink
from edge.session.listener import UPLINK_RATE, EarlyTurn, Spawn, Utterance
from edge.session.phrases import PhrasePolicy, meaningful
from edge.session.reply import ReplySpeaker, fixed_text
from edge.session.state import TurnStateMachine
from edge.session.timings import TurnTimings
from edge.tools.registry import ToolContext, ToolSet


class TurnRunner:
    def __init__(
        self,
        link: DeviceLink,
        config: Config,
        llm: LanguageModel,
        conversation: Conversation,
        tools: DeviceTools,
        speaker: ReplySpeaker,
        turn: TurnStateMachine,
        metrics: Metrics,
        spawn: Spawn,
        owner: str,
        phrases: PhrasePolicy,
        transcribe: Callable[[np.ndarray], Coroutine[Any, Any, str | None]],
        commands: CommandRunner | None = None,
    ) -> None:
        self.link = link
        self.config = config
        self.llm = llm
        self.conversation = conversation
        self.tools = tools
        self.speaker = speaker
        self.turn = turn
        self.metrics = metrics
        self._spawn = spawn
        self.owner = owner  # whose tools and history (the Device-Id, else the connection)
        self.phrases = phrases
        self._transcribe = transcribe  # None (logged) when recognition fails
        self.commands = commands
        self.log = link.log
        self.answered = 0  # turns answered on this connection
        self.tool_specs: list[dict[str, Any]] = []  # what the last turn offered the model
        self._reading_ahead: asyncio.Task[None] | None = None

    async def restore(self) -> None:
        """A new connection goes on where the device left off: its conversation from the
        memory, and the model's state of its last prompt from disk (after a restart)."""
        if self.conversation.memory is not None:
            await asyncio.gather(self.conversation.restore(), self.llm.preload(self.owner))
        else:
            await self.conversation.restore()

    async def keep(self) -> None:
        """The device leaves: what the model read of its prompt is kept for its return."""
        if self.answered and self.conversation.memory is not None:
            await self.llm.keep(self.owner)

    async def answer_utterance(self, utterance: Utterance) -> None:
        """The utterance ended: let the answer held since its pause go on, or answer now."""
        early = utterance.early
        timings = utterance.timings
        text: str | None = None
        if early is not None:
            early.confirmed.set()
            if early.held is not None and await early.held:
                self.metrics.held_answer("used")
                return
            timings = early.timings
            text = await early.text
        if text is None:  # no early text, or its recognition failed: try the whole utterance
            text = await self._transcribe(utterance.samples) or ""
        timings.asr_done = time.monotonic()
        if not meaningful(text):
            seconds = utterance.samples.size / UPLINK_RATE
            self.log.info("no words recognised in {:.1f} s of audio", seconds)
            return
        await self.answer_text(text, timings)

    async def answer_held(self, early: EarlyTurn) -> bool:
        """Answer the early text before the pause is confirmed (nothing reaches the device, the
        memory or a tool until then). False, having done nothing, when it is not worth it: no
        words, an exit phrase, or no place free at the model (a held answer would only hold
        other devices up)."""
        text = await early.text
        if (
            not text
            or not meaningful(text)
            or self.phrases.is_exit(text)
            or self.llm.full
            or (self.commands is not None and match_command(text) is not None)
        ):  # a command is not held: it acts on the device, and takes milliseconds anyway
            self.metrics.held_answer("declined")
            return False
        early.timings.asr_done = time.monotonic()
        try:
            await self.answer(text, early.timings, confirmed=early.confirmed)
        except Exception:  # never out of this task: a failed task would end the whole session
            self.log.exception("held answer failed")
            self.metrics.error("reply crashed")
        return True

    async def answer_text(self, text: str, timings: TurnTimings) -> None:
        """Words to answer (recognised, or sent by `listen detect`); an exit phrase ends the
        conversation instead."""
        if self.phrases.is_exit(text):
            await self.end_by_request(text)
        else:
            await self.answer(text, timings)

    async def answer(
        self, text: str, timings: TurnTimings, confirmed: asyncio.Event | None = None
    ) -> None:
        """Answer `text`. With `confirmed` (a held answer), the model writes and the first
        sentences are synthesized at once, but the device hears of the turn, the memory stores
        it and a tool runs only once `confirmed` is set (see `TurnGate`)."""
        if confirmed is None and await self._command(text, timings):
            return

        async def tell_device() -> int | None:
            await self.link.send(Stt(text))
            return await self.conversation.begin(self.link.session_id, text)

        gate = TurnGate(tell_device, confirmed)
        if confirmed is None:
            await gate.open()
        tools = await self.tools.toolset()
        prompt = PromptBuilder(self.config, tools)
        self.tool_specs = tools.specs() if self.config.tools.mode == "template" else []
        writer = self._writer(tools, gate)
        clock = prompt.clock()
        messages = prompt.messages(
            text, self.conversation.history(), self.conversation.summary, clock
        )
        answer = writer.answer
        stored = False

        async def pieces() -> AsyncIterator[str]:
            nonlocal stored
            async for piece in writer.pieces(messages):
                yield piece
            await gate.open()
            # Stored as soon as it is written, while it is still being spoken.
            await self.conversation.finish(gate.turn_id, answer.text, answer.tool_calls_json())
            stored = True
            # The next prompt is known now: reading it while this answer plays keeps that
            # work (after a history trim, a few hundred tokens) out of the user's next turn.
            # The history will hold the reply as spoken: the written text, cleaned for speech.
            if not answer.example:  # kept out of the history: the next prompt is today's
                self.read_ahead()
                return
            spoken = " ".join(phrase_sentences(answer.text)) or answer.text
            calls = answer.tool_calls_json()
            self.read_ahead(self.conversation.history_after(SpokenTurn(text, spoken, calls, clock)))

        said: list[str] = []
        try:
            reply = await self.speaker.speak(
                pieces(),
                timings,
                self.turn.speaking_started,
                ready=gate.open,
                spoken=said,
                apology=in_language(APOLOGY, text),
            )
        finally:
            played = " ".join(said)
            if not stored or (played and played != answer.text):
                # Cut short (abort, failure): keep what was said, or at least what was written.
                await asyncio.shield(
                    self.conversation.finish(
                        gate.turn_id, played or answer.text, answer.tool_calls_json()
                    )
                )
        if reply and answer.example:  # a dropped, failed or dated answer teaches nothing good
            self.conversation.add(
                SpokenTurn(text, reply, answer.tool_calls_json(), clock), gate.turn_id
            )
        self.answered += 1
        self._report(text, reply, timings, writer)
        if answer.end_conversation:
            self.log.info("the user ended the conversation")
            await self.link.close("conversation ended")

    async def _command(self, text: str, timings: TurnTimings) -> bool:
        """A household command carried out without the model; False, having done nothing,
        when `text` is not one or it cannot be carried out with confidence. Its turn is not
        kept in the history (the model would learn to imitate the fixed confirmations), except
        a fact the user stated ("My name is Alice")."""
        command = match_command(text) if self.commands is not None else None
        if command is None or self.commands is None:
            return False
        tools = await self.tools.toolset()
        if not self.commands.can_run(command, tools):
            return False
        await self.link.send(Stt(text))  # before any tool call, as on the model's path
        done = await self.commands.run(command, tools, ToolContext(self.owner))
        timings.llm_first_token = time.monotonic()  # the answer is known: no model to wait for
        if done.keep:  # a fact the user stated: the model and the summary learn it
            # Stored before it is spoken, as a model's answer is: the reply ends at its tts stop.
            turn_id = await self.conversation.begin(self.link.session_id, text)
            await self.conversation.finish(turn_id, done.spoken, [])
            clock = PromptBuilder(self.config, tools).clock()
            self.conversation.add(SpokenTurn(text, done.spoken, [], clock), turn_id)
        reply = await self.speaker.speak(
            fixed_text(done.spoken),
            timings,
            self.turn.speaking_started,
            fixed=unchanging(done.spoken),
        )
        self.answered += 1
        called = f" with {done.tool}{'' if done.ok else ' (failed)'}" if done.tool else ""
        self.log.info(
            "command{}: {!r} → {!r} | {}", called, text[:80], reply[:80], timings.summary()
        )
        self._count_turn(timings, 1 if done.tool else 0)
        return True

    async def end_by_request(self, text: str) -> None:
        """An exit phrase: the farewell, then close, without asking the model."""
        await self.link.send(Stt(text))
        farewell = self.config.session.farewell
        turn_id = await self.conversation.begin(self.link.session_id, text)
        if farewell:
            await self.speak_fixed(farewell)
        await self.conversation.finish(turn_id, farewell, [])
        self.answered += 1
        self.log.info("the user said {!r}: conversation ended", text[:40])
        await self.link.close("conversation ended")

    async def speak_fixed(self, text: str, keep: bool = True) -> str:
        """Speak text that is not the model's (greeting, farewell, reminder); what was said.
        `keep`: from pre-rendered audio, rendered now if it is not yet."""
        return await self.speaker.speak(
            fixed_text(text), TurnTimings(), self.turn.speaking_started, fixed=keep
        )

    def read_ahead(self, history: list[Message] | None = None) -> None:
        """Have the model read this device's next prompt up to the user's coming words
        (summary, history), so that only the words are left when recognition is done: while
        the user speaks, and before that, as soon as an answer is written (`history`: the
        history that answer makes), while it is still being played."""
        if self._reading_ahead is not None and not self._reading_ahead.done():
            return
        if not self.tools.listed:
            return  # the tool list will still change: nothing to read ahead yet
        history = self.conversation.history() if history is None else history
        self._reading_ahead = self._spawn(self._prefetch(history), "read ahead")

    async def _prefetch(self, history: list[Message]) -> None:
        prompt = PromptBuilder(self.config, self.tools.now())
        try:
            read = await self.llm.prefetch(
                *prompt.ahead(history, self.conversation.summary), owner=self.owner
            )
        except Exception as exc:  # only a lost head start: the answer reads it all anyway
            self.log.warning("reading the prompt ahead failed: {!r}", exc)
            return
        if read:
            self.log.debug("read {} prompt tokens ahead", read)

    def _writer(self, tools: ToolSet, gate: TurnGate) -> AnswerWriter:
        return AnswerWriter(
            self.llm,
            self.config,
            tools,
            ToolContext(self.owner),
            self.log,
            self.config.session.farewell or "Goodbye!",
            before_tool=gate.open,
        )

    def _count_turn(self, timings: TurnTimings, tool_calls: int) -> None:
        self.metrics.turn(
            TurnRecord(
                self.owner,
                timings.end_of_speech,
                timings.asr_done,
                timings.llm_first_token,
                timings.tts_first_audio,
                timings.first_frame_sent,
                tool_calls,
            )
        )

    def _report(self, text: str, reply: str, timings: TurnTimings, writer: AnswerWriter) -> None:
        answer = writer.answer
        self._count_turn(timings, len(answer.tool_calls))
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
