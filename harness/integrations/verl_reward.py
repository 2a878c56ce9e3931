"""Our strategies and grader as a verl reward manager: `reward_model.reward_manager=ttrl` in a verl run.

verl (the engine of the official TTRL code) hands its reward manager a `DataProto` batch: left-padded
`prompts`, right-padded `responses`, an `attention_mask` over both, and per sample `non_tensor_batch["uid"]`,
the same for every sample of one prompt (verl repeats each prompt n times under one uid). This manager decodes
the responses, groups them by uid (a group is always whole: verl keeps a prompt's samples in one batch),
labels each group with a harness strategy, puts each reward on the response's last token, and returns our
diagnostics as `reward_extra_info` (label accuracy and reward accuracy need the gold, read from
`reward_model.ground_truth` when the data has it; the strategy never sees it, unless it is the oracle).

Importing this module registers the manager under the name "ttrl" in verl's batch registry, which verl 0.9.1's
own trainer no longer calls: harness.integrations.verl_trainer runs this manager inside that trainer, on whole
rollout batches. Needs verl (>= 0.9) installed.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from verl import DataProto
from verl.workers.reward_manager import register
from verl.workers.reward_manager.abstract import AbstractRewardManager

from harness.grouping import build_group, gold_flags
from harness.loop import label_group
from harness.metrics import LOGGED_NAMES, problem_diagnostics
from harness.plugins import get_plugins
from harness.types import Completion, Problem

# the per-group figures returned to verl (logged there as reward_extra_info/<name> means)
DIAGNOSTICS = ("label_accuracy", "reward_accuracy", "majority_ratio", "maj_at_n", "pass_at_1", "abstain_rate")


@register("ttrl")
class TTRLRewardManager(AbstractRewardManager):
    """A harness strategy (majority vote by default) as verl's reward: rewards from votes, not from golds."""

    def __init__(
        self,
        tokenizer: Any,
        num_examine: int = 0,
        compute_score: Any = None,
        reward_fn_key: str = "data_source",
        strategy: str = "majority",
        strategy_options: dict | None = None,
        answer_parser: str = "boxed",
        parser_options: dict | None = None,
        **_: Any,
    ) -> None:
        # compute_score and reward_fn_key are verl's per-sample scorer: the strategy replaces them
        plugins = get_plugins()
        self.tokenizer = tokenizer
        self.strategy_name = strategy
        self.strategy = plugins["strategy"].create(strategy, strategy_options or {})
        self.parser = plugins["answer_parser"].create(answer_parser, parser_options or {})

    def __call__(self, data: DataProto, return_dict: bool = False) -> torch.Tensor | dict[str, Any]:
        responses = data.batch["responses"]
        prompt_length = data.batch["prompts"].shape[-1]
        lengths = data.batch["attention_mask"][:, prompt_length:].sum(dim=-1).tolist()
        texts = [self.tokenizer.decode(responses[i, : lengths[i]], skip_special_tokens=True)
                 for i in range(len(lengths))]
        reward_tensor = torch.zeros_like(responses, dtype=torch.float32)
        extra: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(lengths))
        for uid, members in _groups(data.non_tensor_batch["uid"]).items():
            gold = _gold(data.non_tensor_batch, members[0])
            rewards, figures = self._label(str(uid), [texts[i] for i in members], gold)
            for i, reward in zip(members, rewards, strict=True):
                if lengths[i] > 0:
                    reward_tensor[i, lengths[i] - 1] = reward
                for name, value in figures.items():
                    extra[name][i] = value
        if return_dict:
            return {"reward_tensor": reward_tensor, "reward_extra_info": dict(extra)}
        return reward_tensor

    def _label(self, uid: str, texts: list[str], gold: str | None) -> tuple[list[float], dict[str, float]]:
        """(rewards, diagnostics) of one whole group; an abstained group gets rewards of 0 (no signal)."""
        problem = Problem(id=uid, prompt=uid, answer=gold or "", source="verl")
        completions = [Completion(text, [], [], []) for text in texts]
        group = build_group(problem, uid, completions, self.parser, show_gold=self.strategy.needs_gold)
        verdict = label_group(self.strategy, self.strategy_name, group)
        rewards = [0.0] * len(texts) if verdict.abstained else [float(r) for r in verdict.rewards]
        if gold is None:  # label-free figures only
            figures = {"abstain_rate": float(verdict.abstained)}
        else:
            row = problem_diagnostics(group, verdict, gold_flags(group, gold), gold)
            figures = {LOGGED_NAMES[key]: float(value) for key, value in row.items() if key in LOGGED_NAMES}
        return rewards, {name: figures[name] for name in DIAGNOSTICS if name in figures}


def _groups(uids: Any) -> dict[Any, list[int]]:
    """uid -> the batch positions of its samples, in batch order."""
    members: dict[Any, list[int]] = {}
    for index, uid in enumerate(uids):
        members.setdefault(uid, []).append(index)
    return members


def _gold(non_tensor_batch: dict, index: int) -> str | None:
    """The sample's gold answer, from verl's `reward_model.ground_truth`, or None when the data has none."""
    reward_model = non_tensor_batch.get("reward_model")
    if reward_model is None:
        return None
    entry = reward_model[index]
    truth = entry.get("ground_truth") if isinstance(entry, dict) else None
    return None if truth is None else str(truth)
