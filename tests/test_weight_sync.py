"""In-memory weight sync: after one real SGD step, each sampler scores like the trainer that took it.

Tolerance (bf16 engine vs a bf16 transformers model holding the same weights): mean |diff| < 0.06 nats and
max |diff| < 0.35 nats over the completion's tokens. Measured on this CPU with identical weights: vLLM vs
transformers 0.021-0.039 mean, 0.17-0.21 max; the hf sampler vs the trainer 0 (score), < 0.02 (sampling).
A sync that left vLLM's tied LM head stale measured 0.09 mean / 0.49 max, and the SGD step itself moves
the engine's mean log-prob by about 0.36 (MIN_SHIFT 0.2): both far outside the tolerance.

The loop's own path is tested too: a real GRPO step, then `load_weights(optimizer.named_weights())` (bf16
tensors that alias the trainer's live weights). Measured: vLLM vs the stepped trainer 0.026-0.033 mean,
0.25-0.28 max; the step moves the engine's log-probs of the rewarded completion by about 0.51. (One Adam
step moves the tied LM head too little to see a stale head: 0.028 mean with the head stale vs 0.027; the SGD
test above is the one that catches that.)
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from harness.errors import PluginError
from harness.interfaces import SamplingParams
from harness.models import resolve_model
from harness.optimizers.grpo import GRPOOptimizer
from harness.optimizers.options import GRPOOptions
from harness.samplers.hf import HFOptions, HFSampler
from harness.samplers.vllm import VLLMOptions, VLLMSampler
from harness.types import Rollout, RolloutBatch

pytestmark = pytest.mark.slow

MEAN_TOL, MAX_TOL = 0.06, 0.35
MIN_SHIFT = 0.2
LEARNING_RATE = 3e-3  # one plain SGD step on the completion's NLL; grad norm is about 20 here
COMPLETION = "6 times 7 means adding 6 seven times: 6 + 6 + 6 + 6 + 6 + 6 + 6 = 42. So the answer is \\boxed{42}."
GREEDY = SamplingParams(n=1, temperature=0.0, top_p=1.0, max_tokens=12, seed=0)
# GRPO's lr for the loop-path test: 2-3x a run's, so that one step moves the scores well past the tolerance
GRPO_LR = 1e-4
ROLLOUTS = SamplingParams(n=3, temperature=1.0, top_p=1.0, max_tokens=16, seed=0)


def token_logprobs(model, prompt_ids: list[int], completion_ids: list[int]) -> torch.Tensor:
    """log p(completion token | prefix) under `model`, in float32."""
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1]
    return logits.float().log_softmax(-1).gather(1, torch.tensor(completion_ids)[:, None]).squeeze(1)


def assert_close(engine: list[float] | torch.Tensor, trainer: torch.Tensor) -> None:
    diff = (torch.as_tensor(engine, dtype=torch.float32) - trainer).abs()
    assert diff.mean().item() < MEAN_TOL and diff.max().item() < MAX_TOL, (diff.mean().item(), diff.max().item())


@pytest.fixture(scope="module")
def case():
    """A prompt, a fixed completion, the base model, and the same model after one SGD step on it."""
    path = resolve_model("smollm2-135m")
    tokenizer = AutoTokenizer.from_pretrained(path)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 6 times 7?"}], tokenize=False, add_generation_prompt=True
    )
    prompt_ids = tokenizer(prompt).input_ids
    completion_ids = tokenizer(COMPLETION, add_special_tokens=False).input_ids
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    stepped = copy.deepcopy(base)
    optimizer = torch.optim.SGD(stepped.parameters(), lr=LEARNING_RATE)
    ids = torch.tensor([prompt_ids + completion_ids])
    logits = stepped(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1]
    loss = -logits.log_softmax(-1).gather(1, torch.tensor(completion_ids)[:, None]).mean()
    loss.backward()
    optimizer.step()
    stepped.requires_grad_(False)
    trainer = bf16_model(path, stepped)
    return SimpleNamespace(
        path=path,
        prompt=prompt,
        prompt_ids=prompt_ids,
        completion_ids=completion_ids,
        base=base,
        stepped=stepped,
        trainer=trainer,
        before=token_logprobs(bf16_model(path, base), prompt_ids, completion_ids),
        after=token_logprobs(trainer, prompt_ids, completion_ids),
    )


def bf16_model(path: str, source: torch.nn.Module) -> torch.nn.Module:
    """A bf16 transformers model holding `source`'s weights.

    Loaded in bf16 and then filled, rather than `source.to(bfloat16)`, which would also round the rotary
    `inv_freq` buffer to bf16 (transformers computes it in fp32) and add ~0.04 nats of its own error.
    """
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16)
    model.load_state_dict(source.state_dict())
    return model.requires_grad_(False)


@pytest.fixture(scope="module")
def vllm_sampler(case):
    sampler = VLLMSampler(VLLMOptions(), case.path, seed=0)
    yield sampler
    sampler.close()


@pytest.fixture(scope="module")
def hf_sampler(case):
    sampler = HFSampler(HFOptions(), case.path, seed=0)
    yield sampler
    sampler.close()


def check_sync(sampler, case) -> None:
    """Scores follow the step, sampling after the sync uses the new weights, syncing back restores."""
    engine_before = torch.tensor(sampler.score(case.prompt_ids, case.completion_ids))
    assert_close(engine_before, case.before)
    sampler.generate([case.prompt], GREEDY)  # fills vLLM's prefix cache with the old weights' KV

    sampler.load_weights(case.stepped.named_parameters())  # fp32 tensors: the engine casts to bf16
    engine_after = torch.tensor(sampler.score(case.prompt_ids, case.completion_ids))
    assert_close(engine_after, case.after)
    assert (engine_after - engine_before).mean().item() > MIN_SHIFT  # the step made the completion likelier

    (sample,) = sampler.generate([case.prompt], GREEDY)[0]
    assert_close(sample.logprobs, token_logprobs(case.trainer, case.prompt_ids, sample.token_ids))

    sampler.load_weights(case.base.named_parameters())
    assert_close(sampler.score(case.prompt_ids, case.completion_ids), case.before)


def test_vllm_sync_follows_trainer(vllm_sampler, case):
    """vLLM's log-probs match the stepped bf16 trainer after an in-memory sync, and differ from before."""
    check_sync(vllm_sampler, case)


