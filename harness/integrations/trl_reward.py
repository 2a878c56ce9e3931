"""A strategy as a TRL reward function: `(prompts, completions, **kwargs) -> list[float | None]`.

TRL's GRPOTrainer calls reward functions on each process's share of the batch, where each prompt repeats once
per sample, and it deliberately spreads one prompt's samples over processes. A vote over a share would see
part of the group, so the function first gathers every process's (prompt, completion) pairs (accelerate's
`gather_object`; nothing to gather in one process), regroups them by prompt, labels each whole group, and
hands back this process's rewards in TRL's order. Every process labels the same groups in the same order,
so a strategy with its own random state stays in step across processes.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.errors import PluginError
from harness.grouping import build_group
from harness.interfaces import AnswerParser, Strategy
from harness.types import Completion, Problem


def _text(value) -> str:
    """TRL passes plain strings, or chat message lists for conversational datasets."""
    if isinstance(value, list):
        return "".join(message.get("content", "") for message in value if isinstance(message, dict))
    return str(value)


def gather_pairs(pairs: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], int]:
    """(every process's pairs in rank order, the index of this process's first pair among them)."""
    from accelerate import PartialState

    state = PartialState()
    if state.num_processes == 1:
        return pairs, 0
    from accelerate.utils import gather_object

    shares = gather_object([pairs])  # one entry per process, in rank order
    return [pair for share in shares for pair in share], sum(len(share) for share in shares[: state.process_index])


def make_reward_function(strategy: Strategy, parser: AnswerParser) -> Callable[..., list[float | None]]:
    """Majority vote (or any strategy) as a label-free reward; abstained problems get None (TRL skips them).
    TRL hands reward functions text and token ids only, no log-probs: a strategy that needs them is refused."""
    if getattr(strategy, "needs_logprobs", False):
        raise PluginError(f"strategy '{strategy.name}' needs the sampler's log-probs, which TRL does not pass "
                          "to reward functions; use it with `harness run`, or use majority with TRL")

    def reward(prompts, completions, **kwargs) -> list[float | None]:
        local = [(_text(p), _text(c)) for p, c in zip(prompts, completions, strict=True)]
        everything, start = gather_pairs(local)
        rewards = label_pairs(strategy, parser, everything)
        return rewards[start : start + len(local)]

    reward.__name__ = f"ttrl_{strategy.name}_reward"
    return reward


def label_pairs(strategy: Strategy, parser: AnswerParser, pairs: list[tuple[str, str]]) -> list[float | None]:
    """One reward per (prompt, completion), each group (same prompt) labelled whole, None where it abstains."""
    order: dict[str, list[int]] = {}
    for index, (prompt, _) in enumerate(pairs):
        order.setdefault(prompt, []).append(index)
    rewards: list[float | None] = [None] * len(pairs)
    for prompt, indices in order.items():
        group_completions = [Completion(pairs[i][1], [], [], []) for i in indices]
        problem = Problem(id=str(hash(prompt)), prompt=prompt, answer="", source="trl")
        verdict = strategy.label(build_group(problem, prompt, group_completions, parser, show_gold=False))
        for i, value in zip(indices, verdict.rewards, strict=True):
            rewards[i] = None if verdict.abstained else value
    return rewards
