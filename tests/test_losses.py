"""The GRPO loss pieces on small tensors: advantages, clipping, KL, aggregation, chunked LM head."""

from __future__ import annotations

import math

import pytest
import torch

from harness.optimizers.advantages import compute_advantages
from harness.optimizers.losses import (
    chunked_token_logprobs,
    clipped_policy_loss,
    fused_head_loss,
    kl_estimate,
    low_var_kl,
    token_weights,
)
from harness.optimizers.schedule import lr_at


def test_advantages_are_group_normalized_with_unbiased_std() -> None:
    """Reward minus the group mean, divided by the group's unbiased std (+ eps), per group_index."""
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 5.0, 7.0])
    groups = torch.tensor([3, 3, 3, 3, 9, 9])
    adv = compute_advantages(rewards, groups, scaling="group", eps=1e-6)
    std = torch.tensor([1.0, 0.0, 0.0, 0.0]).std().item()  # unbiased: 0.5
    expected = [0.75 / (std + 1e-6), -0.25 / (std + 1e-6)]
    assert adv[0].item() == pytest.approx(expected[0], rel=1e-5)
    assert adv[1].item() == pytest.approx(expected[1], rel=1e-5)
    assert adv[4].item() == pytest.approx(-1 / (math.sqrt(2) + 1e-6), rel=1e-5)
    assert adv[:4].sum().item() == pytest.approx(0.0, abs=1e-5)


def test_advantages_without_std_scaling_are_centered_rewards() -> None:
    """scale_rewards=none leaves the advantage as reward minus group mean (Dr. GRPO)."""
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 5.0, 7.0])
    groups = torch.tensor([0, 0, 0, 0, 1, 1])
    adv = compute_advantages(rewards, groups, scaling="none")
    assert adv.tolist() == pytest.approx([0.75, -0.25, -0.25, -0.25, -1.0, 1.0])


def test_equal_rewards_and_singletons_get_exactly_zero_advantage() -> None:
    """A group whose rewards are all equal (or a group of one) has zero advantage, not NaN."""
    rewards = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    groups = torch.tensor([0, 0, 0, 1, 1, 2])
    adv = compute_advantages(rewards, groups)
    assert adv.tolist() == [0.0] * 6


def test_ppo_clip_limits_the_ratio_on_the_advantage_side() -> None:
    """Ratios outside [1-eps, 1+eps] stop pushing further; clip_eps_high raises only the upper bound."""
    old = torch.zeros(4)
    logp = torch.log(torch.tensor([1.5, 0.5, 1.5, 0.5]))
    adv = torch.tensor([1.0, -1.0, -1.0, 1.0])
    loss, clipped = clipped_policy_loss(logp, old, adv, clip_eps=0.2)
    # positive advantage, ratio 1.5 -> clipped at 1.2; negative advantage, ratio 0.5 -> clipped at 0.8
    assert loss.tolist() == pytest.approx([-1.2, 0.8, 1.5, -0.5], rel=1e-6)
    assert clipped.tolist() == [1.0, 1.0, 0.0, 0.0]
    high, clipped_high = clipped_policy_loss(logp, old, adv, clip_eps=0.2, clip_eps_high=0.28)
    assert high.tolist() == pytest.approx([-1.28, 0.8, 1.5, -0.5], rel=1e-6)
    assert clipped_high.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_clipped_tokens_have_no_gradient_and_on_policy_gradient_is_minus_advantage() -> None:
    """At ratio 1 the gradient wrt log p is -A; a clipped token contributes no gradient."""
    logp = torch.tensor([0.0, math.log(1.5)], requires_grad=True)
    loss, _ = clipped_policy_loss(logp, torch.tensor([0.0, 0.0]), torch.tensor([2.0, 1.0]), clip_eps=0.2)
    loss.sum().backward()
    assert logp.grad.tolist() == pytest.approx([-2.0, 0.0])


def test_low_var_kl_matches_k3_and_is_zero_at_equality() -> None:
    """k3 = exp(ref - logp) - (ref - logp) - 1: zero when equal, positive otherwise, clamped at 10."""
    logp = torch.tensor([-1.0, -2.0, -0.5, -30.0])
    ref = torch.tensor([-1.0, -1.0, -1.5, 0.0])
    kl = low_var_kl(logp, ref)
    d = torch.tensor([0.0, 1.0, -1.0])
    assert kl[:3].tolist() == pytest.approx((torch.exp(d) - d - 1).tolist(), rel=1e-6)
    assert kl[0].item() == 0.0
    assert kl[3].item() == 10.0


