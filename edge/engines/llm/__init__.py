"""The language model: the `LanguageModel` protocol (`base`), the local llama.cpp engine (`llama`:
places at the model, `batch`: the decode loop, `kv_cache`: sequence placement, `prompt_states`:
saved states, `sampling`: sampler and stop strings) and a remote OpenAI-compatible server
(`openai`). Importing this package loads neither llama.cpp nor aiohttp's client."""

from edge.engines.llm.base import (
    LanguageModel,
    Message,
    PauseRule,
    Progress,
    ToolSpec,
    greeting_prompt,
)

__all__ = ["LanguageModel", "Message", "PauseRule", "Progress", "ToolSpec", "greeting_prompt"]
