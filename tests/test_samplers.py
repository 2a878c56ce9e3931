"""The samplers: vLLM (in-process engine) and transformers, on the embedded SmolLM2-135M."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys

import pytest
import torch

from harness.errors import ConfigError, DataError, PluginError
from harness.interfaces import Sampler, SamplingParams
from harness.models import resolve_model
from harness.registry import Registry
from harness.samplers import default_sampler_name, plugin
from harness.samplers.common import check_params, mix_seed
from harness.samplers.hf import HFOptions, HFSampler

QUESTIONS = ["What is 6 times 7?", "Name a prime number larger than 10."]
SAMPLE = SamplingParams(n=3, temperature=1.0, top_p=0.95, max_tokens=12, seed=7)
GREEDY = SamplingParams(n=2, temperature=0.0, top_p=1.0, max_tokens=8, seed=0)
# Two bf16 computations of the same log-probs (nats). Measured here: each engine is 0.03-0.06 mean and up to
# 0.28 max away from an fp32 pass; vLLM vs transformers 0.013-0.048 mean, up to 0.22 max on 13-47 tokens.
MEAN_TOL, MAX_TOL = 0.06, 0.35
FIXED = "6 times 7 means adding 6 seven times: 6 + 6 + 6 + 6 + 6 + 6 + 6 = 42. So the answer is \\boxed{42}."


def test_default_sampler_follows_vllm_availability(monkeypatch):
    """auto picks vllm where vLLM is installed (scripts/install.sh always installs a build of it), and hf where
    only vLLM is missing."""
    assert default_sampler_name() == "vllm"
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "vllm" else real_find_spec(name, *args))
    assert default_sampler_name() == "hf"


def test_plugin_registers_both_with_validated_options():
    """The plugin registers vllm, vllm-server and hf; their options reject unknown keys with a ConfigError."""
    registry = Registry("sampler", Sampler)
    plugin.register_samplers(register=registry.add)
    assert registry.names() == ["hf", "vllm", "vllm-server"]
    assert registry.options("vllm", {"kv_cache_gib": 1}).kv_cache_gib == 1
    with pytest.raises(ConfigError, match="kv_cache"):
        registry.options("vllm", {"kv_cache": 1})
    with pytest.raises(ConfigError, match="logprobs"):
        registry.options("hf", {"logprobs": "softmax"})


def test_importing_the_plugin_loads_no_engine():
    """`import harness.samplers.plugin` imports neither vllm nor torch (the CLI stays fast)."""
    code = "import sys, harness.samplers.plugin; print(sorted({'vllm', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    "field, value", [("n", 0), ("max_tokens", 0), ("temperature", -0.1), ("top_p", 0.0), ("top_p", 1.5)]
)
def test_bad_sampling_params_are_config_errors(field, value):
    """Impossible sampling settings fail with a ConfigError naming the field."""
    values = {"n": 1, "temperature": 1.0, "top_p": 1.0, "max_tokens": 4, "seed": 0, field: value}
    with pytest.raises(ConfigError, match=field):
        check_params(SamplingParams(**values))


def test_mix_seed_is_stable_and_spreads():
    """Seeds derived per chunk are deterministic and distinct."""
    assert mix_seed(1, 2, 3) == mix_seed(1, 2, 3)
    assert len({mix_seed(0, 0, chunk) for chunk in range(100)}) == 100
    assert all(0 <= mix_seed(seed, 5) < 2**63 for seed in (-1, 0, 2**70))


@pytest.fixture(scope="module")
def model_path():
    return resolve_model("smollm2-135m")


@pytest.fixture(scope="module")
def vllm_sampler(model_path):
    from harness.samplers.vllm import VLLMOptions, VLLMSampler

    sampler = VLLMSampler(VLLMOptions(max_model_len=1024), model_path, seed=0)
    yield sampler
    sampler.close()


@pytest.fixture(scope="module")
def hf_sampler(model_path):
    sampler = HFSampler(HFOptions(), model_path, seed=0)
    yield sampler
    sampler.close()


@pytest.fixture(scope="module")
def prompts(model_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    chats = [[{"role": "user", "content": question}] for question in QUESTIONS]
    texts = [tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) for chat in chats]
    return tokenizer, texts


@pytest.fixture(params=["vllm", "hf"])
def sampler(request):
    return request.getfixturevalue(f"{request.param}_sampler")


@pytest.mark.slow
def test_generate_returns_n_decodable_completions(sampler, prompts):
    """n completions per prompt, in order, with token ids that decode to the text and log-probs <= 0."""
    tokenizer, texts = prompts
    groups = sampler.generate(texts, SAMPLE)
    assert len(groups) == len(texts)
    for text, group in zip(texts, groups, strict=True):
        assert len(group) == SAMPLE.n
        for completion in group:
            assert completion.prompt_token_ids == tokenizer(text).input_ids
            assert 1 <= len(completion.token_ids) <= SAMPLE.max_tokens
            assert len(completion.logprobs) == len(completion.token_ids)
            assert all(-1e4 < value <= 0 for value in completion.logprobs)
            assert completion.text == tokenizer.decode(completion.token_ids, skip_special_tokens=True)
            assert completion.finish_reason in {"stop", "length"}
            if completion.finish_reason == "length":
                assert len(completion.token_ids) == SAMPLE.max_tokens
    assert len({tuple(c.token_ids) for group in groups for c in group}) > 1  # samples, not copies
    assert sampler.generate([], SAMPLE) == []


@pytest.mark.slow
def test_greedy_with_n_gives_n_equal_independent_copies(sampler, prompts):
    """Temperature 0 with n > 1 works (vLLM alone rejects it) and returns n separate equal completions."""
    _, texts = prompts
    group = sampler.generate(texts[:1], GREEDY)[0]
    assert len(group) == GREEDY.n
    assert group[0].token_ids == group[1].token_ids and group[0].text == group[1].text
    assert group[0].token_ids is not group[1].token_ids


@pytest.mark.slow
def test_sampled_logprobs_match_score(sampler, prompts):
    """The log-probs reported while sampling are the model's raw log-probs that `score` recomputes."""
    _, texts = prompts
    completion = sampler.generate(texts[:1], SAMPLE)[0][0]
    scored = sampler.score(completion.prompt_token_ids, completion.token_ids)
    diff = (torch.tensor(scored) - torch.tensor(completion.logprobs)).abs()
    assert diff.mean().item() < MEAN_TOL and diff.max().item() < MAX_TOL
    assert sampler.score(completion.prompt_token_ids, []) == []


