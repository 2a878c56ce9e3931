"""Our `grpo` against TRL 1.16's own GRPO loss, called for real, on the same model and the same tokens, in fp32.

TRL's side is its real code: the model gets TRL's fused LM head (`trl.trainer.utils.add_fused_lm_head`, which
divides the logits by the sampling temperature), then `GRPOTrainer._get_per_token_logps_and_entropies` and
`GRPOTrainer._compute_loss` run on a trainer object that holds only the attributes that loss reads (a full
`GRPOTrainer` would need a dataset and a generation engine). Our side is `GRPOOptimizer` itself: its gradient
is read just before each AdamW update. Two PPO epochs: the first on-policy (ratio 1), the second on the moved
weights with the first epoch's log-probs as the old ones, so clipping is active.

The batch has three groups of four; the third group's rewards are all equal. TRL keeps such a group in its
normaliser and in its KL term, and so must we.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
import torch
from accelerate import Accelerator
from transformers import LlamaForCausalLM
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import add_fused_lm_head

from harness.optimizers.grpo import GRPOOptimizer
from harness.optimizers.options import GRPOOptions
from harness.types import Rollout, RolloutBatch

PROMPT_LEN, MAX_TOKENS, TEMPERATURE, TRL_ADV_EPS = 5, 8, 0.7, 1e-4
REWARDS = [[1, 0, 0, 1], [0, 0, 1, 0], [1, 1, 1, 1]]  # the third group: all equal


def make_rollouts() -> list[Rollout]:
    rng = torch.Generator().manual_seed(1)
    rollouts = []
    for group, rewards in enumerate(REWARDS):
        prompt = torch.randint(1, 61, (PROMPT_LEN,), generator=rng).tolist()
        for k, reward in enumerate(rewards):
            length = 3 + (group + 2 * k) % (MAX_TOKENS - 2)  # 3..8 tokens
            completion = torch.randint(1, 61, (length,), generator=rng).tolist()
            rollouts.append(Rollout(f"p{group}", prompt, completion, float(reward), group))
    return rollouts


def trl_advantages(rollouts: list[Rollout], scale: str) -> torch.Tensor:
    """TRL's `_generate_and_score_completions` advantages (sum_then_normalize, groups of 4), re-stated."""
    rewards = torch.tensor([r.reward for r in rollouts]).view(-1, 4)
    centered = (rewards - rewards.mean(dim=1, keepdim=True)).flatten()
    if scale == "group":
        return centered / (rewards.std(dim=1).repeat_interleave(4) + TRL_ADV_EPS)
    if scale == "batch":
        return centered / (rewards.flatten().std() + TRL_ADV_EPS)
    return centered


def ours_gradients(path: str, rollouts: list[Rollout], options: GRPOOptions) -> list[tuple[dict, dict]]:
    """(weights the gradient was taken at, gradient) for each of the two epochs, read before each update."""
    optimizer = GRPOOptimizer(options, path, total_steps=1)
    captured = []
    apply = optimizer._apply_update

    def capture_then_apply() -> float:
        weights = {n: p.detach().clone() for n, p in zip(optimizer._names, optimizer._master, strict=True)}
        grads = {n: p.grad.detach().clone() for n, p in zip(optimizer._names, optimizer._master, strict=True)}
        captured.append((weights, grads))
        return apply()

    optimizer._apply_update = capture_then_apply
    optimizer.step(RolloutBatch(rollouts, temperature=TEMPERATURE, max_tokens=MAX_TOKENS))
    return captured


