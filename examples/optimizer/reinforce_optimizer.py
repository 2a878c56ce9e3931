"""A third-party optimizer plugin: plain REINFORCE with a group-mean baseline, in about 60 lines."""

from __future__ import annotations

import copy

import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers import AutoModelForCausalLM

from harness import Optimizer, hookimpl


class ReinforceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lr: float = Field(1e-5, gt=0, description="AdamW learning rate.")


class ReinforceOptimizer(Optimizer):
    """loss = -(reward - group mean) * mean log p(completion tokens), one AdamW step per batch."""

    name = "reinforce"
    Options = ReinforceOptions

    def __init__(self, options: ReinforceOptions, model_path: str, total_steps: int, seed: int = 0) -> None:
        super().__init__(options, model_path, total_steps, seed)
        self.policy = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        self.adamw = torch.optim.AdamW(self.policy.parameters(), lr=options.lr)

    def step(self, batch) -> dict[str, float]:
        groups: dict[int, list[float]] = {}
        for rollout in batch.rollouts:
            groups.setdefault(rollout.group_index, []).append(rollout.reward)
        loss = torch.tensor(0.0)
        for rollout in batch.rollouts:
            rewards = groups[rollout.group_index]
            advantage = rollout.reward - sum(rewards) / len(rewards)
            ids = torch.tensor([rollout.prompt_token_ids + rollout.completion_token_ids])
            logits = self.policy(input_ids=ids).logits[0, len(rollout.prompt_token_ids) - 1 : -1]
            logits = logits / batch.temperature  # the distribution the completions were sampled from
            targets = torch.tensor(rollout.completion_token_ids)
            logp = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None]).mean()
            loss = loss - advantage * logp / len(batch.rollouts)
        self.adamw.zero_grad()
        loss.backward()
        self.adamw.step()
        return {"loss": float(loss)}

    def named_weights(self):
        for name, param in self.policy.named_parameters():
            yield name, param.detach().to(torch.bfloat16)

    def state_dict(self) -> dict:  # copies: the run saves it while training goes on
        return copy.deepcopy({"policy": self.policy.state_dict(), "adamw": self.adamw.state_dict()})

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.adamw.load_state_dict(state["adamw"])


@hookimpl
def register_optimizers(register):
    register(ReinforceOptimizer)
