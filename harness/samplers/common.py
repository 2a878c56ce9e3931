"""Checks and helpers both samplers share: request validation, greedy copies, seed mixing."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

from harness.errors import ConfigError, DataError, PluginError
from harness.interfaces import SamplingParams
from harness.types import Completion

# "raw": log_softmax of the model's logits (temperature 1, no top-p): the policy the trainer computes.
# "processed": log_softmax after temperature and top-p, i.e. of the distribution the token was drawn from.
LogprobsMode = Literal["raw", "processed"]
LOGPROBS_HELP = (
    "Which log-prob each sampled token reports: 'raw' = log_softmax of the model's logits (temperature 1, "
    "no top-p; what the trainer computes), 'processed' = after temperature and top-p scaling."
)


def check_params(params: SamplingParams) -> None:
    """Reject a request no engine can serve, with one line that says what to change."""
    if params.n < 1:
        raise ConfigError(f"sampling n must be >= 1 (got {params.n})")
    if params.max_tokens < 1:
        raise ConfigError(f"sampling max_tokens must be >= 1 (got {params.max_tokens})")
    if not params.temperature >= 0:
        raise ConfigError(f"sampling temperature must be >= 0 (got {params.temperature})")
    if not 0 < params.top_p <= 1:
        raise ConfigError(f"sampling top_p must be in (0, 1] (got {params.top_p})")


def tokenize_prompts(tokenizer: Any, prompts: list[str], max_tokens: int, max_len: int, option: str) -> list[list[int]]:
    """Token ids of each prompt, with the tokenizer's default special tokens (vLLM's own rule), checked first:
    every prompt plus its answer must fit the engine's context."""
    prompt_ids = [list(ids) for ids in tokenizer(list(prompts)).input_ids]
    for index, ids in enumerate(prompt_ids):
        if not ids:
            raise DataError(f"prompt {index} is empty after tokenization; give every problem some text")
        if len(ids) + max_tokens > max_len:
            raise ConfigError(
                f"prompt {index} has {len(ids)} tokens and max_tokens is {max_tokens}, over the sampler's "
                f"{max_len}-token context: raise the sampler option {option} or lower max_tokens"
            )
    return prompt_ids


def check_score_input(prompt_ids: list[int], completion_ids: list[int], max_len: int) -> None:
    if not prompt_ids:
        raise DataError("score needs at least one prompt token (the first token has no log-prob)")
    if len(prompt_ids) + len(completion_ids) >= max_len:
        raise ConfigError(
            f"score: {len(prompt_ids) + len(completion_ids)} tokens do not fit the sampler's "
            f"{max_len}-token context; raise the sampler option max_model_len"
        )


def greedy_copies(completion: Completion, n: int) -> list[Completion]:
    """Temperature 0 yields one answer: n independent copies of it (vLLM rejects greedy n > 1)."""
    return [
        dataclasses.replace(
            completion,
            token_ids=list(completion.token_ids),
            logprobs=list(completion.logprobs),
            prompt_token_ids=list(completion.prompt_token_ids),
        )
        for _ in range(n)
    ]


def finite_logprobs(values: list[float], engine: str) -> list[float]:
    """The sampled token's log-prob is finite and <= 0; anything else is an engine bug worth stopping on."""
    out = [float(value) for value in values]
    for value in out:
        if math.isnan(value) or value > 1e-3 or value == -math.inf:
            raise PluginError(f"{engine} sampler returned log-prob {value} for a sampled token")
    return [min(value, 0.0) for value in out]


def mix_seed(*parts: int) -> int:
    """A stable 63-bit seed from several integers (sampler seed, request seed, chunk index)."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value ^ (part & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        value ^= value >> 31
    return value & 0x7FFFFFFFFFFFFFFF
