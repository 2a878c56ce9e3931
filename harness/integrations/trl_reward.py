"""A strategy as a TRL reward function: `(prompts, completions, **kwargs) -> list[float | None]`.

TRL's GRPOTrainer calls reward functions on a flat batch where each prompt repeats once per sample;
we regroup by prompt, label each group with the strategy, and hand back the rewards in TRL's order.
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


def make_reward_function(strategy: Strategy, parser: AnswerParser) -> Callable[..., list[float | None]]:
    """Majority vote (or any strategy) as a label-free reward; abstained problems get None (TRL skips them).
    TRL hands reward functions text only, no log-probs: a strategy that needs them is refused here."""
    if getattr(strategy, "needs_logprobs", False):
        raise PluginError(f"strategy '{strategy.name}' needs the sampler's log-probs, which TRL does not pass "
                          "to reward functions; use it with `harness run`, or use majority with TRL")

    def reward(prompts, completions, **kwargs) -> list[float | None]:
        order: dict[str, list[int]] = {}
        for index, prompt in enumerate(prompts):
            order.setdefault(_text(prompt), []).append(index)
        rewards: list[float | None] = [None] * len(prompts)
        for prompt, indices in order.items():
            group_completions = [Completion(_text(completions[i]), [], [], []) for i in indices]
            problem = Problem(id=str(hash(prompt)), prompt=prompt, answer="", source="trl")
            verdict = strategy.label(build_group(problem, prompt, group_completions, parser, show_gold=False))
            for i, value in zip(indices, verdict.rewards, strict=True):
                rewards[i] = None if verdict.abstained else value
        return rewards

    reward.__name__ = f"ttrl_{strategy.name}_reward"
    return reward