def trl_trainer(model: torch.nn.Module, loss_type: str, beta: float, epsilon_high: float | None) -> GRPOTrainer:
    """A GRPOTrainer carrying exactly the attributes `_compute_loss` reads, set as its __init__ sets them."""
    args = GRPOConfig(output_dir="unused", report_to=[], use_cpu=True, loss_type=loss_type, beta=beta,
                      epsilon=0.2, epsilon_high=epsilon_high, max_completion_length=MAX_TOKENS,
                      temperature=TEMPERATURE, use_bias_correction_kl=False)
    trainer = GRPOTrainer.__new__(GRPOTrainer)
    trainer.args, trainer.model, trainer.accelerator = args, model, Accelerator(cpu=True)
    trainer.loss_type, trainer.beta, trainer.temperature = args.loss_type, args.beta, args.temperature
    trainer.epsilon_low = args.epsilon
    trainer.epsilon_high = args.epsilon_high if args.epsilon_high is not None else args.epsilon
    trainer.max_completion_length, trainer.importance_sampling_level = MAX_TOKENS, args.importance_sampling_level
    trainer.top_entropy_quantile, trainer.off_policy_mask_threshold = args.top_entropy_quantile, None
    trainer.use_vllm, trainer.aux_loss_enabled, trainer._entropy_bonus_enabled = False, False, False
    trainer.current_gradient_accumulation_steps = 1
    trainer._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    return trainer


def trl_inputs(rollouts: list[Rollout]) -> dict[str, torch.Tensor]:
    """TRL's batch layout: prompts (all PROMPT_LEN here, so no left padding) and right-padded completions."""
    width = max(len(r.completion_token_ids) for r in rollouts)
    completion_ids = torch.zeros(len(rollouts), width, dtype=torch.long)
    completion_mask = torch.zeros(len(rollouts), width, dtype=torch.long)
    for row, rollout in enumerate(rollouts):
        completion_ids[row, : len(rollout.completion_token_ids)] = torch.tensor(rollout.completion_token_ids)
        completion_mask[row, : len(rollout.completion_token_ids)] = 1
    prompt_ids = torch.tensor([r.prompt_token_ids for r in rollouts])
    return {"prompt_ids": prompt_ids, "prompt_mask": torch.ones_like(prompt_ids), "completion_ids": completion_ids,
            "completion_mask": completion_mask, "num_items_in_batch": completion_mask.sum()}


def trl_logps(trainer: GRPOTrainer, model: torch.nn.Module, inputs: dict) -> torch.Tensor:
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    with torch.no_grad():
        return trainer._get_per_token_logps_and_entropies(model, ids, mask, inputs["completion_ids"].size(1))[0]


def load_tiny(path: str, weights: dict) -> torch.nn.Module:
    model = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    model.load_state_dict(weights, strict=False)  # the tied lm_head follows embed_tokens
    add_fused_lm_head(model, temperature=TEMPERATURE, outputs=("log_probs", "entropy"))
    return model.train()


def trl_gradients(path: str, rollouts: list[Rollout], captured: list, loss_type: str, beta: float,
                  epsilon_high: float | None, scale: str) -> tuple[list[dict], list[float]]:
    """TRL's gradient at each epoch's weights (epoch 1 on-policy, epoch 2 with epoch 1's log-probs as old),
    and TRL's share of clipped tokens per epoch."""
    inputs = trl_inputs(rollouts)
    inputs["advantages"] = trl_advantages(rollouts, scale)
    first = load_tiny(path, captured[0][0])
    trainer = trl_trainer(first, loss_type, beta, epsilon_high)
    old = trl_logps(trainer, first, inputs)
    if beta:
        inputs["ref_per_token_logps"] = old  # the reference is the starting policy
    grads = []
    for epoch, (weights, _) in enumerate(captured):
        model = load_tiny(path, weights)
        trainer.model = model
        epoch_inputs = dict(inputs, old_per_token_logps=old) if epoch else inputs
        trainer._compute_loss(model, epoch_inputs).backward()
        grads.append({n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None})
    return grads, trainer._metrics["train"]["clip_ratio/region_mean"]


CASES = [  # (TRL loss_type, beta, epsilon_high, scale_rewards)
    ("grpo", 0.0, None, "group"),
    ("bnpo", 0.04, None, "group"),
    ("dr_grpo", 0.04, None, "none"),
    ("dapo", 0.04, 0.28, "batch"),
]