def test_token_mean_and_seq_mean_weights_differ_as_defined() -> None:
    """token-mean weighs every token alike; seq-mean-token-mean weighs every sequence alike."""
    values = torch.tensor([1.0, 1.0, 1.0, 4.0])  # sequence 0 has three tokens, sequence 1 has one
    seq_ids = torch.tensor([0, 0, 0, 1])
    token_mean = (values * token_weights(seq_ids, "token-mean", num_tokens=4, num_seqs=2)).sum()
    seq_mean = (values * token_weights(seq_ids, "seq-mean-token-mean", num_tokens=4, num_seqs=2)).sum()
    assert token_mean.item() == pytest.approx(7 / 4)
    assert seq_mean.item() == pytest.approx((1 + 4) / 2)


def test_weights_split_over_micro_batches_sum_to_the_batch_mean() -> None:
    """Global normalizers make micro-batch sums add up to the whole-batch aggregate."""
    values = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0])]
    seq_ids = [torch.tensor([0, 0, 1]), torch.tensor([0])]
    for mode, expected in [("token-mean", 16 / 4), ("seq-mean-token-mean", (1.5 + 3 + 10) / 3)]:
        total = sum((v * token_weights(s, mode, 4, 3)).sum() for v, s in zip(values, seq_ids, strict=True))
        assert total.item() == pytest.approx(expected)


