"""TTRL inside verl 0.9.1's trainer, on this CPU: the AIME config against verl's schema and TTRL.md, verl's own
config, loading and reward code on it, and the trainer's reward path on a real batch of interleaved groups.

Not run here (no GPU, and verl was installed without its GPU stack): Ray worker groups, FSDP, vLLM, and with
them verl's AgentLoopManager. `FixedAnswers` stands in for that one class: it returns fixed answers in the
layout of verl's agent loop output, scored per sample by verl's real RewardLoopWorker; TTRLAgentLoopManager
and everything after it (verl's extract_reward and GRPO advantage) run for real. Hydra is not installed here
(its pytest plugin breaks with antlr4 4.11): `compose` replays its composition with OmegaConf, checked against
verl's hydra-generated `_generated_ppo_trainer.yaml` (and against hydra itself by tests/verl_hydra_check.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pytest
import torch
import verl
from omegaconf import DictConfig, OmegaConf
from transformers import AutoTokenizer
from verl import DataProto

from harness.errors import ConfigError
from harness.integrations.verl_trainer import (
    TTRLAgentLoopManager,
    TTRLRewardLoopManager,
    TTRLSettings,
    voters_batch,
)
from harness.models import resolve_model
from tests.conftest import REPO

VERL_CONFIG = Path(verl.__file__).parent / "trainer" / "config"
AIME_YAML = REPO / "configs" / "verl" / "ttrl_aime2024.yaml"


ROOT_GROUP = PurePosixPath(".")


def compose(roots: list[Path], name: str, group: PurePosixPath = ROOT_GROUP, package: str = "",
            choices: dict[str, str] | None = None) -> DictConfig:
    """Hydra's composition of config `name`: its defaults list in order (`_self_` where listed), groups
    placed at their package (`group@package: option`, relative to the parent's), `# @package _global_`
    at the root, `${group}` in an option read from earlier choices."""
    choices = {} if choices is None else choices
    path = next(root / group / f"{name}.yaml" for root in roots if (root / group / f"{name}.yaml").is_file())
    if path.read_text().startswith("# @package _global_"):
        package = ""
    raw = OmegaConf.load(path)
    defaults = OmegaConf.to_container(raw.pop("defaults"), resolve=False) if "defaults" in raw else ["_self_"]
    raw.pop("hydra", None)
    result = OmegaConf.create()
    for entry in defaults:
        if entry == "_self_":
            node = OmegaConf.create(raw)
            for key in reversed([key for key in package.split(".") if key]):
                node = OmegaConf.create({key: node})
        elif isinstance(entry, str):  # a config of the same group, at the same package
            node = compose(roots, entry, group, package, choices)
        else:
            ((key, option),) = entry.items()
            sub, _, at = key.partition("@")
            sub_group = PurePosixPath(os.path.normpath(group / sub))
            option = re.sub(r"\$\{(\w+)\}", lambda match: choices[match.group(1)], option)
            choices[str(sub_group)] = option
            node = compose(roots, option, sub_group, ".".join(p for p in (package, at or sub_group.name) if p), choices)
        result = OmegaConf.merge(result, node)
    return result


def unknown_keys(ours: Any, schema: DictConfig, path: str = "") -> list[str]:
    """Keys of `ours` that verl's schema lacks: not in its composed yaml, nor a field of the node's `_target_`
    dataclass (verl builds those dataclasses from the config: a field may be absent from its yaml)."""
    if not isinstance(ours, dict):
        return []
    target = schema.get("_target_") if isinstance(schema, DictConfig) else None
    module, _, name = (target or "").rpartition(".")
    cls = getattr(importlib.import_module(module), name) if module else None
    names = {field.name for field in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    bad = []
    for key, value in ours.items():
        if isinstance(schema, DictConfig) and key in schema:
            bad += unknown_keys(value, schema[key], f"{path}{key}.")
        elif key not in names:
            bad.append(path + key)
    return bad


def aime_config(data_file: str = "/data/aime24.parquet", model: str | None = None) -> DictConfig:
    """The AIME config as `python -m verl.trainer.main_ppo --config-path configs/verl` composes it, with the
    launch command's data files (and, for tokenizer-loading tests, a local model in place of the 7B)."""
    config = compose([AIME_YAML.parent, VERL_CONFIG], AIME_YAML.stem)
    config.data.train_files = config.data.val_files = data_file
    if model:
        config.actor_rollout_ref.model.path = model
    return config


def test_the_hydra_replay_gives_verls_own_generated_config():
    ours = OmegaConf.to_container(compose([VERL_CONFIG], "ppo_trainer"))
    ours.pop("model_engine")  # verl's generator script cuts every line above actor_rollout_ref, this one included
    assert ours == OmegaConf.to_container(OmegaConf.load(VERL_CONFIG / "_generated_ppo_trainer.yaml"))


def test_every_key_of_the_aime_config_is_in_verls_schema_and_a_typo_fails():
    schema = compose([VERL_CONFIG], "ppo_trainer")
    ours = OmegaConf.to_container(OmegaConf.load(AIME_YAML), resolve=False)
    for own in ("hydra", "defaults", "ttrl"):
        ours.pop(own)
    assert unknown_keys(ours, schema) == []
    ours["actor_rollout_ref"]["actor"]["kl_los_coef"] = 0.001
    ours["trainer"]["use_v2"] = True
    assert unknown_keys(ours, schema) == ["actor_rollout_ref.actor.kl_los_coef", "trainer.use_v2"]
    with pytest.raises(ConfigError, match="n_vote"):
        TTRLSettings.from_config(OmegaConf.create({"ttrl": {"n_vote": 64}}))


def test_the_aime_config_holds_the_papers_settings():
    config = aime_config()
    OmegaConf.resolve(config)
    actor, rollout = config.actor_rollout_ref.actor, config.actor_rollout_ref.rollout
    settings = TTRLSettings.from_config(config)
    assert (settings.n_votes, rollout.n, settings.copies(rollout.n), settings.strategy) == (64, 32, 2, "majority")
    assert (rollout.temperature, rollout.top_p, rollout.response_length, rollout.prompt_length) == (1.0, 1, 3072, 512)
    assert (rollout.val_kwargs.n, rollout.val_kwargs.temperature, rollout.val_kwargs.top_p) == (16, 0.6, 0.95)
    optim = actor.optim
    assert (optim.lr, optim.lr_scheduler_type, optim.lr_warmup_steps_ratio) == (5e-7, "cosine", 0.03)
    assert (optim.weight_decay, optim.clip_grad, actor.ppo_epochs) == (0.01, 1.0, 1)
    assert (actor.use_kl_loss, actor.kl_loss_coef, actor.kl_loss_type) == (True, 0.001, "low_var_kl")
    assert (config.algorithm.use_kl_in_reward, actor.entropy_coeff, actor.clip_ratio) == (False, 0, 0.2)
    assert (actor.loss_agg_mode, config.algorithm.adv_estimator, config.algorithm.norm_adv_by_std_in_grpo) == (
        "token-mean", "grpo", True)
    assert (config.data.train_batch_size, actor.ppo_mini_batch_size) == (8, 1)  # 8 problems; 1 prompt x 32
    assert (config.trainer.total_epochs, config.trainer.n_gpus_per_node, config.trainer.nnodes) == (80, 8, 1)
    assert config.actor_rollout_ref.model.path == "Qwen/Qwen2.5-Math-7B"
    assert config.trainer.use_v1 is False  # the trainer that calls the agent loop manager on whole batches


def test_verls_config_dataclasses_accept_the_rollout_and_algorithm_sections():
    """verl's `validate_config` builds the actor's dataclass through hydra.utils.instantiate (not installed
    here: tests/verl_hydra_check.py runs it where hydra is); the rollout and algorithm sections convert without
    it, through verl's own converter (OmegaConf.structured: unknown keys and wrong types fail)."""
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.config import RolloutConfig

    config = aime_config()
    OmegaConf.resolve(config)
    with pytest.warns(UserWarning, match="Disabled critic"):
        assert need_reference_policy(config) and not need_critic(config)  # the KL loss needs the reference
    rollout = omega_conf_to_dataclass(config.actor_rollout_ref.rollout, RolloutConfig)
    assert rollout.agent.agent_loop_manager_class.endswith("verl_trainer.TTRLAgentLoopManager")
    assert (rollout.n, rollout.response_length, rollout.val_kwargs.n) == (32, 3072, 16)
    assert omega_conf_to_dataclass(config.algorithm, AlgoConfig).adv_estimator == "grpo"


def test_verls_loaders_find_our_classes_from_the_config():
    from verl.trainer.ppo.reward import resolve_reward_manager_cls
    from verl.utils.import_utils import load_class_from_fqn

    config = aime_config()
    fqn = config.actor_rollout_ref.rollout.agent.agent_loop_manager_class
    assert load_class_from_fqn(fqn, "AgentLoopManager") is TTRLAgentLoopManager  # ray_trainer.init_workers' call
    assert resolve_reward_manager_cls(config) is TTRLRewardLoopManager  # RewardLoopManager's call
    with pytest.raises(ConfigError, match="multiple"):
        TTRLSettings(n_votes=48).copies(32)


# Trainer-side reward, n_train 2 of n_votes 6 per prompt: rows [0, 4) of the 12 voters are the trained ones
# (tile 0); the 4 rows after them per tile only vote. u1's whole group votes 7 (the gold); u2's votes 2, while
# its 2 trained answers alone would vote 5 (the gold): only a whole-group vote gives them reward 0.
TILES = [{"u1": ["7", "3"], "u2": ["5", "5"]}, {"u1": ["7", "7"], "u2": ["2", "2"]},
         {"u1": ["3", "9"], "u2": ["2", "9"]}]
GOLD = {"u1": "7", "u2": "5"}


def trainer_batch() -> DataProto:
    """One row per prompt as verl's dataloader gives it (RLHFDataset: a placeholder tensor, the chat messages;
    the agent loop tokenizes them), with the uid the trainer adds."""
    questions = {"u1": "What is 3 + 4?", "u2": "What is 1 + 4?"}
    return DataProto.from_dict(
        tensors={"dummy_tensor": torch.zeros(2, 1, dtype=torch.uint8)},
        non_tensors={"uid": np.array(list(GOLD), dtype=object), "data_source": np.array(["aime24"] * 2, dtype=object),
                     "reward_model": np.array([{"ground_truth": GOLD[uid]} for uid in GOLD], dtype=object),
                     "raw_prompt": objects([[{"role": "user", "content": questions[uid]}] for uid in GOLD])},
    )


def objects(values: list[Any]) -> np.ndarray:
    """A 1-d object array of `values` (np.array would make a 2-d array of equal-length lists)."""
    array = np.empty(len(values), dtype=object)
    for index, value in enumerate(values):
        array[index] = value
    return array


def rollout_output(voters: DataProto, tokenizer: Any) -> DataProto:
    """What verl's agent loop returns for `voters` (its `_postprocess`): prompts left-padded, responses
    right-padded, masks; vLLM's sampling is replaced by the fixed answers of TILES."""
    seen: dict[str, int] = {}
    texts = []
    for row, uid in enumerate(voters.non_tensor_batch["uid"]):
        k = seen[uid] = seen.get(uid, -1) + 1
        texts.append(f"So the answer is \\boxed{{{TILES[row // 4][uid][k % 2]}}}." + " ok" * row)
    pad = tokenizer.pad_token_id or 0
    prompts = [tokenizer(chat[0]["content"]).input_ids for chat in voters.non_tensor_batch["raw_prompt"]]
    responses = [tokenizer(text).input_ids for text in texts]
    p_width, r_width = max(map(len, prompts)), max(map(len, responses))
    prompt_t = torch.tensor([[pad] * (p_width - len(row)) + row for row in prompts])
    response_t = torch.tensor([row + [pad] * (r_width - len(row)) for row in responses])
    prompt_mask = torch.tensor([[0] * (p_width - len(row)) + [1] * len(row) for row in prompts])
    response_mask = torch.tensor([[1] * len(row) + [0] * (r_width - len(row)) for row in responses])
    return DataProto.from_dict(tensors={
        "prompts": prompt_t, "responses": response_t, "response_mask": response_mask,
        "input_ids": torch.cat([prompt_t, response_t], 1),
        "attention_mask": torch.cat([prompt_mask, response_mask], 1)})


class FixedAnswers:
    """Stands in for verl's AgentLoopManager (vLLM servers on GPUs, not run here): TILES' answers in place of
    sampling, then each sample's reward from verl's RewardLoopWorker, as the agent loop streams it."""

    def __init__(self, worker: Any) -> None:
        self.worker, self.requests = worker, []

    def generate_sequences(self, prompts: DataProto) -> DataProto:
        self.requests.append(len(prompts))
        output = rollout_output(prompts, self.worker.input_tokenizer)
        scored = DataProto(batch=output.batch, non_tensor_batch=prompts.non_tensor_batch)
        results = asyncio.run(self.worker.compute_score_batch(scored))  # one-sample slices, as the agent loop
        output.batch["rm_scores"] = TTRLRewardLoopManager.assemble_rm_scores(
            output, [result["reward_score"] for result in results])
        output.non_tensor_batch["acc"] = np.array([result["reward_extra_info"]["acc"] for result in results])
        output.meta_info["reward_extra_keys"] = ["acc"]
        return output


@pytest.fixture(scope="module")
def small_config() -> DictConfig:
    """The AIME config with 6 votes and 2 trained samples per prompt, and a local tokenizer for the 7B's."""
    config = aime_config(model=str(resolve_model("smollm2-135m")))
    config.ttrl.n_votes, config.actor_rollout_ref.rollout.n = 6, 2
    return config


@pytest.fixture(scope="module")
def worker(small_config: DictConfig) -> Any:
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    return RewardLoopWorker(small_config)  # verl's own worker class, run in this process instead of by Ray


def test_verls_reward_worker_builds_our_manager_and_scores_each_sample_against_the_gold(worker):
    assert isinstance(worker.reward_manager, TTRLRewardLoopManager)
    voters = voters_batch(trainer_batch().repeat(2, interleave=True), copies=3)
    output = FixedAnswers(worker).generate_sequences(voters)
    gold_rewards = output.batch["rm_scores"].sum(-1).tolist()
    assert gold_rewards == [1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # u1 3 right, u2 2
    assert output.non_tensor_batch["acc"].tolist() == gold_rewards


def test_the_trainers_reward_path_gets_whole_group_votes(small_config, worker):
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage
    from verl.trainer.ppo.reward import extract_reward

    rollout = FixedAnswers(worker)
    manager = TTRLAgentLoopManager(rollout, small_config)  # what TTRLAgentLoopManager.create wraps
    batch = trainer_batch()
    gen_batch = batch.repeat(2, interleave=True)  # ray_trainer.fit: rollout.n rows per prompt
    gen_batch.meta_info["global_steps"] = 1
    kept = manager.generate_sequences(gen_batch)
    assert rollout.requests == [12]  # 6 answers per prompt were sampled, 2 per prompt come back
    trained = batch.repeat(2, interleave=True).union(kept)  # ray_trainer.fit after generation, then its reward
    rewards, extra = extract_reward(trained)
    assert rewards.sum(-1).tolist() == [1.0, 0.0, 0.0, 0.0]  # u1: 7 right, 3 wrong; u2: 5 != the vote 2
    assert extra["acc"].tolist() == [1.0, 0.0, 1.0, 1.0]  # the gold rewards, kept beside the votes
    assert extra["label_accuracy"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert extra["majority_ratio"].tolist() == [0.5] * 4  # 3 of 6 votes: the vote saw all 6
    lengths = kept.batch["response_mask"].sum(-1)
    assert all(rewards[row, int(lengths[row]) - 1] == rewards[row].sum() for row in range(4))  # last token
    mask, uids = kept.batch["response_mask"], trained.non_tensor_batch["uid"]
    advantages, _ = compute_grpo_outcome_advantage(rewards, mask, uids)
    first = advantages[:, 0].tolist()
    assert first[0] > 0 > first[1] and first[2] == first[3] == 0.0  # GRPO per uid over the trained rows


def test_validation_passes_through_with_per_sample_gold_scores(small_config, worker):
    rollout = FixedAnswers(worker)
    requests = trainer_batch().repeat(2, interleave=True)
    requests.meta_info["validate"] = True  # as ray_trainer._validate sets it
    output = TTRLAgentLoopManager(rollout, small_config).generate_sequences(requests)
    assert rollout.requests == [4] and "label_accuracy" not in output.non_tensor_batch
    assert output.batch["rm_scores"].sum(-1).tolist() == [1.0, 0.0, 1.0, 1.0]  # val acc: the gold check


def test_the_data_file_is_read_by_verls_rl_dataset(tmp_path, data_dir, small_config):
    from verl.trainer.ppo.utils import create_rl_dataset

    from harness.integrations.verl_data import write_benchmark

    path = write_benchmark("aime24", tmp_path, {"path": str(data_dir / "ttrl" / "AIME-TTT.json")})
    tokenizer = AutoTokenizer.from_pretrained(small_config.actor_rollout_ref.model.path)
    dataset = create_rl_dataset([str(path)], small_config.data, tokenizer, None, is_train=True)
    assert len(dataset) == 30  # no prompt over 512 tokens
    first = dataset[0]
    assert first["reward_model"]["ground_truth"] == "204" and first["data_source"] == "aime24"
    assert first["raw_prompt"][0]["content"].endswith("put your final answer within \\boxed{}.")
