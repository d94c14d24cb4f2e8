"""Words the session acts on without asking the model: a wake word (`listen detect` with the
word the device heard: greet or listen silently), and exit phrases ("goodbye", "再见": the
farewell, then close), said on their own or after a filler ("okay, bye")."""

from __future__ import annotations

import re

from edge.config import SessionConfig

_FILLERS = {"ok", "okay", "thanks", "thank", "you", "alright", "well", "so", "and", "好的", "好"}
_CJK = re.compile(r"[\u3400-\u9fff]")


def normalise(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.lower()).strip()


def meaningful(text: str) -> bool:
    """Whether recognised text holds any word at all."""
    return any(ch.isalnum() for ch in text)


def _phrase_key(words: list[str]) -> str:
    """Words as compared with the exit phrases; Chinese is written without spaces."""
    joined = " ".join(words)
    return joined.replace(" ", "") if _CJK.search(joined) else joined


class PhrasePolicy:
    def __init__(self, config: SessionConfig) -> None:
        self._wake_words = {normalise(w) for w in config.wake_words}
        self._exit_phrases = {_phrase_key(normalise(p).split()) for p in config.exit_phrases}

    def is_wake_word(self, text: str) -> bool:
        """A `listen detect` that only says the device woke up (a known wake word, or nothing
        readable), rather than a phrase to answer."""
        return normalise(text) in self._wake_words or not meaningful(text)

    def is_exit(self, text: str) -> bool:
        words = normalise(text).split()
        while words and words[0] in _FILLERS:
            words = words[1:]
        spoken = _phrase_key(words)
        return bool(spoken) and spoken in self._exit_phrases
