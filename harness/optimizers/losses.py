"""The policy-loss pieces as pure tensor functions: chunked log-probs, clipping, KL estimators, aggregation.

Nothing here knows about models or batches; `grpo.py` wires these together. Conventions follow verl (the
engine of the official TTRL code), each with its source in docs/optimizers.md: the k1/k2/k3 estimators with
k3 clamped as verl's "low_var_kl", PPO clipping with an optional asymmetric upper bound and verl's dual clip,
verl's `loss_agg_mode` aggregations over the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

TokenLoss = Callable[[Tensor, Tensor, slice], Tensor]


class HeadWorkspace:
    """Reusable chunk buffers for the LM head: fresh 100+ MB tensors each chunk cost more in page faults
    than the arithmetic done on them (measured on CPU), so the buffers live as long as the optimizer."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, torch.dtype, torch.device], Tensor] = {}

    def get(self, name: str, rows: int, cols: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        key = (name, dtype, device)
        buffer = self._buffers.get(key)
        if buffer is None or buffer.numel() < rows * cols:
            buffer = torch.empty(rows * cols, dtype=dtype, device=device)
            self._buffers[key] = buffer
        return buffer[: rows * cols].view(rows, cols)


def _head_chunk(
    hidden: Tensor, weight: Tensor, targets: Tensor, workspace: HeadWorkspace
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Softmax statistics of one chunk, all fp32: (shifted logits [n, V], probs [n, V], log-sum-exp of the
    shifted logits [n], log p(targets) [n], entropy [n]). The [n, V] results are workspace views."""
    rows, vocab, device = hidden.shape[0], weight.shape[0], hidden.device
    logits = torch.mm(hidden, weight.t(), out=workspace.get("logits", rows, vocab, hidden.dtype, device))
    shifted = workspace.get("shifted", rows, vocab, torch.float32, device).copy_(logits)
    shifted.sub_(shifted.amax(dim=-1, keepdim=True))
    probs = torch.exp(shifted, out=workspace.get("probs", rows, vocab, torch.float32, device))
    log_norm = probs.sum(dim=-1).log_()
    probs.div_(log_norm.exp()[:, None])
    target_logp = shifted.gather(1, targets[:, None]).squeeze(1) - log_norm
    # entropy = -sum p (shifted - log_norm) = log_norm - sum p * shifted, as a batched dot product
    entropy = log_norm - torch.bmm(probs.unsqueeze(1), shifted.unsqueeze(2)).view(-1)
    return shifted, probs, log_norm, target_logp, entropy


def chunked_token_logprobs(
    hidden: Tensor, weight: Tensor, targets: Tensor, chunk_size: int = 1024, workspace: HeadWorkspace | None = None
) -> tuple[Tensor, Tensor]:
    """(log p(targets), entropy) per row of `hidden` [n, d] under logits `hidden @ weight.T`, in fp32.

    For frozen passes (reference, old policy); not differentiable. Memory is bounded by `chunk_size` rows
    of logits. Training uses `fused_head_loss`.
    """
    hidden, weight = _matmul_dtype(hidden, weight)
    workspace = workspace or HeadWorkspace()
    logps, entropies = [], []
    with torch.no_grad(), torch.autocast(hidden.device.type, enabled=False):
        for start in range(0, hidden.shape[0], chunk_size):
            end = start + chunk_size
            *_, logp, entropy = _head_chunk(hidden[start:end], weight, targets[start:end], workspace)
            logps.append(logp)
            entropies.append(entropy)
    if not logps:
        empty = hidden.new_zeros(0, dtype=torch.float32)
        return empty, empty
    return torch.cat(logps), torch.cat(entropies)


class _FusedHeadLoss(torch.autograd.Function):
    """LM head + per-token loss with the head's gradients computed during the forward pass.

    The loss of a token depends on the logits only through its log-prob (and entropy), so for each chunk
    the upstream gradient per token is known as soon as the chunk's log-probs are: d loss / d logits =
    g * (onehot - p) [+ g_H * -p (log p + H)]. Computing it right away means no logits are kept or
    recomputed for backward (the idea of Liger's fused linear cross-entropy); backward only rescales.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, token_loss, chunk_size, workspace):  # type: ignore[override]
        n, vocab = hidden.shape[0], weight.shape[0]
        grad_hidden = torch.empty_like(hidden)
        grad_weight: Tensor | None = None
        loss = hidden.new_zeros((), dtype=torch.float32)
        logp_all = hidden.new_empty(n, dtype=torch.float32)
        entropy_all = hidden.new_empty(n, dtype=torch.float32)
        for start in range(0, n, chunk_size):
            end = min(start + chunk_size, n)
            chunk = slice(start, end)
            shifted, probs, log_norm, logp, entropy = _head_chunk(hidden[chunk], weight, targets[chunk], workspace)
            logp_all[chunk], entropy_all[chunk] = logp, entropy
            with torch.enable_grad():
                logp_leaf = logp.detach().requires_grad_(True)
                entropy_leaf = entropy.detach().requires_grad_(True)
                chunk_loss = token_loss(logp_leaf, entropy_leaf, chunk).sum()
                g_logp, g_entropy = torch.autograd.grad(chunk_loss, [logp_leaf, entropy_leaf], allow_unused=True)
            loss += chunk_loss.detach()
            if g_entropy is not None:  # dH/dlogits = -p * (log p + H); before probs is overwritten below
                shifted.sub_((log_norm - entropy)[:, None]).mul_(probs).mul_(-g_entropy[:, None])
            grad = probs.mul_(-g_logp[:, None]) if g_logp is not None else probs.zero_()  # -g * p
            if g_logp is not None:
                grad.scatter_add_(1, targets[chunk, None], g_logp[:, None])  # + g * onehot(target)
            if g_entropy is not None:
                grad.add_(shifted)
            grad_low = workspace.get("grad", end - start, vocab, hidden.dtype, hidden.device).copy_(grad)
            torch.mm(grad_low, weight, out=grad_hidden[chunk])
            chunk_grad_weight = grad_low.t() @ hidden[chunk]
            if grad_weight is None:
                grad_weight = chunk_grad_weight if end == n else chunk_grad_weight.float()
            else:
                grad_weight += chunk_grad_weight  # fp32 accumulation across chunks
        grad_weight = torch.zeros_like(weight) if grad_weight is None else grad_weight.to(weight.dtype)
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.mark_non_differentiable(logp_all, entropy_all)
        return loss, logp_all, entropy_all

    @staticmethod
    def backward(ctx, grad_loss: Tensor, *_unused: Tensor):  # type: ignore[override]
        grad_hidden, grad_weight = ctx.saved_tensors
        scale = grad_loss.to(grad_hidden.dtype)
        return grad_hidden.mul_(scale), grad_weight.mul_(scale), None, None, None, None


def fused_head_loss(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    token_loss: TokenLoss,
    chunk_size: int = 1024,
    workspace: HeadWorkspace | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """(sum of `token_loss`, log p(targets), entropy) for hidden [n, d] under logits hidden @ weight.T.

    `token_loss(logp, entropy, chunk)` gets fp32 log-probs and entropies of the tokens in `chunk` (a slice
    of the n rows) and returns their per-token losses; it must be differentiable and per-token (a token's
    loss may not depend on another token's log-prob). The returned loss backpropagates into `hidden` and
    `weight` (call backward once); the returned log-probs and entropies are detached.
    """
    hidden, weight = _matmul_dtype(hidden, weight)
    workspace = workspace or HeadWorkspace()
    with torch.autocast(hidden.device.type, enabled=False):
        return _FusedHeadLoss.apply(hidden, weight, targets, token_loss, max(1, int(chunk_size)), workspace)


def _matmul_dtype(hidden: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """Cast both operands to the dtype nn.Linear would use here (the autocast dtype when enabled)."""
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
    else:
        dtype = torch.promote_types(hidden.dtype, weight.dtype)
    return hidden.to(dtype), weight.to(dtype)


def low_var_kl(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-token k3 estimate of KL(policy || reference), clamped as verl's "low_var_kl" (>= 0)."""
    log_ratio = torch.clamp(ref_logp - logp, min=-20.0, max=20.0)
    return torch.clamp(torch.exp(log_ratio) - log_ratio - 1.0, min=-10.0, max=10.0)


def kl_estimate(logp: Tensor, ref_logp: Tensor, estimator: str) -> Tensor:
    """Per-token estimate of KL(policy || reference) from sampled tokens (J. Schulman, "Approximating KL
    divergence", 2020; verl's `kl_penalty`): k1 = log p - log ref (unbiased, high variance), k2 = (log p -
    log ref)^2 / 2, k3 = `low_var_kl`."""
    if estimator == "k1":
        return logp - ref_logp
    if estimator == "k2":
        return 0.5 * (logp - ref_logp).square()
    if estimator == "k3":
        return low_var_kl(logp, ref_logp)
    raise ValueError(f"unknown KL estimator {estimator!r}; use k1, k2 or k3")


def clipped_policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    clip_eps: float,
    clip_eps_high: float | None = None,
    clip_ratio_c: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-token PPO-clip loss and a 0/1 mask of tokens where the clipped branch is the active one.

    `advantages` broadcasts against `logp` (one value per token). Upper bound 1 + clip_eps_high when given
    (DAPO's "clip higher"), else 1 + clip_eps. `clip_ratio_c` (> 1) is verl's dual clip (Ye et al. 2019):
    where the advantage is negative the loss is at most -A * clip_ratio_c, so one token with a huge ratio
    cannot dominate the batch.
    """
    high = clip_eps if clip_eps_high is None else clip_eps_high
    ratio = torch.exp(logp - old_logp)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_eps, 1.0 + high)
    loss = torch.maximum(unclipped, clipped)
    if clip_ratio_c is not None:
        loss = torch.where(advantages < 0, torch.minimum(loss, -advantages * clip_ratio_c), loss)
    return loss, (clipped > unclipped).to(logp.dtype)


def token_weights(seq_ids: Tensor, mode: str, num_tokens: float, num_seqs: float, scale_factor: float = 1.0) -> Tensor:
    """Per-token weights w such that sum(w * values) is the batch-level aggregate of per-token values.

    `seq_ids` [n] says which sequence each token of this micro-batch belongs to (flat, no padding); `mode` is
    one of verl's `loss_agg_mode` values (`agg_loss` in verl/trainer/ppo/core_algos.py):
    token-mean: 1 / `num_tokens` (completion tokens of the whole batch); token-sum: 1;
    seq-mean-token-mean: 1 / (tokens of its sequence * `num_seqs`); seq-mean-token-sum: 1 / `num_seqs`;
    seq-mean-token-sum-norm: 1 / (`num_seqs` * `scale_factor`) (Dr. GRPO's constant normaliser).
    The counts are those of the whole batch, so summing micro-batch losses equals one big batch.
    """
    if mode == "token-mean":
        return torch.full(seq_ids.shape, 1.0 / num_tokens, device=seq_ids.device)
    if mode == "token-sum":
        return torch.ones(seq_ids.shape, device=seq_ids.device)
    if mode == "seq-mean-token-mean":
        counts = torch.bincount(seq_ids).float()
        return 1.0 / (counts[seq_ids] * num_seqs)
    if mode == "seq-mean-token-sum":
        return torch.full(seq_ids.shape, 1.0 / num_seqs, device=seq_ids.device)
    if mode == "seq-mean-token-sum-norm":
        return torch.full(seq_ids.shape, 1.0 / (num_seqs * scale_factor), device=seq_ids.device)
    raise ValueError(f"unknown aggregation {mode!r}")
