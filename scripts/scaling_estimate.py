"""The arithmetic behind docs/scaling.md sections 5 and 6: memory per model size and the cost of the
paper's TTRL runs. Pure arithmetic, no measurement: every input below names its source, and the doc's tables
are this script's output (`python scripts/scaling_estimate.py`).
"""

from __future__ import annotations

GB = 1e9  # decimal gigabytes, as GPU memory sizes are quoted ("80 GB")

# config.json values (Hugging Face copies of the Qwen configs; URLs in docs/scaling.md section 5).
MODELS = {
    # name: (hidden, layers, heads, kv_heads, intermediate, vocab, tied embeddings)
    "Qwen2.5-0.5B": (896, 24, 14, 2, 4864, 151936, True),
    "Qwen2.5-Math-1.5B": (1536, 28, 12, 2, 8960, 151936, True),
    "Qwen2.5-Math-7B": (3584, 28, 28, 4, 18944, 152064, False),
    "Qwen2.5-32B": (5120, 64, 40, 8, 27648, 152064, False),
}


def params(hidden, layers, heads, kv_heads, inter, vocab, tied):
    """Exact Qwen2 parameter count: q/k/v projections with bias, o projection without, SwiGLU MLP (3 matrices),
    two RMSNorms per layer, final norm, embedding, and an untied LM head where tie_word_embeddings is false."""
    head_dim = hidden // heads
    q = hidden * heads * head_dim + heads * head_dim
    kv = 2 * (hidden * kv_heads * head_dim + kv_heads * head_dim)
    o = heads * head_dim * hidden
    mlp = 3 * hidden * inter
    layer = q + kv + o + mlp + 2 * hidden
    return layers * layer + hidden + vocab * hidden * (1 if tied else 2)


