"""TTRL inside verl 0.9.1's own trainer (`python -m verl.trainer.main_ppo`), with no copy of its code.

verl 0.9.1 scores each sample alone: its reward loop (`RewardLoopWorker.compute_score` -> `run_single`) runs
inside the agent loop, one sample at a time, and the old `reward_fn(batch)` path is gone. A vote needs the
whole group, so the vote runs where the whole rollout batch exists: around verl's `AgentLoopManager`, which
the config names (`actor_rollout_ref.rollout.agent.agent_loop_manager_class`) and the legacy trainer
(`trainer.use_v1=false`, `verl.trainer.ppo.ray_trainer.RayPPOTrainer`) calls once per step. Two classes:

- `TTRLRewardLoopManager`, verl's reward manager (`reward.reward_manager.source=importlib`): per sample, the
  gold check verl's reward loop asks for (validation `acc`: the paper's pass@1, avg@16); on a whole batch,
  the harness strategy (`TTRLRewardManager`, majority vote by default) over each uid group.
- `TTRLAgentLoopManager`: samples `ttrl.n_votes` answers per prompt (rollout.n times n_votes / rollout.n
  copies), puts the group votes in `rm_scores` (what the trainer trains on) and hands back the trainer's own
  rollout.n rows per prompt, as the official code keeps the first 32 of 64. Validation passes through.

The v1 trainer (`trainer.use_v1=true`, verl's default) streams samples through TransferQueue and is not covered.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from verl import DataProto
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from harness.errors import ConfigError
from harness.integrations.verl_reward import TTRLRewardManager, _gold


@dataclass(frozen=True)
class TTRLSettings:
    """The config's `ttrl:` section: our knobs, checked here (verl checks its own sections)."""

    n_votes: int = 64  # answers sampled per prompt, all of which vote; rollout.n of them are trained on
    strategy: str = "majority"  # the harness strategy that labels a group
    strategy_options: dict[str, Any] = field(default_factory=dict)
    answer_parser: str = "boxed"  # how an answer is read from a response (last \boxed{})
    parser_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: DictConfig) -> TTRLSettings:
        """From `config.ttrl`; an unknown key is an error (a typo would otherwise be silently ignored)."""
        section = config.get("ttrl")
        raw = {} if section is None else OmegaConf.to_container(section, resolve=True)
        unknown = sorted(set(raw) - {item.name for item in fields(cls)})
        if unknown:
            known = ", ".join(item.name for item in fields(cls))
            raise ConfigError(f"unknown key(s) {unknown} in the verl config's ttrl section; known: {known}")
        return cls(**raw)

    def copies(self, n_train: int) -> int:
        """How many times each trained row is sampled: n_votes / rollout.n, a whole number >= 1."""
        if n_train < 1 or self.n_votes < n_train or self.n_votes % n_train:
            raise ConfigError(f"ttrl.n_votes ({self.n_votes}) must be a multiple of "
                              f"actor_rollout_ref.rollout.n ({n_train}), the samples trained on")
        return self.n_votes // n_train


class TTRLRewardLoopManager(RewardManagerBase):
    """verl's reward-loop manager: a gold check per sample, the harness strategy per whole group."""

    def __init__(self, config: DictConfig, tokenizer: Any, compute_score: Any = None,
                 reward_router_address: str | None = None, reward_model_tokenizer: Any = None) -> None:
        # verl passes its default scorer, a router and an RM tokenizer: our parser and strategy replace them
        super().__init__(config, tokenizer, compute_score)
        settings = TTRLSettings.from_config(config)
        self.groups = TTRLRewardManager(
            tokenizer, strategy=settings.strategy, strategy_options=settings.strategy_options,
            answer_parser=settings.answer_parser, parser_options=settings.parser_options)

    async def run_single(self, data: DataProto) -> dict[str, Any]:
        """One sample against its gold (0 without one): validation's `acc`; in training the vote replaces it
        in `rm_scores` and it stays as `acc`, the sample's ground-truth reward, never trained on."""
        item = data[len(data) - 1]  # a multi-turn trajectory is scored on its last sequence, as verl's naive
        responses = item.batch["responses"]
        length = int(item.batch["attention_mask"][-responses.shape[-1]:].sum())
        gold = _gold(data.non_tensor_batch, len(data) - 1)
        parser = self.groups.parser

        def check() -> float:  # decoding and grading block: verl's managers run them off the event loop
            answer = parser.extract(self.tokenizer.decode(responses[:length], skip_special_tokens=True))
            return float(gold is not None and answer is not None and parser.equivalent(answer, gold))

        # the running loop, not self.loop (the one current at construction): the same in a Ray actor, and right
        # wherever else the worker runs
        score = await asyncio.get_running_loop().run_in_executor(None, check)
        return {"reward_score": score, "reward_extra_info": {"acc": score}}

    def score_groups(self, data: DataProto) -> dict[str, Any]:
        """{"reward_tensor", "reward_extra_info"} of a batch holding whole uid groups (the strategy's rewards)."""
        return self.groups(data, return_dict=True)


