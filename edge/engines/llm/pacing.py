"""Which answers take part in the next decode step: the ones a device is waiting for.

A device that talks while others answer waits for its first sentence; a device that is already
speaking has sentences queued that take seconds to play. On a slow or shared CPU a decode step
costs more for every sequence in it, so an answer written far ahead of its speaker sits out a
step while another device still waits for its first sentence, and takes part again well before
its speech runs out. Without this, a question's first sentence paid, in every step, for each
answer still being written, however far ahead of its speaker that answer was.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge.engines.llm.request import Request
from edge.sentences import speech_weight

# Weighted characters (a CJK character is worth three) the voice speaks per second: set faster
# than the default voice speaks (15.7 over five answers, 13-19 each), so that the speech a
# writer has ahead is under-estimated.
SPEECH_WEIGHT_PER_S = 20.0
# The speech an answer must have ahead of its speaker before it may sit out a step: more than a
# few slow steps and the synthesis of its next sentence.
SPEECH_AHEAD_S = 1.5


def speech_ahead_s(request: Request, now: float) -> float:
    """How many seconds of speech the answer has written beyond what its device has had time
    to play, counted from when its first whole sentence was written (0 before that)."""
    if request.speaking_since is None:
        return 0.0
    return speech_weight(request.text) / SPEECH_WEIGHT_PER_S - (now - request.speaking_since)


def waiting_for_first_sentence(request: Request) -> bool:
    """A live answer (not a read-ahead or a summary) with nothing to say yet."""
    return not request.ahead and request.speaking_since is None


def stepped_writers(
    writers: Sequence[Request], readers: Sequence[Request], now: float
) -> list[Request]:
    """The writers whose next token goes into this step: all of them, unless an answer waits
    for its first sentence (a writer, or a prompt still being read); then only those whose
    speech does not reach `SPEECH_AHEAD_S` ahead of their speaker. Never empty while an answer
    waits, so a step always moves someone on."""
    if not any(waiting_for_first_sentence(r) for r in (*writers, *readers)):
        return list(writers)
    return [r for r in writers if speech_ahead_s(r, now) < SPEECH_AHEAD_S]
