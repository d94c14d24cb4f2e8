"""What one answer came to: what was said, the tools it called and how they went, and whether
it may go back into the prompt as an example (`Answer.example`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# A stock refusal ("I'm sorry, but I can't assist with that.", "I'm sorry, but I don't know
# what you're asking."): in the history, the 0.5B model gives it again to whatever comes next
# ("Tell me a joke." → refusal, "What about." → refusal; five turns in a row in one run).
REFUSAL = re.compile(
    r"^(?:i'?m sorry|i am sorry|sorry|i apologi[sz]e)\b.{0,40}?"
    r"\b(?:can'?t|cannot|unable|not able|(?:don'?t|do not) (?:know|understand)|not sure)\b"
    r"|^(?:抱歉|对不起).{0,12}?(?:不能|无法|没法|做不到|不知道|不明白|不清楚)",
    re.IGNORECASE,
)


@dataclass
class ToolCallRecord:
    name: str
    arguments: dict[str, Any]
    result: str | None = None
    error: str | None = None
    seconds: float = 0.0
    repairable: bool = False  # the tool refused the arguments; the model may try again
    timed_out: bool = False

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"name": self.name, "arguments": self.arguments}
        if self.error is None:
            record["result"] = self.result
        else:
            record["error"] = self.error
        return record


@dataclass
class Answer:
    """The outcome, filled in while `pieces()` runs."""

    text: str = ""  # everything spoken
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    repairs: int = 0
    end_conversation: bool = False
    # Why the answer must not become an example in the history: a dropped sentence (it spoke
    # of its tools, or claimed an action no tool took), or a failed tool's apology.
    unfit: str = ""
    # It states a clock time: kept out of the history too, or the model copies it into later
    # answers ("12:00 PM" three conversations in a row); the prompt's clock is the only source.
    states_time: bool = False
    refuses: bool = False  # a stock refusal: kept out too, or it is copied (`REFUSAL`)

    @property
    def example(self) -> bool:
        """Whether this answer may go back into the prompt as part of the history."""
        return not self.unfit and not self.states_time and not self.refuses

    def tool_calls_json(self) -> list[dict[str, Any]]:
        return [call.to_json() for call in self.tool_calls]