def test_hf_sync_follows_trainer(hf_sampler, case):
    """The hf sampler's log-probs match the stepped bf16 trainer after load_weights, and differ from before."""
    check_sync(hf_sampler, case)


def test_vllm_refuses_partial_or_unknown_weights(vllm_sampler, case):
    """A partial or misnamed sync is refused before it touches the engine, which keeps working."""
    before = vllm_sampler.score(case.prompt_ids, case.completion_ids)
    params = list(case.stepped.named_parameters())
    with pytest.raises(PluginError, match="needs every weight"):
        vllm_sampler.load_weights(params[:5])
    with pytest.raises(PluginError, match="not in the vLLM model"):
        vllm_sampler.load_weights([*params, ("model.bogus.weight", torch.zeros(3))])
    assert vllm_sampler.score(case.prompt_ids, case.completion_ids) == before


def test_vllm_accepts_tied_head_alias(vllm_sampler, case):
    """named_parameters(remove_duplicate=False) also yields the tied lm_head.weight; the sync accepts it."""
    vllm_sampler.load_weights(case.base.named_parameters(remove_duplicate=False))
    assert_close(vllm_sampler.score(case.prompt_ids, case.completion_ids), case.before)


def test_hf_refuses_unknown_or_misshapen_weights(hf_sampler, case):
    """The hf sampler names the weight it cannot place."""
    with pytest.raises(PluginError, match="bogus"):
        hf_sampler.load_weights([("model.bogus.weight", torch.zeros(3))])
    with pytest.raises(PluginError, match="shape"):
        hf_sampler.load_weights([("model.norm.weight", torch.zeros(3))])


def test_vllm_follows_a_grpo_step_synced_like_the_loop(vllm_sampler, case):
    """After a GRPO step on rollouts the engine sampled, the loop's sync (`load_weights(named_weights())`)
    makes vLLM score like the stepped policy, and unlike the base model it started from."""
    assert_close(vllm_sampler.score(case.prompt_ids, case.completion_ids), case.before)  # starts at the base
    # A group as the loop builds it: the engine's own samples, unrewarded, beside the rewarded COMPLETION.
    (samples,) = vllm_sampler.generate([case.prompt], ROLLOUTS)
    rollouts = [Rollout("q", case.prompt_ids, case.completion_ids, 1.0, 0)]
    rollouts += [Rollout("q", sample.prompt_token_ids, sample.token_ids, 0.0, 0) for sample in samples]
    optimizer = GRPOOptimizer(GRPOOptions(lr=GRPO_LR, warmup_ratio=0.0, kl_coef=0.0), case.path, total_steps=1)
    try:  # GRPO's fp32 masters and AdamW state: 2 GB, not kept for the rest of the module
        metrics = optimizer.step(RolloutBatch(rollouts))
        assert metrics["trained_sequences"] == len(rollouts)
        # The trainer's forward, in the bf16 model the tolerance was measured with (same weights, bit for bit).
        trainer = token_logprobs(bf16_model(case.path, optimizer.policy), case.prompt_ids, case.completion_ids)
        assert (trainer - case.before).mean().item() > MIN_SHIFT  # the step really moved the policy

        vllm_sampler.load_weights(optimizer.named_weights())
        engine = torch.tensor(vllm_sampler.score(case.prompt_ids, case.completion_ids))
        # a sync that did nothing, or sent the pre-step weights, leaves the engine at the base: ~0.55 mean off
        assert_close(engine, trainer)
        assert (engine - case.before).mean().item() > MIN_SHIFT  # the rewarded completion got likelier
    finally:
        del optimizer
        vllm_sampler.load_weights(case.base.named_parameters())  # the next test expects the base weights