def load_group_scorer(config: DictConfig) -> TTRLRewardLoopManager:
    """The reward manager that verl's own loader builds from `config`, as its reward workers build it."""
    from verl.trainer.ppo.reward import load_reward_manager
    from verl.utils import hf_tokenizer
    from verl.utils.fs import copy_to_local

    model = config.actor_rollout_ref.model
    tokenizer = hf_tokenizer(copy_to_local(model.get("tokenizer_path") or model.path), trust_remote_code=True)
    manager = load_reward_manager(config, tokenizer)
    if not isinstance(manager, TTRLRewardLoopManager):
        raise ConfigError("reward.reward_manager must name TTRLRewardLoopManager (source: importlib, module.path: "
                          f"pkg://{__name__}); the config builds {type(manager).__name__}")
    return manager


def voters_batch(prompts: DataProto, copies: int) -> DataProto:
    """The rollout request: the trainer's rows, then copies - 1 more tiles of them that only vote. Rows
    [0, len(prompts)) stay the trainer's rows, in its order, so they are the ones handed back."""
    return prompts.repeat(repeat_times=copies, interleave=False) if copies > 1 else prompts


def vote_and_keep(voters: DataProto, output: DataProto, scorer: TTRLRewardLoopManager, n_kept: int) -> DataProto:
    """Label every uid group from all its votes, write the rewards into `rm_scores` (the trainer's reward)
    with our diagnostics, and keep the first `n_kept` rows (the trainer's own)."""
    keys = [key for key in ("uid", "reward_model") if key in voters.non_tensor_batch]
    whole = DataProto(batch=output.batch, non_tensor_batch={key: voters.non_tensor_batch[key] for key in keys})
    result = scorer.score_groups(whole)
    output.batch["rm_scores"] = result["reward_tensor"].to(output.batch["responses"].device)
    extra = result["reward_extra_info"]
    for name, values in extra.items():
        output.non_tensor_batch[name] = np.asarray(values, dtype=np.float64)
    known = list(output.meta_info.get("reward_extra_keys", []))
    output.meta_info["reward_extra_keys"] = known + [name for name in extra if name not in known]
    _log_step(voters.meta_info.get("global_steps"), extra, whole.non_tensor_batch["uid"])
    return output.slice(0, n_kept)


def _log_step(step: Any, extra: dict[str, list[float]], uids: np.ndarray) -> None:
    """One line of group means per step, on stdout as verl's trainer prints its own: the legacy trainer logs
    no reward_extra_info while training (they reach `trainer.rollout_data_dir` dumps only)."""
    first = {uid: index for index, uid in reversed(list(enumerate(uids)))}  # one row per group
    means = {name: float(np.mean([values[i] for i in first.values()])) for name, values in extra.items()}
    print(f"[ttrl] step {step}: " + " ".join(f"{name}={value:.3f}" for name, value in means.items()), flush=True)


class TTRLAgentLoopManager:
    """verl's AgentLoopManager, wrapped: a training request is sampled n_votes times per prompt and voted on;
    everything else (validation, sleep/wake, attributes) is verl's manager itself."""

    def __init__(self, inner: Any, config: DictConfig) -> None:
        self.inner = inner
        self.copies = TTRLSettings.from_config(config).copies(int(config.actor_rollout_ref.rollout.n))
        self.scorer = load_group_scorer(config)

    @classmethod
    def create(cls, config: DictConfig, *args: Any, **kwargs: Any) -> TTRLAgentLoopManager:
        """What verl's trainer calls (`AgentLoopManager.create(config=..., llm_client=..., ...)`)."""
        # verl's agent loop imports hydra at module level: imported here, on the trainer's host, not at our import
        from verl.experimental.agent_loop import AgentLoopManager

        return cls(AgentLoopManager.create(config, *args, **kwargs), config)

    def generate_sequences(self, prompts: DataProto) -> DataProto:
        if prompts.meta_info.get("validate", False):  # per-sample gold scores from verl's reward loop
            return self.inner.generate_sequences(prompts)
        voters = voters_batch(prompts, self.copies)
        return vote_and_keep(voters, self.inner.generate_sequences(voters), self.scorer, len(prompts))

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)
