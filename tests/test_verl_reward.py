"""Our strategies as verl's reward manager, on verl's own DataProto and registry (verl 0.9.1, on this CPU).

The batch is built the way verl's trainer builds it: left-padded prompts, right-padded responses, one
attention mask over both, each prompt repeated under one uid, the gold in `reward_model.ground_truth`.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import AutoTokenizer
from verl import DataProto  # scripts/install.sh installs verl 0.9.1
from verl.workers.reward_manager import get_reward_manager_cls

from harness.models import resolve_model

ANSWERS = {"u1": ["7", "7", "3", "7"], "u2": ["5", "2", "2", "9"]}  # u1's vote is right, u2's is wrong
GOLD = {"u1": "7", "u2": "5"}


def verl_batch(tokenizer) -> DataProto:
    """Samples of two prompts interleaved (the manager must not rely on order), padded as verl pads them."""
    order = [("u1", 0), ("u2", 0), ("u1", 1), ("u2", 1), ("u1", 2), ("u2", 2), ("u1", 3), ("u2", 3)]
    prompts = {"u1": "What is 3 + 4?", "u2": "What is 1 + 4?"}
    prompt_ids = [tokenizer(prompts[uid]).input_ids for uid, _ in order]
    response_ids = [tokenizer(f"The answer is \\boxed{{{ANSWERS[uid][k]}}}." + " ok" * k).input_ids
                    for uid, k in order]
    p_len, r_len, pad = max(map(len, prompt_ids)), max(map(len, response_ids)), tokenizer.pad_token_id or 0
    prompts_t = torch.tensor([[pad] * (p_len - len(ids)) + ids for ids in prompt_ids])
    responses_t = torch.tensor([ids + [pad] * (r_len - len(ids)) for ids in response_ids])
    mask = torch.tensor([[0] * (p_len - len(p)) + [1] * len(p) + [1] * len(r) + [0] * (r_len - len(r))
                         for p, r in zip(prompt_ids, response_ids, strict=True)])
    return DataProto.from_dict(
        tensors={"prompts": prompts_t, "responses": responses_t, "attention_mask": mask,
                 "input_ids": torch.cat([prompts_t, responses_t], dim=1)},
        non_tensors={"uid": np.array([uid for uid, _ in order], dtype=object),
                     "reward_model": np.array([{"ground_truth": GOLD[uid]} for uid, _ in order], dtype=object)},
    )


def test_verl_finds_the_ttrl_manager_and_gets_majority_rewards_on_last_tokens_with_diagnostics():
    import harness.integrations.verl_reward  # noqa: F401 - registers "ttrl" in verl's registry

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
    manager = get_reward_manager_cls("ttrl")(tokenizer=tokenizer, num_examine=0)
    data = verl_batch(tokenizer)
    result = manager(data, return_dict=True)
    rewards = result["reward_tensor"]
    lengths = data.batch["attention_mask"][:, data.batch["prompts"].shape[-1]:].sum(-1)
    # one nonzero position per rewarded response: its last token
    expected = {"u1": [1.0, 1.0, 0.0, 1.0], "u2": [0.0, 1.0, 1.0, 0.0]}  # u2's vote "2" beats the gold "5"
    for row, uid in enumerate(data.non_tensor_batch["uid"]):
        k = row // 2
        assert float(rewards[row].sum()) == expected[uid][k]
        assert float(rewards[row, int(lengths[row]) - 1]) == expected[uid][k]
    info = result["reward_extra_info"]
    assert [info["label_accuracy"][row] for row in range(8)] == [1.0, 0.0] * 4
    assert info["majority_ratio"][0] == 0.75 and info["majority_ratio"][1] == 0.5
    assert all(len(values) == 8 for values in info.values())
    assert torch.equal(manager(data), rewards)  # verl's plain call returns the tensor alone
