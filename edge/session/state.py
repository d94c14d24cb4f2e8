"""The turn state machine of one device: idle → listening → thinking → speaking.

It mirrors what the firmware believes, so that the server never sends audio the device would drop
and always knows where a `tts stop` leaves the device: listening in auto/realtime mode, idle in
manual mode. Transitions are named; an event that does not apply returns False and changes
nothing, so a confused device cannot wedge the session.
"""

from __future__ import annotations

from enum import Enum

from edge.protocol.messages import ListenMode


class TurnState(Enum):
    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"


class TurnStateMachine:
    def __init__(self) -> None:
        self.state = TurnState.IDLE
        self.mode: ListenMode = "auto"

    def __repr__(self) -> str:
        return f"<TurnStateMachine {self.state.value} mode={self.mode}>"

    @property
    def busy(self) -> bool:
        """A reply is being prepared or spoken."""
        return self.state in (TurnState.THINKING, TurnState.SPEAKING)

    @property
    def hears_user(self) -> bool:
        """Microphone audio is user speech to process now: while listening, and in realtime mode
        also while speaking (barge-in)."""
        if self.state == TurnState.LISTENING:
            return True
        return self.state == TurnState.SPEAKING and self.mode == "realtime"

    def listen_start(self, mode: ListenMode) -> bool:
        """The device opened its microphone. During a reply only the mode is noted: the device
        sends `listen start` right after `listen detect`, and only `abort` interrupts a reply."""
        self.mode = mode
        if self.busy:
            return False
        self.state = TurnState.LISTENING
        return True

    def utterance_end(self) -> bool:
        """End of the user's speech (server VAD, `listen stop`, or a fallback timer)."""
        if self.state == TurnState.LISTENING or (
            self.state == TurnState.SPEAKING and self.mode == "realtime"
        ):
            self.state = TurnState.THINKING
            return True
        return False

    def listen_stop(self) -> bool:
        """Push-to-talk released: the device is idle until our reply starts."""
        if self.state != TurnState.LISTENING:
            return False
        self.state = TurnState.THINKING
        return True

    def text_query(self) -> bool:
        """A reply to text (wake-word phrase, server-initiated speech) from idle or listening."""
        if self.busy:
            return False
        self.state = TurnState.THINKING
        return True

    def speaking_started(self) -> bool:
        """`tts start` was sent."""
        if self.state not in (TurnState.THINKING, TurnState.IDLE, TurnState.LISTENING):
            return False
        self.state = TurnState.SPEAKING
        return True

    def reply_done(self) -> TurnState:
        """The reply ended (after `tts stop`, or no reply at all): where the device now is."""
        self.state = TurnState.IDLE if self.mode == "manual" else TurnState.LISTENING
        return self.state

    def abort(self) -> bool:
        """The user interrupted; the reply will end with `tts stop`."""
        return self.busy
