"""Cuts streamed LLM text into speakable pieces, so the first clause is spoken while the model is
still writing the rest. Handles Latin and CJK punctuation.

The one place that knows what a sentence is: the reply speaker splits with `SentenceSplitter`,
fixed phrases are pre-rendered as `phrase_sentences` cuts them, and the language model may pause
a long answer where `pause_point` allows (passed to it by the answer)."""

from __future__ import annotations

import re

# End of a sentence: Latin .!? followed by space (not "3.14"), or CJK full stops, or a newline.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+|(?<=[。！？；])|\n+")
# A buffer that ends a sentence, once nothing follows it yet: a letter before the stop (after a
# digit, only ! ? … end a sentence: "3." may become "3.5").
_SENTENCE_DONE = re.compile(r"(?:[^\W\d_][.!?…]+|\d[!?…]+)[\"')\]]*\s*$|[。！？；]\s*$")
# Words whose stop does not end a sentence: titles, "etc.", and single letters (initials,
# "e.g.", "U.S.", "p.m."). Such a stop waits for what follows, like a number's point.
_ABBREVIATION = re.compile(
    r"(?:^|[^\w])(?:[^\W\d_]|mrs?|ms|dr|st|mt|jr|sr|prof|vs|etc|approx|inc|ltd|co|fig|ave)"
    r"\.[\"')\]]*\s*$",
    re.IGNORECASE,
)
# A clause break that is good enough for the first piece of a reply.
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+|(?<=[，、：；])")
# The first piece may end at a clause break once it is this long (weighted: a CJK character is
# a syllable, worth about three Latin letters). Shorter pieces sound choppy and gain nothing.
FIRST_CLAUSE_MIN_WEIGHT = 12
_MARKUP = re.compile(r"[*_`#>|~]+|\[(.*?)\]\(.*?\)")
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0000fe0f\U0000200d\U0001f1e6-\U0001f1ff]"
)


def clean_for_speech(text: str) -> str:
    """Drop markdown and emoji that a TTS voice would read out or choke on."""
    text = _MARKUP.sub(lambda m: m.group(1) or " ", text)
    text = _EMOJI.sub("", text)
    return re.sub(r"\s+", " ", text).strip()


def ends_sentence(text: str) -> bool:
    """Whether `text` ends a sentence already, without the space that would follow its stop (a
    decimal point or an abbreviation's stop is not a sentence end: "3." and "Dr." wait), or
    ends a line (which the splitter always cuts at)."""
    if text.rstrip(" \t").endswith("\n"):
        return True
    return bool(_SENTENCE_DONE.search(text)) and not _ABBREVIATION.search(text)


def speech_weight(text: str) -> int:
    """How long `text` takes to say, in Latin letters: a CJK character is a syllable, worth
    about three."""
    return sum(3 if ord(ch) >= 0x2E80 else 1 for ch in text)


def _speakable(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


class SentenceSplitter:
    def __init__(self) -> None:
        self._buffer = ""
        self._emitted = 0

    def push(self, piece: str) -> list[str]:
        """Add streamed text; return the pieces that are now complete."""
        self._buffer += piece
        out: list[str] = []
        while (end := self._piece_end()) is not None:
            head, self._buffer = self._buffer[:end], self._buffer[end:]
            self._add(head, out)
        # A stop after a word ends the sentence already: waiting for the space that follows
        # would cost a model step before the sentence can be synthesized.
        return out + self.complete()

    def _piece_end(self) -> int | None:
        """Where the first complete piece in the buffer ends: a sentence end (not an
        abbreviation's stop), or for the first piece, a clause break far enough in."""
        for match in _SENTENCE_END.finditer(self._buffer):
            if match.end() == 0:
                continue
            if "\n" in match.group() or not _ABBREVIATION.search(self._buffer[: match.end()]):
                return match.end()
        if self._emitted == 0:
            for clause in _CLAUSE_END.finditer(self._buffer):
                if speech_weight(self._buffer[: clause.start()]) >= FIRST_CLAUSE_MIN_WEIGHT:
                    return clause.end()
        return None

    def complete(self) -> list[str]:
        """The sentence in the buffer, if its stop is written (`ends_sentence`)."""
        return self.finish() if ends_sentence(self._buffer) else []

    def finish(self) -> list[str]:
        out: list[str] = []
        self._add(self._buffer, out)
        self._buffer = ""
        return out

    def _add(self, text: str, out: list[str]) -> None:
        cleaned = clean_for_speech(text)
        if _speakable(cleaned):
            out.append(cleaned)
            self._emitted += 1


def phrase_sentences(*texts: str) -> list[str]:
    """The sentences whole texts are spoken in, split as the speaker splits them."""
    out: list[str] = []
    for text in texts:
        splitter = SentenceSplitter()
        out += [*splitter.push(text), *splitter.finish()]
    return out


_CALL_START = ("{", "[", "<", "`")


def pause_point(text: str) -> bool:
    """Where a spoken answer (all it has written so far) may pause for another device: where
    the speaker has a whole sentence to say meanwhile, never inside a tool call."""
    stripped = text.lstrip()
    return bool(stripped) and not stripped.startswith(_CALL_START) and ends_sentence(text)