def kv_bytes_per_token(hidden, layers, heads, kv_heads, *_):
    """K and V, every layer, bf16: 2 * layers * kv_heads * head_dim * 2 bytes."""
    return 2 * layers * kv_heads * (hidden // heads) * 2


def memory_table(n_votes=64, max_tokens=3072, gpu_gb=80, shards=8):
    print("| model | params | layers x KV heads x head dim | bf16 weights | training state, 16 B/p | frozen reference "
          f"| KV per token | KV, {n_votes} x {max_tokens:,} tokens | training state + reference "
          f"| same, per GPU under FSDP/ZeRO-3 over {shards} |")
    print("|" + "---|" * 10)
    for name, cfg in MODELS.items():
        p = params(*cfg)
        hidden, layers, heads, kv_heads = cfg[:4]
        kvt = kv_bytes_per_token(*cfg)
        state = 16 * p + 2 * p
        fits = "fits one GPU" if state / GB < gpu_gb else "does not fit"
        print(f"| {name} | {p:,} | {layers} x {kv_heads} x {hidden // heads} | {2 * p / GB:.1f} GB | "
              f"{16 * p / GB:.1f} GB | {2 * p / GB:.1f} GB | {kvt:,} B | {kvt * n_votes * max_tokens / GB:.1f} GB | "
              f"{state / GB:.0f} GB: {fits} | {state / shards / GB:.1f} GB |")


# Cost of the paper's runs. Sources: TTRL.md and the official scripts (PRIME-RL/TTRL, verl/examples/ttrl/aime.sh,
# amc.sh, commit 3e2cc93): N=64 votes, 32 trained, 3,072 tokens, batch 8 (AIME, AMC) / 32 (MATH), epochs 80/30/10,
# dataloader drop_last=True (ray_trainer.py), validation every 2 steps with 16 samples per problem.
BENCH = {
    # name: (problems, prompts per step, epochs, mean prompt characters in ../shared/data/ttrl/*-TTT.json)
    "AIME 2024": (30, 8, 80, 367.6),
    "AMC": (83, 8, 30, 291.3),
    "MATH-500": (500, 32, 10, 195.9),
}
N_VOTES, N_TRAIN, CAP, VAL_N, VAL_EVERY = 64, 32, 3072, 16, 2
P7B = params(*MODELS["Qwen2.5-Math-7B"])
A100_BF16 = 312e12  # dense bf16 tensor-core peak, NVIDIA A100 datasheet
A100_BW = 2.039e12  # A100 80GB SXM HBM2e bytes/s, same datasheet
GEN_MEASURED = 1591.4  # output tok/s, Mistral-7B-Instruct-v0.3, 1x A100-80GB-SXM, vLLM 0.5.4 (Lambda benchmark)
MFU = 0.33  # actor-update MFU reported for verl on H100 (verl issue #965); stated assumption for every training pass


def prompt_tokens(chars):
    """Assumption: ~4 characters per token, plus ~50 tokens of chat template and instruction suffix."""
    return round(chars / 4 + 50)


def decode_ceiling(p, prompt, length, batch):
    """Memory-bandwidth ceiling for one GPU decoding `batch` sequences to `length` tokens: every decode step
    reads all bf16 weights once plus every live sequence's KV cache. Returns tokens/s at 100% of bandwidth."""
    kvt = kv_bytes_per_token(*MODELS["Qwen2.5-Math-7B"])
    steps = length
    weight_bytes = steps * 2 * p
    kv_bytes = batch * kvt * sum(prompt + t for t in range(length))
    return batch * length / ((weight_bytes + kv_bytes) / A100_BW)


def cost(mean_len, gen_tps, mfu=MFU, validation=False, gpus=8):
    rows = []
    for name, (problems, batch, epochs, chars) in BENCH.items():
        prompt = prompt_tokens(chars)
        steps = (problems // batch) * epochs  # drop_last=True
        sampled = steps * batch * N_VOTES * mean_len
        val_runs = steps // VAL_EVERY + 1 if validation else 0  # + the run before training
        val_sampled = val_runs * problems * VAL_N * mean_len
        gen_s = (sampled + val_sampled) / gen_tps
        seq = prompt + mean_len
        # old log-probs and reference log-probs on all 64 samples (forward, 2P per token each), then the update on
        # the 32 kept ones: forward + backward (6P) + the forward recomputed by gradient checkpointing (2P).
        flops_simple = 6 * P7B * steps * batch * N_TRAIN * seq
        flops = P7B * steps * batch * seq * (2 * N_VOTES + 2 * N_VOTES + 8 * N_TRAIN)
        train_s = flops / (mfu * A100_BF16)
        total_h = (gen_s + train_s) / 3600
        rows.append((name, steps, prompt, sampled, val_sampled, gen_s / 3600, flops_simple, flops,
                     train_s / 3600, total_h, total_h / gpus))
    return rows


def sci(x):
    return f"{x:.2e}".replace("e+", "e")


def print_cost(high, low):
    print("| benchmark | steps | sampled tokens (high / low) | generation GPU-h (high / low) | training FLOPs "
          "(high / low) | training GPU-h (high / low) | total GPU-h (high / low) | hours on 8 GPUs (high / low) |")
    print("|" + "---|" * 8)
    for hi, lo in zip(high, low, strict=True):
        name, steps = hi[0], hi[1]
        print(f"| {name} ({BENCH[name][0]}) | {steps} | {hi[3] / 1e6:,.1f} M / {lo[3] / 1e6:,.1f} M "
              f"| {hi[5]:,.1f} / {lo[5]:,.1f} | {sci(hi[7])} / {sci(lo[7])} | {hi[8]:,.1f} / {lo[8]:,.1f} "
              f"| **{hi[9]:,.1f} / {lo[9]:,.1f}** | {hi[10]:,.1f} / {lo[10]:,.1f} |")


if __name__ == "__main__":
    memory_table()
    ceiling = decode_ceiling(P7B, prompt_tokens(367.6), CAP, N_VOTES)
    print(f"\nQwen2.5-Math-7B: {P7B:,} params; decode ceiling, 64 sequences x {CAP:,} tokens on one A100 at "
          f"{A100_BW / 1e12:.3f} TB/s: {ceiling:,.0f} tok/s; weights-only floor per rollout step: "
          f"{CAP * 2 * P7B / A100_BW:.1f} s")
    high = cost(CAP, GEN_MEASURED)
    low = cost(1024, 2 * GEN_MEASURED, mfu=0.57)
    name, steps, prompt, sampled, _, gen_h, f6, f, train_h, tot, wall = high[0]
    print(f"\nWorked example, {name}, high: sampled {sampled:,} tokens; generation {gen_h:.1f} GPU-h; "
          f"6PN {sci(f6)}; all passes {sci(f)}; training {train_h:.1f} GPU-h; total {tot:.1f} GPU-h; {wall:.1f} h on 8")
    print(f"\nHigh: every answer at the {CAP:,} cap, {GEN_MEASURED:,.0f} tok/s, MFU {MFU:.0%}; "
          f"low: mean 1,024 tokens, {2 * GEN_MEASURED:,.0f} tok/s, MFU 57%")
    print_cost(high, low)
    print("\nHigh end with the official scripts' validation (every 2 steps and before training, 16 samples):")
    for row in cost(CAP, GEN_MEASURED, validation=True):
        print(f"  {row[0]}: +{row[4] / 1e6:,.1f} M sampled tokens, total {row[9]:,.1f} GPU-h")
