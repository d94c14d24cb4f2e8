"""One connected device: its frames in and out, listening (VAD, push-to-talk, the early turn),
turn-taking with the state machine, answered turns, abort and barge-in, paced downlink speech.
What to answer is `edge.assistant`'s; the socket is `edge.transport`'s."""