def _reference_head(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor):
    log_probs = torch.log_softmax(hidden @ weight.t(), dim=-1)
    logp = log_probs.gather(1, targets[:, None]).squeeze(1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    return logp, entropy


def test_chunked_logprobs_equal_full_log_softmax_gather() -> None:
    """Chunked log p(target) and entropy equal log_softmax over full logits, for uneven chunking."""
    gen = torch.Generator().manual_seed(0)
    hidden, weight = torch.randn(13, 8, generator=gen), torch.randn(50, 8, generator=gen)
    targets = torch.randint(0, 50, (13,), generator=gen)
    want_logp, want_entropy = _reference_head(hidden, weight, targets)
    for chunk in (1, 4, 13, 100):
        logp, entropy = chunked_token_logprobs(hidden, weight, targets, chunk_size=chunk)
        torch.testing.assert_close(logp, want_logp, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(entropy, want_entropy, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("entropy_coef", [0.0, 0.3])
def test_fused_head_loss_matches_autograd_through_full_logits(entropy_coef: float) -> None:
    """Loss value and gradients (hidden, weight) equal plain autograd through full log_softmax."""
    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(11, 8, generator=gen, dtype=torch.float64)
    weight = torch.randn(40, 8, generator=gen, dtype=torch.float64)
    targets = torch.randint(0, 40, (11,), generator=gen)
    adv = torch.randn(11, generator=gen, dtype=torch.float64).float()
    old = torch.randn(11, generator=gen).float() * 0.1 - 3.0

    def token_loss(logp, entropy, chunk):
        pg, _ = clipped_policy_loss(logp, old[chunk] + logp.detach(), adv[chunk], 0.2)
        return (pg + 0.01 * low_var_kl(logp, old[chunk]) - entropy_coef * entropy) / 11

    h_ref, w_ref = hidden.clone().requires_grad_(True), weight.clone().requires_grad_(True)
    logp, entropy = _reference_head(h_ref, w_ref, targets)
    want = token_loss(logp.float(), entropy.float(), slice(0, 11)).sum()
    want.backward()
    for chunk in (3, 11):
        h, w = hidden.clone().requires_grad_(True), weight.clone().requires_grad_(True)
        loss, got_logp, got_entropy = fused_head_loss(h, w, targets, token_loss, chunk_size=chunk)
        loss.backward()
        torch.testing.assert_close(loss, want.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got_logp, logp.detach().float(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got_entropy, entropy.detach().float(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(h.grad, h_ref.grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(w.grad, w_ref.grad, rtol=1e-4, atol=1e-6)


def test_lr_schedule_warms_up_then_decays_by_cosine() -> None:
    """Warmup int(0.03 * total) steps from base/warmup, cosine to 0 at total_steps, never zero before."""
    lrs = [lr_at(step, 100, 0.03, 1.0) for step in range(100)]
    assert lrs[:4] == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])
    assert lrs[3 + 97 // 2] == pytest.approx(0.5 * (1 + math.cos(math.pi * (97 // 2) / 97)))
    assert all(b <= a for a, b in zip(lrs[3:], lrs[4:], strict=False))
    assert lrs[-1] > 0
    assert lr_at(100, 100, 0.03, 1.0) == 0.0
    assert lr_at(0, 1, 0.03, 2e-5) == 2e-5  # a one-step run trains at full lr


# ---- verl's formulas where TRL has no equivalent (verl 0.9.1, verl/trainer/ppo/core_algos.py), re-stated ----


def verl_agg_loss(loss_mat: torch.Tensor, mask: torch.Tensor, mode: str, scale_factor: float) -> torch.Tensor:
    """verl's `agg_loss` on one [B, T] batch (dp_size 1)."""
    if mode == "token-mean":
        return (loss_mat * mask).sum() / mask.sum()
    if mode == "token-sum":
        return (loss_mat * mask).sum()
    seq_mask = (mask.sum(-1) > 0).float()
    if mode == "seq-mean-token-mean":
        seq_losses = (loss_mat * mask).sum(-1) / (mask.sum(-1) + 1e-8)
        return (seq_losses * seq_mask).sum() / seq_mask.sum()
    loss = ((loss_mat * mask).sum(-1) * seq_mask).sum() / seq_mask.sum()
    return loss / scale_factor if mode == "seq-mean-token-sum-norm" else loss


@pytest.mark.parametrize(
    "mode", ["token-mean", "token-sum", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]
)
def test_token_weights_equal_verl_agg_loss_split_over_micro_batches(mode: str) -> None:
    """Every verl aggregation, with the batch split over two micro-batches, equals verl's one-batch agg_loss."""
    torch.manual_seed(0)
    lengths = [3, 5, 1, 4]
    loss_mat, mask = torch.randn(4, 5), torch.zeros(4, 5)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
    expected = verl_agg_loss(loss_mat, mask, mode, scale_factor=8.0)
    total = torch.tensor(0.0)
    for rows in ([0, 1], [2, 3]):
        values = torch.cat([loss_mat[r, : lengths[r]] for r in rows])
        seq_ids = torch.cat([torch.full((lengths[r],), k) for k, r in enumerate(rows)])
        total = total + (values * token_weights(seq_ids, mode, sum(lengths), 4, 8.0)).sum()
    assert float(total) == pytest.approx(float(expected), rel=1e-6)


def test_dual_clip_equals_verl_vanilla_policy_loss() -> None:
    """verl's `compute_policy_loss_vanilla` per-token losses, clip_ratio_c 3, clip-higher 0.28."""
    torch.manual_seed(1)
    logp, old = torch.randn(200) * 0.1 - 1, torch.randn(200) * 0.1 - 1
    logp[:20] += 2.0  # ratios around e^2 = 7.4, beyond the dual clip
    adv = torch.randn(200)
    ratio = torch.exp(torch.clamp(logp - old, -20, 20))
    pg1, pg2 = -adv * ratio, -adv * torch.clamp(ratio, 1 - 0.2, 1 + 0.28)
    clip1 = torch.maximum(pg1, pg2)
    expected = torch.where(adv < 0, torch.minimum(-adv * 3.0, clip1), clip1)
    ours, _ = clipped_policy_loss(logp, old, adv, 0.2, 0.28, clip_ratio_c=3.0)
    assert torch.allclose(ours, expected, atol=1e-6)
    assert bool((expected != clip1).any()), "the dual clip must be active somewhere in this example"


def test_kl_estimators_equal_verl_kl_penalty() -> None:
    """k1 = log p - log ref, k2 = (log p - log ref)^2 / 2, k3 = verl's clamped low_var_kl."""
    logp, ref = torch.tensor([-1.0, -2.0, -0.5, -30.0]), torch.tensor([-1.5, -1.0, -0.5, -1.0])
    assert torch.allclose(kl_estimate(logp, ref, "k1"), logp - ref)
    assert torch.allclose(kl_estimate(logp, ref, "k2"), 0.5 * (logp - ref) ** 2)
    diff = torch.clamp(ref - logp, -20, 20)
    assert torch.allclose(kl_estimate(logp, ref, "k3"), torch.clamp(torch.exp(diff) - diff - 1, -10, 10))
    assert float(kl_estimate(logp, ref, "k3")[3]) == 10.0  # clamped, as verl


def test_rloo_equals_verl_leave_one_out_and_batch_scaling_uses_the_batch_std() -> None:
    """verl's `compute_rloo_outcome_advantage`: r * n/(n-1) - mean * n/(n-1); TRL's batch scaling."""
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    rloo = compute_advantages(rewards, groups, estimator="rloo", scaling="none")
    for g in (0, 1):
        members = rewards[groups == g]
        n = members.numel()
        others_mean = (members.sum() - members) / (n - 1)
        assert torch.allclose(rloo[groups == g], members - others_mean)
    batch = compute_advantages(rewards, groups, scaling="batch", eps=1e-4)
    centered = compute_advantages(rewards, groups, scaling="none")
    assert torch.allclose(batch, centered / (rewards.std() + 1e-4))
