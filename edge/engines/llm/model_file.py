"""The GGUF model file: its weights and vocabulary, and its own chat template."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_model(path: Path) -> Any:
    """The weights, memory-mapped, and the vocabulary, without llama-cpp-python's `Llama`:
    its own context would go unused (the decode loop makes the one that serves every sequence),
    and it cannot turn off the repacked copies llama.cpp makes of some tensors for its faster
    kernels (`use_extra_bufts`). With the default 0.5B model those are 12 tensors: 28 MB more
    memory (their originals stay mapped as well), at a prompt-read and token speed measured
    within this machine's noise of the mapped originals."""
    import logging

    import llama_cpp
    from llama_cpp import _internals

    # llama.cpp's own log (every tensor, every buffer) is printed when this logger's level lets
    # it through; errors only, as `Llama(verbose=False)` sets it.
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = 0  # CPU boards
    params.load_mode = llama_cpp.LLAMA_LOAD_MODE_MMAP
    params.use_extra_bufts = False
    return _internals.LlamaModel(path_model=str(path), params=params, verbose=False)


def chat_formatter(model: Any) -> Any:
    """The GGUF's own chat template, rendered by llama-cpp-python's Jinja formatter, exactly as
    its chat completion does: the prompt is rendered here so that a paused answer can resume
    from the prompt plus its own words."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = model.metadata().get("tokenizer.chat_template")
    if not template:
        raise ValueError("the GGUF model has no chat template (tokenizer.chat_template)")
    eos, bos = model.token_eos(), model.token_bos()

    def text(token: int) -> str:
        return str(model.token_get_text(token)) if token != -1 else ""

    return Jinja2ChatFormatter(
        template=template, eos_token=text(eos), bos_token=text(bos), stop_token_ids=[eos]
    )
