"""The `ppo` optimizer: GAE, the value loss and the policy loss against small examples computed by hand; a
real step, checkpoint and resume on a tiny model; and a real `harness run --optimizer ppo` killed and resumed."""

from __future__ import annotations

import math
import signal

import pytest
import torch

from harness.optimizers.losses import clipped_policy_loss
from harness.optimizers.options import PPOOptions
from harness.optimizers.ppo import PPOOptimizer, gae, value_loss
from harness.types import Rollout, RolloutBatch
from tests.test_crash_resume import TINY, Child, checkpointed_step, logged_steps


def test_gae_by_hand() -> None:
    """gamma 1, lambda 0.5. Row 1: r = (0, 0, 1), V = 0.5 everywhere: deltas (0, 0, 0.5), so A = (0.125, 0.25,
    0.5) and R = A + V. Row 2 has 2 tokens and one pad: deltas (0.2 - 0.1, 2 - 0.2) = (0.1, 1.8), A_0 = 0.1 +
    0.5 * 1.8 = 1.0; the pad gets 0 and passes nothing back."""
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]])
    values = torch.tensor([[0.5, 0.5, 0.5], [0.1, 0.2, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    assert advantages.flatten().tolist() == pytest.approx([0.125, 0.25, 0.5, 1.0, 1.8, 0.0])
    assert returns.flatten().tolist() == pytest.approx([0.625, 0.75, 1.0, 1.1, 2.0, 0.0])


def test_gae_discount_by_hand() -> None:
    """gamma 0.9, lambda 1, V = 0: A_t is the discounted reward-to-go, 0.9^(T-1-t) * r."""
    advantages, returns = gae(torch.tensor([[0.0, 0.0, 2.0]]), torch.zeros(1, 3), torch.ones(1, 3), 0.9, 1.0)
    assert advantages.flatten().tolist() == pytest.approx([1.62, 1.8, 2.0])
    assert returns.flatten().tolist() == pytest.approx([1.62, 1.8, 2.0])


def test_value_loss_by_hand() -> None:
    """Clip 0.2 around old values 0.5. v = 1, R = 0: unclipped 1, clipped (0.7)^2 = 0.49 -> 0.5 * 1. v = 0.9,
    R = 1: unclipped 0.01, clipped (0.7 - 1)^2 = 0.09 -> 0.5 * 0.09, the clipped branch active."""
    loss, clipped = value_loss(torch.tensor([1.0, 0.9]), torch.tensor([0.5, 0.5]), torch.tensor([0.0, 1.0]), 0.2)
    assert loss.tolist() == pytest.approx([0.5, 0.045])
    assert clipped.tolist() == [0.0, 1.0]


def test_policy_loss_by_hand() -> None:
    """Ratios e^0.1, e^0.3, e^1.5 with A = 1, 1, -1, clip 0.2, dual clip 3: -1.105 (inside the clip), -1.2
    (clipped at 1 + 0.2), and 3 (4.48 capped by the dual clip, -A * 3)."""
    logp = torch.tensor([0.1, 0.3, 1.5])
    loss, clipped = clipped_policy_loss(logp, torch.zeros(3), torch.tensor([1.0, 1.0, -1.0]), 0.2, None, 3.0)
    assert loss.tolist() == pytest.approx([-math.exp(0.1), -1.2, 3.0], rel=1e-6)
    assert clipped.tolist() == [0.0, 1.0, 0.0]


def tiny_batch(seed: int) -> RolloutBatch:
    rng = torch.Generator().manual_seed(seed)
    rollouts = [Rollout(f"p{i // 4}", torch.randint(1, 61, (5,), generator=rng).tolist(),
                        torch.randint(1, 61, (3 + i % 4,), generator=rng).tolist(), float(i % 3 == 0), i // 4)
                for i in range(8)]
    return RolloutBatch(rollouts, temperature=0.7, max_tokens=8)


def make_ppo(path: str, **overrides) -> PPOOptimizer:
    options = PPOOptions(**{"lr": 1e-3, "kl_coef": 0.05, "ppo_epochs": 2, "micro_batch_size": 3, "bf16": False,
                            "device": "cpu", "attn_implementation": "eager", "warmup_ratio": 0.0, **overrides})
    return PPOOptimizer(options, path, total_steps=4, seed=0)


def test_a_ppo_step_trains_the_policy_and_the_value_head(tiny_llama) -> None:
    """Finite metrics; the value head leaves zero towards the returns; the policy moves; KL in the reward."""
    optimizer = make_ppo(tiny_llama)
    before = {n: p.detach().clone() for n, p in optimizer.named_weights()}
    metrics = optimizer.step(tiny_batch(0))
    assert all(math.isfinite(value) for value in metrics.values()), metrics
    assert metrics["value_mean"] == 0.0 and metrics["return_mean"] > 0  # zero-initialised head, positive rewards
    assert metrics["vf_loss"] > 0 and metrics["clip_fraction"] > 0  # the 2nd epoch is off-policy at lr 1e-3
    assert float(optimizer.extra["value_head"].weight.abs().sum()) > 0
    assert any(not torch.equal(p, before[n]) for n, p in optimizer.named_weights())
    assert "value_head" not in "".join(name for name, _ in optimizer.named_weights())  # never sent to the sampler
    second = optimizer.step(tiny_batch(0))
    # the policy left the reference (k1 may be negative on tokens it did not sample); V was learned
    assert second["kl"] != 0 and second["value_mean"] != 0.0


def test_ppo_checkpoint_resumes_identically_and_refuses_a_grpo_checkpoint(tiny_llama) -> None:
    straight = make_ppo(tiny_llama)
    straight.step(tiny_batch(0))
    state = straight.state_dict()
    straight.step(tiny_batch(1))
    resumed = make_ppo(tiny_llama)
    resumed.load_state_dict(state)
    resumed.step(tiny_batch(1))
    for (name, a), (_, b) in zip(straight.named_weights(), resumed.named_weights(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(straight.extra["value_head"].weight, resumed.extra["value_head"].weight)

    from harness.errors import DataError
    from harness.optimizers.grpo import GRPOOptimizer
    from harness.optimizers.options import GRPOOptions

    grpo = GRPOOptimizer(GRPOOptions(bf16=False, device="cpu", kl_coef=0.0), tiny_llama, total_steps=1)
    with pytest.raises(DataError, match="value_head"):
        resumed.load_state_dict(grpo.state_dict())


@pytest.mark.slow
def test_harness_run_with_ppo_survives_kill_9_and_resumes(tmp_path) -> None:
    """`harness run --optimizer ppo` on the embedded model, SIGKILLed in its 2nd optimizer step, resumed."""
    run = tmp_path / "run"
    args = [arg for arg in TINY if arg not in ("--optimizer-opt", "kl_coef=0")]
    first = Child(*args, "--optimizer", "ppo", "--optimizer-opt", "kl_coef=0.01", "--output", str(run))
    first.wait_for("optimize", occurrence=2)
    first.signal(signal.SIGKILL)
    assert (logged_steps(run), checkpointed_step(run)) == ([0], 1)
    last = Child("--resume", str(run))
    assert last.finish() == 0, last.stderr[-3000:]
    assert "resumed from step 1" in last.stderr
    assert (logged_steps(run), checkpointed_step(run)) == ([0, 1], 2)


def test_docs_list_every_option_of_grpo_and_ppo_with_its_defaults() -> None:
    """docs/optimizers.md's options table is written from the options models: it must not drift from them."""
    from harness.optimizers.options import GRPOOptions
    from tests.conftest import REPO

    text = (REPO / "docs" / "optimizers.md").read_text()
    for name in {**GRPOOptions.model_fields, **PPOOptions.model_fields}:
        grpo, ppo = GRPOOptions.model_fields.get(name), PPOOptions.model_fields.get(name)
        cells = [f"`{field.default}`" if field else "-" for field in (grpo, ppo)]
        assert f"| `{name}` | {cells[0]} | {cells[1]} |" in text, f"docs/optimizers.md: row of {name} is stale"