@pytest.mark.slow
def test_prompt_over_context_is_config_error(sampler):
    """A prompt that cannot fit with its answer fails with a ConfigError, not an engine crash."""
    with pytest.raises(ConfigError, match="max_tokens"):
        sampler.generate(["word " * 9000], SAMPLE)
    with pytest.raises(DataError, match="prompt token"):
        sampler.score([], [1, 2])


@pytest.mark.slow
def test_vllm_and_hf_score_alike(vllm_sampler, hf_sampler, prompts):
    """Both engines compute the same policy: their log-probs of one completion agree within bf16 noise."""
    tokenizer, texts = prompts
    prompt_ids = tokenizer(texts[0]).input_ids
    completion_ids = tokenizer(FIXED, add_special_tokens=False).input_ids
    diff = (
        torch.tensor(vllm_sampler.score(prompt_ids, completion_ids))
        - torch.tensor(hf_sampler.score(prompt_ids, completion_ids))
    ).abs()
    assert diff.mean().item() < MEAN_TOL and diff.max().item() < MAX_TOL


@pytest.mark.slow
def test_hf_sampling_is_reproducible_per_seed(hf_sampler, prompts):
    """The hf sampler draws from a private RNG stream: same seed, same samples; other seed, others."""
    _, texts = prompts
    params = dataclasses.replace(SAMPLE, n=2, max_tokens=6)
    first = hf_sampler.generate(texts[:1], params)
    torch.manual_seed(123)  # the caller's global RNG state must not matter
    again = hf_sampler.generate(texts[:1], params)
    other = hf_sampler.generate(texts[:1], dataclasses.replace(params, seed=params.seed + 1))
    ids = [[c.token_ids for c in group] for group in first]
    assert ids == [[c.token_ids for c in group] for group in again]
    assert ids != [[c.token_ids for c in group] for group in other]


