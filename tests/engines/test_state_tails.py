"""A saved tail (a device's cells past the shared prefix) brought back gives the model exactly
the state reading the whole prompt gave: the next token's scores are the same, whether the
target sequence still holds the prefix or the prefix's own state is restored first."""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.engines.llm.model_file import load_model
from edge.engines.llm.prompt_states import PREFIX_OWNER, PromptStates, common_prefix_len

SCRATCH = 2  # sequences 0 and 1 answer; 2 carries tails


def test_a_tail_brought_back_scores_the_next_token_as_reading_did(llm: Any) -> None:
    import llama_cpp
    from llama_cpp import _internals

    model = load_model(llm.model_path)
    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch = 1024, 256, 256
    params.n_seq_max, params.kv_unified = 3, True
    params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    context = _internals.LlamaContext(model=model, params=params, verbose=False)
    ctx, memory = context.ctx, llama_cpp.llama_get_memory(context.ctx)
    batch = llama_cpp.llama_batch_init(256, 0, 1)
    vocab = model.n_vocab()

    def read(tokens: list[int], start: int, seq: int) -> np.ndarray:
        batch.n_tokens = len(tokens)
        for i, token in enumerate(tokens):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, start + i, 1
            batch.seq_id[i][0], batch.logits[i] = seq, i == len(tokens) - 1
        assert llama_cpp.llama_decode(ctx, batch) == 0
        scores = llama_cpp.llama_get_logits_ith(ctx, len(tokens) - 1)
        return np.ctypeslib.as_array(scores, shape=(vocab,)).copy()

    def tokens(text: str) -> list[int]:
        return list(model.tokenize(text.encode(), False, True))

    system = "<|im_start|>system\nYou are a voice assistant. Answer briefly and kindly.<|im_end|>\n"
    prefix = tokens(system * 5)  # past MIN_BASE_TOKENS, as a prefix with tools is
    greeting = prefix + tokens("<|im_start|>user\nHello<|im_end|>\n")
    device = prefix + tokens(
        "<|im_start|>user\nMy name is Ada and I keep three goats and a donkey on the hill "
        "behind our farm.<|im_end|>\n<|im_start|>assistant\n"
    )
    following = tokens("Nice")
    try:
        # The scores depend a little on where in the cache the cells lie and what else it holds
        # (masked cells still change how the sums are blocked): two plain reads of the same
        # prompt in different layouts differ by up to ~0.4 here. So the tail on top of the very
        # cells it was read on must give the same scores exactly, and the tail on a restored
        # prefix (another layout) the same next token, within that noise.
        read(device, 0, 0)
        alone = read(following, len(device), 0)
        llama_cpp.llama_memory_seq_rm(memory, 0, -1, -1)
        states = PromptStates(ctx, 64 << 20, scratch=SCRATCH)
        read(greeting, 0, 1)
        states.save(1, greeting, PREFIX_OWNER)  # kept whole
        read(device, 0, 0)
        states.save(0, device, "aa:01")
        [(_, _, whole_base, whole_size), (_, count, base, size)] = states.kept()
        # The tail starts where the device's prompt parts from the prefix's ("Hello").
        assert whole_base == 0 and base == common_prefix_len(greeting, device) > len(prefix)
        assert count == len(device)
        assert size < whole_size / 2  # only the device's own cells
        expected = read(following, len(device), 0)

        # The target still holds the prefix: the tail goes on top of its cells.
        llama_cpp.llama_memory_seq_rm(memory, 0, base, -1)
        assert states.restore(0, device, base) == (len(device), base)
        np.testing.assert_allclose(read(following, len(device), 0), expected, rtol=0, atol=1e-4)

        # The target holds nothing: the prefix's state first, then the tail.
        llama_cpp.llama_memory_seq_rm(memory, 0, -1, -1)
        llama_cpp.llama_memory_seq_rm(memory, 1, -1, -1)
        assert states.restore(0, device, 0) == (len(device), 0)
        scores = read(following, len(device), 0)
        assert scores.argmax() == alone.argmax() == expected.argmax()
        np.testing.assert_allclose(scores, alone, rtol=0, atol=1.0)
        assert llama_cpp.llama_memory_seq_pos_max(memory, SCRATCH) == -1  # left empty
    finally:
        llama_cpp.llama_batch_free(batch)
        context.close()
        model.close()