@pytest.mark.parametrize(("loss_type", "beta", "epsilon_high", "scale"), CASES)
def test_grpo_gradients_equal_trl_compute_loss(tiny_llama, loss_type, beta, epsilon_high, scale) -> None:
    rollouts = make_rollouts()
    options = GRPOOptions(lr=3e-3, warmup_ratio=0.0, weight_decay=0.0, max_grad_norm=1e6, clip_eps=0.2,
                          clip_eps_high=epsilon_high, clip_ratio_c=None, kl_coef=beta, scale_rewards=scale,
                          advantage_eps=TRL_ADV_EPS, loss_agg_mode=loss_type, micro_batch_size=5, ppo_epochs=2,
                          bf16=False, device="cpu", attn_implementation="eager")
    captured = ours_gradients(tiny_llama, rollouts, options)
    expected, clipped = trl_gradients(tiny_llama, rollouts, captured, loss_type, beta, epsilon_high, scale)
    assert len(captured) == 2
    assert clipped[0] == 0 and clipped[1] > 0, "the 2nd epoch must be off-policy enough to clip"
    for epoch, ((_, ours), theirs) in enumerate(zip(captured, expected, strict=True)):
        ours = {name.removeprefix("model."): grad for name, grad in ours.items()}
        theirs = {name.removeprefix("model."): grad for name, grad in theirs.items()}
        assert set(ours) == set(theirs)
        norm = max(float(g.abs().max()) for g in theirs.values())
        assert norm > 1e-4, "a vanishing gradient would compare equal to anything"
        worst = max(float((ours[n] - theirs[n]).abs().max()) for n in theirs) / norm
        assert worst < 1e-5, f"epoch {epoch + 1}: max |ours - TRL| / max |TRL| = {worst:.2e}"


def plain_sequence_logps(model: torch.nn.Module, rollout: Rollout) -> torch.Tensor:
    """log p(completion tokens) at TEMPERATURE by a plain forward and log_softmax (no fused head)."""
    ids = torch.tensor([rollout.prompt_token_ids + rollout.completion_token_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, PROMPT_LEN - 1 : -1] / TEMPERATURE
    return torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(rollout.completion_token_ids)[:, None])[:, 0]


def test_kl_in_reward_subtracts_each_sequence_kl_from_its_reward(tiny_llama, monkeypatch) -> None:
    """verl's use_kl_in_reward with k1: reward - kl_coef * sum_t (log p_old - log p_ref), before the advantages;
    the all-equal group then has a spread and trains."""
    import harness.optimizers.grpo as grpo

    seen = []
    real = grpo.compute_advantages

    def recording(rewards: torch.Tensor, *args: object) -> torch.Tensor:
        seen.append(rewards.clone())
        return real(rewards, *args)

    monkeypatch.setattr(grpo, "compute_advantages", recording)
    options = GRPOOptions(lr=3e-3, warmup_ratio=0.0, kl_coef=0.5, kl_in_reward=True, kl_estimator="k1",
                          bf16=False, device="cpu", attn_implementation="eager")
    optimizer = GRPOOptimizer(options, tiny_llama, total_steps=2)
    rollouts = make_rollouts()
    batch = RolloutBatch(rollouts, temperature=TEMPERATURE, max_tokens=MAX_TOKENS)
    optimizer.step(batch)  # the policy is the reference: no penalty yet
    assert torch.allclose(seen[0], torch.tensor([r.reward for r in rollouts], dtype=torch.float64), atol=1e-6)
    moved = LlamaForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32, attn_implementation="eager")
    moved.load_state_dict({n: p for n, p in zip(optimizer._names, optimizer._master, strict=True)}, strict=False)
    reference = LlamaForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32, attn_implementation="eager")
    metrics = optimizer.step(batch)
    expected = [r.reward - 0.5 * float((plain_sequence_logps(moved, r) - plain_sequence_logps(reference, r)).sum())
                for r in rollouts]
    assert seen[1].tolist() == pytest.approx(expected, abs=1e-5)
    assert max(abs(a - r.reward) for a, r in zip(expected, rollouts, strict=True)) > 1e-3
    assert metrics["skipped_groups"] == 0 and metrics["kl"] != 0