@pytest.mark.slow
def test_hf_processed_logprobs_include_top_p(model_path, prompts):
    """logprobs="processed" reports log-probs after top-p renormalization: never below the raw ones."""
    _, texts = prompts
    sampler = HFSampler(HFOptions(logprobs="processed"), model_path, seed=0)
    params = SamplingParams(n=2, temperature=1.0, top_p=0.5, max_tokens=8, seed=0)
    for completion in sampler.generate(texts[:1], params)[0]:
        raw = torch.tensor(sampler.score(completion.prompt_token_ids, completion.token_ids))
        processed = torch.tensor(completion.logprobs)
        assert (processed >= raw - MAX_TOL).all()
        assert (processed - raw).mean().item() > 0.05  # dropping the tail raises every kept token's log-prob


@pytest.mark.bench
def test_bench_throughput_start_and_sync(model_path, prompts, benchmark):
    """Throughput of both samplers (8 prompts x n=8 x 64 tokens), vLLM start time and weight-sync time."""
    import time

    from transformers import AutoModelForCausalLM

    from harness.samplers.vllm import VLLMOptions, VLLMSampler

    tokenizer, _ = prompts
    questions = [f"What is {a} + {a + 26}? Explain step by step." for a in range(11, 19)]
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        for q in questions
    ]
    params = SamplingParams(n=8, temperature=1.0, top_p=1.0, max_tokens=64, seed=0)
    info = benchmark.extra_info

    def tokens_per_second(sampler) -> float:
        start = time.perf_counter()
        groups = sampler.generate(texts, params)
        return sum(len(c.token_ids) for group in groups for c in group) / (time.perf_counter() - start)

    start = time.perf_counter()
    vllm_sampler = VLLMSampler(VLLMOptions(), model_path, seed=0)
    info["vllm_start_s"] = time.perf_counter() - start
    tokens_per_second(vllm_sampler)  # warm-up
    info["vllm_tokens_per_s"] = benchmark.pedantic(tokens_per_second, args=(vllm_sampler,), rounds=1)
    trainer = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    start = time.perf_counter()
    vllm_sampler.load_weights(trainer.named_parameters())
    info["vllm_sync_s"] = time.perf_counter() - start
    vllm_sampler.close()

    hf_sampler = HFSampler(HFOptions(), model_path, seed=0)
    start = time.perf_counter()
    hf_sampler.load_weights(trainer.named_parameters())
    info["hf_sync_s"] = time.perf_counter() - start
    info["hf_tokens_per_s"] = tokens_per_second(hf_sampler)
    print({key: round(value, 2) for key, value in info.items()})
    assert info["vllm_tokens_per_s"] > 0 and info["hf_tokens_per_s"] > 0


@pytest.mark.slow
def test_hf_sampler_refuses_a_partial_or_misnamed_weight_set_and_keeps_its_weights(hf_sampler, model_path):
    """Like vLLM's, the hf sampler takes only a complete set: a missing weight, an unknown name or a wrong shape
    is a PluginError raised before any tensor is copied (a half-synced model samples from a mix)."""
    from transformers import AutoModelForCausalLM

    weights = dict(AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).named_parameters())
    probe = "model.layers.0.self_attn.q_proj.weight"
    before = dict(hf_sampler._model.named_parameters())[probe].detach().clone()
    changed = {name: tensor.detach() + 1.0 for name, tensor in weights.items()}
    partial = [(name, tensor) for name, tensor in changed.items() if name != "model.norm.weight"]
    with pytest.raises(PluginError, match="misses 1 of the model's weights .*model.norm.weight"):
        hf_sampler.load_weights(partial)
    with pytest.raises(PluginError, match="not a parameter"):
        hf_sampler.load_weights([*changed.items(), ("model.extra.weight", torch.zeros(1))])
    with pytest.raises(PluginError, match="has shape"):
        hf_sampler.load_weights([*partial, ("model.norm.weight", torch.zeros(3))])
    assert torch.equal(dict(hf_sampler._model.named_parameters())[probe], before)  # nothing was copied
