"""One answer to one user turn: the language model writes, calls tools when it asks, and the
spoken text streams out as it is written.

Template mode: the GGUF's chat template shows the tools; an output that starts like a call
(`{`, `<tool_call>`, a code fence) is collected and read by the tolerant parser, anything else is
speech from the first token. Grammar mode: the output is JSON by construction and the reply
string is unwrapped as it streams. A call the parser cannot use gets one repair attempt, then an
answer without tools. A tool that fails or hangs gets a fixed apology: a small model told about a
failure may still announce success, and a fixed sentence never does.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from edge.assistant.fixed_texts import TOOL_FAILED, TOOL_TIMEOUT, in_language
from edge.assistant.grounding import grounded
from edge.assistant.honesty import (
    CLOCK_ECHO,
    QUESTION_ECHO,
    UNREAD_LEVEL,
    HonestyCheck,
    neutral,
    reads_status,
)
from edge.assistant.outcome import REFUSAL, Answer, ToolCallRecord
from edge.assistant.prompt import CLOCK_PREFIX
from edge.assistant.relevance import asked_for
from edge.config import Config
from edge.engines.llm import LanguageModel
from edge.errors import ToolArgumentError, ToolError, ToolTimeout
from edge.sentences import SentenceSplitter, pause_point, phrase_sentences
from edge.tools import grammar
from edge.tools.parsing import ParsedCall, call_start, embedded_call, parse_tool_call
from edge.tools.registry import Tool, ToolContext, ToolSet

# Plain speech only: no call can start. The answer after a tool result keeps the tools in the
# prompt (so the cached prefix stays valid) while this grammar keeps the model from calling again.
SPEECH_ONLY = "root ::= [^{<\\[`\\n ] [^\\n]*"
_NAME = re.compile(r'"(?:name|tool)"\s*:\s*"([^"]+)"')
_TAG = "<tool_call>"
_CLOCK_TIME = re.compile(r"\b\d{1,2}[:.]\d{2}\b|\b\d{1,2} ?[ap]\.?m\b|\d+点\d*分?", re.I)


# A dropped first sentence that is worth writing again, and how (`AnswerWriter._again`).
_AGAIN = {CLOCK_ECHO: "clock", UNREAD_LEVEL: "read", QUESTION_ECHO: "echo"}


class AnswerWriter:
    def __init__(
        self,
        llm: LanguageModel,
        config: Config,
        tools: ToolSet,
        context: ToolContext,
        log: Any,
        farewell: str = "Goodbye!",
        before_tool: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.llm = llm
        self.config = config
        self.tools = tools if config.tools.enabled else ToolSet([])
        self.context = context
        self.log = log
        self.farewell = farewell
        self.answer = Answer()
        self.grammar_mode = config.tools.mode == "grammar" and bool(self.tools)
        # Awaited before any tool runs: a held answer waits there until its turn is confirmed.
        self.before_tool = before_tool
        self._honesty = HonestyCheck(self.tools)
        self._user_text = self._clock = ""
        # Write the answer again: "clock", without the clock in the prompt (it was read out
        # for a question not about it); "read", told to read the device's state first (a level
        # was stated that no tool gave); "echo", told to answer rather than repeat (it only
        # repeated the question). Each at most once (`_tried`).
        self._again = ""
        self._tried: set[str] = set()
        self._status = next((t for t in self.tools.tools if reads_status(t.name)), None)

    async def pieces(self, messages: list[dict[str, Any]]) -> AsyncIterator[str]:
        """Speech as it is written, sentence by sentence once each is judged fit to be said
        (`HonestyCheck`); a tool runs in between when the model calls one."""
        repairs_left = 1
        offer_tools = bool(self.tools)
        attempt = messages
        self._user_text, self._clock = _user_text(messages), _clock_text(messages)
        while True:
            if self._again == "clock":
                self._again, self.answer.unfit = "", ""
                attempt = [m for m in messages if m.get("content") != self._clock]
                offer_tools, self._clock = False, ""
            elif self._again == "read" and self._status is not None:
                self._again, self.answer.unfit = "", ""
                note = (
                    f"The device's current volume and brightness are known only from "
                    f"{self._status.name}: call it now, then answer from its result."
                )
                attempt, offer_tools = [*messages, {"role": "system", "content": note}], True
            elif self._again == "echo":
                self._again, self.answer.unfit = "", ""
                note = "Answer the user's question in your own words; do not repeat it."
                attempt = [*attempt, {"role": "system", "content": note}]
            call_text = ""
            splitter = SentenceSplitter()
            generation = self._generate(attempt, offer_tools)
            async with contextlib.aclosing(generation):  # a dropped answer stops the model
                async for kind, text in generation:
                    if kind != "speech":
                        call_text = text
                        continue
                    for sentence in self._judged(splitter.push(text)):
                        yield sentence
                    if self._again:
                        break
                    if self.answer.unfit:
                        return
                    if not text:
                        yield ""  # the model paused at a sentence end: pass the hint on
            if self._again:
                continue
            for sentence in self._judged(splitter.finish()):
                yield sentence
            if self._again:
                continue
            if not call_text or self.answer.unfit:
                return
            parsed = parse_tool_call(call_text)
            if parsed.reply is not None:  # grammar mode's direct answer, not streamed
                for sentence in self._judged(phrase_sentences(parsed.reply)):
                    yield sentence
                return
            problem, tool, arguments = self._resolve(parsed.call, parsed.error)
            if tool is not None and not asked_for(tool, self._user_text):
                # "My name is Alice." once set a reminder: answer in words, without tools (and
                # without repairing a broken call to a tool that was not wanted anyway).
                self.log.info("call to {} not run: the user did not ask for it", tool.name)
                offer_tools, attempt = False, messages
                continue
            if problem is not None or tool is None:
                self.log.warning("unusable tool call ({}): {!r}", problem, call_text[:200])
                self.answer.repairs += 1
                if repairs_left:
                    repairs_left -= 1
                    attempt = _repair_prompt(messages, call_text, problem or "no call")
                else:
                    offer_tools, attempt = False, messages  # answer without tools
                continue
            if (said := grounded(tool, arguments, self._user_text)) != arguments:
                self.log.info(
                    "{} gets the user's own delay: {} not {}",
                    tool.name,
                    json.dumps(said, ensure_ascii=False)[:200],
                    json.dumps(arguments, ensure_ascii=False)[:200],
                )
                arguments = said
            if self.before_tool is not None:
                await self.before_tool()
            record = await self._run(tool, arguments)
            if record.repairable and repairs_left:
                repairs_left -= 1
                self.answer.repairs += 1
                attempt = _repair_prompt(messages, call_text, record.error or "")
                continue
            if record.error is not None:
                self.answer.unfit = "a tool failed"
                failed = TOOL_TIMEOUT if record.timed_out else TOOL_FAILED
                yield self._said(in_language(failed, self._user_text))
                return
            if tool.terminal or self.context.end_conversation:
                self.answer.end_conversation = True
                yield self._said(self.farewell)
                return
            # The result goes back as a note and the model may only speak: given the template's
            # tool-response turn instead, the 0.5B model calls the same tool again and again.
            note = (
                f"You called the tool {tool.name} with {json.dumps(arguments, ensure_ascii=False)}"
                f" and it returned: {record.result}\nNow answer the user's request in one short "
                "sentence, based on this result."
            )
            offer_tools, attempt = False, [*messages, {"role": "system", "content": note}]

    def _judged(self, sentences: list[str]) -> list[str]:
        """The sentences that may be said, each as it is to be yielded; at the first that may
        not, the answer ends (`answer.unfit`), with a neutral sentence if nothing was said."""
        out: list[str] = []
        succeeded = [call.name for call in self.answer.tool_calls if call.error is None]
        for sentence in sentences:
            fault = self._honesty.fault(sentence, succeeded, self._user_text, self._clock)
            if fault is not None:
                self.log.warning("reply dropped: it {}: {!r}", fault, sentence[:120])
                self.answer.unfit = fault
                again = _AGAIN.get(fault, "") if not self.answer.text else ""
                if again and again not in self._tried and (again != "read" or self._may_read()):
                    self._again = again
                    self._tried.add(again)
                elif not self.answer.text:
                    out.append(self._said(neutral(fault, sentence)))
                break
            out.append(self._said(sentence))
        return out

    def _may_read(self) -> bool:
        """A stated level may be asked for again with the state read first: once, when the
        device has a status tool and it has not run yet."""
        if self._status is None:
            return False
        return all(call.name != self._status.name for call in self.answer.tool_calls)

    def _said(self, sentence: str) -> str:
        """`sentence` added to the answer, as it is yielded: a space after it, so the speaker
        cuts a first clause ("Well, ") at once."""
        self.answer.refuses = self.answer.refuses or (
            not self.answer.text and REFUSAL.search(sentence.strip()) is not None
        )
        self.answer.text = f"{self.answer.text} {sentence}".strip()
        self.answer.states_time = self.answer.states_time or bool(_CLOCK_TIME.search(sentence))
        return sentence + " "

    def _resolve(
        self, call: ParsedCall | None, error: str | None
    ) -> tuple[str | None, Tool | None, dict[str, Any]]:
        if call is None:
            return error or "no call", None, {}
        tool = self.tools.find(call.name)
        if tool is None:
            return f"there is no tool named {call.name!r}", None, {}
        try:
            return None, tool, tool.clean_arguments(call.arguments)
        except ToolArgumentError as exc:
            return f"bad arguments for {tool.function}: {exc}", tool, {}

    async def _run(self, tool: Tool, arguments: dict[str, Any]) -> ToolCallRecord:
        record = ToolCallRecord(tool.name, arguments)
        started = time.monotonic()
        try:
            record.result = await tool.call(arguments, self.context)
            self.log.info(
                "tool {}({}) → {!r}",
                tool.name,
                json.dumps(arguments, ensure_ascii=False),
                record.result[:200],
            )
        except ToolError as exc:
            record.error = str(exc)
            record.repairable = isinstance(exc, ToolArgumentError)
            record.timed_out = isinstance(exc, ToolTimeout)
            self.log.warning(
                "tool {}({}) failed: {}", tool.name, json.dumps(arguments, ensure_ascii=False), exc
            )
        record.seconds = time.monotonic() - started
        self.answer.tool_calls.append(record)
        return record

    # --- one generation, split into speech and a call -------------------------------------

    async def _generate(
        self, messages: list[dict[str, Any]], offer_tools: bool
    ) -> AsyncGenerator[tuple[str, str]]:
        """Yields ("speech", text) as it is written, and at most one ("call", raw text)."""
        kwargs: dict[str, Any] = {
            "max_tokens": self.config.llm.max_tokens,
            "timeout_s": self.config.llm.timeout_s,
        }
        if self.tools and not self.grammar_mode:
            kwargs["tools"] = self.tools.specs()
        if offer_tools and self.grammar_mode:
            kwargs["json_schema"] = json.dumps(grammar.schema(self.tools))
        elif not offer_tools and self.tools:
            kwargs["grammar"] = SPEECH_ONLY
        stream = self.llm.stream(
            messages, owner=self.context.device_id, pause_at=pause_point, **kwargs
        )
        async with contextlib.aclosing(stream):
            if "json_schema" in kwargs:
                async for item in self._split_grammar(stream):
                    yield item
            else:
                async for item in self._split_template(stream, offer_tools):
                    yield item

    async def _split_grammar(self, stream: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
        reply = grammar.ReplyStreamer()
        async for piece in stream:
            text = reply.feed(piece)
            if text:
                yield "speech", text
            if reply.closed:
                return  # the rest is `"}`: no need to wait for it
        if reply.is_reply is False or (reply.is_reply is None and reply.raw.strip()):
            yield "call", reply.raw

    async def _split_template(
        self, stream: AsyncIterator[str], tools_shown: bool
    ) -> AsyncIterator[tuple[str, str]]:
        buffer = ""
        mode: str | None = None if tools_shown else "speech"
        held = ""  # speech held back while it might be the start of `<tool_call>`
        async for piece in stream:
            if not piece:  # the model paused at a sentence end: pass the hint on
                if mode == "speech" and not held:
                    yield "speech", ""
                continue
            if mode == "call":
                buffer += piece
                if self._call_complete(buffer):
                    break  # stop generating: the model pads calls with junk
                continue
            if mode is None:
                buffer += piece
                starts = call_start(buffer)
                if starts is None:
                    continue
                mode = "call" if starts else "speech"
                if mode == "call":
                    if self._call_complete(buffer):
                        break
                    continue
                piece, buffer = buffer, ""
            if not tools_shown:
                yield "speech", piece
                continue
            text = held + piece
            at = embedded_call(text)
            if at >= 0:  # "Sure! <tool_call>{…}": speak the words, read the call
                if text[:at].strip():
                    yield "speech", text[:at]
                mode, buffer, held = "call", text[at:], ""
                continue
            cut = text.rfind("<")
            if cut >= 0 and _TAG.startswith(text[cut:]):
                held = text[cut:]
                text = text[:cut]
            else:
                held = ""
            if text:
                yield "speech", text
        if mode == "call":
            yield "call", buffer
        elif mode is None and buffer.strip():
            yield "speech", buffer
        elif held:
            yield "speech", held

    def _call_complete(self, text: str) -> bool:
        """True once the call is fully written, or is a call to a tool without arguments."""
        start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
        if start < 0:
            return False
        try:
            json.JSONDecoder().raw_decode(text[start:])
            return True
        except json.JSONDecodeError:
            pass
        named = _NAME.search(text)
        if named and ("arguments" in text or "parameters" in text):
            tool = self.tools.find(named.group(1))
            return tool is not None and not tool.properties
        return False


def _clock_text(messages: list[dict[str, Any]]) -> str:
    """The clock the prompt carries (`PromptBuilder.clock`: the last system message)."""
    systems = [m for m in messages if m.get("role") == "system"]
    content = str(systems[-1].get("content") or "") if len(systems) > 1 else ""
    return content if content.startswith(CLOCK_PREFIX) else ""


def _user_text(messages: list[dict[str, Any]]) -> str:
    users = [m for m in messages if m.get("role") == "user"]
    return str(users[-1].get("content") or "") if users else ""


def _repair_prompt(
    messages: list[dict[str, Any]], call_text: str, problem: str
) -> list[dict[str, Any]]:
    """The one repair attempt: the model sees its own call and what was wrong with it."""
    return [
        *messages,
        {"role": "assistant", "content": call_text},
        {
            "role": "user",
            "content": f"That tool call could not be used: {problem}. Call one of the listed "
            "tools with valid arguments, or answer me directly.",
        },
    ]
